"""Failover policies side by side on the same seeded probe-result traces.

    python bench/policies.py [--hours 1000] [--seed 14] [--regions 3,5]

A seeded generator writes a trace: `--hours` of a world in which main, its DR standby and the
probe regions live through labelled events (below), separated by quiet hours. Four failover
policies watch that same world and each says when it would fail over. The judge counts, per
policy, false failovers (a failover when main was not down), missed outages (main down and no
failover before it came back; split at three probe intervals) and the detection time (outage start
to the failover decision). One table per probe-region count. Prints figures; asserts nothing.

The labelled events (counts per 1,000 trace-hours, `EVENT_MIX`):

- `outage`: main is down (host gone: no answer, its database stops streaming to the standby),
  lengths from 15 s to an hour; `outage_region_dark`: the same while one probe region is dark.
  These are the only events where a failover is wanted.
- `partition`: one probe region cannot reach main (its self-check and the DR site are fine).
- `transit`: a correlated two-region transit incident: two regions cannot reach main while main
  and its standby stream normally (the database veto's case: the DR standby still hears from the
  primary).
- `blip`: main unreachable for less than one probe interval (2-25 s, its standby link too).
- `flapping`: for 10-30 min main is unreachable for 5-25 s, then back for 20-90 s, again and again.
- `region_dark`: a probe region dies for 30 min to 4 h: no results at all (not a vote).
- `slow_origin`: main's health endpoint answers in about 4 s (log-normal, median 0.8 x our
  5 s timeout, sigma 0.25: about one answer in five is past 5 s); TCP and the database are fine.
- `dns`: one region's resolver fails for 5-60 min: every check that looks up a name fails with
  `dns` (our control target sts.amazonaws.com is a name, so that region abstains; the other
  policies look main up by name).
- Between and during events every check fails on its own with probability `NOISE` (0.1%).

The policies:

(a) **ours**, the project's own code, imported, not re-implemented, with the settings of
    `config/watchdog.example.yaml` (cold site left out: it is only read when DR is down, and in
    these traces DR is always up; for 5 regions two more regions and quorum 3). Every region runs
    a scheduled round every `probe.interval_seconds` (30 s) at its own phase: the self-check, then
    every configured check of main and dr under `probe.timeout_seconds`; results are received when
    the round ends. Each region's round decides `ProbeFailed` with
    `quorum_dr.domain.retrigger.decide_probe_failed` (on the round main turns DOWN, then every
    `retrigger_rounds`; abstaining rounds publish nothing), as the probe service does. A
    `ProbeFailed` of main starts an execution unless one holds the lock (it then ends as "already
    handling"): `quorum_dr.failover.request.start_incident`, then confirmation rounds with the real
    `quorum_dr.failover.confirm.confirm_round` (on-demand rounds in every region, the settle rule,
    `evaluate_service`: freshness, `down_after_rounds`, quorum, control-target abstention and the
    database veto) over in-memory ports fed by the trace, the state machine's ConfirmVerdict choice
    (`confirm_verdict` below, checked against statemachines/failover.asl.yaml by
    tests/unit/test_policy_bench.py), `confirmation.wait_seconds` between rounds and at most
    `confirmation.max_rounds`, then the real `decide` (`decide_scenario`). A "hot" scenario is the
    failover decision. Not judged here: the gates (each event meets them open), the replica check
    and loss bound, promotion and switch (the drill measures those). An execution starts
    `EXECUTION_START_SECONDS` after the round that published `ProbeFailed`; a dark region's
    invocation fails after botocore's connect timeout, min(10 s, the invoke timeout).
(b) **single monitor**, the case study's "could be hooked to a monitoring system"
    (../shared/seed/dr-case-study.txt, Limitations): one location (our first probe region),
    an HTTPS check of main every 30 s with a 5 s timeout (our probe's figures, so that only the
    rule differs), failover after 3 consecutive failures.
(c) **Route-53-style**, AWS's documented rule (Route 53 Developer Guide, "How Amazon Route 53
    determines whether a health check is healthy", https://docs.aws.amazon.com/Route53/latest/
    DeveloperGuide/dns-failover-determining-health-of-endpoints.html):
    "you can specify the interval between checks: every 10 seconds or every 30 seconds"; each
    health checker uses "the failure threshold" of consecutive checks (3, the API's default,
    `FailureThreshold`); "If more than 18% of health checkers report that an endpoint is healthy,
    Route 53 considers it healthy. If 18% of health checkers or fewer report that an endpoint is
    healthy, Route 53 considers it unhealthy."; for HTTPS, "Route 53 must be able to establish a
    TCP connection with the endpoint within four seconds. In addition, the endpoint must respond
    with an HTTP status code of 2xx or 3xx within two seconds after connecting." Checkers "don't
    coordinate with one another": each has its own phase. Run at 10 s (fast) and 30 s.
(d) **Cloudflare-LB-style**, Cloudflare Load Balancing's documented defaults and health rule:
    monitor `interval` 60 s, `timeout` 5 s, `retries` 2 ("The number of retries to attempt in case
    of a timeout before marking the origin as unhealthy. Retries are attempted immediately."),
    `consecutive_down` 0 (Cloudflare API, Load Balancer Monitors,
    https://developers.cloudflare.com/api/resources/load_balancers/subresources/monitors/methods/create/);
    "For each option selected in a pool's Health Monitor Regions, Cloudflare sends health monitor
    requests from three separate data centers in that region. If the majority of data centers for
    that region pass the health monitor requests, that region is considered healthy. If the
    majority of regions is healthy, then the endpoint itself will be considered healthy."
    (https://developers.cloudflare.com/load-balancing/understand-basics/health-details/ and
    https://developers.cloudflare.com/load-balancing/monitors/); pool health threshold
    `minimum_origins` 1: "If the number of healthy origins falls below this number, the pool will
    be marked unhealthy and will failover to the next available pool" (Cloudflare API, Load
    Balancer Pools). Main's pool holds one origin, so the pool fails over when that origin is
    unhealthy.

Every policy watches from the same vantage points, the trace's probe regions (a provider with more
checkers would see more; the comparison is of the rules on one world). A region that is dark sends
nothing for any policy and is left out of every majority. After a failover a policy is re-armed
`REARM_SECONDS` after the event ends (an operator brings main back). Time is simulated per check,
at each policy's own interval, never per millisecond.
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
import statistics
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quorum_dr.config import WatchdogConfig, parse_config  # noqa: E402
from quorum_dr.config_file import read_yaml  # noqa: E402
from quorum_dr.domain.quorum import heard_bound  # noqa: E402
from quorum_dr.domain.results import (  # noqa: E402
    CONTROL_SITE,
    DbRole,
    DbStatus,
    FailureClass,
    ProbeResult,
    Vote,
    format_lsn,
)
from quorum_dr.observability import logger  # noqa: E402
from quorum_dr.replay.watchdog import (  # noqa: E402
    ExecutionTally,
    Failover,
    SimulatedWatchdog,
    confirm_verdict,  # noqa: F401 - the tests hold the bench's ConfirmVerdict against the ASL
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "config" / "watchdog.example.yaml"
REGIONS = {
    3: ["eu-west-2", "us-east-1", "us-west-2"],
    5: ["eu-west-2", "us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1"],
}
DEFAULT_SEED = 14
DEFAULT_HOURS = 1000.0
NOISE = 0.001  # any single check fails on its own (a lost packet, a hiccup)
REARM_SECONDS = 900.0
MIN_GAP_SECONDS = 1800.0  # quiet time before and after each event
DETECTION_GRACE_SECONDS = 10.0  # a decision this soon after main came back still counts (check in flight)
WRITE_SECONDS = 0.1  # a probe round's writes after its last check
WAL_RECEIVER_TIMEOUT_SECONDS = 60.0  # PostgreSQL's default: the standby gives up on a silent main
WAL_BYTES_PER_SECOND = 20_000  # a busy primary
SLOW_MEDIAN_SECONDS, SLOW_SIGMA = 4.0, 0.25

OUTAGE_KINDS = ("outage", "outage_region_dark")
# kind -> events per 1,000 trace-hours
EVENT_MIX: dict[str, int] = {
    "outage": 60,
    "outage_region_dark": 10,
    "partition": 40,
    "transit": 30,
    "blip": 150,
    "flapping": 20,
    "region_dark": 15,
    "slow_origin": 20,
    "dns": 30,
}


# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceEvent:
    """One labelled event. `regions` are probe-region indexes; `dark` the dark region's window."""

    kind: str
    start: float
    end: float
    regions: tuple[int, ...] = ()
    spells: tuple[tuple[float, float], ...] = ()  # flapping: main's down spells
    dark: tuple[float, float] | None = None

    @property
    def outage(self) -> bool:
        return self.kind in OUTAGE_KINDS

    @property
    def span(self) -> tuple[float, float]:
        if self.dark is None:
            return self.start, self.end
        return min(self.start, self.dark[0]), max(self.end, self.dark[1])

    @property
    def seconds(self) -> float:
        return self.end - self.start


