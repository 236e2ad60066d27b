"""Report figures and expectation judgements from synthetic event logs; the timeline is a real PNG."""

from __future__ import annotations

import json
from pathlib import Path

from quorum_dr_local.drill.report import REPORT_KEYS, compute_figures, evaluate, write_report
from quorum_dr_local.drill.scenario import Expectations, load_scenario, parse_scenario
from quorum_dr_local.drill.timeline import Event, EventLog, read_events

T0 = 1_700_000_000.0
REGIONS = ["eu-west-2", "us-east-1", "us-west-2"]


def ev(t: float, kind: str, **data: object) -> Event:
    return Event(T0 + t, kind, dict(data))


def attempts(start: float, stop: float, ok: bool, site: str = "main", step: float = 0.5) -> list[Event]:
    out, t, n = [], start, 0
    while t < stop - 1e-9:
        out.append(
            ev(
                t,
                "attempt",
                ok=ok,
                status=201 if ok else None,
                site=site if ok else None,
                order_id=f"{site}-{ok}-{start}-{n}",
            )
        )
        t, n = t + step, n + 1
    return out


def main_outage_log(lost_ids: int = 0, receipt: int | None = 4096) -> list[Event]:
    """Fault at 10 s, quorum 14 s, promote 15, switch 15.5, verified 16; clients fail 10..16."""
    events = [ev(0, "run_started", scenario="main-outage", regions=REGIONS, quorum=2)]
    for r in REGIONS:
        events += [ev(t, "vote", region=r, site="main", vote="up") for t in (2, 4, 6, 8)]
    events += [
        ev(10, "fault", fault="site_down", phase="start", site="main"),
        ev(10, "site_truth", site="main", up=False),
    ]
    events += [
        ev(10.8, "vote", region="eu-west-2", site="main", vote="down"),
        ev(11.0, "vote", region="us-east-1", site="main", vote="down"),
        ev(12.0, "vote", region="us-west-2", site="main", vote="abstain"),
    ]
    events += [
        ev(12, "state", state="ConfirmOutage"),
        ev(14, "quorum", site="main", verdict="DOWN", reason="2 of 3 regions vote DOWN; quorum is 2"),
    ]
    events += [
        ev(14.5, "state", state="PromoteDatabase"),
        ev(15, "promotion", site="dr"),
        ev(15.5, "edge_write", target="dr"),
        ev(15.5, "switch", to="dr"),
        ev(16, "verify", site="dr", ok=True),
        ev(16.2, "state", state="FAILED_OVER"),
    ]
    events += attempts(0, 10, True) + attempts(10, 16.5, False) + attempts(16.5, 25, True, site="dr")
    committed = [str(e.data["order_id"]) for e in events if e.kind == "attempt" and e.data["ok"]]
    events.append(ev(26, "orders_present", site="dr", order_ids=committed[lost_ids:]))
    if receipt is not None:
        events.append(ev(16, "loss_receipt", bytes=receipt))
    events.append(ev(27, "run_finished"))
    return events


def test_figures_of_a_main_outage():
    f = compute_figures(main_outage_log())
    assert (f.scenario, f.failover, f.target) == ("main-outage", True, "dr")
    assert (f.fault_at, f.first_failed_probe_at, f.quorum_at) == (10.0, 10.8, 14.0)
    assert (f.promoted_at, f.switched_at, f.verified_at) == (15.0, 15.5, 16.0)
    assert f.detection_seconds == 4.0
    # last success at 9.5, first success after the gap at 16.5
    assert f.rto_seconds == 7.0
    assert f.orders_committed == 20 + 17
    assert f.orders_lost == 0
    assert (f.promotions, f.edge_writes, f.false_failovers, f.serving_site) == (1, 1, 0, "dr")


def test_rto_ignores_orders_that_still_succeed_just_after_the_fault():
    events = [ev(0, "run_started"), ev(5, "fault", fault="site_down", phase="start")]
    events += attempts(0, 5.6, True) + attempts(5.6, 9, False) + attempts(9, 12, True, site="dr")
    assert compute_figures(events).rto_seconds == 9 - 5.5


