"""The cold_rehearsal readiness check: OK when the last rehearsal passed recently; FAIL for each of
its reasons; WARN when none was ever recorded (a new deployment, see cold_rehearsal_check)."""

from __future__ import annotations

from typing import Any

import pytest

from quorum_dr.domain.readiness import RehearsalFacts, Status, cold_rehearsal_check
from quorum_dr.domain.rehearsal import RehearsalResult

NOW = 1_800_000_000.0
DAY = 86_400.0
LIMIT = 8 * DAY


def result(**kw: Any) -> RehearsalResult:
    base: dict[str, Any] = {
        "rehearsal_id": "rehearsal-booking-20270109T030000Z",
        "service": "booking",
        "started_at": NOW - 2 * DAY - 300,
        "finished_at": NOW - 2 * DAY,
        "duration_seconds": 300,
        "outcome": "PASSED",
        "reason": "all tables hold their rows",
        "backup_id": "20270109T023000",
        "restored_lsn": "0/9000028",
    }
    return RehearsalResult.model_validate(base | kw)


@pytest.mark.parametrize(
    ("facts", "enabled", "status", "starts"),
    [
        (
            RehearsalFacts(latest=result()),
            True,
            Status.OK,
            "the last restore rehearsal rehearsal-booking-20270109T030000Z passed 2 d ago (base backup "
            "20270109T023000, restored up to WAL 0/9000028), within the limit 8 d",
        ),
        (
            RehearsalFacts(latest=result(outcome="FAILED", reason="table public.orders is missing")),
            True,
            Status.FAIL,
            "the last restore rehearsal rehearsal-booking-20270109T030000Z (2 d ago) failed: "
            "table public.orders is missing",
        ),
        (
            RehearsalFacts(latest=result(finished_at=NOW - 9 * DAY)),
            True,
            Status.FAIL,
            "the last restore rehearsal rehearsal-booking-20270109T030000Z passed 9 d ago, over the limit "
            "8 d: the weekly schedule (cold_site.rehearsal.schedule) should have run one",
        ),
        (
            RehearsalFacts(latest=result(finished_at=NOW - 9 * DAY)),
            False,
            Status.FAIL,
            "the last restore rehearsal rehearsal-booking-20270109T030000Z passed 9 d ago, over the limit "
            "8 d: its schedule is off",
        ),
        (
            RehearsalFacts(error="AccessDeniedException: not allowed"),
            True,
            Status.FAIL,
            "cannot read the last restore rehearsal: AccessDeniedException: not allowed",
        ),
        (
            RehearsalFacts(),
            True,
            Status.WARN,
            "no restore rehearsal of the cold site was ever recorded",
        ),
    ],
    ids=["passed-recently", "failed", "too-old", "too-old-schedule-off", "unreadable", "never"],
)
def test_cold_rehearsal(facts: RehearsalFacts, enabled: bool, status: Status, starts: str) -> None:
    check = cold_rehearsal_check(facts, max_age_seconds=LIMIT, schedule_enabled=enabled, now=NOW)
    assert (check.name, check.status) == ("cold_rehearsal", status)
    assert check.reason.startswith(starts), check.reason
