"""One probe region of the drill: the real probe Lambda handler, run as a process in the region.

    python -m quorum_dr_local.drill.probe_agent --region eu-west-2 --host 10.213.N.11 --port 0 \
        --interval 2 --ready-file PORTFILE

The drill starts one agent per probe region, inside that region's network namespace when it
runs as root (`RegionNetwork.start`), so every check of a round really leaves from the region's
own address and a partition cut inside the namespace is a real network fault for it.

The agent does what the region's Lambda and its schedule do:
- every `--interval` seconds it invokes `lambdas/probe/handler.handler({})` (a scheduled round);
- `POST /invoke` with a JSON event invokes the handler with that event (an on-demand round of
  the state machine, or a verify round) and answers its JSON result; a handler error answers
  500 with `{"errorType", "errorMessage"}`, as Lambda reports a function error.
The handler writes its results to the results table and its events to the bus through the
AWS endpoint in `AWS_ENDPOINT_URL` (the drill's moto server), exactly as the Lambda would.
`GET /health` answers 200 once the agent serves. SIGTERM ends it cleanly.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from quorum_dr_local.sfn_harness import _Context, load_handler

MAX_BODY_BYTES = 1 << 20


class ProbeAgent:
    def __init__(self, region: str, host: str, port: int, interval_seconds: float) -> None:
        self.region = region
        self.interval_seconds = interval_seconds
        self.handler = load_handler("probe")
        self.stop = threading.Event()
        self.server = ThreadingHTTPServer((host, port), _make_handler(self))
        self.server.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def invoke(self, event: Any) -> dict[str, Any]:
        # Invocations run concurrently, as Lambda runs them in separate containers.
        answer = self.handler(event, _Context(f"quorum-dr-probe-{self.region}", self.region))
        return dict(answer)

    def schedule(self) -> None:
        """A scheduled round every interval until stopped (a failing round is logged, not fatal)."""
        next_due = time.monotonic()
        while not self.stop.is_set():
            try:
                self.invoke({})
            except Exception as exc:  # noqa: BLE001 - the next round runs whatever this one did
                print(f"scheduled round failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            next_due += self.interval_seconds
            delay = next_due - time.monotonic()
            if delay < 0:  # a round longer than the interval: start the next one now, do not pile up
                next_due = time.monotonic()
                delay = 0
            self.stop.wait(delay)


def _make_handler(agent: ProbeAgent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            payload = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            if self.path == "/health":
                self._send(200, {"status": "ok", "region": agent.region})
            else:
                self._send(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            if self.path != "/invoke":
                self._send(404, {"error": f"no route {self.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY_BYTES:
                self._send(400, {"errorType": "BadRequest", "errorMessage": "body too large"})
                return
            try:
                event = json.loads(self.rfile.read(length) or b"{}")
            except ValueError as exc:
                self._send(400, {"errorType": "BadRequest", "errorMessage": f"not JSON: {exc}"})
                return
            try:
                self._send(200, agent.invoke(event))
            except Exception as exc:  # noqa: BLE001 - a function error, as Lambda reports it
                self._send(500, {"errorType": type(exc).__name__, "errorMessage": str(exc)})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a probe region of the quorum-dr drill")
    parser.add_argument("--region", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interval", type=float, required=True, help="seconds between scheduled rounds")
    parser.add_argument("--ready-file", help="write the chosen port here once serving")
    args = parser.parse_args(argv)
    agent = ProbeAgent(args.region, args.host, args.port, args.interval)

    def shutdown(*_: object) -> None:
        agent.stop.set()
        threading.Thread(target=agent.server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    rounds = threading.Thread(target=agent.schedule, name="scheduled-rounds", daemon=True)
    rounds.start()
    if args.ready_file:
        Path(args.ready_file).write_text(str(agent.port), encoding="utf-8")
    print(f"probe agent {args.region} on {args.host}:{agent.port}", flush=True)
    try:
        agent.server.serve_forever(poll_interval=0.1)
    finally:
        agent.stop.set()
        agent.server.server_close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
