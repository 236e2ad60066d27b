"""The drill report: figures computed from the event log, expectations judged, three files written.

`compute_figures(events)` turns a run's events (see `quorum_dr_local.drill.timeline`) into the numbers
of report.json; `evaluate(expectations, figures)` judges each stated expectation and says why;
`write_report(...)` writes report.json, report.md and timeline.png into the report folder.

Times in the report are seconds since the drill started (`run_started`), or null.

- `outages`: every client outage seen through the edge (`client_outages`): from the last
  successful order before a run of failed orders to the first successful order after it (null
  when none came), the site that served that order, and its cause: the fault active when the
  run's first failure was seen (a fault that stops a site wins over one that does not).
- `rto_seconds`: the clients' outage the failover ended (`failover_outage`): the first outage
  that began before the edge switch and after which the switch's target served the clients. A
  scenario with several faults (flaps, then main dies) is measured on the outage around the
  switch, not on the first fault's. 0 when the clients saw no outage around the switch. Without
  a failover: the longest outage since the first fault (0 when none; null when one never
  ended). Null when there was no fault.
- `detection_seconds`: from the origin of that outage (the fault that caused it, else the
  outage's start) to the first quorum DOWN after it; without a failover, from the first fault.
  `fault_at`, `first_failed_probe_at` and `quorum_at` are counted from the same origin;
  `first_fault_at` is the scenario's first fault.
- `orders_lost`: orders a client saw committed (HTTP 201/200) that are missing from the serving
  database at the end (`orders_present`).
- `false_failovers`: failovers made while the drill's ground truth said main was up
  (`site_truth`): the larger of the promotions and the switches away from main made then.
- `file_lag_seconds` / `file_lag_reason`: the file lag at promotion the failover's replica check
  recorded beside the database's loss receipt (the file-sync marker DR serves; null: none read).
- `readiness`: the drill's readiness evaluations (`readiness_section`): each check's status over
  time (its first status and every change, with the time and the reason of each), the
  `ReadinessChanged` notifications the bus delivered and the FAIL alarm's changes. Null when the
  drill evaluated no readiness.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from quorum_dr_local.drill.scenario import Expectations, Scenario
from quorum_dr_local.drill.timeline import Event, render_timeline

REPORT_KEYS = (
    "scenario",
    "failover",
    "target",
    "fault_at",
    "first_failed_probe_at",
    "quorum_at",
    "promoted_at",
    "switched_at",
    "verified_at",
    "detection_seconds",
    "rto_seconds",
    "orders_committed",
    "orders_lost",
    "loss_receipt_bytes",
    "false_failovers",
    "promotions",
    "edge_writes",
    "expectations",
    "ok",
)


@dataclass(frozen=True)
class Figures:
    scenario: str
    failover: bool
    target: str | None
    fault_at: float | None
    first_failed_probe_at: float | None
    quorum_at: float | None
    promoted_at: float | None
    switched_at: float | None
    verified_at: float | None
    detection_seconds: float | None
    rto_seconds: float | None
    orders_committed: int
    orders_lost: int | None
    loss_receipt_bytes: int | None
    false_failovers: int
    promotions: int
    edge_writes: int
    # beyond the required keys
    serving_site: str | None
    escalations: int
    split_brain_alerts: int  # a second primary appeared (one per region that saw it)
    api_errors: int
    dry_run_steps: int
    backup_orders: int | None
    restored_orders: int | None
    restored_equals_backup: bool | None
    duration_seconds: float | None
    loss_receipt_reason: str | None = None  # the watchdog's sentence for its last loss receipt
    data_loss_allowed: bool = False  # a replica check passed only because an operator allowed data loss
    first_fault_at: float | None = None  # the scenario's first fault (fault_at: the failover's origin)
    outages: tuple[dict[str, Any], ...] = ()  # every client outage (ClientOutage.relative_to)
    rto_outage: int | None = None  # index in `outages` of the one the failover ended
    split_brain_resolved: int = 0  # the second primary went (one per region that saw it go)
    watchdog_said: tuple[str, ...] = ()  # its distinct sentences: quorum, escalation, loss receipt
    shadow_decisions: int = 0  # mode shadow: "auto would have failed over" decisions recorded
    shadow_decided_at: float | None = None  # the first one: when auto would have acted
    # the operator's rejoins: {at, site, ok, outcome, reason, lag_bytes}
    rejoins: tuple[dict[str, Any], ...] = ()
    # the operator's planned switchovers (see _switchovers)
    switchovers: tuple[dict[str, Any], ...] = ()
    # the cold site's restore as its bootstrap reported it: method, base backup, the WAL position
    # replayed to, the newest archived segment, the restored data's age (its RPO) and the sentence
    cold_restore: dict[str, Any] | None = None
    # the file lag at promotion (the replica check's file-sync marker), beside the database's loss
    file_lag_seconds: float | None = None
    file_lag_reason: str | None = None
    # the readiness evaluations, their changes and notifications (readiness_section)
    readiness: dict[str, Any] | None = None
    # the operator's restore rehearsals: {outcome, reason, backup_id, restored_lsn, tables, terminated}
    rehearsals: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Judgement:
    name: str
    expected: Any
    actual: Any
    met: bool
    reason: str


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _first(events: list[Event], kind: str, since: float | None = None, **match: Any) -> Event | None:
    for e in events:
        if e.kind != kind or (since is not None and e.t < since):
            continue
        if all(e.data.get(k) == v for k, v in match.items()):
            return e
    return None


def compute_figures(events: Iterable[Event], scenario: str = "") -> Figures:
    events = sorted(events, key=lambda e: e.t)
    started = _first(events, "run_started")
    zero = started.t if started else (events[0].t if events else 0.0)
    name = scenario or (str(started.data.get("scenario")) if started else "")

    def rel(event: Event | None) -> float | None:
        return None if event is None else _round(event.t - zero)

    first_fault = _first(events, "fault", phase="start") or _first(events, "fault")
    promotions = [e for e in events if e.kind == "promotion"]
    switches = [e for e in events if e.kind == "switch"]
    verified = _first(events, "verify", ok=True)
    target = str(switches[-1].data.get("to")) if switches else None
    failover = bool(switches) and target not in (None, "main")

    attempts = [e for e in events if e.kind == "attempt"]
    outages = client_outages(attempts, [e for e in events if e.kind == "fault"])
    first_fault_t = first_fault.t if first_fault else None
    switch = next((s for s in switches if s.data.get("to") == target), None) if failover else None
    ended = failover_outage(outages, switch.t, str(target)) if switch is not None else None
    rto = outage_rto(outages, first_fault_t, ended, failover=failover)
    origin_t = first_fault_t
    if ended is not None:
        origin_t = ended.cause_at if ended.cause_at is not None else ended.start
    first_failed = _first(events, "vote", since=origin_t, site="main", vote="down")
    quorum = _first(events, "quorum", since=origin_t, site="main", verdict="DOWN") or _first(
        events, "quorum", verdict="DOWN"
    )
    committed = {str(e.data.get("order_id")) for e in attempts if e.data.get("ok")}
    present = [e for e in events if e.kind == "orders_present"]
    orders_lost = len(committed - set(present[-1].data.get("order_ids", []))) if present else None
    receipts = [e for e in events if e.kind == "loss_receipt"]
    backup = _first(events, "backup_taken")
    restored = _first(events, "restored")
    # a base backup (barman-cloud) lists no orders: the restore adds the archived WAL to it
    backup_ids = set(backup.data["order_ids"]) if backup and "order_ids" in backup.data else None
    restored_ids = set(restored.data.get("order_ids", [])) if restored else None
    restore_keys = (
        "method",
        "backup_id",
        "restored_lsn",
        "wal_segment",
        "data_age_seconds",
        "restore_reason",
    )
    cold_restore = {k: restored.data[k] for k in restore_keys if k in restored.data} if restored else None
    finished = _first(events, "run_finished")
    lagged = [e for e in receipts if "file_lag_reason" in e.data]

    return Figures(
        scenario=name,
        failover=failover,
        target=target if failover else None,
        fault_at=None if origin_t is None else _round(origin_t - zero),
        first_failed_probe_at=rel(first_failed),
        quorum_at=rel(quorum),
        promoted_at=rel(promotions[0] if promotions else None),
        switched_at=rel(switches[0] if switches else None),
        verified_at=rel(verified),
        detection_seconds=_round(quorum.t - origin_t) if quorum and origin_t is not None else None,
        rto_seconds=_round(rto),
        orders_committed=len(committed),
        orders_lost=orders_lost,
        loss_receipt_bytes=_receipt_bytes(receipts),
        false_failovers=_false_failovers(events),
        promotions=len(promotions),
        edge_writes=sum(1 for e in events if e.kind == "edge_write"),
        serving_site=_serving_site(attempts),
        escalations=sum(1 for e in events if e.kind == "escalation"),
        split_brain_alerts=sum(1 for e in events if e.kind == "split_brain_alert"),
        api_errors=sum(1 for e in events if e.kind == "api_error"),
        dry_run_steps=sum(1 for e in events if e.kind == "dry_run_step"),
        backup_orders=len(backup_ids) if backup_ids is not None else None,
        restored_orders=len(restored_ids) if restored_ids is not None else None,
        restored_equals_backup=(backup_ids == restored_ids)
        if backup_ids is not None and restored_ids is not None
        else None,
        duration_seconds=rel(finished),
        cold_restore=cold_restore or None,
        rehearsals=tuple(
            {
                k: e.data.get(k)
                for k in ("outcome", "reason", "backup_id", "restored_lsn", "tables", "terminated")
            }
            for e in events
            if e.kind == "rehearsal"
        ),
        loss_receipt_reason=str(receipts[-1].data.get("reason")) if receipts else None,
        data_loss_allowed=any(e.data.get("code") == "data_loss_allowed" for e in receipts),
        first_fault_at=rel(first_fault),
        outages=tuple(o.relative_to(zero) for o in outages),
        rto_outage=None if ended is None else outages.index(ended),
        split_brain_resolved=sum(1 for e in events if e.kind == "split_brain_resolved"),
        watchdog_said=_sentences(events),
        shadow_decisions=sum(1 for e in events if e.kind == "shadow_decision"),
        shadow_decided_at=rel(_first(events, "shadow_decision")),
        rejoins=tuple({"at": rel(e), **e.data} for e in events if e.kind == "rejoin"),
        switchovers=_switchovers(events, attempts, outages, zero),
        file_lag_seconds=lagged[-1].data.get("file_lag_seconds") if lagged else None,
        file_lag_reason=str(lagged[-1].data.get("file_lag_reason")) if lagged else None,
        readiness=readiness_section(events, zero),
    )


def readiness_section(events: list[Event], zero: float) -> dict[str, Any] | None:
    """The readiness evaluations as the report shows them: per check, its status at the first
    evaluation that had it and every change after, each `{at, status, reason}` (seconds from
    the start; a change of reason alone is no change); the `ReadinessChanged` notifications and
    the FAIL alarm's changes; how many evaluations and how long they took. None without any."""
    evaluations = [e for e in events if e.kind == "readiness"]
    if not evaluations:
        return None
    checks: dict[str, list[dict[str, Any]]] = {}
    for e in evaluations:
        for check in e.data.get("checks") or []:
            seen = checks.setdefault(str(check["name"]), [])
            if not seen or seen[-1]["status"] != check["status"]:
                seen.append({"at": _round(e.t - zero), "status": check["status"], "reason": check["reason"]})
    durations = [float(e.data["duration_ms"]) for e in evaluations if e.data.get("duration_ms") is not None]
    cpu = [float(e.data["cpu_ms"]) for e in evaluations if e.data.get("cpu_ms") is not None]
    last = {str(c["name"]): c for c in evaluations[-1].data.get("checks") or []}
    return {
        "evaluations": len(evaluations),
        "first_at": _round(evaluations[0].t - zero),
        "last_at": _round(evaluations[-1].t - zero),
        "duration_ms_mean": round(sum(durations) / len(durations), 1) if durations else None,
        "duration_ms_max": max(durations) if durations else None,
        "cpu_ms_mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
        "errors": [str(e.data["error"]) for e in evaluations if e.data.get("error")][:5],
        "overall_at_end": evaluations[-1].data.get("overall"),
        "checks": [
            {
                "name": name,
                "status_at_end": last[name]["status"] if name in last else None,
                "fail_throughout": all(t["status"] == "FAIL" for t in changes) and name in last,
                "transitions": changes,
            }
            for name, changes in checks.items()
        ],
        "notifications": [
            {
                "at": _round(e.t - zero),
                "reason": e.data.get("reason"),
                "notification": e.data.get("notification"),
                "changes": e.data.get("changes") or [],
            }
            for e in events
            if e.kind == "readiness_changed"
        ],
        "alarm": [
            {
                "at": _round(e.t - zero),
                "alarm": e.data.get("alarm"),
                "state": e.data.get("state"),
                "previous": e.data.get("previous"),
                "reason": e.data.get("reason"),
            }
            for e in events
            if e.kind == "readiness_alarm"
        ],
    }


