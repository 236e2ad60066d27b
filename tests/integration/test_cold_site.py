"""The cold site: the EC2 launcher against moto (one instance per incident, AMI sources, Elastic
IP), and the real bootstrap script's ready report read by the incident record (its RPO)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.server import ThreadedMotoServer
from quorum_dr.sandbox.postgres import PgCluster, make_primary

from quorum_dr.adapters.cold_site import INCIDENT_TAG, Ec2ColdSiteLauncher, client_token
from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.postgres_backup import take_backup
from quorum_dr.adapters.tables import create_table
from quorum_dr.config import ColdSite
from quorum_dr.domain.cold_report import ColdBootstrapReport
from quorum_dr.failover import incident as incident_state
from quorum_dr.failover import wiring
from quorum_dr.failover.request import start_incident
from tests.conftest import ROOT
from tests.fakes import make_config

BOOTSTRAP = ROOT / "cold_site" / "bootstrap.sh"

REGION = "us-west-2"
USER_DATA = "#!/bin/sh\necho restore latest backup\n"


@pytest.fixture
def ec2() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def an_ami(ec2: Any) -> str:
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    return str(sorted(i["ImageId"] for i in images)[0])


def cold_site(**kw: Any) -> ColdSite:
    return ColdSite(region=REGION, backup_bucket="booking-backups", **kw)


def live_instances(ec2: Any, incident_id: str) -> list[dict[str, Any]]:
    answer = ec2.describe_instances(Filters=[{"Name": f"tag:{INCIDENT_TAG}", "Values": [incident_id]}])
    return [i for r in answer["Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"]


def test_two_launches_for_one_incident_give_one_instance(ec2: Any) -> None:
    cold = cold_site(ami_id=an_ami(ec2))
    launcher = Ec2ColdSiteLauncher()

    first = launcher.launch("inc-42", cold, USER_DATA)
    second = Ec2ColdSiteLauncher().launch("inc-42", cold, USER_DATA)  # a retried Lambda, a new process

    assert first.already_existed is False
    assert second.already_existed is True
    assert second.instance_id == first.instance_id
    assert first.reason == f"launched {first.instance_id} from AMI {cold.ami_id} in {REGION}"
    assert second.reason == f"instance {first.instance_id} already launched for incident inc-42; reused"
    assert [i["InstanceId"] for i in live_instances(ec2, "inc-42")] == [first.instance_id]

    other = launcher.launch("inc-43", cold, USER_DATA)
    assert other.instance_id != first.instance_id and not other.already_existed


def test_the_instance_carries_the_client_token_tags_and_user_data(ec2: Any) -> None:
    cold = cold_site(ami_id=an_ami(ec2), instance_type="t3.medium")
    receipt = Ec2ColdSiteLauncher().launch("inc-50", cold, USER_DATA)

    (instance,) = live_instances(ec2, "inc-50")
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags[INCIDENT_TAG] == "inc-50"
    assert tags["quorum-dr:role"] == "cold-site"
    assert instance["InstanceType"] == "t3.medium"
    # moto records ClientToken without honouring it; the tag lookup above is what it can test.
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
    assert backend.get_instance(receipt.instance_id).client_token == "inc-50"


def test_long_incident_ids_give_a_stable_64_character_token() -> None:
    long_id = "execution-" + "x" * 80
    assert client_token(long_id) == client_token(long_id)
    assert len(client_token(long_id)) <= 64 and client_token(long_id).startswith("qdr-")
    assert client_token("inc-1") == "inc-1"


def test_the_ami_comes_from_the_ssm_parameter(ec2: Any) -> None:
    ami = an_ami(ec2)
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/quorum-dr/booking/cold-ami", Value=ami, Type="String"
    )
    cold = cold_site(ami_ssm_parameter="/quorum-dr/booking/cold-ami")
    receipt = Ec2ColdSiteLauncher().launch("inc-60", cold, USER_DATA)

    assert receipt.image_id == ami
    assert live_instances(ec2, "inc-60")[0]["ImageId"] == ami
    assert receipt.reason == (
        f"launched {receipt.instance_id} from AMI {ami} "
        f"(from SSM parameter /quorum-dr/booking/cold-ami) in {REGION}"
    )


def test_the_launch_template_alone_names_the_image(ec2: Any) -> None:
    ami = an_ami(ec2)
    ec2.create_launch_template(
        LaunchTemplateName="booking-cold", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.large"}
    )
    cold = cold_site(launch_template_name="booking-cold")
    receipt = Ec2ColdSiteLauncher().launch("inc-70", cold, USER_DATA)

    (instance,) = live_instances(ec2, "inc-70")
    assert instance["ImageId"] == ami
    assert instance["InstanceType"] == "t3.large"  # the template's type: the config did not set one
    assert receipt.reason == (
        f"launched {receipt.instance_id} from launch template booking-cold (AMI {ami}) in {REGION}"
    )


def test_the_elastic_ip_is_associated_once(ec2: Any) -> None:
    allocation = ec2.allocate_address(Domain="vpc")
    cold = cold_site(ami_id=an_ami(ec2), elastic_ip_allocation_id=allocation["AllocationId"])
    launcher = Ec2ColdSiteLauncher(running_wait_delay_seconds=1, running_wait_max_attempts=3)

    first = launcher.launch("inc-80", cold, USER_DATA)
    address = ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"][0]
    assert address["InstanceId"] == first.instance_id
    assert first.elastic_ip == allocation["PublicIp"]
    assert first.reason.endswith(
        f"; Elastic IP {allocation['PublicIp']} ({allocation['AllocationId']}) "
        f"associated with {first.instance_id}"
    )
    association = address["AssociationId"]

    again = launcher.launch("inc-80", cold, USER_DATA)
    assert again.reason.endswith(f"already on {first.instance_id}")
    address = ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"][0]
    assert address["AssociationId"] == association  # not re-associated

    view = launcher.describe(first.instance_id)
    assert (view.instance_id, view.state, view.public_ip) == (
        first.instance_id,
        "running",
        allocation["PublicIp"],
    )


def test_an_elastic_ip_left_on_an_old_instance_moves_to_the_new_one(ec2: Any) -> None:
    allocation = ec2.allocate_address(Domain="vpc")
    ami = an_ami(ec2)
    old = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.associate_address(AllocationId=allocation["AllocationId"], InstanceId=old)
    cold = cold_site(ami_id=ami, elastic_ip_allocation_id=allocation["AllocationId"])

    receipt = Ec2ColdSiteLauncher(running_wait_delay_seconds=1).launch("inc-90", cold, USER_DATA)

    address = ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"][0]
    assert address["InstanceId"] == receipt.instance_id
    assert receipt.reason.endswith(f"moved from {old}")


def test_describe_needs_a_region_before_any_launch(ec2: Any) -> None:
    with pytest.raises(ValueError, match="describe needs a region"):
        Ec2ColdSiteLauncher().describe("i-0123")
    instance = ec2.run_instances(ImageId=an_ami(ec2), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    assert Ec2ColdSiteLauncher().describe(instance, region=REGION).state == "running"


# ---------------------------------------------------------------------------------------------
# The bootstrap's report: the real cold_site/bootstrap.sh, the real restore, the real reader
# ---------------------------------------------------------------------------------------------

BACKUP_BUCKET = "booking-backups"
BACKUP_PREFIX = "postgres/"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def aws_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto in this process and, sharing its backends, a moto server for the script's subprocesses."""
    for key, value in {
        "AWS_DEFAULT_REGION": "eu-west-2",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def health_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def run_bootstrap(
    tmp_path: Path, cold: PgCluster, aws_endpoint: str, health_url: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """cold_site/bootstrap.sh as the cold instance runs it; only `aws` is a stand-in that records
    its arguments (the SendTaskSuccess output is the report under test)."""
    calls = tmp_path / "aws-calls.jsonl"
    aws = tmp_path / "aws"
    aws.write_text(
        "#!/bin/bash\n"
        f"{sys.executable} -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \"$@\" >> {calls}\n"
    )
    aws.chmod(0o755)
    app = cold.conn_params("app")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_DEFAULT_REGION": "eu-west-2",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PGPASSWORD": app["password"],
        "QDR_SERVICE": "booking",
        "QDR_STATES_REGION": "eu-west-2",
        "QDR_BACKUP_BUCKET": BACKUP_BUCKET,
        "QDR_BACKUP_PREFIX": BACKUP_PREFIX,
        "QDR_DSN": f"host={app['host']} port={app['port']} dbname={app['dbname']} user={app['user']}",
        "QDR_TASK_TOKEN": "TOKEN-cold-rpo",
        "QDR_HEALTH_URL": health_url,
        "QDR_READY_TIMEOUT": "20",
        "QDR_START_COMMAND": "true",
        "QDR_PYTHON": sys.executable,
        "QDR_AWS": str(aws),
        "QDR_LOG": str(tmp_path / "bootstrap.log"),
        "QDR_READY_FILE": str(tmp_path / "ready"),
        "QDR_REPORT_ATTEMPTS": "1",
    }
    done = subprocess.run(["bash", str(BOOTSTRAP)], env=env, capture_output=True, text=True, timeout=120)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done, [json.loads(line) for line in lines]


def test_the_real_bootstrap_report_carries_the_rpo_into_the_incident_record(
    tmp_path: Path, pg_base_dir: Path, aws_server: str, health_url: str
) -> None:
    s3 = boto3.client("s3", region_name="eu-west-2")
    s3.create_bucket(Bucket=BACKUP_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    with (
        make_primary(pg_base_dir, name="rpo-main") as main,
        make_primary(pg_base_dir, name="rpo-cold") as cold,
    ):
        main.sql("CREATE TABLE bookings (id int PRIMARY KEY, item text NOT NULL)", who="app")
        main.sql("INSERT INTO bookings SELECT n, 'room ' || n FROM generate_series(1, 50) n", who="app")
        backup = take_backup(main.dsn("app"), s3, BACKUP_BUCKET, BACKUP_PREFIX, source="main")
        before_restore = time.time()

        done, calls = run_bootstrap(tmp_path, cold, aws_server, health_url)

        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        (call,) = calls
        assert call[:2] == ["stepfunctions", "send-task-success"]
        output = call[call.index("--task-output") + 1]
        report = ColdBootstrapReport.model_validate_json(output)  # the contract holds for the real script
        assert report.service == "booking" and report.restore.key == backup.key
        assert cold.sql("SELECT count(*) FROM bookings", who="app") == [(50,)]
    assert backup.taken_at <= report.restore.restored_at and before_restore <= report.restore.restored_at
    assert report.backup_age_seconds == pytest.approx(report.restore.restored_at - backup.taken_at)

    # The state machine puts the SendTaskSuccess output at $.cold; the record step reads it.
    config = make_config()
    create_table(boto3.client("dynamodb", region_name="eu-west-2"), "quorum-dr-state")
    store = DynamoStateStore("quorum-dr-state", resource=boto3.resource("dynamodb", region_name="eu-west-2"))
    ports = wiring.Ports(config=config, store=store)
    incident = start_incident(
        {"service": "booking", "to": "cold", "reason": "both sites lost", "requested_by": "test"},
        execution_name="inc-cold-rpo",
        started_at=None,
        config=config,
        now=time.time(),
    )
    answer = incident_state.record(
        ports, incident, {"scenario": "cold", "target": "cold"}, {"cold": json.loads(output)}
    )

    record = store.get_incident("booking", "inc-cold-rpo")
    assert record is not None
    age = report.backup_age_seconds
    assert record["data_loss_reason"].startswith(f"RPO {age:.0f} s: the cold site ")  # not "unknown"
    assert float(record["backup_age_seconds"]) == pytest.approx(age)
    assert f"RPO {age:.0f} s" in answer["reason"]  # the outcome notification's sentence
