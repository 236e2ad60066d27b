"""The cold-site restore rehearsal's real ASL executed by moto's Step Functions engine with its real
handler and real adapters on moto: the cold site is launched by the failover's own `ColdSiteLaunch`
(user data = the bundled bootstrap with the task token filled in, the AMI from its SSM parameter),
a stand-in for the instance's bootstrap answers the task token read from the instance's user data,
the figures are read from S3, the result is recorded in the state table and published on the bus,
and the instance is terminated on every path. Nothing a failover writes (state, lock, incident) is
written."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from quorum_dr.adapters.cold_site import TOKEN_PLACEHOLDER, ColdSiteLaunch, Ec2ColdSiteLauncher
from quorum_dr.adapters.dynamodb_state import DynamoStandbyWatch
from quorum_dr.adapters.eventbridge import EventBridgePublisher
from quorum_dr.adapters.rehearsal import DynamoRehearsalStore, Ec2InstanceTerminator, s3_figures
from quorum_dr.adapters.tables import create_table
from quorum_dr.adapters.wal_archive import ArchiveTarget
from quorum_dr.config import Service, WatchdogConfig, parse_config
from quorum_dr.domain.backup_figures import BackupFigures
from quorum_dr.domain.cold_report import ColdBootstrapReport, RestoreLine
from quorum_dr.rehearsal import wiring
from quorum_dr.rehearsal.service import RehearsalPorts
from quorum_dr_local.sfn_harness import ACCOUNT, SfnHarness, load_handler
from tests.fakes import make_config

HOME = "eu-west-2"
COLD = "us-west-2"
TABLE = "quorum-dr-state"
BUS = "quorum-dr"
BUCKET = "booking-backups-example"
BACKUP = "20261201T030000"
RECORDED = {"public.orders": 1000}


def rehearsal_config() -> WatchdogConfig:
    data = make_config().model_dump(mode="json", by_alias=True, exclude_none=True)
    cold = data["services"][0]["cold_site"]
    for key in ("subnet_id", "vpc_id"):
        cold.pop(key, None)
    cold["wal_archive"] = {"server": "booking"}
    return parse_config(data)


@dataclass
class World:
    harness: SfnHarness
    config: WatchdogConfig
    store: DynamoRehearsalStore
    queue_url: str
    answer: Callable[[str, str], None]  # (instance id, task token) -> what the bootstrap does

    def ec2(self) -> Any:
        return boto3.client("ec2", region_name=COLD)

    def instances(self) -> list[dict[str, Any]]:
        answer = self.ec2().describe_instances(
            Filters=[{"Name": "tag:quorum-dr:role", "Values": ["cold-site"]}]
        )
        return [i for r in answer["Reservations"] for i in r["Instances"]]

    def events(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=HOME)
        got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]

    def table_keys(self) -> list[tuple[str, str]]:
        items = boto3.client("dynamodb", region_name=HOME).scan(TableName=TABLE)["Items"]
        return sorted((i["pk"]["S"], i["sk"]["S"]) for i in items)


def report(rows: dict[str, int], *, instance: str) -> str:
    """The bootstrap's ready report of a barman-cloud restore, built from its contract."""
    now = time.time()
    line = RestoreLine(
        bucket=BUCKET,
        key=f"postgres/booking/base/{BACKUP}/",
        source="dr standby (barman-cloud base backup)",
        taken_at=now - 3600,
        lsn="0/4000000",
        restored_at=now,
        backup_age_seconds=20,
        target="/var/lib/postgresql/15/main",
        reason="restored",
        method="barman-cloud",
        backup_id=BACKUP,
        restored_lsn="0/9000028",
        wal_segment="000000010000000000000009",
        wal_archived_at=now - 20,
        figures_key=f"postgres/booking/quorum-dr-figures/{BACKUP}.json",
        restored_rows=rows,
    )
    return ColdBootstrapReport(
        ready=True, service="booking", instance=instance, restore=line
    ).model_dump_json()


class BootstrapStandIn:
    """Plays the launched instance: reads the task token from its user data (as the real bootstrap
    has it filled in) and does what the test says. Bounded; stops with the test."""

    def __init__(self, world_answer: Callable[[], Callable[[str, str], None]]) -> None:
        self.answer = world_answer
        self.seen: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        ec2 = boto3.client("ec2", region_name=COLD)
        for _ in range(3000):  # bounded: 60 s
            if self.stop.is_set():
                return
            answer = ec2.describe_instances(
                Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
            )
            for instance in (i for r in answer["Reservations"] for i in r["Instances"]):
                if instance["InstanceId"] in self.seen:
                    continue
                self.seen.add(instance["InstanceId"])
                data = ec2.describe_instance_attribute(
                    InstanceId=instance["InstanceId"], Attribute="userData"
                )
                script = base64.b64decode(data["UserData"]["Value"]).decode()
                token = script.split("QDR_TASK_TOKEN='", 1)[1].split("'", 1)[0]
                self.answer()(instance["InstanceId"], token)
            time.sleep(0.02)