def fail_notified(readiness: dict[str, Any] | None, check: str) -> tuple[bool, str]:
    """Whether `check` was OK or WARN, then turned FAIL, and a ReadinessChanged carrying that
    change to FAIL was delivered; with the sentence that says what was seen."""
    if readiness is None:
        return False, f"{check}: no readiness was evaluated"
    found = next((c for c in readiness["checks"] if c["name"] == check), None)
    if found is None:
        return False, f"{check} was never evaluated"
    turned = next(
        (
            after
            for before, after in zip(found["transitions"], found["transitions"][1:], strict=False)
            if before["status"] != "FAIL" and after["status"] == "FAIL"
        ),
        None,
    )
    if turned is None:
        statuses = " -> ".join(t["status"] for t in found["transitions"])
        return False, f"{check} never turned FAIL after being OK or WARN ({statuses})"
    told = next(
        (
            n
            for n in readiness["notifications"]
            if any(
                c.get("check") == check and c.get("after") == "FAIL" and c.get("before") in ("OK", "WARN")
                for c in n["changes"]
            )
        ),
        None,
    )
    if told is None:
        return False, f"{check} turned FAIL at {turned['at']:g} s but no ReadinessChanged said so"
    return True, (
        f"{check} turned FAIL at {turned['at']:g} s ({turned['reason']}); notified at {told['at']:g} s"
    )


