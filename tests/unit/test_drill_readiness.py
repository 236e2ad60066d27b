"""Readiness inside the drill: the report's readiness section and its expectation, the
ReadinessChanged and alarm records, the file lag at promotion, the backup schedule's scenario
fields and fault, from synthetic events and models (no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from quorum_dr.domain.readiness import READINESS_CHANGED, CheckChange, ReadinessChanged, Status
from quorum_dr_local.drill.config import configures_cold_site, drill_config, uses_cold_site
from quorum_dr_local.drill.layout import Layout
from quorum_dr_local.drill.observe import EventForwarder, readiness_record
from quorum_dr_local.drill.readiness import FailAlarm
from quorum_dr_local.drill.report import compute_figures, evaluate, fail_notified, write_report
from quorum_dr_local.drill.scenario import Expectations, ScenarioError, load_scenario, parse_scenario
from quorum_dr_local.drill.schedule import plan
from quorum_dr_local.drill.timeline import Event, EventLog

T0 = 1_700_000_000.0
BACKUP_OLD = (
    "the newest base backup 20261204T161500 in s3://quorum-dr-drill-backups/postgres/booking is 1 min 5 s "
    "old, over the limit 1 min: the backup timer on the DR host has stopped or fails"
)
COLD_FAIL = (
    "the cold site cannot launch: the launch template quorum-dr-booking-cold does not exist in us-west-2"
)


def ev(t: float, kind: str, **data: Any) -> Event:
    return Event(T0 + t, kind, dict(data))


def evaluation(t: float, **statuses: tuple[str, str]) -> Event:
    checks = [
        {"name": name, "status": status, "reason": reason} for name, (status, reason) in statuses.items()
    ]
    worst = "FAIL" if any(s == "FAIL" for s, _ in statuses.values()) else "OK"
    return ev(t, "readiness", overall=worst, checks=checks, duration_ms=40.0, cpu_ms=20.0)


def changed(t: float, check: str, before: str | None, after: str, reason: str) -> Event:
    detail = ReadinessChanged(
        service="booking",
        checked_at=T0 + t,
        overall_before=Status.FAIL,
        overall=Status.FAIL,
        changes=[CheckChange(check=check, before=before, after=after, reason=reason)],
        reason=f"readiness of booking is FAIL: {check} {before or 'new'} -> {after}",
    )
    return ev(t, "readiness_changed", **readiness_record(detail.model_dump(mode="json")))


def stale_backup_log(*, notified: bool = True) -> list[Event]:
    fresh = ("OK", "the newest base backup 20261204T161500 is 20 s old, within the limit 1 min")
    cold = ("FAIL", COLD_FAIL)
    events = [ev(0, "run_started", scenario="stale-backup", regions=[], quorum=2)]
    events += [evaluation(t, cold_site=cold, base_backup=fresh) for t in (1, 6, 11)]
    events.append(ev(35, "fault", fault="backup_stop", phase="start", action="stop_backups"))
    events += [evaluation(t, cold_site=cold, base_backup=("FAIL", BACKUP_OLD)) for t in (96, 101)]
    if notified:
        events.append(changed(96.2, "base_backup", "OK", "FAIL", BACKUP_OLD))
    events.append(ev(110, "run_finished"))
    return events


def test_each_check_shows_its_first_status_and_each_change_with_time_and_reason() -> None:
    section = compute_figures(stale_backup_log()).readiness
    assert section is not None and section["evaluations"] == 5
    checks = {c["name"]: c for c in section["checks"]}
    assert checks["base_backup"]["transitions"] == [
        {"at": 1.0, "status": "OK", "reason": checks["base_backup"]["transitions"][0]["reason"]},
        {"at": 96.0, "status": "FAIL", "reason": BACKUP_OLD},
    ], "a changed reason (the age ticking) is no transition; a changed status is"
    assert (
        checks["cold_site"]["fail_throughout"] is True and checks["base_backup"]["fail_throughout"] is False
    )
    assert section["overall_at_end"] == "FAIL" and section["duration_ms_mean"] == 40.0
    (told,) = section["notifications"]
    assert told["at"] == 96.2 and told["notification"].startswith("quorum-dr: readiness of booking is FAIL")


def test_no_evaluation_is_no_section_and_the_markdown_says_so(tmp_path: Path) -> None:
    events = [ev(0, "run_started", scenario="cloudflare-429"), ev(5, "run_finished")]
    assert compute_figures(events).readiness is None
    write_report(events, tmp_path)
    assert "Not evaluated in this drill" in (tmp_path / "report.md").read_text()


def test_the_markdown_shows_the_cold_site_fail_as_it_is_and_what_was_told(tmp_path: Path) -> None:
    report = write_report(stale_backup_log(), tmp_path, load_scenario("stale-backup"))
    markdown = (tmp_path / "report.md").read_text()
    assert "| `cold_site` | FAIL at 1.00 | FAIL (FAIL throughout) |" in markdown
    assert "| `base_backup` | OK at 1.00 → FAIL at 96.00 | FAIL |" in markdown
    assert f"- 96.00 s `base_backup` FAIL: {BACKUP_OLD}" in markdown
    assert "no launch template" in markdown and "a true FAIL" in markdown
    assert (
        "- 96.20 s ReadinessChanged: quorum-dr: readiness of booking is FAIL: base_backup OK -> FAIL"
        in markdown
    )
    assert report["readiness"]["checks"][0]["name"] == "cold_site"


def test_a_fail_under_an_alarm_already_raised_is_said_to_send_nothing_new(tmp_path: Path) -> None:
    raised = ev(1.1, "readiness_alarm", alarm="a", state="ALARM", previous="INSUFFICIENT_DATA", reason="r")
    write_report([*stale_backup_log(), raised], tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert (
        "`base_backup` turned FAIL at 96.00 s while the FAIL alarm was already in ALARM (since 1.10 s): "
        "the alarm sent nothing new; the ReadinessChanged notification is what told."
    ) in markdown
    cleared = ev(50, "readiness_alarm", alarm="a", state="OK", previous="ALARM", reason="r")
    write_report([*stale_backup_log(), raised, cleared], tmp_path)
    assert "already in ALARM" not in (tmp_path / "report.md").read_text()


def test_fail_notified_needs_a_turn_to_fail_and_its_notification() -> None:
    met, said = fail_notified(compute_figures(stale_backup_log()).readiness, "base_backup")
    assert (
        met
        and said.startswith("base_backup turned FAIL at 96 s (the newest base backup")
        and "at 96.2 s" in said
    )
    quiet = compute_figures(stale_backup_log(notified=False)).readiness
    assert fail_notified(quiet, "base_backup") == (
        False,
        "base_backup turned FAIL at 96 s but no ReadinessChanged said so",
    )
    assert fail_notified(quiet, "cold_site") == (
        False,
        "cold_site never turned FAIL after being OK or WARN (FAIL)",
    ), "a FAIL from the first evaluation is not a check that turned FAIL"
    assert fail_notified(quiet, "wal_archive") == (False, "wal_archive was never evaluated")
    assert fail_notified(None, "base_backup") == (False, "base_backup: no readiness was evaluated")


def test_the_expectation_is_judged_per_check() -> None:
    wanted = Expectations(readiness_fail_notified=["base_backup"])
    (judged,) = evaluate(wanted, compute_figures(stale_backup_log()))
    assert judged.met and judged.actual == ["base_backup"]
    (unmet,) = evaluate(wanted, compute_figures(stale_backup_log(notified=False)))
    assert not unmet.met and "no ReadinessChanged said so" in unmet.reason
    (both,) = evaluate(
        Expectations(readiness_fail_notified=["base_backup", "cold_site"]),
        compute_figures(stale_backup_log()),
    )
    assert not both.met and both.actual == ["base_backup"]


def test_a_readiness_changed_on_the_bus_is_recorded_with_the_alert_topics_text() -> None:
    log = EventLog()
    forwarder = EventForwarder(sqs=None, queue_url="", start=lambda event, name: name, log=log)
    detail = changed(0, "base_backup", "OK", "FAIL", BACKUP_OLD).data
    body = ReadinessChanged(
        service="booking",
        checked_at=T0,
        overall_before=Status.OK,
        overall=Status.FAIL,
        changes=[CheckChange(check="base_backup", before=Status.OK, after=Status.FAIL, reason=BACKUP_OLD)],
        reason="readiness of booking went from OK to FAIL: base_backup OK -> FAIL",
    ).model_dump(mode="json")
    forwarder.handle({"detail-type": READINESS_CHANGED, "detail": body})
    (recorded,) = log.events
    assert recorded.kind == "readiness_changed" and recorded.data["overall_before"] == "OK"
    assert recorded.data["notification"] == "quorum-dr: " + body["reason"]
    assert recorded.data["changes"][0]["reason"] == BACKUP_OLD
    assert detail["changes"][0]["after"] == "FAIL"
    with pytest.raises(ValueError):
        readiness_record({"service": "booking"})  # not a ReadinessChanged: said, never guessed


def test_the_fail_alarm_notifies_on_each_change_of_state_only() -> None:
    log = EventLog()
    alarm = FailAlarm(log)
    for value in (0, 0, 2, 2, 1, 2):
        alarm.metric("ReadinessStatus", value, {"service": "booking", "check": "overall"})
        alarm.metric("ReadinessStatus", 2, {"service": "booking", "check": "cold_site"})  # not the alarm's
    states = [(e.data["previous"], e.data["state"]) for e in log.events]
    assert states == [("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM"), ("ALARM", "OK"), ("OK", "ALARM")]
    assert log.events[1].data["reason"].startswith("quorum-dr-readiness-fail-booking: OK -> ALARM")
    figures = compute_figures([ev(0, "run_started"), *log.events, evaluation(1, x=("OK", "fine"))])
    assert figures.readiness is not None and len(figures.readiness["alarm"]) == 4


def test_the_file_lag_at_promotion_stands_beside_the_loss_receipt(tmp_path: Path) -> None:
    lag = "file lag at promotion 7.5 s: the newest file-sync marker DR serves was written by main at ..."
    events = [
        ev(0, "run_started", scenario="main-outage"),
        ev(
            16, "loss_receipt", bytes=0, reason="data loss bounded", file_lag_seconds=7.5, file_lag_reason=lag
        ),
        ev(20, "run_finished"),
    ]
    figures = compute_figures(events)
    assert (figures.file_lag_seconds, figures.file_lag_reason) == (7.5, lag)
    write_report(events, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "| file lag at promotion (file-sync marker), s | 7.50 |" in markdown
    assert f"the replica check said: {lag}." in markdown
    bare = compute_figures([ev(0, "run_started"), ev(16, "loss_receipt", bytes=0), ev(20, "run_finished")])
    assert (bare.file_lag_seconds, bare.file_lag_reason) == (None, None), "no marker read: no figure"


def test_the_stale_backup_scenario_schedules_backups_and_stops_them() -> None:
    scenario = load_scenario("stale-backup")
    assert scenario.backups is not None and scenario.backups.every_seconds == 15
    assert configures_cold_site(scenario) and not uses_cold_site(scenario), "configured, never launched"
    (action,) = plan(scenario)
    assert (action.at, action.method, action.args) == (20, "stop_backups", {})
    assert not configures_cold_site(load_scenario("main-outage"))


def _scenario(**more: Any) -> dict[str, Any]:
    return {"name": "x", "description": "x", "expectations": {}, **more}


def test_a_backup_stop_without_a_backup_job_is_refused_naming_the_field() -> None:
    with pytest.raises(
        ScenarioError, match="backup_stop needs a backup job to stop: set backups.every_seconds"
    ):
        parse_scenario(_scenario(faults=[{"at": 5, "kind": "backup_stop"}]))
    with pytest.raises(ScenarioError, match="max_age_seconds"):
        parse_scenario(_scenario(backups={"every_seconds": 10, "max_age_seconds": 30}))
    with pytest.raises(ScenarioError, match="backups needs cold_restore: wal_archive"):
        parse_scenario(_scenario(backups={"every_seconds": 10}, cold_restore="dump"))
    with pytest.raises(ScenarioError, match="readiness.interval_seconds"):
        parse_scenario(_scenario(readiness={"interval_seconds": 0.5}))
    with pytest.raises(ScenarioError, match="readiness_fail_notified"):
        parse_scenario(_scenario(expectations={"readiness_fail_notified": ["Base Backup"]}))
    assert parse_scenario(_scenario(readiness={"interval_seconds": None})).readiness.interval_seconds is None


def _layout() -> Layout:
    sites = dict.fromkeys(("main", "dr", "cold"), "127.0.0.1")
    ports = {"main": 5001, "dr": 5002, "cold": 5003}
    return Layout(
        False,
        "127.0.0.1",
        sites,
        dict.fromkeys(("eu-west-2", "us-east-1", "us-west-2"), "127.0.0.1"),
        app_ports=ports,
        db_ports={k: v + 100 for k, v in ports.items()},
        agent_ports={"main": 5201, "dr": 5202},
        aws_port=5300,
        edge_port=5301,
        emulator_port=5302,
        marker_port=5303,
    )


def test_the_drill_config_has_the_marker_and_the_scenarios_backup_limit() -> None:
    config = drill_config(load_scenario("stale-backup"), _layout(), cold_ami="ami-12345678")
    service = config.services[0]
    assert service.cold_site is not None and service.cold_site.wal_archive is not None
    assert service.cold_site.wal_archive.max_backup_age_seconds == 60
    assert (
        service.file_sync is not None and str(service.file_sync.url) == "http://127.0.0.1:5303/.sync-marker"
    )
    plain = drill_config(load_scenario("main-outage"), _layout(), cold_ami="ami-12345678").services[0]
    assert plain.cold_site is None and plain.file_sync is not None
