"""A site's /health for benches and tests that need an origin and nothing else: every GET answers
200 with `{"status": "ok", "site": <marker>}` and the marker in `X-Site`, as the booking
application's health page does (quorum_dr_local.standins.booking_app), or 500 with
`{"status": "broken", ...}` while `broken` is set. Started in a thread."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from quorum_dr_local.standins.served import ServedInThread


class HealthPage(ServedInThread):
    thread_name = "health-page"

    def __init__(self, marker: str, host: str = "127.0.0.1") -> None:
        self.broken = threading.Event()
        broken = self.broken
        bodies = {
            200: json.dumps({"status": "ok", "site": marker}).encode(),
            500: json.dumps({"status": "broken", "site": marker}).encode(),
        }

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                pass

            def do_GET(self) -> None:
                status = 500 if broken.is_set() else 200
                body = bodies[status]
                self.send_response(status)
                self.send_header("X-Site", marker)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer((host, 0), Handler)
        server.daemon_threads = True
        super().__init__(server)
