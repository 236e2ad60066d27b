"""The scheduled readiness function against moto and the Cloudflare emulator: the same world as
`drctl readiness` (tests/integration/test_readiness_moto.py), the real gatherer, the state table's
readiness item, the home bus (its events delivered to an SQS queue to be read back), and the EMF
records the function prints. The handler runs under its own synthesized role, IAM enforced.
"""

# ruff: noqa: F811 - the `world` fixture, imported, is each test's argument of that name

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.eventbridge import EventBridgePublisher
from quorum_dr.adapters.readiness import ReadinessGatherer
from quorum_dr.domain.readiness import READINESS_CHANGED, ReadinessChanged, Status
from quorum_dr.observability import emit_metric
from quorum_dr.readiness_service import METRIC, ReadinessOutcome, ScheduledReadiness
from tests.conftest import ROOT
from tests.integration.test_readiness_moto import (  # noqa: F401 - `world` is the fixture
    COLD,
    DR_DB,
    HOME,
    MAIN_DB,
    RESULTS_TABLE,
    STATE_TABLE,
    World,
    world,
)

BUS = "quorum-dr"


@dataclass
class Bus:
    """The home bus, every event on it copied to a queue."""

    queue_url: str

    def events(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=HOME)
        found = []
        while True:
            answer = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def bus(world: World) -> Bus:
    events = boto3.client("events", region_name=HOME)
    events.create_event_bus(Name=BUS)
    sqs = boto3.client("sqs", region_name=HOME)
    url = sqs.create_queue(QueueName="seen")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": ["quorum-dr"]}))
    events.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    return Bus(url)


def scheduled(world: World) -> ScheduledReadiness:
    gatherer = ReadinessGatherer(world.config, state_table=STATE_TABLE, results_table=RESULTS_TABLE)
    return ScheduledReadiness(
        world.config,
        assess=gatherer.assess,
        store=world.state,
        events=EventBridgePublisher(boto3.client("events", region_name=HOME), bus_name=BUS),
        metric=emit_metric,
    )


def run(world: World) -> ReadinessOutcome:
    [outcome] = scheduled(world).run()
    assert outcome.error is None, outcome.error
    return outcome


def emf(out: str) -> dict[str, dict[str, Any]]:
    """check -> the EMF record of its ReadinessStatus metric, from what was printed."""
    records = {}
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            [directive] = record["_aws"]["CloudWatchMetrics"]
            if [m["Name"] for m in directive["Metrics"]] == [METRIC]:  # values are lists in EMF
                assert directive["Namespace"] == "QuorumDR"
                assert directive["Dimensions"] == [["service", "check"]]
                records[record["check"]] = record
    return records


def delete_the_ami(world: World) -> None:
    boto3.client("ec2", region_name=COLD).deregister_image(ImageId=world.ami)


def test_each_check_and_the_whole_is_a_metric_0_ok_1_warn_2_fail(
    world: World, bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    world.state.put_state(
        {"service": "booking", "active_site": "main", "status": "HEALTHY", "automation_enabled": False},
        expected_version=1,
    )  # paused: service_state is a WARN
    delete_the_ami(world)  # cold_site is a FAIL
    capsys.readouterr()

    outcome = run(world)

    records = emf(capsys.readouterr().out)
    assert {name: r[METRIC] for name, r in records.items()} == {
        "standby": [0.0],
        "probe_regions": [0.0],
        "service_state": [1.0],
        "edge": [0.0],
        "cloudflare_token": [0.0],
        "cold_site": [2.0],
        "secrets": [0.0],
        "overall": [2.0],
    }
    assert {r["service"] for r in records.values()} == {"booking"}
    assert outcome.overall is Status.FAIL


def test_unchanged_is_silent_and_a_check_turning_fail_publishes_it_with_its_reason(
    world: World, bus: Bus
) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)

    first = run(world)  # the first evaluation, all OK: nothing to say
    assert (first.overall, first.published) == (Status.OK, False)
    assert bus.events() == []
    stored = world.state.get_readiness("booking")
    assert stored is not None and stored.checks["cold_site"] is Status.OK

    assert run(world).published is False  # unchanged
    assert bus.events() == []

    delete_the_ami(world)
    changed = run(world)

    [event] = bus.events()
    assert (event["source"], event["detail-type"]) == ("quorum-dr", READINESS_CHANGED)
    detail = ReadinessChanged.model_validate(event["detail"])
    assert detail == changed.changed
    [change] = detail.changes
    assert (change.check, change.before, change.after) == ("cold_site", Status.OK, Status.FAIL)
    assert f"AMI {world.ami} (from SSM parameter" in change.reason and "does not exist" in change.reason
    assert (detail.overall_before, detail.overall) == (Status.OK, Status.FAIL)
    assert detail.reason.startswith("readiness of booking went from OK to FAIL: cold_site OK -> FAIL")
    stored = world.state.get_readiness("booking")
    assert stored is not None and stored.checks["cold_site"] is Status.FAIL

    assert run(world).published is False  # still FAIL: said once
    assert bus.events() == []