def _switchovers(
    events: list[Event], attempts: list[Event], outages: list[ClientOutage], zero: float
) -> tuple[dict[str, Any], ...]:
    """Each planned switchover as the report shows it: from, to, its outcome, the watchdog's own
    moments and write outage (freeze to the target writable), the clients' write outage (the
    longest client outage that overlaps the switchover's run), whether it rolled back, the sync
    check's verdict, and the orders it lost: orders the source site acknowledged before the
    switchover ended that are missing at the end."""
    present = [e for e in events if e.kind == "orders_present"]
    at_end = set(present[-1].data.get("order_ids", [])) if present else None
    found = []
    for e in (e for e in events if e.kind == "switchover"):
        figures = e.data.get("figures") or {}
        began, ended = float(e.data.get("started_at") or e.t), float(e.data.get("ended_at") or e.t)
        overlapping = [
            o.seconds
            for o in outages
            if o.seconds is not None and o.start <= ended and (o.end or ended) >= began
        ]
        source = figures.get("source")
        acknowledged = {
            str(a.data.get("order_id"))
            for a in attempts
            if a.data.get("ok") and a.data.get("site") == source and a.t <= ended
        }

        def rel(t: Any) -> float | None:
            return None if t is None else _round(float(t) - zero)

        found.append(
            {
                "from": source,
                "to": e.data.get("to"),
                "outcome": e.data.get("outcome"),
                "dry_run": bool(e.data.get("dry_run")),
                "started_at": rel(began),
                "frozen_at": rel(figures.get("frozen_at")),
                "promoted_at": rel(figures.get("promoted_at")),
                "switched_at": rel(figures.get("switched_at")),
                "verified_at": rel(figures.get("verified_at")),
                "watchdog_write_outage_seconds": figures.get("write_outage_seconds"),
                "write_outage_seconds": _round(max(overlapping)) if overlapping else 0.0,
                "rolled_back": bool(figures.get("rolled_back")),
                "following": figures.get("following"),
                "sync_check": figures.get("sync_check"),
                "orders_lost": None if at_end is None else len(acknowledged - at_end),
                "reason": e.data.get("reason"),
            }
        )
    return tuple(found)