Reach = Literal["answers", "unreachable", "dns"]
Target = Literal["main_http", "main_tcp", "main_db", "dr_http", "dr_tcp", "dr_db", "control"]
NAMED_TARGETS = frozenset({"main_http", "dr_http", "control"})  # looked up by name


class Trace:
    """The world the policies watch: labelled events on a timeline of `hours`, regions by name."""

    def __init__(
        self, regions: Sequence[str], hours: float, events: Iterable[TraceEvent], *, seed: int, noise: float
    ) -> None:
        self.regions = list(regions)
        self.hours = hours
        self.seed = seed
        self.noise = noise
        self.events = sorted(events, key=lambda e: e.span[0])
        self._span_starts = [e.span[0] for e in self.events]
        self._span_ends = [e.span[1] for e in self.events]
        for before, after in zip(self.events, self.events[1:], strict=False):
            if after.span[0] < before.span[1]:
                raise ValueError(f"events overlap: {before.kind} and {after.kind} at {after.span[0]:.0f} s")

    @property
    def seconds(self) -> float:
        return self.hours * 3600.0

    def event_at(self, t: float) -> TraceEvent | None:
        index = bisect.bisect_right(self._span_starts, t) - 1
        if index < 0 or t >= self._span_ends[index]:
            return None
        return self.events[index]

    def main_down_since(self, t: float) -> float | None:
        """When main's current down spell began (main unreachable from everywhere, its standby
        link included), or None while main is up."""
        event = self.event_at(t)
        if event is None or not event.start <= t < event.end:
            return None
        if event.kind in ("outage", "outage_region_dark", "blip"):
            return event.start
        if event.kind == "flapping":
            for start, end in event.spells:
                if start <= t < end:
                    return start
        return None

    def region_dark(self, region: int, t: float) -> bool:
        event = self.event_at(t)
        if event is None:
            return False
        if event.kind == "region_dark":
            return region in event.regions and event.start <= t < event.end
        if event.dark is not None:
            return region in event.regions and event.dark[0] <= t < event.dark[1]
        return False

    def reach(self, region: int, target: Target, t: float) -> Reach:
        """What a request from `region` to `target` at `t` meets (noise aside)."""
        event = self.event_at(t)
        if event is None or not event.start <= t < event.end:
            return "answers"
        if event.kind == "dns" and region in event.regions and target in NAMED_TARGETS:
            return "dns"
        if target.startswith("main"):
            if self.main_down_since(t) is not None:
                return "unreachable"
            if event.kind in ("partition", "transit") and region in event.regions:
                return "unreachable"
        return "answers"

    def slow(self, t: float) -> bool:
        event = self.event_at(t)
        return event is not None and event.kind == "slow_origin" and event.start <= t < event.end

    def main_lsn(self, t: float) -> int:
        return (0x16 << 32) + int(WAL_BYTES_PER_SECOND * t)

    def standby(self, t: float) -> DbStatus:
        """The DR standby as its PostgreSQL check reports it at `t`."""
        down_since = self.main_down_since(t)
        heard = t if down_since is None else down_since
        age = 0.1 if down_since is None else t - down_since
        received = format_lsn(self.main_lsn(heard))
        return DbStatus(
            role=DbRole.STANDBY,
            receive_lsn=received,
            replay_lsn=received,
            replay_lag_bytes=0,
            replay_lag_seconds=0.2,
            streaming=age < WAL_RECEIVER_TIMEOUT_SECONDS,
            last_msg_age_seconds=round(age, 3),
            wal_receiver_timeout_seconds=WAL_RECEIVER_TIMEOUT_SECONDS,
        )

    def rearm_at(self, t: float) -> float:
        event = self.event_at(t)
        return max(t, event.span[1] if event else t) + REARM_SECONDS


