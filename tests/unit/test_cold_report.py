"""The cold site's bootstrap report (one contract, one model) and the RPO the record reads from it."""

from __future__ import annotations

import pytest

from quorum_dr.domain.cold_report import ColdReportInvalid, parse_cold_report, read_cold_rpo
from tests.fakes import cold_bootstrap_report


def test_the_rpo_is_the_restored_backups_age() -> None:
    report = cold_bootstrap_report(420, instance="i-0cold").model_dump(mode="json")
    age, sentence = read_cold_rpo(report, dry_run=False, health_fallback=False)
    assert age == 420
    assert sentence == (
        "RPO 420 s: the cold site i-0cold restored a backup 420 s old "
        "(postgres/20270115T030000Z-main.dump, taken at WAL 0/3000060)"
    )


def test_the_old_top_level_shape_is_refused_with_the_missing_fields() -> None:
    old_shape = {"ready": True, "backup_age_seconds": 420, "reason": "cold site ready"}
    with pytest.raises(ColdReportInvalid) as info:
        read_cold_rpo(old_shape, dry_run=False, health_fallback=False)
    message = str(info.value)
    assert "does not match the bootstrap contract" in message
    assert "restore: Field required" in message and "backup_age_seconds: Extra inputs" in message


def test_a_report_without_the_backups_age_names_the_field() -> None:
    report = cold_bootstrap_report(420).model_dump(mode="json")
    report["restore"].pop("backup_age_seconds")
    with pytest.raises(ColdReportInvalid, match=r"restore\.backup_age_seconds: Field required"):
        read_cold_rpo(report, dry_run=False, health_fallback=False)


@pytest.mark.parametrize("bad", [None, [], "ready", {"ready": False}])
def test_a_missing_or_not_ready_report_is_an_error(bad: object) -> None:
    with pytest.raises(ColdReportInvalid):
        parse_cold_report(bad)


def test_a_negative_age_is_refused() -> None:
    report = cold_bootstrap_report(420).model_dump(mode="json")
    report["restore"]["backup_age_seconds"] = -5
    with pytest.raises(ColdReportInvalid, match="greater than or equal to 0"):
        parse_cold_report(report)


def test_unknown_only_when_no_report_was_due_and_it_says_why() -> None:
    health = {"verified": True, "reason": "3 of 3 regions saw the cold marker"}
    age, sentence = read_cold_rpo(health, dry_run=False, health_fallback=True)
    assert age is None
    assert sentence.startswith("RPO unknown: the cold site's ready report did not arrive in time")
    age, sentence = read_cold_rpo({"reason": "dry run: would launch"}, dry_run=True, health_fallback=False)
    assert age is None and sentence == "RPO not measured: a dry run restores no backup"
