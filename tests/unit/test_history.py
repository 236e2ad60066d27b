"""What `drctl history` says of one incident record: its kind, how it ended, its data loss."""

from __future__ import annotations

from typing import Any

import pytest

from quorum_dr.domain.history import data_loss, ended, kind_of, row, table
from quorum_dr.domain.incident_record import IncidentRecord


def record(**fields: Any) -> IncidentRecord:
    return IncidentRecord.model_validate({"incident_id": "inc-1", **fields})


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({}, "-"),
        ({"data_loss": {"loss_bytes": 0, "bound_bytes": 0, "bound_seconds": 0.0}}, "0 B"),
        (
            {
                "data_loss": {
                    "loss_bytes": None,
                    "bound_bytes": 4096,
                    "bound_seconds": 2.5,
                    "evidence": "wal_position",
                }
            },
            "<= 4096 B, <= 2.5 s (wal_position)",
        ),
        (
            {"data_loss": {"loss_bytes": None, "bound_seconds": 35.0, "evidence": "heard_from_main"}},
            "<= 35.0 s (heard_from_main)",
        ),
        ({"data_loss": {"loss_bytes": 8192}}, "8192 B known lost (no bound)"),
        ({"data_loss": {"loss_bytes": None, "reason": "data loss unknown, no known bound"}}, "unknown"),
        ({"switchover": {"replayed_position": "0/5000028"}}, "0 (final position replayed)"),
        ({"switchover": {"replayed_position": "0/5000028", "rolled_back": True}}, "-"),
    ],
)
def test_the_data_loss_in_a_few_words(fields: dict[str, Any], said: str) -> None:
    assert data_loss(record(**fields)) == said


@pytest.mark.parametrize(
    ("fields", "kind", "end"),
    [
        ({}, "failover", "running"),
        ({"status": "NEEDS_ATTENTION"}, "failover", "NEEDS_ATTENTION"),
        ({"outcome": "failed_over", "status": "CLOSED"}, "failover", "failed_over"),
        ({"outcome": "dry_run", "dry_run": True}, "failover", "dry_run"),
        (
            {"outcome": "switched_over", "dry_run": True, "kind": "switchover"},
            "switchover",
            "switched_over (dry run)",
        ),
        ({"rejoin": {"site": "main"}, "outcome": "rejoined"}, "rejoin", "rejoined"),
        ({"outcome": "shadow", "dry_run": True, "shadow": True}, "shadow", "would have failed over"),
        ({"outcome": "false_alarm", "dry_run": True, "shadow": True}, "shadow", "false_alarm (shadow)"),
    ],
)
def test_kind_and_end(fields: dict[str, Any], kind: str, end: str) -> None:
    assert (kind_of(record(**fields)), ended(record(**fields))) == (kind, end)


def test_a_switchover_counts_its_write_outage_as_its_rto() -> None:
    summary = row(record(kind="switchover", started_at=1, switchover={"write_outage_seconds": 3.2}))
    assert summary["rto_seconds"] == 3.2 and summary["kind"] == "switchover"
    assert row(record(rto_seconds=10.5, switchover={"write_outage_seconds": 3.2}))["rto_seconds"] == 10.5


def test_the_table_aligns_its_columns_and_cleans_every_cell() -> None:
    text = table(
        [
            record(
                incident_id="inc-1",
                started_at=1_796_270_496,
                trigger="auto",
                target="dr",
                outcome="failed_over",
            ),
            record(incident_id="inc-22", trigger="man\u202eual", target="main"),  # a right-to-left override
        ],
        "booking",
    )
    header, first, second = text.splitlines()[1:]
    assert first.index("inc-1") == second.index("inc-22") == header.index("incident")
    assert "\u202e" not in text and "manual" in second
    assert second.startswith("-"), "no start time recorded yet"