@dataclass(frozen=True)
class Seen:
    """One request's fate: `failure` None when it passed; `seconds` how long it took."""

    failure: FailureClass | None
    seconds: float


QUIET_ANSWER = 0.15  # seconds: any answer when nothing is happening


def answer_latency(trace: Trace, target: Target, t: float, draw: random.Random) -> float:
    if target == "main_http" and trace.slow(t):
        return SLOW_MEDIAN_SECONDS * math.exp(draw.gauss(0.0, SLOW_SIGMA))
    return 0.05 + 0.25 * draw.random()


def see(
    trace: Trace,
    region: int,
    target: Target,
    t: float,
    draw: random.Random,
    *,
    connect_timeout: float,
    answer_timeout: float,
) -> Seen:
    """A request's fate from `region` at `t`, under a connect and an answer timeout."""
    if trace.event_at(t) is None:  # quiet: only the noise (most requests: the fast way)
        if draw.random() < trace.noise:
            return Seen(FailureClass.TIMEOUT, answer_timeout)
        return Seen(None, QUIET_ANSWER)
    reach = trace.reach(region, target, t)
    if reach == "dns":
        return Seen(FailureClass.DNS, 0.02)
    if reach == "unreachable":
        return Seen(FailureClass.CONNECT_TIMEOUT, connect_timeout)
    if draw.random() < trace.noise:
        return Seen(FailureClass.TIMEOUT, answer_timeout)
    latency = answer_latency(trace, target, t, draw)
    if latency > answer_timeout:
        return Seen(FailureClass.TIMEOUT, answer_timeout)
    return Seen(None, latency)


# ---------------------------------------------------------------------------------------------
# The seeded generator
# ---------------------------------------------------------------------------------------------


def _log_uniform(draw: random.Random, low: float, high: float) -> float:
    return math.exp(draw.uniform(math.log(low), math.log(high)))


def _event_length(kind: str, index: int, draw: random.Random) -> float:
    if kind == "outage":  # two in five short (at most 85 s), the rest from 2 min to an hour
        return draw.uniform(15, 85) if index % 5 < 2 else _log_uniform(draw, 120, 3600)
    lengths = {
        "outage_region_dark": (120, 1800),
        "partition": (300, 7200),
        "transit": (300, 3600),
        "blip": (2, 25),
        "flapping": (600, 1800),
        "region_dark": (1800, 14400),
        "slow_origin": (600, 3600),
        "dns": (300, 3600),
    }
    low, high = lengths[kind]
    return draw.uniform(low, high) if kind in ("blip", "flapping") else _log_uniform(draw, low, high)


def _spells(start: float, end: float, draw: random.Random) -> tuple[tuple[float, float], ...]:
    spells, t = [], start
    while t < end:
        down = draw.uniform(5, 25)
        spells.append((t, min(end, t + down)))
        t += down + draw.uniform(20, 90)
    return tuple(spells)