SAYING_KINDS = (
    "quorum",
    "escalation",
    "loss_receipt",
    "split_brain_alert",
    "split_brain_resolved",
    "shadow_decision",
)


def _sentences(events: list[Event]) -> tuple[str, ...]:
    """The watchdog's distinct sentences, in the order it first said them."""
    said = (str(e.data["reason"]) for e in events if e.kind in SAYING_KINDS and e.data.get("reason"))
    return tuple(dict.fromkeys(said))


def _receipt_bytes(receipts: list[Event]) -> int | None:
    """The watchdog's own figure from its last replica check: None when it said "unknown" (never 0)."""
    if not receipts:
        return None
    figure = receipts[-1].data.get("bytes")
    return None if figure is None else int(figure)


@dataclass(frozen=True)
class ClientOutage:
    """One stretch of time the clients were not served, as they saw it through the edge."""

    start: float  # the last successful order before the failures (the first failure when none)
    end: float | None  # the first successful order after them; None: never served again
    first_failure: float  # when the first failed order of the stretch was sent
    failures: int
    served_again_by: str | None  # the site that served the order that ended it
    cause: str | None  # the fault active when the first failure was seen; None: no fault active
    cause_at: float | None  # when that fault started

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else self.end - self.start

    def relative_to(self, zero: float) -> dict[str, Any]:
        def rel(t: float | None) -> float | None:
            return None if t is None else _round(t - zero)

        return {
            "start": rel(self.start),
            "end": rel(self.end),
            "seconds": _round(self.seconds),
            "failures": self.failures,
            "served_again_by": self.served_again_by,
            "cause": self.cause,
            "cause_at": rel(self.cause_at),
        }


SITE_STOPPING_ACTIONS = ("stop_site",)


def _fault_key(event: Event) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A fault's start and its end share the kind and the target (site, region, parts)."""
    target = tuple(sorted((k, str(v)) for k, v in event.data.items() if k in ("site", "region", "parts")))
    return str(event.data.get("fault")), target


def active_faults(faults: list[Event], at: float) -> list[Event]:
    """The fault starts recorded at or before `at` whose end had not been recorded by then."""
    active: dict[tuple[str, tuple[tuple[str, str], ...]], Event] = {}
    for e in sorted(faults, key=lambda f: f.t):
        if e.t > at:
            break
        if e.data.get("phase", "start") == "start":
            active[_fault_key(e)] = e
        else:
            active.pop(_fault_key(e), None)
    return list(active.values())


def _cause(faults: list[Event], seen_at: float) -> Event | None:
    """The fault active at `seen_at`; one that stops a site wins, then the latest."""
    active = active_faults(faults, seen_at)
    stopping = [e for e in active if e.data.get("action") in SITE_STOPPING_ACTIONS]
    chosen = stopping or active
    return chosen[-1] if chosen else None


def _describe_fault(event: Event) -> str:
    target = ", ".join(f"{k}={v}" for k, v in _fault_key(event)[1])
    return f"{event.data.get('fault')}" + (f" ({target})" if target else "")


