"""The watchdog simulated in time order over probe rounds, with the product's own rules (imported).

`drctl replay` (recorded results) and bench/policies.py (generated traces) both run this; only
where the rounds come from differs (a `RoundSource`). In order of simulated time:

1. A region's round ends: its results are stored (`SimulatedResults`, each visible from its receive
   time). A round that does not abstain decides `ProbeFailed` of main with
   `quorum_dr.domain.retrigger.decide_probe_failed`, from the count of failing rounds carried by that
   region's previous non-abstaining round within the look-back (max(freshness, 3 intervals)), as
   the probe service (`quorum_dr.probes.service`) does. Only main's `ProbeFailed` starts an
   execution (the control stack's rule).
2. Each `ProbeFailed` of main starts an execution. It ends at once when main is not the simulated
   active site (`quorum_dr.domain.decisions.trigger_applies`: "not the active site", before the
   lock) or when another execution holds the incident lock ("already handling"). Otherwise it takes
   the lock and its first confirmation round starts `EXECUTION_START_SECONDS` after the round.
3. Confirmation: the real `quorum_dr.failover.confirm.confirm_round` over these ports (this class is
   the ProbeInvoker: each region's answer to the on-demand round comes from the round source, and
   the settle rule is asked after each answer as `invoke_all` does), the state machine's
   ConfirmVerdict choice (`confirm_verdict`), `confirmation.wait_seconds` between rounds and at most
   `confirmation.max_rounds`, then the real `decide` (`decide_scenario`). A hot or cold scenario is
   the failover decision; what follows it is the user's (`failed_over`).

Not simulated: the gates (taken as open: kill switch on, no cooldown, daily cap not reached), the
mode's waits, the replica check and loss bound, promotion, the edge switch and its verification.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from quorum_dr.config import WatchdogConfig
from quorum_dr.domain.decisions import Decision, trigger_applies
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr.domain.results import ProbeResult
from quorum_dr.domain.retrigger import ProbeFailedDecision, decide_probe_failed
from quorum_dr.domain.state import ServiceState
from quorum_dr.failover.confirm import confirm_round, decide
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.production import probe_invoke_timeout
from quorum_dr.failover.request import Incident, start_incident
from quorum_dr.ports import ProbeInvoker, ResultStore, StateStore

# ProbeFailed -> EventBridge -> the execution starts, validates, takes the lock, passes the gates
EXECUTION_START_SECONDS = 2.0


def confirm_verdict(confirm: Mapping[str, Any], done: int, max_rounds: int) -> str:
    """The state machine's ConfirmVerdict choice (statemachines/failover.asl.yaml), in order;
    tests/unit/test_policy_bench.py holds it against the deployed definition."""
    main, dr = confirm.get("main"), confirm.get("dr")
    if main == "DOWN" and dr == "UNKNOWN" and done < max_rounds:
        return "WaitBetweenRounds"
    if main == "DOWN":
        return "OutageConfirmed"
    if main == "UP":
        return "RecordFalseAlarm"
    if done >= max_rounds:
        return "StopNoDecision"
    return "WaitBetweenRounds"


class SimulatedRound(Protocol):
    """One region's round as the simulation reads it."""

    region: int  # index in the source's regions
    round_id: str
    answered: float  # when its results were received (their `received_at`)
    abstaining: bool  # the region failed its self-check this round
    main_down: bool | None  # a voting check of main failed (None: the round has no result of main)
    failing_rounds: int  # set by the simulation: consecutive failing rounds of main, this one included


R = TypeVar("R", bound=SimulatedRound)