def _place(kind: str, start: float, length: float, n: int, draw: random.Random) -> TraceEvent:
    end = start + length
    if kind in ("partition", "dns", "region_dark"):
        return TraceEvent(kind, start, end, regions=(draw.randrange(n),))
    if kind == "transit":
        return TraceEvent(kind, start, end, regions=tuple(sorted(draw.sample(range(n), 2))))
    if kind == "flapping":
        return TraceEvent(kind, start, end, spells=_spells(start, end, draw))
    if kind == "outage_region_dark":
        dark = (start - draw.uniform(300, 1800), end + 600)
        return TraceEvent(kind, start, end, regions=(draw.randrange(n),), dark=dark)
    return TraceEvent(kind, start, end)


def generate(
    regions: Sequence[str],
    *,
    hours: float = DEFAULT_HOURS,
    seed: int = DEFAULT_SEED,
    mix: Mapping[str, int] = EVENT_MIX,
    noise: float = NOISE,
) -> Trace:
    """A seeded trace: `mix` events per 1,000 hours, in random order, with random quiet gaps (at
    least `MIN_GAP_SECONDS` around each event) filling `hours`."""
    draw = random.Random(f"trace:{seed}:{len(regions)}")
    kinds = [kind for kind, per in mix.items() for _ in range(round(per * hours / 1000.0))]
    draw.shuffle(kinds)
    counters: dict[str, int] = {}
    lengths = []
    for kind in kinds:
        counters[kind] = counters.get(kind, 0) + 1
        lengths.append(_event_length(kind, counters[kind], draw))
    lead = 1800.0 + 600.0  # room for a dark region's window before an outage
    busy = sum(length + lead + 600.0 for length in lengths)
    spare = hours * 3600.0 - busy - MIN_GAP_SECONDS * (len(kinds) + 1)
    if spare < 0:
        raise ValueError(f"{len(kinds)} events do not fit in {hours:g} hours")
    cuts = sorted(draw.uniform(0, spare) for _ in kinds)
    events, t, used = [], 0.0, 0.0
    for kind, length, cut in zip(kinds, lengths, cuts, strict=True):
        t += MIN_GAP_SECONDS + (cut - used) + lead
        used = cut
        events.append(_place(kind, t, length, len(regions), draw))
        t += length + 600.0
    return Trace(regions, hours, events, seed=seed, noise=noise)


# ---------------------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------------------


@dataclass
class Judgement:
    policy: str
    parameters: str
    detections: list[tuple[TraceEvent, float]] = field(default_factory=list)
    false: list[tuple[str, float]] = field(default_factory=list)  # (the event kind or "quiet", when)
    missed: list[TraceEvent] = field(default_factory=list)

    def missed_longer_than(self, seconds: float) -> int:
        return sum(1 for e in self.missed if e.seconds > seconds)

    def missed_within(self, seconds: float) -> int:
        return sum(1 for e in self.missed if e.seconds <= seconds)

    def delays(self) -> list[float]:
        return sorted(delay for _, delay in self.detections)

    def median(self) -> float | None:
        delays = self.delays()
        return statistics.median(delays) if delays else None

    def p95(self) -> float | None:
        delays = self.delays()
        return delays[math.ceil(0.95 * len(delays)) - 1] if delays else None


def judge(policy: str, parameters: str, trace: Trace, failovers: Iterable[Failover]) -> Judgement:
    """A failover during an outage (or within `DETECTION_GRACE_SECONDS` of its end) detects it;
    any other failover is false; an outage with no failover is missed."""
    verdict = Judgement(policy, parameters)
    detected: set[int] = set()
    for failover in sorted(failovers, key=lambda f: f.at):
        event = trace.event_at(failover.at) or trace.event_at(failover.at - DETECTION_GRACE_SECONDS)
        if (
            event is not None
            and event.outage
            and event.start <= failover.at <= event.end + DETECTION_GRACE_SECONDS
            and id(event) not in detected
        ):
            detected.add(id(event))
            verdict.detections.append((event, failover.at - event.start))
        else:
            verdict.false.append((event.kind if event else "quiet", failover.at))
    verdict.missed = [e for e in trace.events if e.outage and id(e) not in detected]
    return verdict


# ---------------------------------------------------------------------------------------------
# (b) the single monitor, (c) Route-53-style, (d) Cloudflare-LB-style
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SingleMonitor:
    interval: float = 30.0
    timeout: float = 5.0
    failures: int = 3
    region: int = 0

    name = "single monitor"

    def describe(self, trace: Trace) -> str:
        return (
            f"HTTPS from {trace.regions[self.region]} every {self.interval:g} s, timeout "
            f"{self.timeout:g} s, fails over after {self.failures} consecutive failures"
        )

    def run(self, trace: Trace) -> list[Failover]:
        draw = random.Random(f"single:{trace.seed}:{len(trace.regions)}")
        t, streak, armed_at, failovers = draw.uniform(0, self.interval), 0, 0.0, []
        while t < trace.seconds:
            if not trace.region_dark(self.region, t):
                seen = see(
                    trace, self.region, "main_http", t, draw, connect_timeout=self.timeout,
                    answer_timeout=self.timeout,
                )  # fmt: skip
                streak = streak + 1 if seen.failure else 0
                if streak >= self.failures and t >= armed_at:
                    at = t + seen.seconds
                    failovers.append(Failover(at, f"{streak} consecutive failures ({seen.failure})"))
                    armed_at, streak = trace.rearm_at(at), 0
            t += self.interval
        return failovers


