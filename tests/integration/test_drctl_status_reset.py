"""`drctl status` and `drctl reset` against the state table in moto."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import boto3
import pytest

from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.cli import main as drctl

REGION = "eu-west-2"
TABLE = "quorum-dr-state"
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "watchdog.example.yaml"


MACHINE = "arn:aws:states:eu-west-2:123456789012:stateMachine:Failover"


@pytest.fixture
def store(moto_state_store: DynamoStateStore, monkeypatch: pytest.MonkeyPatch) -> DynamoStateStore:
    """The state table, and the failover state machine `reset` asks about its lock's execution."""
    monkeypatch.delenv("STATE_MACHINE_ARN", raising=False)
    role = boto3.client("iam", region_name=REGION).create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    definition = {"StartAt": "Hold", "States": {"Hold": {"Type": "Pass", "End": True}}}
    created = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name="Failover", definition=json.dumps(definition), roleArn=role
    )
    assert created["stateMachineArn"] == MACHINE
    return moto_state_store


def escalated(store: DynamoStateStore, incident_id: str = "inc-7") -> None:
    """What an escalation leaves: NEEDS_ATTENTION on DR, the lock kept, the incident recorded."""
    assert store.acquire_lock("booking", incident_id, holder=incident_id, now=1000.0, expires_at=4600.0)
    assert store.keep_lock("booking", incident_id, holder=incident_id)
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
            "kind": "failover",
            "started_at": None,
            "target": None,
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
        [
            "reset",
            "--service",
            "booking",
            "--reason",
            "switched by hand, checked orders",
            "--table",
            TABLE,
            "--state-machine-arn",
            MACHINE,
        ]
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
    assert store.acquire_lock("booking", "inc-8", holder="inc-8", now=2000.0, expires_at=5600.0)
    assert state["last_reset"]["holder"] == "inc-7" and state["last_reset"]["holder_status"] == "NOT_FOUND"
    assert state["last_reset"]["forced"] is False


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


# ---------------------------------------------------------------------------------------------
# The lock's holder, and reset against a running execution
# ---------------------------------------------------------------------------------------------


