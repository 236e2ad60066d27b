"""A local HTTP server that runs in a background thread (tests, the drill) or in the foreground."""

from __future__ import annotations

import signal
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Self


class ServedInThread:
    """Lifecycle shared by the sandbox's servers: `start()` in a thread, `stop()`, or `with`."""

    thread_name = "sandbox-server"

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where to reach it: a server bound to every address is reached on loopback."""
        host = "127.0.0.1" if self.host == "0.0.0.0" else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def serve_as_process(self, ready_file: str | None = None) -> int:
        """Serve in the foreground until SIGTERM or Ctrl-C; write the port to `ready_file` once
        listening, so whoever started the process knows where to reach it. Returns the exit code."""
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=self._server.shutdown).start())
        if ready_file:
            Path(ready_file).write_text(str(self.port), encoding="utf-8")
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()
        return 0

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