@dataclass(frozen=True)
class Route53Style:
    interval: float = 10.0
    failure_threshold: int = 3
    healthy_above: float = 0.18
    connect_timeout: float = 4.0
    answer_timeout: float = 2.0

    @property
    def name(self) -> str:
        return f"Route-53-style {self.interval:g} s"

    def describe(self, trace: Trace) -> str:
        return (
            f"one checker per region ({len(trace.regions)}), every {self.interval:g} s, failure threshold "
            f"{self.failure_threshold}, unhealthy when <= {self.healthy_above:.0%} of checkers healthy, "
            f"HTTPS connect <= {self.connect_timeout:g} s then status <= {self.answer_timeout:g} s"
        )

    def run(self, trace: Trace) -> list[Failover]:
        draw = random.Random(f"route53:{self.interval}:{trace.seed}:{len(trace.regions)}")
        n = len(trace.regions)
        phases = sorted((draw.uniform(0, self.interval), region) for region in range(n))
        healthy = [True] * n
        streak = [0] * n
        present = [True] * n
        armed_at, failovers = 0.0, []
        for step in range(int(trace.seconds / self.interval)):
            base = step * self.interval
            for phase, region in phases:
                t = base + phase
                present[region] = not trace.region_dark(region, t)
                if not present[region]:
                    continue
                seen = see(
                    trace, region, "main_http", t, draw, connect_timeout=self.connect_timeout,
                    answer_timeout=self.answer_timeout,
                )  # fmt: skip
                passed = seen.failure is None
                streak[region] = streak[region] + 1 if passed != healthy[region] else 0
                if streak[region] >= self.failure_threshold:
                    healthy[region], streak[region] = passed, 0
                if passed and all(healthy[r] for r in range(n) if present[r]):
                    continue  # every reporting checker healthy: nothing to aggregate
                reporting = [healthy[r] for r in range(n) if present[r]]
                share = sum(reporting) / len(reporting)
                if share <= self.healthy_above and t >= armed_at:
                    at = t + seen.seconds
                    failovers.append(Failover(at, f"{share:.0%} of checkers healthy"))
                    armed_at = trace.rearm_at(at)
        return failovers


@dataclass(frozen=True)
class CloudflareStyle:
    interval: float = 60.0
    timeout: float = 5.0
    retries: int = 2
    consecutive_down: int = 0
    data_centers: int = 3
    minimum_origins: int = 1

    name = "Cloudflare-LB-style"

    def describe(self, trace: Trace) -> str:
        return (
            f"{self.data_centers} data centers per region ({len(trace.regions)}), "
            f"interval {self.interval:g} s, "
            f"timeout {self.timeout:g} s, {self.retries} immediate retries on a timeout, consecutive_down "
            f"{self.consecutive_down}; region healthy on a majority of its data centers, origin healthy "
            f"on a majority of regions; pool health threshold {self.minimum_origins} of 1 origin"
        )

    def _monitor(self, trace: Trace, region: int, t: float, draw: random.Random) -> tuple[bool, float]:
        """One health monitor request with its retries: (passed, when it was decided)."""
        for _attempt in range(self.retries + 1):
            seen = see(
                trace, region, "main_http", t, draw, connect_timeout=self.timeout, answer_timeout=self.timeout
            )
            t += seen.seconds
            if seen.failure is None:
                return True, t
            if seen.failure not in (FailureClass.TIMEOUT, FailureClass.CONNECT_TIMEOUT):
                return False, t
        return False, t

    def run(self, trace: Trace) -> list[Failover]:
        draw = random.Random(f"cloudflare:{trace.seed}:{len(trace.regions)}")
        n = len(trace.regions)
        centers = sorted(
            (draw.uniform(0, self.interval), region, k)
            for region in range(n)
            for k in range(self.data_centers)
        )
        healthy = {(region, k): True for _, region, k in centers}
        downs = dict.fromkeys(healthy, 0)
        armed_at, failovers = 0.0, []
        for step in range(int(trace.seconds / self.interval)):
            base = step * self.interval
            for phase, region, k in centers:
                t = base + phase
                if trace.region_dark(region, t):
                    continue
                passed, at = self._monitor(trace, region, t, draw)
                downs[(region, k)] = 0 if passed else downs[(region, k)] + 1
                if passed:
                    healthy[(region, k)] = True
                    if all(healthy.values()):
                        continue  # every data center healthy: nothing to aggregate
                elif downs[(region, k)] > self.consecutive_down:
                    healthy[(region, k)] = False
                if not self._origin_healthy(trace, healthy, t) and t >= armed_at:
                    failovers.append(Failover(at, "the pool's only origin is unhealthy"))
                    armed_at = trace.rearm_at(at)
        return failovers

    def _origin_healthy(self, trace: Trace, healthy: Mapping[tuple[int, int], bool], t: float) -> bool:
        regions = [r for r in range(len(trace.regions)) if not trace.region_dark(r, t)]
        good = sum(
            1
            for r in regions
            if sum(healthy[(r, k)] for k in range(self.data_centers)) * 2 > self.data_centers
        )
        healthy_origins = 1 if good * 2 > len(regions) else 0
        return healthy_origins >= self.minimum_origins