def client_outages(attempts: list[Event], faults: list[Event]) -> list[ClientOutage]:
    """Every run of failed orders, bounded by the successes around it, with the fault behind it.

    Pure: `attempts` are `attempt` events, `faults` the `fault` events. A run's first failure is
    "seen" when its answer came back (start + latency): the cause is the fault active then, so an
    order in flight when a site was killed is put down to that kill.
    """
    ordered = sorted(attempts, key=lambda a: a.t)
    outages: list[ClientOutage] = []
    last_ok: Event | None = None
    run: list[Event] = []

    def close(ended_by: Event | None) -> None:
        first = run[0]
        seen_at = first.t + float(first.data.get("latency_ms") or 0.0) / 1000.0
        cause = _cause(faults, seen_at)
        outages.append(
            ClientOutage(
                start=last_ok.t if last_ok is not None else first.t,
                end=None if ended_by is None else ended_by.t,
                first_failure=first.t,
                failures=len(run),
                served_again_by=None if ended_by is None else _site(ended_by),
                cause=None if cause is None else _describe_fault(cause),
                cause_at=None if cause is None else cause.t,
            )
        )

    for attempt in ordered:
        if attempt.data.get("ok"):
            if run:
                close(attempt)
                run = []
            last_ok = attempt
        else:
            run.append(attempt)
    if run:
        close(None)
    return outages


def _site(attempt: Event) -> str | None:
    site = attempt.data.get("site")
    return None if site is None else str(site)


def failover_outage(outages: list[ClientOutage], switch_t: float, target: str) -> ClientOutage | None:
    """The clients' outage the failover ended: the first one that began before the switch and after
    which `target` served the clients; else the one still open at the end, begun before the switch
    (the failover did not bring the clients back). None: the clients saw no outage around it."""
    before = [o for o in outages if o.start <= switch_t]
    for outage in before:
        if outage.served_again_by == target:
            return outage
    if before and before[-1].end is None:
        return before[-1]
    return None


def outage_rto(
    outages: list[ClientOutage],
    first_fault_t: float | None,
    ended: ClientOutage | None,
    *,
    failover: bool,
) -> float | None:
    """RTO: the failover's outage (0 when the clients saw none); without a failover the longest
    outage since the first fault (0 when none, None when one never ended). None without a fault."""
    if first_fault_t is None:
        return None
    if failover:
        return 0.0 if ended is None else ended.seconds
    since = [o for o in outages if o.end is None or o.end > first_fault_t]
    if any(o.end is None for o in since):
        return None
    return max((o.seconds or 0.0 for o in since), default=0.0)


def _serving_site(attempts: list[Event]) -> str | None:
    served = [a for a in attempts if a.data.get("ok") and a.data.get("site")]
    return str(served[-1].data["site"]) if served else None


def _false_failovers(events: list[Event]) -> int:
    """Failovers made while main was up: the larger of promotions and switches away from main then."""
    main_up = True
    promotions = switches = 0
    for e in events:
        if e.kind == "site_truth" and e.data.get("site") == "main":
            main_up = bool(e.data.get("up"))
        elif e.kind == "promotion" and main_up and not e.data.get("planned"):
            promotions += 1  # an operator's planned switchover is no failover
        elif e.kind == "switch" and main_up and e.data.get("to") != "main":
            switches += 1
    return max(promotions, switches)


# ---------------------------------------------------------------------------------------------
# Expectations
# ---------------------------------------------------------------------------------------------


def _exact(name: str, expected: Any, actual: Any, what: str) -> Judgement:
    met = expected == actual
    verb = "as expected" if met else f"expected {expected}"
    return Judgement(name, expected, actual, met, f"{what} was {actual}, {verb}.")


def _at_most(name: str, limit: float, actual: float | None, what: str) -> Judgement:
    if actual is None:
        return Judgement(
            name, limit, None, False, f"{what} could not be measured, expected at most {limit:g}."
        )
    met = actual <= limit
    return Judgement(
        name, limit, actual, met, f"{what} was {actual:g}, {'within' if met else 'above'} {limit:g}."
    )


SWITCHOVER_OUTCOMES = {
    "switchovers_done": "switched_over",
    "switchovers_refused": "refused",
    "switchovers_rolled_back": "rolled_back",
}


