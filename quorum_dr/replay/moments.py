"""`drctl replay`: recorded probe results through the watchdog's own code, in time order.

The recorded rounds (`RecordedRounds`) feed the simulation of quorum_dr/replay/watchdog.py, the one
bench/policies.py runs too. What comes out is a list of moments:

- `verdict`: the quorum engine (`evaluate_service`), evaluated each time a recorded round arrives,
  gives main, dr or cold another verdict than before (UP, DOWN, UNKNOWN, or "UNKNOWN (vetoed)":
  a DOWN quorum the database veto holds; for a cold site that no recorded round checked lately
  while the simulated state leaves it out of scheduled rounds, "NOT PROBED": not launched, see
  `domain/cold_probe.py`), with its sentence.
- `probe_failed`: a region's round publishes ProbeFailed of main (`decide_probe_failed`).
- `execution_ends_at_once`: the execution that ProbeFailed starts ends before any confirmation:
  main is not the simulated active site (`trigger_applies`), or another execution holds the lock.
- `execution_starts`: an execution takes the lock; its confirmation rounds follow.
- `confirmation_round`: one confirmation round (`confirm_round`): the verdicts, the state machine's
  next step, and which recorded round answered for each region.
- `scenario`: the scenario after a confirmed outage (`decide_scenario`).
- `would_fail_over` (or `would_alert` in mode manual): the failover decision, with its reason. The
  simulated active site moves to the target, so main's later triggers end as not the active site.

Results that were not recorded cannot be probed again: `JUDGED` says how a confirmation round is
answered from the recording, `CANNOT_KNOW` what replay does not judge at all.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from quorum_dr.config import WatchdogConfig
from quorum_dr.config_types import clean_text
from quorum_dr.domain.cold_probe import cold_not_probed
from quorum_dr.domain.quorum import evaluate_service
from quorum_dr.domain.results import ProbeResult, Vote
from quorum_dr.domain.retrigger import ProbeFailedDecision
from quorum_dr.probes.round import site_round_verdicts
from quorum_dr.replay.recording import SCHEDULED_PREFIX
from quorum_dr.replay.watchdog import EXECUTION_START_SECONDS, Execution, Failover, SimulatedWatchdog

JUDGED = (
    "results that were not recorded cannot be probed again: an execution's confirmation round that "
    "starts at T is answered, in each region, by that region's next recorded round received after T "
    "(scheduled, or on-demand of a recorded execution), taken as this round's, if it came within one "
    "probe interval and the invocation's timeout (else the region is silent); the settle rule is asked "
    "after each answer and the quorum engine is evaluated when the last answer it waits for arrives. "
    "Where the recording has only scheduled rounds, a confirmation round waits up to one interval for "
    "them where a real one takes seconds, so replayed decisions come later than live ones; the real "
    "execution also reads a moment after the last answer (when the invocations return). An execution "
    f"starts {EXECUTION_START_SECONDS:g} s after the round that published ProbeFailed"
)
CANNOT_KNOW = (
    "replay cannot know: the gates (taken as open: automation on, no cooldown, daily cap not reached), "
    "an operator's veto, approval, pause or rejoin, the DR standby's replay lag and the data-loss bound "
    "at failover time (the replica check is not replayed), promotion, the edge switch and its "
    "verification; rounds that were not recorded (an execution's on-demand rounds are those of the "
    "recorded executions, at their times)"
)

MomentKind = Literal[
    "verdict",
    "probe_failed",
    "execution_ends_at_once",
    "execution_starts",
    "confirmation_round",
    "scenario",
    "would_fail_over",
    "would_alert",
]


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {_cleaned(k): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(v) for v in value]
    return value


class Moment(BaseModel):
    """One moment of a replay; every text cleaned of control characters (the recording's region
    names, round ids and sentences reach a terminal)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: float
    kind: MomentKind
    reason: str
    site: str | None = None
    verdict: str | None = None
    previous: str | None = None
    region: str | None = None
    round_id: str | None = None
    execution: str | None = None
    round: int | None = None
    step: str | None = None
    code: str | None = None
    scenario: str | None = None
    target: str | None = None
    verdicts: dict[str, str] | None = None
    judged_on: dict[str, str | None] | None = None

    @model_validator(mode="before")
    @classmethod
    def _clean(cls, data: Any) -> Any:
        return _cleaned(data) if isinstance(data, dict) else data


