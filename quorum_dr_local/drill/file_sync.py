"""The drill's replicated file tree: main writes the file-sync marker, a copy loop replicates the
tree to DR, DR serves its copy (`services[].file_sync`).

As a deployment runs it: main writes the marker with the shipped script
(deploy/systemd/quorum-dr-file-sync-marker.sh, which the marker timer runs every minute; here every
`marker_every_seconds`), and only while main's application runs (a dead site writes nothing); the
copy loop stands in for the replication (rsync, lsyncd, a storage product) and copies main's tree to
DR's every `copy_every_seconds`; DR serves its copy over HTTP on its own address
(`Layout.marker_url`). The failover's replica check reads the marker (the file lag at promotion),
and so does readiness (`file_sync`).

One thread, bounded by the drill's stop event; the HTTP server is a process the world records by
PID and stops at teardown.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from quorum_dr.config import FileSync
from quorum_dr_local.drill.layout import MARKER_FILE
from quorum_dr_local.drill.processes import Started, wait_http

if TYPE_CHECKING:
    from quorum_dr_local.drill.world import DrillWorld

REPO = Path(__file__).resolve().parent.parent.parent
MARKER_SCRIPT = REPO / "deploy" / "systemd" / "quorum-dr-file-sync-marker.sh"
MARKER_EVERY_SECONDS = 1.0
COPY_EVERY_SECONDS = 2.0
MAX_LAG_SECONDS = 30  # readiness's limit in the drill (production's default is 300)
SCRIPT_TIMEOUT_SECONDS = 5.0


def drill_file_sync(marker_url: str) -> FileSync:
    """The config's file_sync in the drill: a short read (the replica check waits for it)."""
    return FileSync.model_validate(
        {"url": marker_url, "max_lag_seconds": MAX_LAG_SECONDS, "timeout_seconds": 1, "verify_tls": False}
    )


class FileReplication:
    """Main's tree, DR's copy, the marker writer and the copy loop (see the module text). Stopped
    like the drill's watchers (`stop()`, `errors`)."""

    name = "file-sync"

    def __init__(
        self,
        world: DrillWorld,
        *,
        marker_every_seconds: float = MARKER_EVERY_SECONDS,
        copy_every_seconds: float = COPY_EVERY_SECONDS,
    ) -> None:
        self.world = world
        self._stop = threading.Event()
        self.marker_every = marker_every_seconds
        self.copy_every = copy_every_seconds
        self.main_tree = world.workdir / "files" / "main"
        self.dr_tree = world.workdir / "files" / "dr"
        self.errors: list[str] = []
        self.markers_written = 0
        self._thread: threading.Thread | None = None

    def start(self) -> FileReplication:
        self.main_tree.mkdir(parents=True, exist_ok=True)
        self.dr_tree.mkdir(parents=True, exist_ok=True)
        self.write_marker()
        self.replicate()
        self._serve()
        self._thread = threading.Thread(target=self._loop, name="file-sync", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        layout = self.world.layout
        log = open(self.world.workdir / "file-sync-server.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            argv = [sys.executable, "-m", "http.server", str(layout.marker_port)]
            argv += ["--bind", layout.sites["dr"], "--directory", str(self.dr_tree)]
            popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.world.processes.append(Started("file-sync-server-dr", popen.pid, popen))
        wait_http(layout.marker_url, "DR's file-sync marker server")

    def main_writes(self) -> bool:
        """Main writes only while its application runs."""
        app = self.world.apps.get("main")
        return app is not None and app.alive()

    def write_marker(self) -> None:
        subprocess.run(  # noqa: S603 - the shipped script, a path we chose
            ["/bin/sh", str(MARKER_SCRIPT), str(self.main_tree / MARKER_FILE)],
            check=True,
            capture_output=True,
            timeout=SCRIPT_TIMEOUT_SECONDS,
        )
        self.markers_written += 1

    def replicate(self) -> None:
        """Copy main's tree to DR's, each file through a temporary name (a reader never sees half).
        The marker script's own temporary files are not copied; a file that vanished between the
        listing and its copy is skipped (as rsync does)."""
        for source in self.main_tree.iterdir():
            if not source.is_file() or source.name.startswith(f"{MARKER_FILE}."):
                continue
            temporary = self.dr_tree / f"{source.name}.copy-{os.getpid()}"
            try:
                shutil.copyfile(source, temporary)
            except FileNotFoundError:
                continue
            os.replace(temporary, self.dr_tree / source.name)

    def _loop(self) -> None:
        next_copy = time.monotonic() + self.copy_every
        while not self._stop.wait(self.marker_every):
            try:
                if self.main_writes():
                    self.write_marker()
                if time.monotonic() >= next_copy:
                    self.replicate()
                    next_copy = time.monotonic() + self.copy_every
            except (OSError, subprocess.SubprocessError) as exc:
                if len(self.errors) < 20:
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=SCRIPT_TIMEOUT_SECONDS + 1)
