"""The restore rehearsal's judgement: a pass says what was restored; each failure its own reason."""

from __future__ import annotations

from typing import Any

import pytest

from quorum_dr.domain.backup_figures import BackupFigures
from quorum_dr.domain.cold_report import ColdBootstrapReport, RestoreLine
from quorum_dr.domain.rehearsal import ID_PATTERN, judge, rehearsal_id, summary_lines
from tests.fakes import cold_bootstrap_report

BACKUP = "20261201T030000"
STARTED = 1_800_000_000.0
RECORDED = {"public.orders": 1000, "public.customers": 40}


def figures(**changes: Any) -> BackupFigures:
    fields: dict[str, Any] = {
        "backup_id": BACKUP,
        "database": "booking",
        "counted_at": STARTED - 3600,
        "counted_lsn": "0/5000100",
        "tables": RECORDED,
    }
    return BackupFigures(**{**fields, **changes})


def report(**restore: Any) -> dict[str, Any]:
    """The bootstrap's ready report of a barman-cloud restore, built from its contract."""
    fields: dict[str, Any] = {
        "bucket": "booking-backups",
        "key": f"postgres/booking/base/{BACKUP}/",
        "source": "dr standby (barman-cloud base backup)",
        "taken_at": STARTED - 3600,
        "lsn": "0/4000000",
        "restored_at": STARTED + 200,
        "backup_age_seconds": 30,
        "target": "/var/lib/postgresql/15/main",
        "reason": "restored",
        "method": "barman-cloud",
        "backup_id": BACKUP,
        "restored_lsn": "0/9000028",
        "wal_segment": "000000010000000000000009",
        "wal_archived_at": STARTED + 170,
        "figures_key": f"postgres/booking/quorum-dr-figures/{BACKUP}.json",
        "restored_rows": {"public.orders": 1500, "public.customers": 40},
    }
    line = RestoreLine(**{**fields, **restore})
    made = ColdBootstrapReport(ready=True, service="booking", instance="i-0cold", restore=line)
    return made.model_dump(mode="json")


def run(**kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "rehearsal_id": "rehearsal-booking-20270115T030000Z",
        "service": "booking",
        "started_at": STARTED,
        "finished_at": STARTED + 240,
        "report": report(),
        "figures": figures(),
    }
    return judge(**{**args, **kwargs})


def test_a_restore_holding_every_recorded_row_passes_and_says_what_it_restored() -> None:
    result = run()
    assert result.outcome == "PASSED" and result.passed and result.failures == []
    assert result.reason == (
        f"the cold site i-0cold restored base backup {BACKUP} and replayed WAL up to 0/9000028 "
        "(segment 000000010000000000000009) in 240 s; all 2 recorded tables hold at least their rows "
        "(1040 recorded, 1540 restored)"
    )
    assert result.backup_id == BACKUP and result.restored_lsn == "0/9000028"
    assert result.duration_seconds == 240 and result.instance_id == "i-0cold"
    assert result.tables["public.orders"].recorded == 1000 and result.tables["public.orders"].restored == 1500
    assert any("public.orders: 1000 recorded, 1500 restored" in line for line in summary_lines(result))