class RoundSource(Protocol[R]):
    """Where the rounds come from: a generated trace (the bench) or a recording (replay)."""

    @property
    def regions(self) -> Sequence[str]:
        """The probe regions, in the config's order."""

    # True when an on-demand round's answers are rounds of the timeline itself (a recording: they
    # are handled when their time comes); False when the source makes them on request (the bench)
    answers_on_timeline: bool

    def scheduled(self, region: int, k: int) -> tuple[float, R | None] | None:
        """The region's k-th round of the timeline: (when it ends, the round, or None when the
        region is silent then), or None past the end."""

    def on_demand(self, region: int, round_id: str, started: float, timeout: float) -> tuple[float, R | None]:
        """The region's answer to an on-demand round started at `started`: (when, the round or None
        when its invocation failed then). `timeout`: the probe invocation's."""

    def deadline(self, started: float, timeout: float) -> float:
        """When an on-demand round started at `started` stops waiting: a later answer is silent."""

    def taken(self, rr: R, round_id: str) -> None:
        """The on-demand round `round_id` took `rr` as the region's answer (before the settle rule
        is asked; a round that came after the settlement is no answer)."""

    def results(self, rr: R) -> list[ProbeResult]:
        """The round's ProbeResults."""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SimulatedResults(ResultStore):
    """The results table: every region's recent rounds, each visible from its receive time. It keeps
    the last `keep` rounds of a region, or (`keep` None) those of the last `keep_seconds`."""

    def __init__(
        self,
        source: RoundSource[Any],
        clock: Clock,
        regions: int,
        *,
        keep: int | None = 24,
        keep_seconds: float = 0.0,
    ) -> None:
        self.source, self.clock, self.keep_seconds = source, clock, keep_seconds
        self.recent: list[deque[Any]] = [deque(maxlen=keep) for _ in range(regions)]

    def add(self, rr: SimulatedRound) -> None:
        rounds = self.recent[rr.region]
        rounds.append(rr)
        if rounds.maxlen is None:
            while rounds and rounds[0].answered < rr.answered - self.keep_seconds:
                rounds.popleft()

    def put_results(self, results: Iterable[ProbeResult]) -> list[ProbeResult]:
        raise NotImplementedError("the simulation stores rounds with add()")

    def recent_results(self, service: str, since: float) -> list[ProbeResult]:
        now = self.clock()
        found: list[ProbeResult] = []
        for rounds in self.recent:
            for rr in rounds:
                if since <= rr.answered <= now:
                    found.extend(self.source.results(rr))
        return found

    def home_time(self) -> float:
        return self.clock()


class SimulatedState(StateStore):
    """The state table as the confirmation reads it: the simulated active site; incident records
    discarded."""

    def __init__(self, active_site: str = "main") -> None:
        self.active_site = active_site

    def get_state(self, service: str) -> dict[str, Any]:
        return {"service": service, "active_site": self.active_site, "status": "CONFIRMING", "version": 1}

    def service_state(self, service: str) -> ServiceState:
        return ServiceState.model_validate({"service": service, "active_site": self.active_site})

    def update_incident(
        self, service: str, incident_id: str, fields: Mapping[str, Any], *, timeline: Mapping[str, Any] | None
    ) -> IncidentRecord:
        return IncidentRecord.model_construct(incident_id=incident_id)

    def _unused(self, *_args: Any, **_kwargs: Any) -> Any:
        raise NotImplementedError("not used by the confirmation")

    put_state = get_lock = acquire_lock = release_lock = keep_lock = reset_state = _unused
    get_incident = list_incidents = _unused


@dataclass
class Execution:
    incident: Incident
    done: int = 0
    vetoed: int = 0  # confirmation rounds the database veto held
    answers: dict[str, str | None] = field(default_factory=dict)  # the last round: region -> round id


@dataclass
class ExecutionTally:
    """What the executions that took the lock ended as."""

    executions: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    vetoed_rounds: int = 0
    failovers_after_a_veto: int = 0  # failovers whose execution first sat through a vetoed round


@dataclass(frozen=True)
class Failover:
    at: float
    reason: str