def ready(rows: dict[str, int]) -> Callable[[str, str], None]:
    def send(instance_id: str, token: str) -> None:
        boto3.client("stepfunctions", region_name=HOME).send_task_success(
            taskToken=token, output=report(rows, instance=instance_id)
        )

    return send


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", HOME)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        config = rehearsal_config()
        service = config.service("booking")
        assert service.cold_site is not None
        create_table(boto3.client("dynamodb", region_name=HOME), TABLE)
        # the AMI behind the SSM parameter, as a failover resolves it
        image = boto3.client("ec2", region_name=COLD).describe_images(Owners=["amazon"])["Images"][0][
            "ImageId"
        ]
        boto3.client("ssm", region_name=COLD).put_parameter(
            Name=service.cold_site.ami_ssm_parameter or "", Value=image, Type="String"
        )
        # the cold site's Elastic IP: a failover moves it to its instance; a rehearsal must not
        ec2 = boto3.client("ec2", region_name=COLD)
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        cold = service.cold_site.model_copy(update={"elastic_ip_allocation_id": allocation})
        service = service.model_copy(update={"cold_site": cold})
        config = config.model_copy(update={"services": [service]})
        s3 = boto3.client("s3", region_name=COLD)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": COLD})
        figures = BackupFigures(
            backup_id=BACKUP, database="booking", counted_at=time.time() - 3600, tables=RECORDED
        )
        key = ArchiveTarget.of(service.cold_site).figures_key(BACKUP)
        s3.put_object(Bucket=BUCKET, Key=key, Body=figures.model_dump_json().encode())
        # RehearsalFinished on the bus, delivered to a queue the test reads
        events = boto3.client("events", region_name=HOME)
        events.create_event_bus(Name=BUS)
        sqs = boto3.client("sqs", region_name=HOME)
        queue_url = sqs.create_queue(QueueName="rehearsal-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name="rehearsals", EventBusName=BUS, EventPattern=json.dumps({"source": ["quorum-dr"]})
        )
        events.put_targets(Rule="rehearsals", EventBusName=BUS, Targets=[{"Id": "q", "Arn": queue_arn}])
        # the bundle: cold_site/booking.sh with every value filled in but the task token
        (tmp_path / "booking.sh").write_text(f"#!/bin/bash\nQDR_TASK_TOKEN='{TOKEN_PLACEHOLDER}'\n")
        store = DynamoRehearsalStore(TABLE, resource=boto3.resource("dynamodb", region_name=HOME))
        compute = Ec2ColdSiteLauncher()

        def launcher(s: Service) -> ColdSiteLaunch:
            return ColdSiteLaunch(s, compute, script_dir=tmp_path)

        wiring.use(
            RehearsalPorts(
                config=config,
                launcher=launcher,
                figures=s3_figures(),
                terminator=Ec2InstanceTerminator,
                store=store,
                events=EventBridgePublisher(events, bus_name=BUS),
                service_state=DynamoStandbyWatch(
                    TABLE, resource=boto3.resource("dynamodb", region_name=HOME)
                ).service_state,
            )
        )
        handler = load_handler("rehearse_cold_site")
        timeouts: dict[str, int] = {}

        def rehearse(event: Any, context: Any) -> Any:
            answer = handler(event, context)
            if event.get("action") == "begin" and "timeout_seconds" in timeouts:
                answer = {**answer, "timeout_seconds": timeouts["timeout_seconds"]}
            return answer

        holder: dict[str, World] = {}
        standin = BootstrapStandIn(lambda: holder["world"].answer)
        with SfnHarness(
            state_table=TABLE,
            region=HOME,
            definition_name="rehearsal",
            machine_name="Rehearsal",
            handlers={"rehearse_cold_site": rehearse},
        ) as harness:
            made = World(harness, config, store, queue_url, ready({"public.orders": 1500}))
            made.harness.extra_timeouts = timeouts  # type: ignore[attr-defined]
            holder["world"] = made
            standin.thread.start()
            try:
                yield made
            finally:
                standin.stop.set()
                standin.thread.join(timeout=5)
        wiring.use(None)


