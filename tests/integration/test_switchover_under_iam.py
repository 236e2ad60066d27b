"""Invariant 11 for the planned switchover: every switchover function runs under its own role as
the CDK app synthesizes it, and moto's Step Functions engine under the switchover state machine's
role, with moto's IAM on. The state and results tables are the real DynamoDB adapters on moto;
the site agents, the sync check, the edge and the notifier are fakes (they make no AWS call).
Every call refused, or not allowed on its exact ARN by the unwidened policy, fails the test."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import pytest
from moto import mock_aws

from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.tables import create_table
from quorum_dr.agent.contract import DatabaseRole, Operation
from quorum_dr.failover import wiring
from quorum_dr.failover.ports import Ports
from quorum_dr.functions import SWITCHOVER_FUNCTIONS
from quorum_dr.ports import SiteAgentError
from quorum_dr_local.iam_enforcement import ENGINE, IamEnforcement
from quorum_dr_local.iam_policies import Statement, principal_policies, synthesize
from quorum_dr_local.sfn_harness import SfnHarness, load_handler
from quorum_dr_local.system_config import config_json
from tests.fakes import (
    FakeDatabases,
    FakeEdge,
    FakeNotifier,
    FakeProbes,
    FakeSync,
    FakeVerifier,
    SteppingClock,
    switchover_config,
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("aws_cdk") is None, reason="the synthesized policies need aws_cdk"
)

REGION = "eu-west-2"
STATE_TABLE, RESULTS_TABLE = "quorum-dr-state", "quorum-dr-results"  # stacks/naming.py


@pytest.fixture(scope="module")
def policies() -> dict[str, list[Statement]]:
    """The app's policies for a config whose sites run agents; the engine is held to the
    switchover state machine's role."""
    found = principal_policies(synthesize(config_json(switchover_config())))
    assert {f"function:{name}" for name in SWITCHOVER_FUNCTIONS} <= set(found)
    return {**found, ENGINE: found["state_machine:switchover"]}


class World:
    def __init__(self, harness: SfnHarness, iam: IamEnforcement, databases: FakeDatabases) -> None:
        self.harness, self.iam, self.databases = harness, iam, databases
        self.store = DynamoStateStore(STATE_TABLE)  # the operator's view

    def run(self, name: str, **fields: Any) -> tuple[dict[str, Any], list[str]]:
        payload = {
            "service": "booking",
            "to": "dr",
            "reason": "maintenance",
            "requested_by": "alice",
            **fields,
        }
        arn = self.harness.start(payload, name=name)
        return self.harness.wait(arn), self.harness.states_entered(arn)


@pytest.fixture
def world(policies: dict[str, list[Statement]], monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    config = switchover_config()
    databases = FakeDatabases()
    sync, edge, notifier = FakeSync(databases), FakeEdge(), FakeNotifier()
    verifier = FakeVerifier(edge)
    clock = SteppingClock()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        iam = IamEnforcement(policies, region=REGION).install()
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, STATE_TABLE)
        create_table(client, RESULTS_TABLE)

        def results() -> DynamoDbResultStore:
            return DynamoDbResultStore.from_name(RESULTS_TABLE, ttl_seconds=3600, region=REGION)

        def ports() -> Ports:
            """One set per principal: its clients are made under its credentials."""
            made = results()
            return Ports(
                config=config,
                store=DynamoStateStore(STATE_TABLE),
                results=lambda: made,
                edge=lambda s: edge,
                verifier=lambda: verifier,
                notifier=lambda: notifier,
                site_agent=lambda s, site: databases.agent(site),
                sync=lambda s: sync,
                clock=clock,
                sleep=clock.sleep,
            )

        operator = ports()
        FakeProbes(results(), time.time, {"main": "up", "dr": "up"}).run_round(  # type: ignore[arg-type]
            service="booking", round_id="r1", incident_id="", sites=["main", "dr"]
        )
        handlers = {
            name: iam.handler_as(lambda _ctx, name=name: f"function:{name}", load_handler(name))
            for name in SWITCHOVER_FUNCTIONS
        }
        with (
            mock.patch.object(wiring, "current", lambda: iam.ports_for(ports, lambda: operator)),
            SfnHarness(
                state_table=STATE_TABLE,
                region=REGION,
                machine_name="Switchover",
                definition_name="switchover",
                handlers=handlers,
            ) as harness,
        ):
            iam.enforce()
            try:
                yield World(harness, iam, databases)
            finally:
                problems = iam.problems()
                iam.close()
        assert not problems, "IAM: calls the synthesized policies do not allow:\n  " + "\n  ".join(problems)


def test_a_switchover_runs_under_the_functions_own_roles(world: World) -> None:
    described, states = world.run("sw-iam")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states[-1] == "SwitchedOver" and world.databases.sites["dr"].role is DatabaseRole.PRIMARY
    assert world.store.get_state("booking")["active_site"] == "dr" and world.store.get_lock("booking") is None
    principals = {call.principal for call in world.iam.calls}
    assert {f"function:{name}" for name in SWITCHOVER_FUNCTIONS} <= principals
    assert ENGINE in principals  # the lock written by the state machine's own role


def test_a_roll_back_and_an_escalation_run_under_the_functions_own_roles(world: World) -> None:
    world.databases.ships = False
    described, _ = world.run("sw-iam-rb")
    assert described["status"] == "FAILED" and described["error"] == "SwitchoverRolledBack"
    assert world.store.get_lock("booking") is None
    world.databases.ships = True
    world.databases.write("main")  # the link is back: dr streams main's writes again
    world.databases.fail[("dr", Operation.PROMOTE)] = SiteAgentError("pg_promote timed out")
    described, _ = world.run("sw-iam-esc")
    assert described["status"] == "FAILED" and described["error"] == "NeedsAttention"
    lock = world.store.get_lock("booking")
    assert lock is not None and lock["kept"] is True
    described, states = world.run("sw-iam-refused")  # refused: the service needs attention
    assert states[-1] == "Refused"