# ---------------------------------------------------------------------------------------------
# (a) ours: the project's code over in-memory ports fed by the trace
# ---------------------------------------------------------------------------------------------


def example_config(regions: Sequence[str], *, veto_heard_within: float | None = None) -> WatchdogConfig:
    """config/watchdog.example.yaml with these probe regions (quorum: the smallest majority),
    without its cold site, and with `database.veto_heard_within_seconds` when given."""
    data = read_yaml(EXAMPLE_CONFIG)
    data["probe_regions"] = list(regions)
    data["quorum"] = len(regions) // 2 + 1
    for service in data["services"]:
        service["sites"].pop("cold", None)
        service.pop("cold_site", None)
        if veto_heard_within is not None:
            service["database"]["veto_heard_within_seconds"] = veto_heard_within
    return parse_config(data, str(EXAMPLE_CONFIG))


@dataclass(frozen=True)
class CheckSpec:
    site: str
    name: str
    type: str
    counts: bool
    target: Target


def check_specs(config: WatchdogConfig, service: str) -> list[CheckSpec]:
    spec = config.service(service)
    checks = []
    for site in ("main", "dr"):
        for check in getattr(spec.sites, site).checks:
            kind = {"http": "http", "tcp": "tcp", "postgres": "db"}[check.type]
            target: Target = f"{site}_{kind}"  # type: ignore[assignment]
            checks.append(CheckSpec(site, check.name, check.type, check.vote, target))
    return checks


@dataclass
class RegionRound:
    """One region's round as the trace makes it; its ProbeResults are built when first read."""

    region: int
    round_id: str
    started: float
    answered: float
    abstaining: bool
    control: Seen
    seen: list[tuple[CheckSpec, Seen]]
    main_down: bool
    failing_rounds: int = 0
    results: list[ProbeResult] | None = None


class TraceRounds:
    """Runs our probe rounds against the trace: the self-check, then every configured check. The
    simulation's round source: every region runs a scheduled round every `probe.interval_seconds` at
    its own phase, and an on-demand round whenever it is invoked."""

    answers_on_timeline = False  # an on-demand round is made on request

    def __init__(self, trace: Trace, config: WatchdogConfig, service: str) -> None:
        self.trace, self.config, self.service = trace, config, service
        self.regions = trace.regions
        self.specs = check_specs(config, service)
        self.timeout = config.probe.timeout_seconds
        self.interval = config.probe.interval_seconds
        self.control = {i: config.control_target(region).checks[0] for i, region in enumerate(trace.regions)}
        self.draw = random.Random(f"ours:{trace.seed}:{len(trace.regions)}")
        phase = random.Random(f"ours-phase:{trace.seed}:{len(trace.regions)}")
        self.phases = [phase.uniform(0, self.interval) for _ in trace.regions]

    def scheduled(self, region: int, k: int) -> tuple[float, RegionRound | None] | None:
        started = self.phases[region] + k * self.interval
        if started >= self.trace.seconds:
            return None
        rr = self.round(region, f"{self.trace.regions[region]}-s{k}", started)
        return (rr.answered if rr else started), rr

    def on_demand(
        self, region: int, round_id: str, started: float, timeout: float
    ) -> tuple[float, RegionRound | None]:
        """A dark region's invocation fails after botocore's connect timeout, min(10 s, `timeout`)."""
        rr = self.round(region, round_id, started)
        return (rr.answered if rr else started + min(10.0, timeout)), rr

    def deadline(self, started: float, timeout: float) -> float:
        return started + timeout + 1.0

    def taken(self, rr: RegionRound, round_id: str) -> None:
        """Made for this round: nothing to do."""

    def round(self, region: int, round_id: str, started: float) -> RegionRound | None:
        trace, draw = self.trace, self.draw
        if trace.event_at(started) is None:
            return self._quiet_round(region, round_id, started)
        if trace.region_dark(region, started):
            return None
        control = see(
            trace, region, "control", started, draw, connect_timeout=self.timeout, answer_timeout=self.timeout
        )
        at = started + control.seconds
        seen = [
            (spec, see(trace, region, spec.target, at, draw, connect_timeout=self.timeout,
                       answer_timeout=self.timeout))
            for spec in self.specs
        ]  # fmt: skip
        answered = at + max(s.seconds for _, s in seen) + WRITE_SECONDS
        main_down = any(s.failure is not None for spec, s in seen if spec.site == "main" and spec.counts)
        return RegionRound(
            region, round_id, started, answered, control.failure is not None, control, seen, main_down
        )

    def _quiet_round(self, region: int, round_id: str, started: float) -> RegionRound:
        """`round` when nothing is happening: every request answers unless the noise takes it."""
        noise, draw = self.trace.noise, self.draw
        passed, lost = Seen(None, QUIET_ANSWER), Seen(FailureClass.TIMEOUT, self.timeout)
        control = lost if draw.random() < noise else passed
        seen = [(spec, lost if draw.random() < noise else passed) for spec in self.specs]
        answered = started + control.seconds + max(s.seconds for _, s in seen) + WRITE_SECONDS
        main_down = any(s is lost for spec, s in seen if spec.site == "main" and spec.counts)
        return RegionRound(region, round_id, started, answered, control is lost, control, seen, main_down)

    def results(self, rr: RegionRound) -> list[ProbeResult]:
        if rr.results is None:
            rr.results = self._build(rr)
        return rr.results

    def _build(self, rr: RegionRound) -> list[ProbeResult]:
        region = self.trace.regions[rr.region]
        checks_at = rr.started + rr.control.seconds
        common = dict(
            service=self.service, region=region, round_id=rr.round_id, probe_time=rr.started,
            received_at=rr.answered, abstaining=rr.abstaining,
        )  # fmt: skip
        control = self.control[rr.region]
        built = [
            ProbeResult(
                site=CONTROL_SITE, check=control.name, check_type=control.type,
                vote=Vote.DOWN if rr.control.failure else Vote.UP, failure_class=rr.control.failure,
                latency_ms=rr.control.seconds * 1000, **common,
            )
        ]  # fmt: skip
        for spec, seen in rr.seen:
            db = None
            if spec.type == "postgres" and seen.failure is None:
                db = self._database(spec.site, checks_at)
            built.append(
                ProbeResult(
                    site=spec.site, check=spec.name, check_type=spec.type, counts=spec.counts,
                    vote=Vote.DOWN if seen.failure else Vote.UP, failure_class=seen.failure,
                    latency_ms=seen.seconds * 1000, db=db,
                    failing_rounds=rr.failing_rounds if spec.site == "main" else 0,
                    **common,
                )
            )  # fmt: skip
        return built

    def _database(self, site: str, t: float) -> DbStatus:
        if site == "dr":
            return self.trace.standby(t)
        return DbStatus(role=DbRole.PRIMARY, current_lsn=format_lsn(self.trace.main_lsn(t)))


