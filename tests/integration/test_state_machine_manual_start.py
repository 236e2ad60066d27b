"""`drctl failover`: malformed input starts no execution; a good one starts one named after the incident."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from quorum_dr.cli.failover_cmd import EXIT_INVALID, run_failover
from quorum_dr.state_machines import definition_json

REGION = "eu-west-2"


@pytest.fixture
def sfn(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("stepfunctions", region_name=REGION)
        arn = client.create_state_machine(
            name="Failover",
            definition=definition_json("failover"),
            roleArn="arn:aws:iam::123456789012:role/x",
        )["stateMachineArn"]
        yield client, arn


def args(arn: str, **over: Any) -> argparse.Namespace:
    base = dict(
        to="dr",
        reason="London is down",
        service="booking",
        dry_run=False,
        allow_data_loss=False,
        skip_confirm=False,
        incident_id=None,
        state_machine_arn=arn,
    )
    return argparse.Namespace(**{**base, **over})


def test_a_good_request_starts_one_execution_named_after_the_incident(sfn: tuple[Any, str]) -> None:
    client, arn = sfn
    assert run_failover(args(arn, incident_id="inc-42", dry_run=True), sfn=client) == 0
    executions = client.list_executions(stateMachineArn=arn)["executions"]
    assert [e["name"] for e in executions] == ["inc-42"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    to=st.text(max_size=6).filter(lambda v: v not in ("dr", "cold")),
    reason=st.sampled_from(["", "  ", "ok"]),
    service=st.sampled_from(["booking", "Bad Name", "", "x" * 70]),
)
def test_invariant_9_malformed_manual_start_starts_nothing(
    sfn: tuple[Any, str], to: str, reason: str, service: str
) -> None:
    client, arn = sfn
    assert run_failover(args(arn, to=to, reason=reason, service=service), sfn=client) == EXIT_INVALID
    assert client.list_executions(stateMachineArn=arn)["executions"] == []
