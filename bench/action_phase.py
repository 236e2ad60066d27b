"""Wall time of the action phase: from "the quorum says DOWN" to "edge switched and verified".

    python bench/action_phase.py [--runs 5] [--edge dns|load_balancer]

Each run builds the in-process end-to-end rig (`quorum_dr_local.rig`: the real ASL in
moto with the real handlers and the production wiring, a real PostgreSQL 15 primary + streaming
standby, the Cloudflare emulator and edge proxy, real local sites, the probe function of three
regions dispatched in-process), stops the main site, and starts the state machine.

The clock starts when the confirm_outage function returns the round in which main is DOWN and
stops when the verify_switch function returns `verified: true` (both measured around the handler
calls, in this process). Configured waits are excluded: the harness scales Wait states and Retry
intervals to 0. Per-step figures come from the incident timeline: each is the time since the
previous timeline entry (an entry is stamped when its step records it; verify's before it asks
the regions). Beside the wall time each run prints the CPU time this process spent in the same
window (`time.process_time`, every thread: the state machine engine, the handlers, moto, the
emulator; the PostgreSQL servers are other processes): the figure to compare when other work
shares the machine. Target (issue 14, "speed, measured honestly"): a median of at most 1 s.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the figures, not the handlers' log lines
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

import boto3  # noqa: E402

from quorum_dr_local.rig import ACCOUNT, PROBE_FUNCTION, REGIONS, FailoverRig  # noqa: E402

TARGET_SECONDS = 1.0


class Stopwatch:
    """Marks the first 'quorum says DOWN' and the first 'verified' seen from the handlers."""

    def __init__(self) -> None:
        self.down_at: float | None = None
        self.verified_at: float | None = None
        self.cpu_down_at = 0.0
        self.cpu_verified_at = 0.0
        self._lock = threading.Lock()

    def wrap(self, rig: FailoverRig) -> None:
        handlers = rig.harness.handlers
        confirm, verify = handlers["confirm_outage"], handlers["verify_switch"]

        def timed_confirm(event: Any, context: Any) -> Any:
            answer = confirm(event, context)
            if answer.get("main") == "DOWN":
                with self._lock:
                    if self.down_at is None:
                        self.down_at, self.cpu_down_at = time.perf_counter(), time.process_time()
            return answer

        def timed_verify(event: Any, context: Any) -> Any:
            answer = verify(event, context)
            if answer.get("verified") and event.get("action") == "verify":
                with self._lock:
                    if self.verified_at is None:
                        self.verified_at, self.cpu_verified_at = time.perf_counter(), time.process_time()
            return answer

        handlers["confirm_outage"], handlers["verify_switch"] = timed_confirm, timed_verify


def one_run(base: Path, n: int, edge: str) -> tuple[float, float, dict[str, float], str]:
    # PostgreSQL checks on, as configured in production (invariants 3 and 4).
    with FailoverRig(base, edge_kind=edge, postgres_checks=True) as rig:
        watch = Stopwatch()
        watch.wrap(rig)
        # A scheduled round in every region first, as in production: the probes see main's WAL
        # position and DR streaming, which bounds the loss of promoting DR (invariant 4); without
        # it the failover rightly refuses to promote.
        for region in REGIONS:
            answer = boto3.client("lambda", region_name=region).invoke(
                FunctionName=f"arn:aws:lambda:{region}:{ACCOUNT}:function:{PROBE_FUNCTION}",
                Payload=json.dumps({"round_id": f"bench-{n}-quiet-{region}", "service": "booking"}).encode(),
            )
            if answer.get("FunctionError"):
                raise SystemExit(
                    f"run {n}: the quiet round in {region} failed: {answer['Payload'].read()[:300]!r}"
                )
        rig.site_down("main")
        incident = f"bench-{n}"
        described = rig.run(name=incident, timeout=120)
        if described["status"] != "SUCCEEDED" or watch.down_at is None or watch.verified_at is None:
            raise SystemExit(f"run {n}: the failover did not complete: {described.get('cause')}")
        timeline = rig.incident(incident).timeline
        steps: dict[str, float] = {}
        start = next(e.at for e in timeline if e.step == "scenario")
        previous = start
        for entry in timeline:
            if entry.at < start or entry.step in steps:
                continue
            steps[entry.step] = entry.at - previous
            previous = entry.at
        cpu = watch.cpu_verified_at - watch.cpu_down_at
        return watch.verified_at - watch.down_at, cpu, steps, str(timeline[-1].reason)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--edge", choices=["dns", "load_balancer"], default="dns")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="quorum-dr-bench-", dir="/tmp"))
    figures: list[float] = []
    cpus: list[float] = []
    print(f"action phase, quorum DOWN -> edge switched and verified ({args.edge} edge, waits scaled to 0)")
    try:
        for n in range(1, args.runs + 1):
            seconds, cpu, steps, _ = one_run(base, n, args.edge)
            figures.append(seconds)
            cpus.append(cpu)
            detail = ", ".join(f"{step} {value * 1000:.0f} ms" for step, value in steps.items())
            print(f"run {n}: {seconds:.3f} s, cpu {cpu:.3f} s  ({detail})", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"median {statistics.median(figures):.3f} s, min {min(figures):.3f} s, max {max(figures):.3f} s "
        f"over {len(figures)} runs; target <= {TARGET_SECONDS:g} s (median): "
        + ("met" if statistics.median(figures) <= TARGET_SECONDS else "NOT met")
        + f" ({sum(f <= TARGET_SECONDS for f in figures)} of {len(figures)} runs within it); "
        f"cpu median {statistics.median(cpus):.3f} s, min {min(cpus):.3f} s, max {max(cpus):.3f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