class OurWatchdog(SimulatedWatchdog):
    """Our probe regions, the `ProbeFailed` rule and the failover execution's confirmation, run in
    time order over the trace by the simulation `drctl replay` runs too (quorum_dr/replay/watchdog.py);
    after a failover it re-arms when an operator would have brought main back."""

    def __init__(self, trace: Trace, config: WatchdogConfig | None = None, *, name: str = "ours") -> None:
        self.trace = trace
        self.name = name
        config = config or example_config(trace.regions)
        service = config.services[0].name
        self.rounds = TraceRounds(trace, config, service)
        super().__init__(config, self.rounds, service=service, execution_prefix="bench")
        database = config.service(service).database
        veto = database.veto_heard_within_seconds if database else None
        self.heard_within = heard_bound(trace.standby(0.0), veto)

    def describe(self, trace: Trace) -> str:
        c = self.config
        return (
            f"config/watchdog.example.yaml: interval {c.probe.interval_seconds} s, timeout "
            f"{c.probe.timeout_seconds} s, freshness {c.probe.freshness_seconds} s, down_after_rounds "
            f"{c.probe.down_after_rounds}, quorum {c.quorum} of {len(c.probe_regions)}, retrigger_rounds "
            f"{c.probe.retrigger_rounds}, confirmation {c.confirmation.max_rounds} rounds "
            f"{c.confirmation.wait_seconds} s apart, database veto (heard within {self.heard_within:g} s)"
        )

    def run(self, trace: Trace | None = None) -> list[Failover]:
        return super().run()

    def failed_over(self, failover: Failover, scenario: Mapping[str, Any]) -> None:
        self.armed_at = self.trace.rearm_at(failover.at)


# ---------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    trace: Trace
    judgements: list[Judgement]
    ours: ExecutionTally
    interval: float
    heard_within: float
    seconds: float