# ---------------------------------------------------------------------------------------------
# The recorded rounds
# ---------------------------------------------------------------------------------------------


@dataclass
class RecordedRound:
    region: int
    round_id: str  # as recorded
    answered: float
    abstaining: bool
    main_down: bool | None
    recorded: list[ProbeResult]
    failing_rounds: int = 0
    answers: str | None = None  # the simulated on-demand round it answers, if any
    _results: list[ProbeResult] | None = None

    @property
    def scheduled(self) -> bool:
        return self.round_id.startswith(SCHEDULED_PREFIX)

    @property
    def results(self) -> list[ProbeResult]:
        """As recorded; when it answers a simulated on-demand round, under that round's id (the
        settle rule looks for the DR database's evidence of the round it waits for)."""
        if self.answers is None:
            return self.recorded
        if self._results is None:
            self._results = [r.model_copy(update={"round_id": self.answers}) for r in self.recorded]
        return self._results


def _round(region: int, round_id: str, results: list[ProbeResult]) -> RecordedRound:
    main = [v for v in site_round_verdicts(results) if v.site == "main"]
    return RecordedRound(
        region=region,
        round_id=round_id,
        answered=max(r.received_at or 0.0 for r in results),
        abstaining=any(r.abstaining for r in results),
        main_down=main[0].vote is Vote.DOWN if main else None,
        recorded=results,
    )


def _spacing(rounds: Sequence[RecordedRound]) -> float | None:
    """The median time between a region's recorded scheduled rounds."""
    times = [r.answered for r in rounds if r.scheduled]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b > a]
    return statistics.median(gaps) if gaps else None


class RecordedRounds:
    """The round source of a replay: the recording's rounds of one service, per configured region,
    in order of receive time; an on-demand round is answered by each region's next recorded round."""

    answers_on_timeline = True

    def __init__(self, results: Iterable[ProbeResult], config: WatchdogConfig, service: str) -> None:
        self.regions = list(config.probe_regions)
        index = {region: i for i, region in enumerate(self.regions)}
        grouped: dict[tuple[int, str], list[ProbeResult]] = {}
        other: set[str] = set()
        for result in results:
            if result.service != service:
                continue
            if result.region not in index:
                other.add(result.region)
                continue
            grouped.setdefault((index[result.region], result.round_id), []).append(result)
        self.notes: list[str] = []
        if other:
            self.notes.append(
                f"results of regions the config does not probe from are left out: {', '.join(sorted(other))}"
            )
        per_region: list[list[RecordedRound]] = [[] for _ in self.regions]
        for (region, round_id), members in grouped.items():
            per_region[region].append(_round(region, round_id, members))
        interval = self.interval = config.probe.interval_seconds
        self.rounds: list[list[RecordedRound]] = []
        for region, rounds in enumerate(per_region):
            rounds.sort(key=lambda r: (r.answered, r.round_id))
            self.rounds.append(self._at_interval(self.regions[region], rounds, interval))
        self.times = [[r.answered for r in rounds] for rounds in self.rounds]
        silent = [self.regions[i] for i, rounds in enumerate(self.rounds) if not rounds]
        if silent:
            self.notes.append(f"no recorded round from {', '.join(silent)}: it never votes")

    def _at_interval(self, region: str, rounds: list[RecordedRound], interval: float) -> list[RecordedRound]:
        """The scheduled rounds as `probe.interval_seconds` would have spaced them: one kept in every
        interval when the config's is longer than the recording's; a shorter one cannot be made."""
        spacing = _spacing(rounds)
        if spacing is None:
            return rounds
        if interval < 0.75 * spacing:
            self.notes.append(
                f"{region}: the config asks for a round every {interval:g} s, the recording has one every "
                f"{spacing:.0f} s: replay cannot make rounds that were not recorded, it uses those there are"
            )
            return rounds
        if interval < 1.5 * spacing:
            return rounds
        kept, last = [], -math.inf
        for rr in rounds:
            if not rr.scheduled:
                kept.append(rr)
            elif rr.answered - last >= interval - spacing / 2:
                kept.append(rr)
                last = rr.answered
        self.notes.append(
            f"{region}: one recorded scheduled round in every {interval:g} s is kept (the recording has one "
            f"every {spacing:.0f} s): {len(rounds) - len(kept)} of {len(rounds)} rounds left out"
        )
        return kept

    def scheduled(self, region: int, k: int) -> tuple[float, RecordedRound] | None:
        rounds = self.rounds[region]
        return (rounds[k].answered, rounds[k]) if k < len(rounds) else None

    def on_demand(
        self, region: int, round_id: str, started: float, timeout: float
    ) -> tuple[float, RecordedRound | None]:
        """The region's next recorded round received after `started`."""
        rounds = self.rounds[region]
        index = bisect.bisect_right(self.times[region], started)
        if index == len(rounds) or rounds[index].answered > self.deadline(started, timeout):
            return math.inf, None
        return rounds[index].answered, rounds[index]

    def taken(self, rr: RecordedRound, round_id: str) -> None:
        rr.answers = round_id

    def deadline(self, started: float, timeout: float) -> float:
        """A region answers with its next recorded round within one probe interval and the
        invocation's timeout (a round of its own would take a few seconds; the recording has the next
        scheduled one at most an interval later); a region with none is silent."""
        return started + self.interval + timeout

    def results(self, rr: RecordedRound) -> list[ProbeResult]:
        return rr.results

    def count(self) -> int:
        return sum(len(rounds) for rounds in self.rounds)


