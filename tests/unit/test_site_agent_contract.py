"""The site agent's contract: requests are validated strictly before anything acts; the answer
models hold what the agent says, and refuse a status that contradicts itself."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from quorum_dr.agent.contract import (
    DatabaseRole,
    HookAnswer,
    Operation,
    OperationAnswer,
    OperationRequest,
    SiteStatus,
)

PRIMARY = {"primary": {"host": "10.0.1.5", "port": 5432}}


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        OperationRequest.model_validate(data)
    return str(caught.value)


@pytest.mark.parametrize("operation", ["status", "freeze", "unfreeze", "stop", "start", "promote"])
def test_operations_without_a_primary_take_no_params(operation: str) -> None:
    request = OperationRequest.model_validate({"operation": operation, "operation_id": "op-1"})
    assert request.operation == Operation(operation)
    assert request.params.primary is None
    assert f"{operation} takes no params" in refused(
        {"operation": operation, "operation_id": "op-1", "params": PRIMARY}
    )


@pytest.mark.parametrize("operation", ["follow", "rewind", "rebuild"])
def test_follow_rewind_and_rebuild_need_the_primary(operation: str) -> None:
    data = {"operation": operation, "operation_id": "sw-1", "params": PRIMARY}
    request = OperationRequest.model_validate(data)
    assert request.params.primary is not None and request.params.primary.address() == "10.0.1.5:5432"
    assert f"{operation} needs params.primary (host and port)" in refused(
        {"operation": operation, "operation_id": "sw-1"}
    )


@pytest.mark.parametrize(
    "operation_id",
    ["", "-starts-with-dash", "has space", "line\nbreak", "x" * 129, "semi;colon", "é-accent"],
)
def test_operation_ids_are_bounded_printable_ids(operation_id: str) -> None:
    assert "operation_id" in refused({"operation": "stop", "operation_id": operation_id})


def test_a_long_id_of_allowed_characters_is_accepted() -> None:
    operation_id = "inc-2024-05-01T10:00:00Z/switchover@main+1=" + "a" * 80
    assert OperationRequest(operation=Operation.STOP, operation_id=operation_id).operation_id == operation_id


def follow(primary: dict[str, Any]) -> dict[str, Any]:
    return {"operation": "follow", "operation_id": "op-1", "params": {"primary": primary}}


@pytest.mark.parametrize(
    "data, field",
    [
        ({"operation": "reboot", "operation_id": "op-1"}, "operation"),
        ({"operation": "stop", "operation_id": "op-1", "force": True}, "force"),
        (follow({"host": "h", "port": 0}), "port"),
        (follow({"host": "h", "port": "5432"}), "port"),
        (follow({"host": "h p", "port": 1}), "host"),
        (follow({"host": "h", "port": 1, "password": "x"}), "password"),
    ],
)
def test_unknown_operations_fields_and_bad_addresses_are_refused(data: dict[str, Any], field: str) -> None:
    assert field in refused(data)


def test_a_repeated_request_is_recognised_by_its_operation_and_params() -> None:
    one = OperationRequest.model_validate({"operation": "follow", "operation_id": "a", "params": PRIMARY})
    same = OperationRequest.model_validate({"operation": "follow", "operation_id": "a", "params": PRIMARY})
    other = OperationRequest.model_validate(
        {"operation": "follow", "operation_id": "a", "params": {"primary": {"host": "10.0.1.6"}}}
    )
    assert one.fingerprint() == same.fingerprint() != other.fingerprint()


def stopped(**fields: Any) -> SiteStatus:
    return SiteStatus(
        role=DatabaseRole.STOPPED,
        running=False,
        timeline=2,
        checkpoint_lsn="0/5000028",
        shutdown_clean=True,
        reason="stopped cleanly",
        **fields,
    )


def test_a_status_must_agree_with_itself() -> None:
    assert stopped().checkpoint_lsn == "0/5000028"
    with pytest.raises(ValidationError, match="role stopped does not agree with running=True"):
        SiteStatus(role=DatabaseRole.STOPPED, running=True, reason="x")
    with pytest.raises(ValidationError, match="role primary does not agree with running=False"):
        SiteStatus(role=DatabaseRole.PRIMARY, running=False, reason="x")
    with pytest.raises(ValidationError, match="checkpoint_lsn"):
        SiteStatus(role=DatabaseRole.STOPPED, running=False, checkpoint_lsn="5000028", reason="x")
    with pytest.raises(ValidationError, match="reason"):
        SiteStatus(role=DatabaseRole.PRIMARY, running=True, reason="")


def test_answers_round_trip_as_json_and_forbid_unknown_fields() -> None:
    answer = OperationAnswer(
        ok=True, operation=Operation.STOP, operation_id="op-1", reason="stopped cleanly", status=stopped()
    )
    assert OperationAnswer.model_validate_json(answer.model_dump_json()) == answer
    assert answer.replayed is False
    with pytest.raises(ValidationError, match="extra"):
        OperationAnswer.model_validate({**answer.model_dump(mode="json"), "extra": 1})
    hook = HookAnswer(ok=False, hook="fence_main", reason="not fenced: stop failed")
    assert hook.model_dump(mode="json")["ok"] is False