def _judge_one(name: str, want: Any, f: Figures) -> Judgement:  # noqa: C901 - one branch per expectation
    if name == "failover":
        return _exact(name, want, f.failover, "failover")
    if name == "target":
        return _exact(name, want, f.target, "the failover target")
    if name == "rto_seconds_max":
        return _at_most(name, want, f.rto_seconds, "the clients' outage (RTO) in seconds")
    if name == "detection_seconds_max":
        return _at_most(
            name, want, f.detection_seconds, "detection (the outage's fault to quorum) in seconds"
        )
    if name in ("promotions", "edge_writes"):
        return _exact(name, want, getattr(f, name), name.replace("_", " "))
    if name == "orders_lost_max":
        return _at_most(name, want, f.orders_lost, "orders lost")
    if name == "orders_lost_min":
        if f.orders_lost is None:
            return Judgement(
                name, want, None, False, f"orders lost could not be measured, expected at least {want}."
            )
        met = f.orders_lost >= want
        return Judgement(
            name,
            want,
            f.orders_lost,
            met,
            f"{f.orders_lost} committed order(s) lost, expected at least {want}.",
        )
    if name == "orders_lost_zero":
        judged = _at_most(name, 0, f.orders_lost, "orders lost")
        return Judgement(name, want, f.orders_lost, judged.met == want, judged.reason)
    if name == "loss_receipt_nonzero_when_lost":
        if f.orders_lost is None:
            return Judgement(name, want, None, False, "orders lost could not be measured.")
        honest = f.orders_lost == 0 or (f.loss_receipt_bytes or 0) > 0
        reason = f"{f.orders_lost} order(s) lost and the loss receipt says {f.loss_receipt_bytes} bytes" + (
            ": it does not hide the loss." if honest else ": the receipt claims no loss."
        )
        return Judgement(name, want, honest, honest == want, reason)
    if name == "data_loss_allowed":
        return _exact(name, want, f.data_loss_allowed, "a promotion allowed to lose data by an operator")
    if name == "false_failovers_max":
        return _at_most(name, want, f.false_failovers, "false failovers")
    if name == "escalation":
        return _exact(name, want, f.escalations > 0, "an escalation recorded")
    if name == "split_brain_alert":
        return _exact(name, want, f.split_brain_alerts > 0, "a split-brain alert recorded")
    if name == "split_brain_alerts_max":
        return _at_most(name, want, f.split_brain_alerts, "split-brain alerts (appeared)")
    if name == "split_brain_resolved":
        return _exact(name, want, f.split_brain_resolved, "split-brain resolutions")
    if name == "restored_orders_equal_backup":
        actual = f.restored_equals_backup
        reason = f"the cold site holds {f.restored_orders} order(s), the backup {f.backup_orders}"
        return Judgement(
            name,
            want,
            actual,
            actual == want,
            reason + ("." if actual == want else f"; expected equal={want}."),
        )
    if name == "serving_site":
        return _exact(name, want, f.serving_site, "the site serving clients at the end")
    if name in SWITCHOVER_OUTCOMES:
        outcome = SWITCHOVER_OUTCOMES[name]
        done = sum(1 for so in f.switchovers if so.get("outcome") == outcome)
        return _exact(name, want, done, f"planned switchovers that ended {outcome.replace('_', ' ')}")
    if name == "switchover_write_outage_seconds_max":
        worst = max((so["write_outage_seconds"] for so in f.switchovers), default=None)
        return _at_most(
            name, want, worst, "the longest write outage of a planned switchover, as clients saw it,"
        )
    if name == "switchover_orders_lost_max":
        counts = [so["orders_lost"] for so in f.switchovers]
        lost = None if not counts or any(c is None for c in counts) else sum(counts)
        return _at_most(name, want, lost, "orders the planned switchovers lost")
    if name == "rejoined":
        done = sum(1 for r in f.rejoins if r.get("ok"))
        said = "; ".join(str(r.get("reason")) for r in f.rejoins if not r.get("ok"))
        judged = _exact(name, want, done, "rejoins that ended streaming within the lag limit")
        return judged if judged.met or not said else replace(judged, reason=f"{judged.reason} ({said})")
    if name == "verified":
        return _exact(name, want, f.verified_at is not None, "the switch verified through the edge")
    if name == "api_errors_min":
        met = f.api_errors >= want
        return Judgement(
            name,
            want,
            f.api_errors,
            met,
            f"{f.api_errors} injected API error(s) served, expected at least {want}.",
        )
    if name == "shadow_decisions":
        judged = _exact(name, want, f.shadow_decisions, "shadow decisions (auto would have failed over)")
        if f.shadow_decided_at is None:
            return judged
        return replace(judged, reason=f"{judged.reason} The first at {f.shadow_decided_at:g} s.")
    if name == "clients_failing_at_end":
        last = f.outages[-1] if f.outages else None
        failing = last is not None and last.get("end") is None
        since = f" (since {last.get('start')} s)" if failing and last is not None else ""
        return _exact(name, want, failing, f"the clients failing at the end{since}")
    if name == "dry_run_plan":
        actual = f.dry_run_steps > 0 and f.promotions == 0 and f.edge_writes == 0
        reason = (
            f"{f.dry_run_steps} dry-run step(s) recorded, {f.promotions} promotion(s), "
            f"{f.edge_writes} edge write(s)."
        )
        return Judgement(name, want, actual, actual == want, reason)
    if name == "readiness_fail_notified":
        seen = {check: fail_notified(f.readiness, check) for check in want}
        notified = [check for check, (ok, _) in seen.items() if ok]
        told = "; ".join(sentence for _, sentence in seen.values())
        return Judgement(name, want, notified, len(notified) == len(want), told + ".")
    if name == "rehearsal":
        last = f.rehearsals[-1] if f.rehearsals else None
        if last is None:
            return Judgement(name, want, None, False, "no restore rehearsal ended during the run.")
        actual = last.get("outcome")
        terminated = bool(last.get("terminated"))
        reason = f"the rehearsal ended {actual}: {last.get('reason')}; its instance " + (
            "was terminated." if terminated else "was NOT terminated."
        )
        return Judgement(name, want, actual, actual == want and terminated, reason)
    if name == "watchdog_says_contains":
        matching = [s for s in f.watchdog_said if want in s]
        reason = (
            f"the watchdog said: {matching[0]!r}"
            if matching
            else f"none of the watchdog's {len(f.watchdog_said)} sentence(s) contains {want!r}"
        )
        return Judgement(name, want, matching[0] if matching else None, bool(matching), reason + ".")
    raise KeyError(f"no judge for expectation {name!r}")