# ---------------------------------------------------------------------------------------------
# The replay
# ---------------------------------------------------------------------------------------------

STEPS = {
    "WaitBetweenRounds": "the state machine waits {wait} s for another round",
    "OutageConfirmed": "outage confirmed: on to the scenario",
    "RecordFalseAlarm": "main is UP: a false alarm, the execution ends",
    "StopNoDecision": "no decision after {rounds} rounds: the execution ends and tells the operators",
}
MODES = {
    "proceed": "mode auto: it proceeds at once",
    "wait_veto": "mode veto: after the veto window ({veto} s) unless an operator vetoes it, and if the "
    "re-confirmation then still holds (not replayed)",
    "wait_approval": "mode approve: once an operator approves (replay cannot know the answer)",
}


NOT_PROBED_WORD = "NOT PROBED"  # the cold site while scheduled rounds leave it out (not launched)
VETOED = " (vetoed)"  # a DOWN quorum the database veto holds: UNKNOWN, and a moment of its own


def utc(at: float) -> str:
    stamp = datetime.fromtimestamp(at, tz=UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{stamp.microsecond // 10_000:02d}Z"


class Replay(SimulatedWatchdog):
    """The simulation over recorded rounds, writing down every moment."""

    def __init__(self, config: WatchdogConfig, source: RecordedRounds, service: str) -> None:
        super().__init__(config, source, service=service, execution_prefix="replay", keep=None)
        self.moments: list[Moment] = []
        self.verdicts: dict[str, str] = {}
        self.triggers = 0

    def noted_round(self, rr: RecordedRound) -> None:
        now = self.clock.now
        results = self.store.recent_results(self.service, now - self.config.probe.freshness_seconds)
        for site, verdict in evaluate_service(results, self.config, self.service, now).items():
            before = self.verdicts.get(site)
            word = verdict.verdict.value + (VETOED if verdict.vetoed else "")
            reason = verdict.reason
            left_out = (
                cold_not_probed(
                    verdict, self.state.service_state(self.service), service=self.service, now=now
                )
                if site == "cold"
                else None
            )
            if left_out is not None:  # no result because no round checked it: no outage, no UNKNOWN
                word = NOT_PROBED_WORD
                reason = f"cold is not probed: {left_out.reason}; no recorded round checked it lately"
            if before != word:
                self.verdicts[site] = word
                self.moments.append(
                    Moment(
                        at=now,
                        kind="verdict",
                        site=site,
                        verdict=word,
                        previous=before,
                        reason=reason,
                    )
                )

    def noted_probe_failed(self, rr: RecordedRound, decision: ProbeFailedDecision) -> None:
        self.triggers += 1
        self.moments.append(
            Moment(
                at=rr.answered,
                kind="probe_failed",
                region=self.source.regions[rr.region],
                round_id=rr.round_id,
                reason=decision.reason,
            )
        )

    def noted_trigger_ends(self, rr: RecordedRound, code: str, reason: str) -> None:
        self.moments.append(
            Moment(
                at=rr.answered + EXECUTION_START_SECONDS,
                kind="execution_ends_at_once",
                code=code,
                region=self.source.regions[rr.region],
                reason=f"the execution this ProbeFailed starts ends at once: {reason}",
            )
        )

    def noted_execution(self, rr: RecordedRound, execution: Execution, at: float) -> None:
        incident = execution.incident
        self.moments.append(
            Moment(
                at=at,
                kind="execution_starts",
                execution=incident.incident_id,
                region=self.source.regions[rr.region],
                round_id=rr.round_id,
                reason=f"{incident.reason}: {incident.incident_id} takes the incident lock of "
                f"{incident.service} and starts confirming (at most {incident.max_rounds} rounds, "
                f"{incident.wait_seconds} s apart)",
            )
        )

    def noted_confirm(self, execution: Execution, answer: Mapping[str, Any], step: str) -> None:
        incident = execution.incident
        sites = [s for s in ("main", "dr", "cold") if s in answer]
        then = STEPS[step].format(wait=incident.wait_seconds, rounds=incident.max_rounds)
        self.moments.append(
            Moment(
                at=float(answer["at"]),
                kind="confirmation_round",
                execution=incident.incident_id,
                round=execution.done,
                verdicts={site: str(answer[site]) for site in sites},
                step=step,
                judged_on=dict(execution.answers),
                reason=f"{answer['reason']}; {then}",
            )
        )

    def noted_scenario(self, execution: Execution, scenario: Mapping[str, Any]) -> None:
        self.moments.append(
            Moment(
                at=float(scenario["at"]),
                kind="scenario",
                execution=execution.incident.incident_id,
                scenario=str(scenario["scenario"]),
                target=scenario.get("target"),
                reason=str(scenario["reason"]),
            )
        )

    def failed_over(self, failover: Failover, scenario: Mapping[str, Any]) -> None:
        assert self.execution is not None
        incident = self.execution.incident
        target = str(scenario["target"])
        if incident.mode_action == "alert_only":
            kind: MomentKind = "would_alert"
            sentence = (
                f"would alert at {utc(failover.at)} (mode manual: an operator must start the failover "
                f"to {target})"
            )
        else:
            kind = "would_fail_over"
            mode = MODES[incident.mode_action].format(veto=incident.veto_seconds)
            sentence = f"would fail over to {target} at {utc(failover.at)} ({mode})"
            self.state.active_site = target
        self.moments.append(
            Moment(
                at=failover.at,
                kind=kind,
                execution=incident.incident_id,
                target=target,
                reason=f"{sentence} because {failover.reason}",
            )
        )


@dataclass
class ReplayOutcome:
    service: str
    config: WatchdogConfig
    moments: list[Moment]
    results: int
    rounds: int
    first: float
    last: float
    executions: int
    outcomes: dict[str, int]
    triggers: int
    notes: list[str] = field(default_factory=list)

    def of_kind(self, *kinds: str) -> list[Moment]:
        return [m for m in self.moments if m.kind in kinds]


class NothingToReplay(ValueError):
    """No recorded round of the service from a configured region."""


def replay(results: Sequence[ProbeResult], config: WatchdogConfig, service: str) -> ReplayOutcome:
    """Every moment of the recorded results of `service` under `config`."""
    source = RecordedRounds(results, config, service)
    if not source.count():
        regions = ", ".join(config.probe_regions)
        raise NothingToReplay(f"no recorded result of {service} from the config's probe regions ({regions})")
    run = Replay(config, source, service)
    run.run()
    times = [t for ts in source.times for t in ts]
    return ReplayOutcome(
        service=service,
        config=config,
        moments=sorted(run.moments, key=lambda m: m.at),
        results=sum(len(r.recorded) for rounds in source.rounds for r in rounds),
        rounds=source.count(),
        first=min(times),
        last=max(times),
        executions=run.tally.executions,
        outcomes=dict(run.tally.outcomes),
        triggers=run.triggers,
        notes=source.notes,
    )


# ---------------------------------------------------------------------------------------------
# Two configs side by side
# ---------------------------------------------------------------------------------------------

SAME_TIME_SECONDS = 1e-6


@dataclass(frozen=True)
class Difference:
    """A verdict change or a failover decision present in one replay and not the other, or at
    another time."""

    what: str  # "main DOWN", "would fail over to dr"
    a: Moment | None
    b: Moment | None

    @property
    def at(self) -> float:
        return min(m.at for m in (self.a, self.b) if m is not None)


def _keyed(moments: Iterable[Moment]) -> dict[tuple[str, int], Moment]:
    """The moments a comparison looks at, each by what it is and its occurrence (the 2nd main DOWN)."""
    counts: Counter[str] = Counter()
    keyed: dict[tuple[str, int], Moment] = {}
    for moment in moments:
        if moment.kind == "verdict":
            what = f"{moment.site} {moment.verdict}"
        elif moment.kind in ("would_fail_over", "would_alert"):
            what = f"{moment.kind.replace('_', ' ')} to {moment.target}"
        else:
            continue
        counts[what] += 1
        keyed[(what, counts[what])] = moment
    return keyed


def differences(a: Sequence[Moment], b: Sequence[Moment]) -> list[Difference]:
    first, second = _keyed(a), _keyed(b)
    found = []
    for key in {*first, *second}:
        one, other = first.get(key), second.get(key)
        if one is None or other is None or abs(one.at - other.at) > SAME_TIME_SECONDS:
            found.append(Difference(key[0], one, other))
    return sorted(found, key=lambda d: (d.at, d.what))


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def when(at: float, origin: float) -> str:
    return f"{utc(at)} (+{at - origin:.2f} s)"


def _judged(judged: Mapping[str, str | None] | None) -> str:
    if not judged:
        return ""
    parts = [f"{region} {round_id or 'silent'}" for region, round_id in judged.items()]
    return "; answered by " + ", ".join(parts)


def describe(moment: Moment) -> str:
    """The moment in one line, without its time."""
    m = moment
    if m.kind == "verdict":
        return f"{m.site} {m.verdict} (was {m.previous or 'no verdict yet'}): {m.reason}"
    if m.kind == "probe_failed":
        return f"ProbeFailed of main from {m.region} (round {m.round_id}): {m.reason}"
    if m.kind == "execution_ends_at_once":
        return m.reason
    if m.kind == "execution_starts":
        return f"execution {m.execution} starts: {m.reason}"
    if m.kind == "confirmation_round":
        verdicts = ", ".join(f"{site} {v}" for site, v in (m.verdicts or {}).items())
        return f"{m.execution} confirmation round {m.round} ({verdicts}) -> {m.step}: {m.reason}" + _judged(
            m.judged_on
        )
    if m.kind == "scenario":
        return f"{m.execution} scenario {m.scenario}: {m.reason}"
    if m.kind == "would_fail_over":
        return f"WOULD FAIL OVER: {m.reason}"
    return f"WOULD ALERT: {m.reason}"


def settings(config: WatchdogConfig) -> str:
    probe, confirm = config.probe, config.confirmation
    return (
        f"quorum {config.quorum} of {len(config.probe_regions)} ({', '.join(config.probe_regions)}), "
        f"down_after_rounds {probe.down_after_rounds}, interval {probe.interval_seconds:g} s, freshness "
        f"{probe.freshness_seconds:g} s, retrigger_rounds {probe.retrigger_rounds}, confirmation "
        f"{confirm.max_rounds} rounds {confirm.wait_seconds} s apart"
    )


def summary(outcome: ReplayOutcome) -> str:
    decisions = outcome.of_kind("would_fail_over", "would_alert")
    first = f" (first at {utc(decisions[0].at)})" if decisions else ""
    ended = ", ".join(f"{k} {v}" for k, v in sorted(outcome.outcomes.items())) or "none"
    return (
        f"{len(outcome.of_kind('verdict'))} verdict changes; {outcome.triggers} ProbeFailed of main; "
        f"{outcome.executions} executions took the lock ({ended}); "
        f"{len(outcome.of_kind('execution_ends_at_once'))} ended at once; "
        f"{len(decisions)} failover decisions{first}"
    )


def header(outcome: ReplayOutcome, source: str, label: str, origin: float) -> list[str]:
    return [
        f"replay of {outcome.service} with {label}: {outcome.results} results in {outcome.rounds} rounds "
        f"({source}) from {utc(outcome.first)} to {utc(outcome.last)}; times in UTC and seconds since "
        f"{utc(origin)}",
        f"settings: {settings(outcome.config)}",
        *(f"note: {note}" for note in outcome.notes),
    ]


def text(outcome: ReplayOutcome, *, source: str, label: str, origin: float) -> list[str]:
    lines = header(outcome, source, label, origin)
    lines += [f"{when(m.at, origin)}  {describe(m)}" for m in outcome.moments]
    if not outcome.moments:
        lines.append("no moment: no verdict and nothing the state machine would do")
    lines += [f"summary: {summary(outcome)}", f"how: {JUDGED}", CANNOT_KNOW]
    return lines


def comparison_text(
    a: ReplayOutcome, b: ReplayOutcome, *, source: str, labels: tuple[str, str], origin: float
) -> list[str]:
    found = differences(a.moments, b.moments)
    lines = [
        f"replay of {a.service}: {a.results} results in {a.rounds} rounds ({source}) from {utc(a.first)} "
        f"to {utc(a.last)}; times in UTC and seconds since {utc(origin)}",
        f"A = {labels[0]}: {settings(a.config)}",
        f"B = {labels[1]}: {settings(b.config)}",
        *(f"note (A): {note}" for note in a.notes),
        *(f"note (B): {note}" for note in b.notes),
    ]
    for difference in found:
        lines.append(f"{difference.what}: " + _sides(difference, origin))
    if not found:
        lines.append("no difference: the same verdict changes and failover decisions at the same times")
    lines += [
        f"summary A: {summary(a)}",
        f"summary B: {summary(b)}",
        f"{len(found)} differences",
        f"how: {JUDGED}",
        CANNOT_KNOW,
    ]
    return lines


def _sides(difference: Difference, origin: float) -> str:
    a, b = difference.a, difference.b
    if a is not None and b is not None:
        later = "later" if b.at > a.at else "earlier"
        return (
            f"A at {when(a.at, origin)}, B at {when(b.at, origin)} ({abs(b.at - a.at):.2f} s {later}); "
            f"A: {a.reason} | B: {b.reason}"
        )
    only, name, other = (a, "A", "B") if a is not None else (b, "B", "A")
    assert only is not None
    return f"only {name}, at {when(only.at, origin)}; {other}: never: {only.reason}"


def comparison_json(a: ReplayOutcome, b: ReplayOutcome) -> dict[str, Any]:
    return {
        "a": [m.model_dump(mode="json", exclude_none=True) for m in a.moments],
        "b": [m.model_dump(mode="json", exclude_none=True) for m in b.moments],
        "differences": [
            {
                "what": clean_text(d.what),
                "a": None if d.a is None else d.a.model_dump(mode="json", exclude_none=True),
                "b": None if d.b is None else d.b.model_dump(mode="json", exclude_none=True),
            }
            for d in differences(a.moments, b.moments)
        ],
    }
