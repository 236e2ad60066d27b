"""`drctl status` and `drctl reset` against the state table in moto."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.tables import create_table
from quorum_dr.cli import main as drctl

REGION = "eu-west-2"
TABLE = "quorum-dr-state"
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "watchdog.example.yaml"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStateStore]:
    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("STATE_TABLE_NAME", raising=False)
    monkeypatch.setenv("QDR_CONFIG", str(EXAMPLE))
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
        yield DynamoStateStore(TABLE, resource=boto3.resource("dynamodb", region_name=REGION))


def escalated(store: DynamoStateStore, incident_id: str = "inc-7") -> None:
    """What an escalation leaves: NEEDS_ATTENTION on DR, the lock kept, the incident recorded."""
    assert store.acquire_lock("booking", incident_id, now=1000.0, expires_at=4600.0)
    store.keep_lock("booking", incident_id)
    state = store.get_state("booking")
    store.put_state(
        {**state, "service": "booking", "status": "NEEDS_ATTENTION", "active_site": "dr"},
        expected_version=state.get("version", 0),
    )
    store.update_incident(
        "booking",
        incident_id,
        {"status": "NEEDS_ATTENTION", "outcome": "escalated", "trigger": "auto"},
        timeline={"at": 1000.0, "step": "escalate", "reason": "promoted but traffic is NOT switched"},
    )


def test_status_shows_state_lock_and_incidents(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    escalated(store)

    assert drctl(["status", "--service", "booking", "--table", TABLE]) == 0

    shown = json.loads(capsys.readouterr().out)
    assert shown["state"]["status"] == "NEEDS_ATTENTION" and shown["state"]["active_site"] == "dr"
    assert shown["lock"]["incident_id"] == "inc-7" and shown["lock"]["kept"] is True
    assert shown["incidents"] == [
        {
            "incident_id": "inc-7",
            "status": "NEEDS_ATTENTION",
            "outcome": "escalated",
            "trigger": "auto",
            "rto_seconds": None,
            "finished_at": None,
        }
    ]


def test_status_without_a_table_says_how_to_name_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert drctl(["status", "--service", "booking"]) == 2
    assert "no state table: give --table or set STATE_TABLE_NAME" in capsys.readouterr().err


def test_reset_clears_needs_attention_and_the_kept_lock_and_records_why(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    escalated(store)

    code = drctl(
        ["reset", "--service", "booking", "--reason", "switched by hand, checked orders", "--table", TABLE]
    )

    assert code == 0
    sentence = capsys.readouterr().out.strip()
    assert "reset booking (switched by hand, checked orders): status FAILED_OVER" in sentence
    assert sentence.endswith("lock of incident inc-7 cleared")
    assert store.get_lock("booking") is None
    state = store.get_state("booking")
    assert state["status"] == "FAILED_OVER" and state["active_site"] == "dr", "reset keeps the active site"
    record = store.get_incident("booking", "inc-7")
    assert record is not None and record.status == "RESET"
    assert record.timeline[-1].step == "reset" and record.timeline[-1].reason == sentence
    # Automation may act again: the lock can be taken by a new incident.
    assert store.acquire_lock("booking", "inc-8", now=2000.0, expires_at=5600.0)


def test_reset_needs_a_reason(store: DynamoStateStore, capsys: pytest.CaptureFixture[str]) -> None:
    escalated(store)
    assert drctl(["reset", "--service", "booking", "--reason", "  ", "--table", TABLE]) == 2
    assert "--reason: must not be blank" in capsys.readouterr().err
    assert store.get_lock("booking") is not None


def test_a_malformed_or_unknown_service_writes_nothing(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    for service in ("Bad Name!", "no-such-service"):
        assert drctl(["reset", "--service", service, "--reason", "checked", "--table", TABLE]) == 2
        assert drctl(["status", "--service", service, "--table", TABLE]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and all(line.startswith("--service: ") for line in err)
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"]
    assert items == [], "a refused service must not create a state item"


def test_status_into_a_closed_pipe_is_not_a_traceback(
    store: DynamoStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    escalated(store)
    read_end, write_end = os.pipe()
    os.close(read_end)  # `drctl status | head -0`
    closed = io.TextIOWrapper(io.FileIO(write_end, "w"))
    monkeypatch.setattr(sys, "stdout", closed)
    try:
        assert drctl(["status", "--service", "booking", "--table", TABLE]) == 141
    finally:
        closed.close()


def test_an_unreachable_table_is_one_line_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QDR_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on discard
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert drctl(["status", "--service", "booking", "--table", TABLE]) == 3
    err = capsys.readouterr().err
    assert err.startswith("cannot read the service's state: AWS is unreachable")
    assert len(err.strip().splitlines()) == 1