def compare(trace: Trace, *, veto_variants: Sequence[float] = ()) -> Comparison:
    """Every policy on `trace`; `veto_variants` adds rows of ours with another
    `database.veto_heard_within_seconds` (after the others: the targets and the ratio are ours')."""
    started = time.perf_counter()
    ours = OurWatchdog(trace)
    policies: list[Any] = [ours, SingleMonitor(), Route53Style(10.0), Route53Style(30.0), CloudflareStyle()]
    policies += [
        OurWatchdog(
            trace,
            example_config(trace.regions, veto_heard_within=seconds),
            name=f"ours, veto_heard_within_seconds {seconds:g}",
        )
        for seconds in veto_variants
    ]
    judgements = [judge(p.name, p.describe(trace), trace, p.run(trace)) for p in policies]
    interval = float(ours.config.probe.interval_seconds)
    return Comparison(
        trace, judgements, ours.tally, interval, ours.heard_within, time.perf_counter() - started
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def fastest_without_false(comparison: Comparison) -> Judgement | None:
    others = [j for j in comparison.judgements if not j.policy.startswith("ours")]
    clean = [j for j in others if not j.false and j.median() is not None]
    return min(clean, key=lambda j: j.median() or 0.0, default=None)


def table(comparison: Comparison) -> list[str]:
    trace, per = comparison.trace, 1000.0 / comparison.trace.hours
    long = 3 * comparison.interval
    outages = [e for e in trace.events if e.outage]
    n_long = sum(1 for e in outages if e.seconds > long)
    lines = [
        f"{len(trace.regions)} probe regions ({', '.join(trace.regions)}): {len(outages)} outages "
        f"({n_long} longer than {long:g} s = 3 intervals, {len(outages) - n_long} shorter)",
        "",
        "| policy | false failovers / 1,000 h | missed > 3 intervals | missed <= 3 intervals "
        "| detection median s | detection p95 s | our median / its median |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ours = comparison.judgements[0]
    for j in comparison.judgements:
        mine, its = ours.median(), j.median()
        ratio = f"{mine / its:.2f}" if mine is not None and its else "-"
        lines.append(
            f"| {j.policy} | {len(j.false) * per:.1f} | {j.missed_longer_than(long)} | "
            f"{j.missed_within(long)} | {_seconds(j.median())} | {_seconds(j.p95())} | {ratio} |"
        )
    best = fastest_without_false(comparison)
    if best is None:
        lines.append("\nratio of our median detection to the fastest policy with no false failover: n/a "
                     "(every other policy had a false failover)")  # fmt: skip
    else:
        quotient = (ours.median() or math.nan) / (best.median() or math.nan)
        lines.append(
            f"\nratio of our median detection to the fastest policy with no false failover ({best.policy}, "
            f"{_seconds(best.median())} s): {quotient:.2f}"
        )
    return lines


def false_by_kind(comparison: Comparison) -> list[str]:
    lines = []
    for j in comparison.judgements:
        kinds: dict[str, int] = {}
        for kind, _ in j.false:
            kinds[kind] = kinds.get(kind, 0) + 1
        listed = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())) or "none"
        lines.append(f"  {j.policy}: {listed}")
    return lines


def targets(comparison: Comparison) -> list[str]:
    """The issue's targets for ours, each met or not, and why not."""
    ours = comparison.judgements[0]
    fast = next(j for j in comparison.judgements if j.policy == "Route-53-style 10 s")
    long = 3 * comparison.interval
    lines = []
    kinds = sorted({kind for kind, _ in ours.false})
    lines.append(
        f"  zero false failovers: {'met' if not ours.false else 'NOT met'} ({len(ours.false)}"
        + (f": {', '.join(kinds)})" if kinds else ")")
    )
    missed = [e for e in ours.missed if e.seconds > long]
    lines.append(
        f"  zero missed outages longer than {long:g} s: {'met' if not missed else 'NOT met'} ({len(missed)}"
        + (f": {', '.join(f'{e.kind} of {e.seconds:.0f} s' for e in missed[:5])})" if missed else ")")
    )
    mine, theirs = ours.median(), fast.median()
    met = mine is not None and theirs is not None and mine <= theirs
    lines.append(
        f"  median detection no slower than {fast.policy} ({_seconds(theirs)} s): "
        f"{'met' if met else 'NOT met'} (ours {_seconds(mine)} s)"
    )
    if not met and ours.detections:
        delays = ours.delays()
        lines.append(
            f"    why: {comparison.ours.failovers_after_a_veto} of our {len(delays)} failovers first sat "
            "through a confirmation round the database veto held: main's quorum said DOWN, but the DR "
            f"standby had heard from main within {comparison.heard_within:g} s (half its "
            "wal_receiver_timeout + 5 s, the keepalive bound of an idle primary), so no failover comes "
            f"before the standby's silence passes that bound; our fastest detection took {delays[0]:.0f} s"
        )
    return lines


def measured(comparison: Comparison) -> list[str]:
    trace, counts = comparison.trace, dict[str, int]()
    for event in trace.events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
    tally = comparison.ours
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items()))
    lines = [
        f"  seed {trace.seed}, {trace.hours:g} trace-hours, {len(trace.regions)} regions, noise "
        f"{trace.noise:.1%} per check, {comparison.seconds:.1f} s to simulate",
        "  events: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        f"  our executions: {tally.executions} ({outcomes}); confirmation rounds vetoed by the "
        f"database: {tally.vetoed_rounds}",
    ]
    lines += [f"  {j.policy}: {j.parameters}" for j in comparison.judgements]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=DEFAULT_HOURS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--regions", default="3,5", help="probe-region counts, of 3 and 5")
    parser.add_argument(
        "--veto-heard-within",
        default="",
        help="extra rows: ours with these database.veto_heard_within_seconds, e.g. 10,20",
    )
    args = parser.parse_args(argv)
    variants = [float(v) for v in args.veto_heard_within.split(",") if v]
    logger.setLevel("WARNING")  # the settle rule logs every wait at INFO
    started = time.perf_counter()
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    command = f"python bench/policies.py --hours {args.hours:g} --seed {args.seed} --regions {args.regions}"
    if variants:
        command += f" --veto-heard-within {args.veto_heard_within}"
    print(f"policy benchmark, {today}: {command}")
    for count in (int(c) for c in args.regions.split(",")):
        trace = generate(REGIONS[count], hours=args.hours, seed=args.seed)
        comparison = compare(trace, veto_variants=variants)
        print()
        print("\n".join(table(comparison)))
        print("targets for ours:")
        print("\n".join(targets(comparison)))
        print("false failovers by event:")
        print("\n".join(false_by_kind(comparison)))
        print("how it was measured:")
        print("\n".join(measured(comparison)))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
