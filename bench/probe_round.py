"""Wall time of one probe round of N HTTP checks against a local server that answers after 50 ms.

    python bench/probe_round.py [--sizes 1,100,1000] [--delay 0.05] [--runs 5]

The server runs in its own process (asyncio, backlog 4096, every connection answered after the
delay, then closed), so the figure is the probe's cost, not the server's. Every check opens its
own connection, as in production. Each size is measured `--runs` times in this process (one round
after another); the line gives the wall time's median with the min and max, and the median CPU
time of this process per round (`time.process_time`: the round is CPU-bound in one process, and
CPU time is the figure to compare when other work shares the machine). The target is met only
when the median wall time meets it. Target: 1000 checks in at most 2 s on a 2-core machine. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quorum_dr.adapters.secrets import StaticSecrets  # noqa: E402
from quorum_dr.config import WatchdogConfig, parse_config  # noqa: E402
from quorum_dr.domain.results import CONTROL_SITE, Vote  # noqa: E402
from quorum_dr.probes.round import run_round  # noqa: E402

TARGET_N = 1000
TARGET_SECONDS = 2.0
BODY = b'{"status": "ok", "site": "main"}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Site: main\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY)
)


class _SlowHealth(asyncio.Protocol):
    delay = 0.05

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            self.buffer = b""
            asyncio.get_running_loop().call_later(self.delay, self._answer)

    def _answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(ANSWER)
            self.transport.close()


def _serve(sock: socket.socket, delay: float, lifetime: float) -> None:
    _SlowHealth.delay = delay

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_SlowHealth, sock=sock, backlog=4096)
        async with server:
            await asyncio.sleep(lifetime)  # bounded: the server stops by itself

    asyncio.run(main())


def bench_config(port: int, n: int) -> WatchdogConfig:
    url = f"http://127.0.0.1:{port}/health"
    http = {
        "type": "http",
        "url": url,
        "body_contains": '"status": "ok"',
        "expect_headers": {"X-Site": "main"},
    }
    site = {"label": "bench", "marker": "main", "origin": "127.0.0.1"}
    return parse_config(
        {
            "home_region": "eu-west-2",
            "probe_regions": ["eu-west-2", "us-east-1", "us-west-2"],
            "quorum": 2,
            "probe": {
                "interval_seconds": 30,
                "timeout_seconds": 5,
                "max_concurrency": max(n, 1),
                "control_target": {
                    "checks": [{"name": "control", "type": "tcp", "host": "127.0.0.1", "port": port}]
                },
            },
            "services": [
                {
                    "name": "bench",
                    "public_hostname": "bench.test",
                    "sites": {
                        "main": {**site, "checks": [{**http, "name": f"c{i}"} for i in range(n)]},
                        "dr": {**site, "checks": [{**http, "name": "dr"}]},
                    },
                    "edge": {
                        "zone_id": "bench",
                        "api_token_secret": "bench",
                        "records": [{"name": "bench.test"}],
                    },
                }
            ],
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--delay", type=float, default=0.05, help="server answer delay, seconds")
    parser.add_argument("--runs", type=int, default=5, help="rounds per size (median, min, max)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    sizes = [int(s) for s in args.sizes.split(",")]

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    port = sock.getsockname()[1]
    server = multiprocessing.get_context("fork").Process(
        target=_serve, args=(sock, args.delay, 600), daemon=True
    )
    server.start()
    try:
        print(
            f"local server on 127.0.0.1:{port} (pid {server.pid}), answers after {args.delay * 1000:.0f} ms"
        )
        header = ("N", "median s", "min s", "max s", "cpu s", "runs", "up", "down")
        widths = (6, 8, 6, 6, 6, 4, 6, 5)
        print("  ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)) + "  note")
        for n in sizes:
            config = bench_config(port, n)
            walls: list[float] = []
            cpus: list[float] = []
            failures: set[str] = set()
            up = n  # the fewest UP votes of any run
            for run in range(args.runs):
                started, cpu_started = time.perf_counter(), time.process_time()
                report = run_round(
                    config, region="eu-west-2", round_id=f"bench-{n}-{run}", secrets=StaticSecrets({})
                )
                walls.append(time.perf_counter() - started)
                cpus.append(time.process_time() - cpu_started)
                checks = [r for r in report.results if r.site == "main"]
                up = min(up, sum(1 for r in checks if r.vote is Vote.UP))
                failures |= {r.detail for r in checks if r.vote is Vote.DOWN}
                control = [r for r in report.results if r.site == CONTROL_SITE]
                assert control, "the round ran its self-check"
            median = statistics.median(walls)
            note = ""
            if n == TARGET_N:
                verdict = "met" if median <= TARGET_SECONDS and up == n else "NOT met"
                note = f"target {TARGET_N} checks in <= {TARGET_SECONDS:g} s (median): {verdict}"
            print(
                f"{n:>6}  {median:>8.3f}  {min(walls):>6.3f}  {max(walls):>6.3f}  "
                f"{statistics.median(cpus):>6.3f}  {len(walls):>4}  "
                f"{up:>6}  {n - up:>5}  {note}",
                flush=True,
            )
            for detail in sorted(failures)[:3]:
                print(f"        e.g. {detail}")
    finally:
        server.terminate()
        server.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
