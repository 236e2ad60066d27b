"""The drill report: figures computed from the event log, expectations judged, three files written.

`compute_figures(events)` turns a run's events (see `quorum_dr_local.drill.timeline`) into the numbers
of report.json; `evaluate(expectations, figures)` judges each stated expectation and says why;
`write_report(...)` writes report.json, report.md and timeline.png into the report folder.

Times in the report are seconds since the drill started (`run_started`), or null.

- `rto_seconds`: the outage as the clients saw it through the edge. The gap is found from the
  first failed order at or after the first fault: it runs from the last successful order before
  that failure to the first successful order after it. Orders that still succeeded after the
  fault (in flight, or served before the fault bit) therefore do not hide the outage. 0 when no
  order failed after the fault; null when there was no fault or no order succeeded again.
- `orders_lost`: orders a client saw committed (HTTP 201/200) that are missing from the serving
  database at the end (`orders_present`).
- `false_failovers`: failovers made while the drill's ground truth said main was up
  (`site_truth`): the larger of the promotions and the switches away from main made then.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
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
    split_brain_alerts: int
    api_errors: int
    dry_run_steps: int
    backup_orders: int | None
    restored_orders: int | None
    restored_equals_backup: bool | None
    duration_seconds: float | None
    loss_receipt_reason: str | None = None  # the watchdog's sentence for its last loss receipt
    data_loss_allowed: bool = False  # a replica check passed only because an operator allowed data loss


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

    fault = _first(events, "fault", phase="start") or _first(events, "fault")
    fault_t = fault.t if fault else None
    first_failed = _first(events, "vote", since=fault_t, site="main", vote="down")
    quorum = _first(events, "quorum", since=fault_t, site="main", verdict="DOWN") or _first(
        events, "quorum", verdict="DOWN"
    )
    promotions = [e for e in events if e.kind == "promotion"]
    switches = [e for e in events if e.kind == "switch"]
    verified = _first(events, "verify", ok=True)
    target = str(switches[-1].data.get("to")) if switches else None
    failover = bool(switches) and target not in (None, "main")

    attempts = [e for e in events if e.kind == "attempt"]
    committed = {str(e.data.get("order_id")) for e in attempts if e.data.get("ok")}
    present = [e for e in events if e.kind == "orders_present"]
    orders_lost = len(committed - set(present[-1].data.get("order_ids", []))) if present else None
    receipts = [e for e in events if e.kind == "loss_receipt"]
    backup = _first(events, "backup_taken")
    restored = _first(events, "restored")
    backup_ids = set(backup.data.get("order_ids", [])) if backup else None
    restored_ids = set(restored.data.get("order_ids", [])) if restored else None
    finished = _first(events, "run_finished")

    return Figures(
        scenario=name,
        failover=failover,
        target=target if failover else None,
        fault_at=rel(fault),
        first_failed_probe_at=rel(first_failed),
        quorum_at=rel(quorum),
        promoted_at=rel(promotions[0] if promotions else None),
        switched_at=rel(switches[0] if switches else None),
        verified_at=rel(verified),
        detection_seconds=_round(quorum.t - fault_t) if quorum and fault_t is not None else None,
        rto_seconds=_round(client_outage(attempts, fault_t)),
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
        loss_receipt_reason=str(receipts[-1].data.get("reason")) if receipts else None,
        data_loss_allowed=any(e.data.get("code") == "data_loss_allowed" for e in receipts),
    )


def _receipt_bytes(receipts: list[Event]) -> int | None:
    """The watchdog's own figure from its last replica check: None when it said "unknown" (never 0)."""
    if not receipts:
        return None
    figure = receipts[-1].data.get("bytes")
    return None if figure is None else int(figure)


def client_outage(attempts: list[Event], fault_t: float | None) -> float | None:
    """Seconds from the last success before the clients' first failure after the fault to the next success."""
    if fault_t is None:
        return None
    first_failure = next((a for a in attempts if a.t >= fault_t and not a.data.get("ok")), None)
    if first_failure is None:
        return 0.0
    before = [a for a in attempts if a.t < first_failure.t and a.data.get("ok")]
    after = next((a for a in attempts if a.t > first_failure.t and a.data.get("ok")), None)
    if after is None:
        return None
    began = before[-1].t if before else first_failure.t
    return after.t - began


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
        elif e.kind == "promotion" and main_up:
            promotions += 1
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


def _judge_one(name: str, want: Any, f: Figures) -> Judgement:  # noqa: C901 - one branch per expectation
    if name == "failover":
        return _exact(name, want, f.failover, "failover")
    if name == "target":
        return _exact(name, want, f.target, "the failover target")
    if name == "rto_seconds_max":
        return _at_most(name, want, f.rto_seconds, "the clients' outage (RTO) in seconds")
    if name == "detection_seconds_max":
        return _at_most(name, want, f.detection_seconds, "detection (fault to quorum) in seconds")
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
    if name == "dry_run_plan":
        actual = f.dry_run_steps > 0 and f.promotions == 0 and f.edge_writes == 0
        reason = (
            f"{f.dry_run_steps} dry-run step(s) recorded, {f.promotions} promotion(s), "
            f"{f.edge_writes} edge write(s)."
        )
        return Judgement(name, want, actual, actual == want, reason)
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
    for key, label in (
        ("fault_at", "fault injected"),
        ("first_failed_probe_at", "first probe voted DOWN"),
        ("quorum_at", "quorum said DOWN"),
        ("promoted_at", "DR promoted"),
        ("switched_at", "edge switched"),
        ("verified_at", "switch verified through the edge"),
    ):
        lines.append(f"| {label} | {_fmt(report[key])} |")
    lines += ["", "## Figures", "", "| figure | value |", "| --- | --- |"]
    for key, label in (
        ("detection_seconds", "detection (fault to quorum), s"),
        ("rto_seconds", "RTO seen by clients through the edge, s"),
        ("orders_committed", "orders clients saw committed"),
        ("orders_lost", "of which missing afterwards"),
        ("loss_receipt_bytes", "watchdog's data-loss receipt, bytes"),
        ("data_loss_allowed", "promoted on an operator's allow_data_loss"),
        ("promotions", "promotions"),
        ("edge_writes", "edge writes"),
        ("false_failovers", "false failovers"),
        ("serving_site", "site serving at the end"),
    ):
        lines.append(f"| {label} | {_fmt(report.get(key))} |")
    lines += ["", "## Expectations", ""]
    for name, j in report["expectations"].items():
        lines.append(f"- {'✅' if j['met'] else '❌'} `{name}`: {j['reason']}")
    notes = [
        e
        for e in events
        if e.kind in ("quorum", "escalation", "split_brain_alert", "dry_run_step", "fault", "loss_receipt")
    ]
    if notes:
        zero = next((e.t for e in events if e.kind == "run_started"), events[0].t)
        lines += ["", "## What the watchdog said", ""]
        for e in notes[:40]:
            said = e.data.get("reason") or e.data.get("sentence") or _fault_line(e)
            lines.append(f"- {e.t - zero:7.2f} s  {e.kind}: {said}")
    lines += ["", "![timeline](timeline.png)", ""]
    return "\n".join(lines)


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