def test_rto_is_zero_when_clients_never_failed_and_null_without_recovery_or_fault():
    ok_run = [ev(0, "run_started"), ev(5, "fault", fault="partition", phase="start"), *attempts(0, 20, True)]
    assert compute_figures(ok_run).rto_seconds == 0.0
    never_back = [
        ev(0, "run_started"),
        ev(5, "fault", fault="site_down"),
        *attempts(0, 5, True),
        *attempts(5, 9, False),
    ]
    assert compute_figures(never_back).rto_seconds is None
    assert compute_figures([ev(0, "run_started"), *attempts(0, 3, True)]).rto_seconds is None


def test_orders_lost_counts_committed_orders_missing_afterwards():
    f = compute_figures(main_outage_log(lost_ids=3))
    assert f.orders_lost == 3
    assert compute_figures([ev(0, "run_started"), *attempts(0, 2, True)]).orders_lost is None


def test_expectations_met_for_a_good_main_outage():
    judgements = evaluate(
        load_scenario("main-outage").expectations, compute_figures(main_outage_log(lost_ids=2))
    )
    assert {j.name for j in judgements} >= {
        "failover",
        "target",
        "rto_seconds_max",
        "promotions",
        "edge_writes",
    }
    assert all(j.met for j in judgements), [j.reason for j in judgements if not j.met]
    rto = next(j for j in judgements if j.name == "rto_seconds_max")
    assert rto.reason == "the clients' outage (RTO) in seconds was 7, within 10."


def test_a_receipt_of_zero_when_orders_were_lost_is_unmet():
    figures = compute_figures(main_outage_log(lost_ids=2, receipt=0))
    (judgement,) = evaluate(Expectations(loss_receipt_nonzero_when_lost=True), figures)
    assert not judgement.met
    assert (
        judgement.reason == "2 order(s) lost and the loss receipt says 0 bytes: the receipt claims no loss."
    )


def test_unmet_expectations_say_why():
    figures = compute_figures(main_outage_log(lost_ids=1))
    expectations = parse_scenario(
        {
            "name": "x",
            "description": "d",
            "expectations": {
                "failover": False,
                "target": None,
                "promotions": 0,
                "orders_lost_zero": True,
                "rto_seconds_max": 5,
                "split_brain_alert": True,
            },
        }
    ).expectations
    judged = {j.name: j for j in evaluate(expectations, figures)}
    assert not any(j.met for j in judged.values())
    assert judged["failover"].reason == "failover was True, expected False."
    assert judged["target"].reason == "the failover target was dr, expected None."
    assert judged["promotions"].reason == "promotions was 1, expected 0."
    assert judged["orders_lost_zero"].reason == "orders lost was 1, above 0."
    assert judged["rto_seconds_max"].reason == "the clients' outage (RTO) in seconds was 7, above 5."


def test_a_promotion_while_main_was_up_is_a_false_failover():
    events = [
        ev(0, "run_started"),
        ev(3, "fault", fault="partition", phase="start"),
        ev(8, "promotion", site="dr"),
        ev(8.5, "switch", to="dr"),
    ]
    f = compute_figures(events)
    assert (f.false_failovers, f.failover, f.target) == (1, True, "dr")
    (judgement,) = evaluate(Expectations(false_failovers_max=0), f)
    assert not judgement.met and judgement.reason == "false failovers was 1, above 0."


def test_cold_restore_compares_backup_and_restored_orders():
    base = [ev(0, "run_started"), ev(1, "backup_taken", order_ids=["a", "b"]), ev(9, "switch", to="cold")]
    same = compute_figures([*base, ev(8, "restored", site="cold", order_ids=["b", "a"])])
    differ = compute_figures([*base, ev(8, "restored", site="cold", order_ids=["a"])])
    want = Expectations(restored_orders_equal_backup=True, target="cold")
    assert all(j.met for j in evaluate(want, same))
    judged = {j.name: j for j in evaluate(want, differ)}
    assert not judged["restored_orders_equal_backup"].met
    assert "holds 1 order(s), the backup 2" in judged["restored_orders_equal_backup"].reason