FAILURES: list[tuple[str, dict[str, Any], str]] = [
    (
        "a recorded table is missing",
        {
            "report": report(
                restored_rows={"public.orders": 1500}, rows_unavailable={"public.customers": "does not exist"}
            )
        },
        "table public.customers, recorded with 40 rows, is missing from the restored database "
        "(does not exist)",
    ),
    (
        "a recorded table the counting budget left out",
        {
            "report": report(
                restored_rows={"public.orders": 1500},
                rows_unavailable={"public.customers": "not counted: the counting budget of 120 s was spent"},
            )
        },
        "table public.customers, recorded with 40 rows, could not be counted in the restored database "
        "(not counted: the counting budget of 120 s was spent)",
    ),
    (
        "fewer rows than recorded",
        {"report": report(restored_rows={"public.orders": 999, "public.customers": 40})},
        f"table public.orders has 999 rows restored, 1 fewer than the 1000 recorded with "
        f"base backup {BACKUP}",
    ),
    (
        "fewer rows than the tolerance allows",
        {"report": report(restored_rows={"public.orders": 989, "public.customers": 40}), "row_tolerance": 10},
        f"table public.orders has 989 rows restored, 11 fewer than the 1000 recorded with "
        f"base backup {BACKUP} (tolerance 10)",
    ),
    (
        "the bootstrap failed",
        {
            "report": None,
            "failure": "cold site bootstrap of booking failed in step 'restore' (exit 1): no base backup",
        },
        "the cold site did not come up: cold site bootstrap of booking failed in step 'restore' (exit 1): "
        "no base backup",
    ),
    (
        "no report in time",
        {"report": None, "timed_out_after": 1800.0},
        "the cold site sent no ready report within 1800 s",
    ),
    (
        "no figures were recorded",
        {"figures": None},
        f"no figures were recorded with base backup {BACKUP}",
    ),
    (
        "the figures count nothing",
        {"figures": figures(tables={})},
        f"the figures of base backup {BACKUP} count no table of booking",
    ),
    (
        "the figures belong to another backup",
        {"figures": figures(backup_id="20261124T030000")},
        f"the figures are those of base backup 20261124T030000, but the cold site restored {BACKUP}",
    ),
    (
        "the restored database could not be counted",
        {"report": report(restored_rows=None, rows_error="cannot connect to the restored booking")},
        "the restored database could not be counted: cannot connect to the restored booking",
    ),
    (
        "the restore stopped before the counted position",
        {"figures": figures(counted_lsn="0/A000000")},
        "the restore ended at WAL 0/9000028, before 0/A000000 where the figures were counted",
    ),
    (
        "a pg_dump restore has nothing to compare",
        {"report": cold_bootstrap_report(420, instance="i-0cold").model_dump(mode="json")},
        "the cold site restored a pg_dump backup",
    ),
    (
        "a report that is not the contract",
        {"report": {"ready": True, "service": "booking"}},
        "the cold site's ready report does not match the bootstrap contract",
    ),
]


@pytest.mark.parametrize(("case", "changes", "reason"), FAILURES, ids=[f[0] for f in FAILURES])
def test_each_failure_fails_for_its_own_reason(case: str, changes: dict[str, Any], reason: str) -> None:
    result = run(**changes)
    assert result.outcome == "FAILED" and not result.passed
    assert result.reason.startswith(reason), (case, result.reason)
    assert len(result.failures) == 1, result.failures  # nothing else was wrong in these cases


def test_fewer_rows_within_the_tolerance_pass() -> None:
    assert run(
        report=report(restored_rows={"public.orders": 990, "public.customers": 40}), row_tolerance=10
    ).passed


def test_every_failure_is_listed_and_the_summary_says_them_all() -> None:
    result = run(report=report(restored_rows={"public.orders": 1}), figures=figures(counted_lsn="0/A000000"))
    assert len(result.failures) == 3 and result.reason == result.failures[0]
    assert sum(line.startswith("  also:") for line in summary_lines(result)) == 2


def test_the_rehearsal_id_names_the_service_and_the_utc_time() -> None:
    made = rehearsal_id("booking", 1_800_000_000.0)
    assert made == "rehearsal-booking-20270115T080000Z" and ID_PATTERN.match(made)


# -- when a rehearsal must not start ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "refused"),
    [
        ({}, None),
        (
            {"active_site": "dr", "status": "FAILED_OVER"},
            None,
        ),  # after a failover the cold site is the last resort
        (
            {"lock_holder": "auto-booking-1", "lock_expires_at": 2_000.0},
            "not now: incident auto-booking-1 holds",
        ),
        (
            {"lock_holder": "auto-booking-1", "lock_expires_at": 500.0},
            None,
        ),  # a lock that expired holds nothing
        ({"status": "FAILING_OVER"}, "not now: booking is FAILING_OVER"),
        ({"status": "NEEDS_ATTENTION"}, "not now: booking is NEEDS_ATTENTION"),
        ({"active_site": "cold", "status": "FAILED_OVER"}, "not now: the cold site of booking serves"),
    ],
)
def test_a_rehearsal_is_refused_only_while_an_incident_is_under_way(
    state: dict[str, object], refused: str | None
) -> None:
    from quorum_dr.domain.rehearsal import refusal
    from quorum_dr.domain.state import ServiceState

    why = refusal(ServiceState.model_validate({"service": "booking", **state}), now=1_000.0)
    if refused is None:
        assert why is None
    else:
        assert why is not None and why.startswith(refused), why