def running(name: str) -> str:
    """An execution of the state machine that moto keeps RUNNING (it does not execute it)."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.start_execution(stateMachineArn=MACHINE, name=name, input="{}")["executionArn"]
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    return str(arn)


def reset_args(*extra: str) -> list[str]:
    return ["reset", "--service", "booking", "--reason", "on call checked", "--table", TABLE, *extra]


def test_the_lock_is_held_by_an_execution_not_by_an_incident_id(store: DynamoStateStore) -> None:
    escalated(store, "inc-7")
    # Same incident id, another execution: the kept lock stays shut.
    assert not store.acquire_lock("booking", "inc-7", holder="raw-start", now=9e9, expires_at=9e9 + 60)
    # keep and release are conditional on the holder: another execution changes nothing.
    assert store.keep_lock("booking", "inc-7", holder="raw-start") is False
    assert store.release_lock("booking", "inc-7") is False, "kept: not released even by its holder"
    lock = store.get_lock("booking")
    assert lock is not None and (lock["holder"], lock["kept"]) == ("inc-7", True)


def test_release_is_conditional_on_the_holder(store: DynamoStateStore) -> None:
    assert store.acquire_lock("booking", "inc-1", holder="exec-1", now=1000.0, expires_at=4600.0)
    assert store.release_lock("booking", "exec-2") is False
    assert store.get_lock("booking") is not None
    assert store.release_lock("booking", "exec-1") is True
    assert store.get_lock("booking") is None


def test_reset_refuses_while_the_locks_execution_is_running(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    running("inc-9")
    assert store.acquire_lock("booking", "inc-9", holder="inc-9", now=1000.0, expires_at=9e9)
    before = store.get_state("booking")

    assert drctl(reset_args("--state-machine-arn", MACHINE)) == 2

    err = capsys.readouterr().err.strip()
    assert err == (
        "reset refused: execution inc-9 (incident inc-9) is still RUNNING and holds the lock of booking; "
        "wait for it or stop it, or give --force with a reason (audited)"
    )
    assert store.get_lock("booking") is not None and store.get_state("booking") == before


def test_reset_with_a_held_lock_needs_the_state_machine_to_ask(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    escalated(store)
    assert drctl(reset_args()) == 2
    assert "give --state-machine-arn or set STATE_MACHINE_ARN" in capsys.readouterr().err
    assert store.get_lock("booking") is not None
    assert drctl(reset_args("--state-machine-arn", MACHINE.replace("Failover", "Typo"))) == 2
    assert "cannot check the lock's execution: state machine" in capsys.readouterr().err
    assert store.get_lock("booking") is not None


def test_reset_force_overrides_a_running_execution_and_is_audited_in_the_state(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    running("inc-9")
    assert store.acquire_lock("booking", "inc-9", holder="inc-9", now=1000.0, expires_at=9e9)

    assert drctl(reset_args("--state-machine-arn", MACHINE, "--force")) == 0

    out = capsys.readouterr().out
    assert "reset booking with --force while execution inc-9 was RUNNING (on call checked)" in out
    assert store.get_lock("booking") is None
    audit = store.get_state("booking")["last_reset"]
    assert audit["forced"] is True and audit["holder"] == "inc-9" and audit["holder_status"] == "RUNNING"
    assert audit["reason"] == "on call checked" and audit["by"]


def test_reset_after_the_execution_stopped_clears_the_lock(store: DynamoStateStore) -> None:
    arn = running("inc-9")
    boto3.client("stepfunctions", region_name=REGION).stop_execution(executionArn=arn)
    assert store.acquire_lock("booking", "inc-9", holder="inc-9", now=1000.0, expires_at=9e9)

    assert drctl(reset_args("--state-machine-arn", MACHINE)) == 0

    assert store.get_lock("booking") is None
    assert store.get_state("booking")["last_reset"]["holder_status"] == "ABORTED"


def test_a_stale_state_during_reset_leaves_the_lock_and_says_so_in_one_line(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    escalated(store)
    real_get_state = DynamoStateStore.get_state

    def read_then_someone_writes(self: DynamoStateStore, service: str) -> dict[str, object]:
        state = real_get_state(self, service)
        real_put = DynamoStateStore.put_state
        real_put(self, {**state, "automation_enabled": False}, expected_version=int(state["version"]))
        return state

    monkeypatch.setattr(DynamoStateStore, "get_state", read_then_someone_writes)

    assert drctl(reset_args("--state-machine-arn", MACHINE)) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("reset not done, nothing changed (the lock is as it was): the state of booking")
    monkeypatch.undo()
    lock = store.get_lock("booking")
    assert lock is not None and lock["kept"] is True
    assert store.get_state("booking")["status"] == "NEEDS_ATTENTION"


def test_pause_and_resume_are_the_kill_switch_recorded_with_who_and_why(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    from quorum_dr.config import FailoverPolicy
    from quorum_dr.domain.decisions import check_gates
    from quorum_dr.domain.state import ServiceState

    def gates() -> str:
        state = ServiceState.model_validate({**store.get_state("booking"), "service": "booking"})
        decision = check_gates(state, FailoverPolicy(), trigger="auto", target="dr", now=1000.0)
        return ("proceed: " if decision.proceed else "refused: ") + decision.reason

    assert drctl(["pause", "--service", "booking", "--reason", "DB upgrade tonight", "--table", TABLE]) == 0
    said = capsys.readouterr().out
    assert "paused automatic failover of booking (DB upgrade tonight)" in said
    state = store.get_state("booking")
    assert state["automation_enabled"] is False
    assert state["automation_changed"]["reason"] == "DB upgrade tonight"
    assert state["automation_changed"]["by"].startswith("arn:aws:")  # the caller's identity, from STS
    assert gates().startswith("refused: ") and "automation is disabled for booking (kill switch)" in gates()
    assert drctl(["status", "--service", "booking", "--table", TABLE]) == 0
    assert '"automation_enabled": false' in capsys.readouterr().out

    assert drctl(["resume", "--service", "booking", "--reason", "upgrade done", "--table", TABLE]) == 0
    assert "resumed automatic failover of booking (upgrade done)" in capsys.readouterr().out
    assert store.get_state("booking")["automation_enabled"] is True
    assert gates().startswith("proceed: ")
    assert drctl(["resume", "--service", "booking", "--reason", "again", "--table", TABLE]) == 0
    assert "(it was already on)" in capsys.readouterr().out