def test_a_first_evaluation_that_is_not_all_ok_publishes_what_is_not(world: World, bus: Bus) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    delete_the_ami(world)

    outcome = run(world)

    [event] = bus.events()
    detail = ReadinessChanged.model_validate(event["detail"])
    assert outcome.published and detail.overall_before is None
    assert [(c.check, c.before, c.after) for c in detail.changes] == [("cold_site", None, Status.FAIL)]
    assert "(first evaluation)" in detail.reason


def test_a_refused_event_is_not_recorded_so_the_next_evaluation_says_it_again(world: World, bus: Bus) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    run(world)
    delete_the_ami(world)
    watch = scheduled(world)
    watch.events = EventBridgePublisher(boto3.client("events", region_name=HOME), bus_name="no-such-bus")

    [refused] = watch.run()

    assert refused.error is not None and refused.error.startswith(f"cannot publish {READINESS_CHANGED}")
    stored = world.state.get_readiness("booking")
    assert stored is not None and stored.checks["cold_site"] is Status.OK  # not the unreported FAIL
    again = run(world)
    assert again.published and [c.check for c in again.changed.changes] == ["cold_site"]  # type: ignore[union-attr]
    assert len(bus.events()) == 1


def test_the_readiness_item_is_a_partition_of_its_own(world: World, bus: Bus) -> None:
    """Its own partition key, so the role's PutItem can be held to it (dynamodb:LeadingKeys)."""
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    run(world)
    table = boto3.resource("dynamodb", region_name=HOME).Table(STATE_TABLE)
    keys = {(i["pk"], i["sk"]) for i in table.scan()["Items"]}
    assert ("READINESS#booking", "READINESS") in keys
    assert DynamoStateStore(STATE_TABLE).get_state("booking")["status"] == "HEALTHY"  # untouched


# ---------------------------------------------------------------------------------------------
# The handler, under its own synthesized role
# ---------------------------------------------------------------------------------------------


def _load_handler() -> Any:
    spec = importlib.util.spec_from_file_location(
        "readiness_handler", ROOT / "lambdas" / "readiness" / "handler.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


readiness_handler = _load_handler()  # at collection (Powertools' Tracer opens its socket on import)


@dataclass
class LambdaContext:
    function_name: str = "quorum-dr-readiness"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{HOME}:123456789012:function:quorum-dr-readiness"
    aws_request_id: str = "req-1"


@pytest.fixture
def enforced(world: World, bus: Bus, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The handler's environment as the stack sets it; IAM enforced with the synthesized policies
    of this very config."""
    from quorum_dr_local.iam_enforcement import IamEnforcement
    from quorum_dr_local.iam_policies import principal_policies, synthesize
    from quorum_dr_local.system_config import config_json

    policies = principal_policies(synthesize(config_json(world.config)))
    assert "function:readiness" in policies
    account = "123456789012"
    for key, value in {
        "QUORUM_DR_CONFIG_PATH": str(world.config_path),
        "STATE_TABLE_NAME": STATE_TABLE,
        "RESULTS_TABLE_NAME": RESULTS_TABLE,
        "EVENT_BUS_NAME": BUS,
        "STATE_MACHINE_ARN": f"arn:aws:states:{HOME}:{account}:stateMachine:quorum-dr-failover",
        "SWITCHOVER_STATE_MACHINE_ARN": f"arn:aws:states:{HOME}:{account}:stateMachine:quorum-dr-switchover",
    }.items():
        monkeypatch.setenv(key, value)
    # before enforcement (the world's clients sign with keys IAM will not know): a round, and a lock
    # whose execution neither state machine has (the gatherer asks DescribeExecution)
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    world.state.acquire_lock("booking", "inc-gone", holder="inc-gone", now=1.0, expires_at=2**40)
    iam = IamEnforcement(policies, region=HOME).install()
    handler = iam.handler_as(lambda _ctx: "function:readiness", readiness_handler.handler)
    iam.enforce()
    try:
        yield handler
    finally:
        problems = iam.problems()
        iam.close()
    assert not problems, "IAM: calls the synthesized policies do not allow:\n  " + "\n  ".join(problems)


def test_the_handler_under_its_own_role_publishes_a_change_and_emits_the_metrics(
    world: World, bus: Bus, enforced: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()

    answer = enforced({"source": "schedule"}, LambdaContext())

    [outcome] = [ReadinessOutcome.model_validate(o) for o in answer["outcomes"]]
    assert outcome.error is None
    # a lock whose execution neither state machine has (DescribeExecution, under the role): FAIL
    assert outcome.overall is Status.FAIL and outcome.published
    [event] = bus.events()
    [change] = ReadinessChanged.model_validate(event["detail"]).changes
    assert (change.check, change.after) == ("service_state", Status.FAIL)
    assert "inc-gone" in change.reason
    records = emf(capsys.readouterr().out)
    assert records["overall"][METRIC] == [2.0] and records["cold_site"][METRIC] == [0.0]