class SimulatedWatchdog(ProbeInvoker):
    """Our probe regions, the `ProbeFailed` rule and the failover execution's confirmation, run in
    time order over a round source. Also the on-demand round's invoker (a ProbeInvoker).

    The `noted_*` methods and `failed_over` are where a user sees what happened; they do nothing here.
    """

    def __init__(
        self,
        config: WatchdogConfig,
        source: RoundSource[Any],
        *,
        service: str | None = None,
        execution_prefix: str = "simulated",
        keep: int | None = 24,
    ) -> None:
        self.config = config
        self.service = service or config.services[0].name
        self.source = source
        self.execution_prefix = execution_prefix
        self.clock = Clock()
        self.interval = config.probe.interval_seconds
        self.lookback = max(config.probe.freshness_seconds, 3 * self.interval)
        self.store = SimulatedResults(
            source, self.clock, len(source.regions), keep=keep, keep_seconds=2 * self.lookback
        )
        self.state = SimulatedState()
        self.ports = Ports(
            config=config, store=self.state, results=lambda: self.store, probes=lambda: self, clock=self.clock
        )
        self.invoke_timeout = probe_invoke_timeout(config)
        self.last: list[tuple[float, int] | None] = [None] * len(source.regions)  # (received, count)
        self.heap: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.execution: Execution | None = None
        self.armed_at = 0.0  # ProbeFailed before this starts nothing (the bench re-arms after a failover)
        self.failovers: list[Failover] = []
        self.tally = ExecutionTally()
        self.reasons: list[tuple[float, str]] = []  # every confirmation round's and scenario's reason

    # -- what a user sees (overridden) ------------------------------------------------------------

    def noted_round(self, rr: Any) -> None:
        """A round was stored (and its ProbeFailed rule decided)."""

    def noted_probe_failed(self, rr: Any, decision: ProbeFailedDecision) -> None:
        """A region's round published ProbeFailed of main."""

    def noted_trigger_ends(self, rr: Any, code: str, reason: str) -> None:
        """An execution started by that ProbeFailed ends at once: `not_active` or `already_handling`."""

    def noted_execution(self, rr: Any, execution: Execution, at: float) -> None:
        """An execution took the lock; its first confirmation round starts at `at`."""

    def noted_confirm(self, execution: Execution, answer: Mapping[str, Any], step: str) -> None:
        """A confirmation round's answer and the state machine's next step."""

    def noted_scenario(self, execution: Execution, scenario: Mapping[str, Any]) -> None:
        """The scenario decided after a confirmed outage."""

    def failed_over(self, failover: Failover, scenario: Mapping[str, Any]) -> None:
        """A hot or cold scenario was decided at `failover.at`."""

    # -- the event loop -------------------------------------------------------------------------

    def _push(self, at: float, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, payload))

    def _schedule_round(self, region: int, k: int) -> None:
        nxt = self.source.scheduled(region, k)
        if nxt is not None:
            self._push(nxt[0], "scheduled", (region, k, nxt[1]))

    def run(self) -> list[Failover]:
        for region in range(len(self.source.regions)):
            self._schedule_round(region, 0)
        while self.heap:
            at, _, kind, payload = heapq.heappop(self.heap)
            self._handle(at, kind, payload)
        return self.failovers

    def drain(self, until: float) -> None:
        """Handle every round that ends by `until` (a confirmation round runs meanwhile)."""
        while self.heap and self.heap[0][0] <= until and self.heap[0][2] != "confirm":
            at, _, kind, payload = heapq.heappop(self.heap)
            self._handle(at, kind, payload)

    def _handle(self, at: float, kind: str, payload: Any) -> None:
        self.clock.now = max(self.clock.now, at)
        if kind == "scheduled":
            region, k, rr = payload
            self._schedule_round(region, k + 1)
            if rr is not None:
                self._probe_round_done(rr)
        elif kind == "late":
            self._probe_round_done(payload)
        elif kind == "confirm":
            self._confirm_step(at)

    def _probe_round_done(self, rr: Any) -> None:
        """What the probe service does with a finished round: the write and the `ProbeFailed` rule."""
        self.store.add(rr)
        if rr.abstaining or rr.main_down is None:
            self.noted_round(rr)
            return
        last = self.last[rr.region]
        previous = last[1] if last is not None and last[0] >= rr.answered - self.lookback else None
        decision = decide_probe_failed(
            site="main",
            region=self.source.regions[rr.region],
            down=rr.main_down,
            previous_failing_rounds=previous,
            retrigger_rounds=self.config.probe.retrigger_rounds,
        )
        rr.failing_rounds = decision.failing_rounds
        self.last[rr.region] = (rr.answered, decision.failing_rounds)
        self.noted_round(rr)
        if decision.publish:
            self._trigger(rr, decision)

    # -- the failover execution -----------------------------------------------------------------

    def trigger_decision(self) -> Decision:
        """Does a trigger for main concern the simulated active site (the execution's first step)?"""
        return trigger_applies(self.state.service_state(self.service), "main")

    def _trigger(self, rr: Any, decision: ProbeFailedDecision) -> None:
        self.noted_probe_failed(rr, decision)
        if self.state.active_site != "main":
            self.noted_trigger_ends(rr, "not_active", self.trigger_decision().reason)
            return
        if self.execution is not None:
            holder = self.execution.incident.incident_id
            self.noted_trigger_ends(
                rr,
                "already_handling",
                f"{holder} holds the incident lock of {self.service}: this execution ends as "
                "already handling",
            )
            return
        if rr.answered >= self.armed_at:
            self._start_execution(rr)

    def _start_execution(self, rr: Any) -> None:
        failing = [r.model_dump(mode="json") for r in self.source.results(rr) if r.site == "main"]
        event = {
            "source": "quorum-dr",
            "detail-type": "ProbeFailed",
            "detail": {
                "service": self.service,
                "site": "main",
                "region": self.source.regions[rr.region],
                "round_id": rr.round_id,
                "results": failing,
            },
        }
        self.tally.executions += 1
        started = rr.answered + EXECUTION_START_SECONDS
        incident = start_incident(
            event,
            execution_name=f"{self.execution_prefix}-{self.tally.executions}",
            started_at=None,
            config=self.config,
            now=started,
        )
        self.execution = Execution(incident)
        self.noted_execution(rr, self.execution, started)
        self._push(started, "confirm", None)

    def _confirm_step(self, at: float) -> None:
        execution = self.execution
        assert execution is not None
        self.clock.now = at
        answer = confirm_round(self.ports, execution.incident, execution.done)
        execution.done += 1
        self.reasons.append((self.clock.now, str(answer["reason"])))
        if answer["sites"]["main"]["vetoed"]:
            self.tally.vetoed_rounds += 1
            execution.vetoed += 1
        step = confirm_verdict(answer, execution.done, execution.incident.max_rounds)
        self.noted_confirm(execution, answer, step)
        if step == "WaitBetweenRounds":
            self._push(self.clock.now + answer["next_wait_seconds"], "confirm", None)
            return
        if step == "OutageConfirmed":
            scenario = decide(self.ports, execution.incident, answer)
            step = f"scenario {scenario['scenario']}"
            self.reasons.append((self.clock.now, str(scenario["reason"])))
            self.noted_scenario(execution, scenario)
            if scenario["scenario"] in ("hot", "cold"):
                failover = Failover(self.clock.now, str(scenario["reason"]))
                self.failovers.append(failover)
                self.tally.failovers_after_a_veto += 1 if execution.vetoed else 0
                self.failed_over(failover, scenario)
        self.tally.outcomes[step] = self.tally.outcomes.get(step, 0) + 1
        self.execution = None

    # -- ProbeInvoker: the on-demand round ------------------------------------------------------

    def run_round(
        self,
        *,
        service: str,
        round_id: str,
        incident_id: str,
        sites: list[str],
        settled: Callable[[frozenset[str]], str | None] | None = None,
    ) -> dict[str, str]:
        """Every region's on-demand round from now; answers in the order they come, `settled`
        asked after each, as `quorum_dr.adapters.lambda_probes.ProbeFunctions.invoke_all` does."""
        started = self.clock.now
        regions = self.source.regions
        on_timeline = self.source.answers_on_timeline
        answers: list[tuple[float, int, Any]] = []
        for region in range(len(regions)):
            when, rr = self.source.on_demand(region, round_id, started, self.invoke_timeout)
            answers.append((when, region, rr))
        answers.sort(key=lambda a: (a[0], a[1]))
        deadline = self.source.deadline(started, self.invoke_timeout)
        answered: set[str] = set()
        sentences = {}
        heard: dict[str, str | None] = {regions[region]: None for region in range(len(regions))}
        for index, (when, region, rr) in enumerate(answers):
            if when > deadline:  # its invocation timed out: silent
                self.drain(deadline)
                self.clock.now = deadline
                break
            self.drain(when)
            self.clock.now = when
            name = regions[region]
            answered.add(name)
            sentences[name] = "round done" if rr else "invoking its probe failed: connect timeout"
            heard[name] = rr.round_id if rr is not None else None
            if rr is not None:
                self.source.taken(rr, round_id)
                if not on_timeline:
                    self._probe_round_done(rr)
            pending = len(answers) - index - 1
            if pending and settled is not None and settled(frozenset(answered)):
                if not on_timeline:
                    for later, _, late in answers[index + 1 :]:
                        if late is not None:
                            self._push(later, "late", late)
                break
        if self.execution is not None:
            self.execution.answers = heard
        return sentences