def test_write_report_has_exactly_the_issue_keys_and_a_valid_png(tmp_path: Path):
    report = write_report(main_outage_log(), tmp_path, load_scenario("main-outage"))
    saved = json.loads((tmp_path / "report.json").read_text())
    assert list(saved)[: len(REPORT_KEYS)] == list(REPORT_KEYS)
    assert saved == json.loads(json.dumps(report))
    assert saved["ok"] is True and all(e["met"] for e in saved["expectations"].values())
    png = (tmp_path / "timeline.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.startswith("# Drill `main-outage`: PASS")
    assert "2 of 3 regions vote DOWN; quorum is 2" in markdown


def test_an_unmet_report_is_not_ok(tmp_path: Path):
    report = write_report(main_outage_log(), tmp_path, load_scenario("partition-one-region"))
    assert report["ok"] is False
    assert report["expectations"]["failover"]["met"] is False
    assert "FAIL" in (tmp_path / "report.md").read_text().splitlines()[0]


def test_event_log_round_trips_through_jsonl_and_rejects_unknown_kinds(tmp_path: Path):
    seen: list[Event] = []
    log = EventLog(tmp_path / "events.jsonl", clock=lambda: T0)
    log.subscribe(seen.append)
    log.record("run_started", scenario="x", regions=REGIONS, quorum=2)
    log.record("vote", at=T0 + 1, region="eu-west-2", site="main", vote="down")
    log.close()
    assert read_events(tmp_path / "events.jsonl") == log.events == seen
    try:
        log.record("votes")
    except ValueError as exc:
        assert "unknown event kind 'votes'" in str(exc)
    else:
        raise AssertionError("an unknown kind was accepted")


def test_an_unknown_receipt_is_none_not_zero_and_not_a_crash():
    # the watchdog says "data loss unknown" with bytes None: the report must keep None (it used to
    # raise TypeError on int(None)), and losing orders with an unknown receipt is unmet
    events = main_outage_log(lost_ids=3, receipt=None)
    events.insert(-1, ev(16, "loss_receipt", bytes=None, reason="data loss unknown: no probe saw main"))
    figures = compute_figures(events)
    assert figures.loss_receipt_bytes is None
    assert figures.loss_receipt_reason == "data loss unknown: no probe saw main"
    (judgement,) = evaluate(Expectations(loss_receipt_nonzero_when_lost=True), figures)
    assert not judgement.met and "the receipt claims no loss" in judgement.reason


def test_a_lossy_manual_failover_is_judged_from_the_watchdogs_last_receipt():
    events = main_outage_log(lost_ids=4, receipt=None)
    events[-1:-1] = [
        ev(14.2, "loss_receipt", bytes=317248, code="loss_bytes", proceed=False, reason="at least 317248"),
        ev(14.4, "escalation", reason="NEEDS_ATTENTION"),
        ev(
            14.8,
            "loss_receipt",
            bytes=320000,
            code="data_loss_allowed",
            proceed=True,
            reason="at least 320000",
        ),
    ]
    figures = compute_figures(events)
    assert (figures.orders_lost, figures.loss_receipt_bytes, figures.data_loss_allowed) == (4, 320000, True)
    expected = Expectations(
        orders_lost_min=1, loss_receipt_nonzero_when_lost=True, data_loss_allowed=True, escalation=True
    )
    judgements = evaluate(expected, figures)
    assert all(j.met for j in judgements), [j.reason for j in judgements if not j.met]
    lost = next(j for j in judgements if j.name == "orders_lost_min")
    assert lost.reason == "4 committed order(s) lost, expected at least 1."
    (none_lost,) = evaluate(Expectations(orders_lost_min=1), compute_figures(main_outage_log()))
    assert not none_lost.met and none_lost.actual == 0
    (not_allowed,) = evaluate(Expectations(data_loss_allowed=True), compute_figures(main_outage_log()))
    assert not not_allowed.met