def evaluate(expectations: Expectations, figures: Figures) -> list[Judgement]:
    """Each stated expectation judged against the figures, in the order the model declares them."""
    wanted = expectations.checked()
    return [
        _judge_one(name, getattr(expectations, name), figures)
        for name in Expectations.model_fields
        if name in wanted
    ]


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def report_json(figures: Figures, judgements: list[Judgement]) -> dict[str, Any]:
    data = asdict(figures)
    data["expectations"] = {
        j.name: {"expected": j.expected, "actual": j.actual, "met": j.met, "reason": j.reason}
        for j in judgements
    }
    data["ok"] = all(j.met for j in judgements)
    ordered = {key: data.pop(key) for key in REPORT_KEYS}
    ordered.update(data)
    return ordered


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}{unit}"
    return f"{value}{unit}"


def _moments(report: dict[str, Any]) -> list[str]:
    """The rows of the "When" table; the shadow decision only in a run that had one."""
    rows = []
    for key, label in (
        ("first_fault_at", "first fault injected"),
        ("fault_at", "fault behind the outage the failover ended (else the first)"),
        ("first_failed_probe_at", "first probe voted DOWN"),
        ("quorum_at", "quorum said DOWN"),
        ("promoted_at", "DR promoted"),
        ("switched_at", "edge switched"),
        ("verified_at", "switch verified through the edge"),
        ("shadow_decided_at", "shadow decision: auto would have failed over"),
    ):
        if key != "shadow_decided_at" or report.get(key) is not None:
            rows.append(f"| {label} | {_fmt(report[key])} |")
    return rows