def rehearse(
    world: World, name: str, payload: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    arn = world.harness.start(payload or {"service": "booking", "requested_by": "test"}, name=name)
    described = world.harness.wait(arn, timeout=90)
    return described, world.harness.states_entered(arn)


def only_rehearsal_items(world: World) -> None:
    """No STATE, LOCK or INCIDENT item: the rehearsal is no failover and counts as none."""
    assert {pk for pk, _ in world.table_keys()} == {"REHEARSAL#booking"}


def test_a_restore_holding_the_recorded_rows_passes_is_recorded_published_and_terminated(
    world: World,
) -> None:
    described, states = rehearse(world, "rehearsal-pass")
    assert described["status"] == "SUCCEEDED", described
    assert states == [
        "BeginRehearsal",
        "LaunchColdSite",
        "JudgeRestore",
        "TerminateColdSite",
        "RehearsalOutcome",
        "RehearsalPassed",
    ]
    latest = world.store.latest("booking")
    assert latest is not None and latest.outcome == "PASSED" and latest.backup_id == BACKUP
    assert (
        latest.rehearsal_id.startswith("rehearsal-booking-")
        and latest.tables["public.orders"].restored == 1500
    )
    assert latest.terminated and latest.instance_id and latest.instance_id in latest.terminated
    assert [r.rehearsal_id for r in world.store.history("booking")] == [latest.rehearsal_id]
    # launched as a failover launches: tagged cold site, ClientToken = the rehearsal id, the AMI from SSM
    (instance,) = world.instances()
    assert instance["State"]["Name"] == "terminated" and instance["ClientToken"] == latest.rehearsal_id
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["quorum-dr:incident"] == latest.rehearsal_id
    (event,) = world.events()
    assert event["detail-type"] == "RehearsalFinished" and event["detail"]["outcome"] == "PASSED"
    only_rehearsal_items(world)
    # the cold site's public address stayed where it was: on no instance
    cold = world.config.service("booking").cold_site
    assert cold is not None and cold.elastic_ip_allocation_id
    (address,) = world.ec2().describe_addresses(AllocationIds=[cold.elastic_ip_allocation_id])["Addresses"]
    assert not address.get("InstanceId") and not address.get("AssociationId")


def test_fewer_rows_than_recorded_fail_and_the_instance_is_still_terminated(world: World) -> None:
    world.answer = ready({"public.orders": 999})
    described, states = rehearse(world, "rehearsal-short")
    assert described["status"] == "FAILED" and described["error"] == "RehearsalFailed"
    assert states[-1] == "RehearsalFailed" and "TerminateColdSite" in states
    latest = world.store.latest("booking")
    assert latest is not None and latest.outcome == "FAILED"
    assert latest.reason.startswith(
        "table public.orders has 999 rows restored, 1 fewer than the 1000 recorded"
    )
    assert all(i["State"]["Name"] == "terminated" for i in world.instances())
    assert world.events()[0]["detail"]["outcome"] == "FAILED"
    only_rehearsal_items(world)


def test_a_bootstrap_failure_fails_with_its_cause_and_terminates(world: World) -> None:
    def fails(instance_id: str, token: str) -> None:
        # what `aws stepfunctions send-task-failure` sends; moto's HTTP layer drops `cause` (its
        # responses.py passes only the error), so the backend is called as that layer would
        from moto.stepfunctions.responses import get_backend

        get_backend(ACCOUNT, HOME).send_task_failure(
            token,
            error="ColdSiteBootstrapFailed",
            cause="cold site bootstrap of booking failed in step 'restore' (exit 1): no complete base backup",
        )

    world.answer = fails
    described, states = rehearse(world, "rehearsal-bootstrap-fails")
    assert described["status"] == "FAILED" and states[-1] == "RehearsalFailed"
    latest = world.store.latest("booking")
    assert latest is not None and latest.reason == (
        "the cold site did not come up: cold site bootstrap of booking failed in step 'restore' (exit 1): "
        "no complete base backup"
    )
    assert [i["State"]["Name"] for i in world.instances()] == ["terminated"]


def test_no_report_in_time_fails_as_a_timeout_and_terminates(world: World) -> None:
    world.answer = lambda instance_id, token: None  # the bootstrap hangs
    world.harness.extra_timeouts["timeout_seconds"] = 2  # type: ignore[attr-defined]
    described, states = rehearse(world, "rehearsal-timeout")
    assert described["status"] == "FAILED" and states[-1] == "RehearsalFailed"
    latest = world.store.latest("booking")
    assert latest is not None and latest.reason.startswith("the cold site sent no ready report within 2 s")
    assert [i["State"]["Name"] for i in world.instances()] == ["terminated"]
    assert latest.terminated and "terminated i-" in latest.terminated


def test_a_bad_request_launches_nothing(world: World) -> None:
    described, states = rehearse(world, "rehearsal-bad", {"service": "nope"})
    assert described["status"] == "FAILED" and described["error"] == "RequestRejected"
    assert "no service 'nope' in the config" in described["cause"]
    assert states == ["BeginRehearsal", "RequestRejected"] and world.instances() == []
    assert world.table_keys() == []


def test_a_rehearsal_while_a_failover_holds_the_lock_is_refused_and_launches_nothing(world: World) -> None:
    table = boto3.resource("dynamodb", region_name=HOME).Table(TABLE)
    table.put_item(
        Item={
            "pk": "booking",
            "sk": "STATE",
            "service": "booking",
            "active_site": "main",
            "status": "FAILING_OVER",
            "lock_holder": "auto-booking-1",
            "lock_expires_at": int(time.time()) + 900,
            "version": 3,
        }
    )
    described, states = rehearse(world, "rehearsal-during-incident")
    assert described["status"] == "FAILED" and described["error"] == "RequestRejected"
    assert "not now: incident auto-booking-1 holds the lock of booking" in described["cause"]
    assert states == ["BeginRehearsal", "RequestRejected"] and world.instances() == []
    assert {pk for pk, _ in world.table_keys()} == {"booking"}  # nothing recorded, nothing launched