def report_markdown(scenario: Scenario | None, report: dict[str, Any], events: list[Event]) -> str:
    verdict = "PASS" if report["ok"] else "FAIL"
    unmet = [name for name, j in report["expectations"].items() if not j["met"]]
    lines = [f"# Drill `{report['scenario']}`: {verdict}", ""]
    if scenario is not None:
        lines += [scenario.description.strip(), ""]
    if report["failover"]:
        lost = report["orders_lost"] if report["orders_lost"] is not None else "?"
        lines.append(
            f"**Traffic moved to `{report['target']}`**; clients were without service for "
            f"**{_fmt(report['rto_seconds'], ' s')}**; {lost} "
            f"of {report['orders_committed']} committed orders lost."
        )
    else:
        lines.append(f"**No failover.** Clients committed {report['orders_committed']} orders.")
    if unmet:
        lines += ["", f"**Unmet:** {', '.join(unmet)} (details below)."]
    lines += ["", "## When", "", "| moment | seconds from start |", "| --- | --- |"]
    lines += _moments(report)
    lines += ["", "## Figures", "", "| figure | value |", "| --- | --- |"]
    for key, label in (
        ("detection_seconds", "detection (that fault to quorum), s"),
        ("rto_seconds", "RTO: the clients' outage the failover ended, s"),
        ("orders_committed", "orders clients saw committed"),
        ("orders_lost", "of which missing afterwards"),
        ("loss_receipt_bytes", "watchdog's data-loss receipt, bytes"),
        ("file_lag_seconds", "file lag at promotion (file-sync marker), s"),
        ("data_loss_allowed", "promoted on an operator's allow_data_loss"),
        ("promotions", "promotions"),
        ("edge_writes", "edge writes"),
        ("false_failovers", "false failovers"),
        ("serving_site", "site serving at the end"),
        ("split_brain_alerts", "split-brain alerts (a second primary appeared)"),
        ("split_brain_resolved", "split-brain resolutions (it went)"),
    ):
        lines.append(f"| {label} | {_fmt(report.get(key))} |")
    if report.get("file_lag_reason"):
        said = report["file_lag_reason"]
        lines += ["", f"Beside the database's loss receipt, the replica check said: {said}."]
    lines += _readiness_markdown(report.get("readiness"))
    lines += ["", "## Client outages", ""]
    if report.get("outages"):
        lines += [
            "| # | start, s | end, s | seconds | failed orders | served again by | cause |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for index, o in enumerate(report["outages"]):
            mark = " (the failover's)" if index == report.get("rto_outage") else ""
            cause = o["cause"] or "no fault active"
            if o["cause_at"] is not None:
                cause += f" at {o['cause_at']:.2f} s"
            lines.append(
                f"| {index + 1}{mark} | {_fmt(o['start'])} | {_fmt(o['end'])} | {_fmt(o['seconds'])} | "
                f"{o['failures']} | {_fmt(o['served_again_by'])} | {cause} |"
            )
    else:
        lines.append("The clients were never without service.")
    lines += ["", "## Expectations", ""]
    for name, j in report["expectations"].items():
        lines.append(f"- {'✅' if j['met'] else '❌'} `{name}`: {j['reason']}")
    notes = [
        e
        for e in events
        if e.kind
        in (
            "quorum",
            "escalation",
            "split_brain_alert",
            "split_brain_resolved",
            "dry_run_step",
            "shadow_decision",
            "fault",
            "loss_receipt",
        )
    ]
    if notes:
        zero = next((e.t for e in events if e.kind == "run_started"), events[0].t)
        lines += ["", "## What the watchdog said", ""]
        for e in notes[:40]:
            said = e.data.get("reason") or e.data.get("sentence") or _fault_line(e)
            lines.append(f"- {e.t - zero:7.2f} s  {e.kind}: {said}")
    lines += ["", "![timeline](timeline.png)", ""]
    return "\n".join(lines)


COLD_SITE_IN_THE_DRILL = (
    "The drill's moto has the cold site's AMI but no launch template (the CDK app creates it in a "
    "deployment), so `cold_site` is FAIL in every drill that configures a cold site: a true FAIL, "
    "shown as it is; a deployment must show OK there."
)


def _readiness_markdown(readiness: dict[str, Any] | None) -> list[str]:
    """The report's readiness section: each check's status over time, the reason of each change,
    and what was told (ReadinessChanged, the FAIL alarm)."""
    lines = ["", "## Readiness", ""]
    if readiness is None:
        return [*lines, "Not evaluated in this drill (`readiness.interval_seconds: null`)."]
    mean, most = readiness.get("duration_ms_mean"), readiness.get("duration_ms_max")
    lines.append(
        f"{readiness['evaluations']} evaluations (the scheduled function's code against the drill's "
        f"moto, emulator and PostgreSQL) from {_fmt(readiness['first_at'])} s to "
        f"{_fmt(readiness['last_at'])} s, {_fmt(mean)} ms each on average ({_fmt(most)} ms at most; "
        f"{_fmt(readiness.get('cpu_ms_mean'))} ms of CPU each); overall at the end: "
        f"**{readiness.get('overall_at_end') or '—'}**."
    )
    lines += ["", "| check | status over time (s from start) | at the end |", "| --- | --- | --- |"]
    for check in readiness["checks"]:
        steps = " → ".join(f"{t['status']} at {_fmt(t['at'])}" for t in check["transitions"])
        end = check["status_at_end"] or "not evaluated"
        if check["fail_throughout"]:
            end += " (FAIL throughout)"
        lines.append(f"| `{check['name']}` | {steps} | {end} |")
    lines += ["", "Each status and why (the first evaluation, then every change):", ""]
    changes = sorted(
        ((t["at"], check["name"], t) for check in readiness["checks"] for t in check["transitions"]),
        key=lambda item: (item[0] if item[0] is not None else 0.0, item[1]),
    )
    for at, name, t in changes:
        lines.append(f"- {_fmt(at)} s `{name}` {t['status']}: {t['reason']}")
    if any(c["name"] == "cold_site" and c["status_at_end"] == "FAIL" for c in readiness["checks"]):
        lines += ["", COLD_SITE_IN_THE_DRILL]
    lines += ["", "Told to a person (the alert topic):", ""]
    told = [(n["at"], f"ReadinessChanged: {n['notification']}") for n in readiness["notifications"]]
    told += [(a["at"], f"alarm {a['reason']}") for a in readiness["alarm"]]
    if not told:
        lines.append("- nothing: no readiness change and no alarm")
    for at, said in sorted(told, key=lambda item: item[0] if item[0] is not None else 0.0):
        lines.append(f"- {_fmt(at)} s {said}")
    lines += _alarm_already_raised(readiness)
    if readiness.get("errors"):
        lines += ["", "Evaluations that failed: " + "; ".join(readiness["errors"])]
    return lines


def _alarm_already_raised(readiness: dict[str, Any]) -> list[str]:
    """A check that turned FAIL while the one FAIL alarm of the service was already in ALARM (for
    another check): the alarm sent nothing new then; said, so that no one reads silence as OK."""
    said = []
    for check in readiness["checks"]:
        for before, after in zip(check["transitions"], check["transitions"][1:], strict=False):
            if after["status"] != "FAIL" or before["status"] == "FAIL" or after["at"] is None:
                continue
            earlier = [a for a in readiness["alarm"] if a["at"] is not None and a["at"] <= after["at"]]
            if earlier and earlier[-1]["state"] == "ALARM":
                said.append(
                    f"`{check['name']}` turned FAIL at {_fmt(after['at'])} s while the FAIL alarm was "
                    f"already in ALARM (since {_fmt(earlier[-1]['at'])} s): the alarm sent nothing new; "
                    "the ReadinessChanged notification is what told."
                )
    return ["", *said] if said else []


def _fault_line(event: Event) -> str:
    data = dict(event.data)
    kind, phase = data.pop("fault", "?"), data.pop("phase", "start")
    extra = ", ".join(f"{k}={v}" for k, v in data.items())
    return f"{kind} {phase}" + (f" ({extra})" if extra else "")


def write_report(
    events: Iterable[Event], folder: str | Path, scenario: Scenario | None = None
) -> dict[str, Any]:
    """Write report.json, report.md and timeline.png into `folder`; return the report."""
    events = sorted(events, key=lambda e: e.t)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = compute_figures(events, scenario.name if scenario else "")
    judgements = evaluate(scenario.expectations, figures) if scenario else []
    report = report_json(figures, judgements)
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(report_markdown(scenario, report, events), encoding="utf-8")
    render_timeline(events, folder / "timeline.png", title=f"drill {figures.scenario}")
    return report
