"""The production wiring: every failover port bound to its real adapter, each binding exercised
against moto (Lambda invoke dispatched in-process, EC2, SNS -> SQS, DynamoDB) or a real local server."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from quorum_dr.adapters.cloudflare_edge import CloudflareEdge
from quorum_dr.adapters.cold_site import ColdSiteLaunch, Ec2ColdSiteLauncher
from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.hooks import ServiceHooks
from quorum_dr.adapters.lambda_probes import LambdaProbeInvoker, LambdaSwitchVerifier, ProbeFunctions
from quorum_dr.adapters.notifier import OperatorNotifier
from quorum_dr.adapters.postgres_promoter import PostgresPromoter
from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.adapters.tables import create_table
from quorum_dr.config import parse_config
from quorum_dr.failover import wiring
from quorum_dr.failover.errors import ColdSiteFailed
from quorum_dr.failover.production import load_bundled_config, production_ports
from quorum_dr.settings import LambdaSettings, SettingsError
from quorum_dr_local.sfn_harness import lambda_dispatch
from tests.conftest import ROOT

HOME = "eu-west-2"
REGIONS = ["eu-west-2", "us-east-1", "us-west-2"]
ACCOUNT = "123456789012"
ARNS = {r: f"arn:aws:lambda:{r}:{ACCOUNT}:function:quorum-dr-probe" for r in REGIONS}
TOPIC = f"arn:aws:sns:{HOME}:{ACCOUNT}:quorum-dr-alerts"


def example() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": HOME,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield


def make_table(name: str) -> None:
    create_table(boto3.client("dynamodb", region_name=HOME), name)


def settings(tmp_path: Path, **extra: Any) -> LambdaSettings:
    config = tmp_path / "watchdog.json"
    config.write_text(json.dumps(example()))
    return LambdaSettings.from_env(
        {
            "QUORUM_DR_CONFIG_PATH": str(config),
            "STATE_TABLE_NAME": "quorum-dr-state",
            "RESULTS_TABLE_NAME": "quorum-dr-results",
            "ALERT_TOPIC_ARN": TOPIC,
            "PROBE_FUNCTION_ARNS": json.dumps(ARNS),
            **extra,
        }
    )


# -- the builder ---------------------------------------------------------------------------------


def test_production_ports_bind_every_port_to_its_real_adapter(aws: None, tmp_path: Path) -> None:
    secrets = StaticSecrets(
        {
            "quorum-dr/booking/db-admin": {"username": "qdr", "password": "pw"},
            "quorum-dr/cloudflare-token": "cf-token",
        }
    )
    env = settings(tmp_path)
    config = load_bundled_config(env.QUORUM_DR_CONFIG_PATH)
    ports = production_ports(env, config=config, secrets=secrets)
    service = ports.service("booking")

    assert isinstance(ports.store, DynamoStateStore)
    assert isinstance(ports.results(), DynamoDbResultStore)
    assert isinstance(ports.probes(), LambdaProbeInvoker)
    assert isinstance(ports.verifier(), LambdaSwitchVerifier)
    assert isinstance(ports.promoter(service), PostgresPromoter)
    assert ports.promoter(service) is ports.promoter(service), "one promoter per container"
    assert isinstance(ports.edge(service), CloudflareEdge)
    assert isinstance(ports.hooks(service), ServiceHooks)
    assert isinstance(ports.launcher(service), ColdSiteLaunch)
    assert isinstance(ports.notifier(), OperatorNotifier)


def test_handlers_need_no_attach_call_in_production(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_table("quorum-dr-state")
    env = settings(tmp_path)
    for key, value in env.model_dump().items():
        if value:
            monkeypatch.setenv(key, value if isinstance(value, str) else json.dumps(value))
    wiring.use(None)
    try:
        ports = wiring.current()
        assert isinstance(ports.probes(), LambdaProbeInvoker)
        assert isinstance(ports.notifier(), OperatorNotifier)
    finally:
        wiring.use(None)


def test_a_port_whose_variable_is_missing_names_it(aws: None, tmp_path: Path) -> None:
    env = settings(tmp_path, RESULTS_TABLE_NAME="")
    ports = production_ports(env, config=load_bundled_config(env.QUORUM_DR_CONFIG_PATH))
    with pytest.raises(SettingsError, match="RESULTS_TABLE_NAME"):
        ports.results()


# -- probes: on-demand round and verify round through Lambda invoke ----------------------------


def test_probe_invoker_runs_every_region_in_parallel_and_reports_a_failed_region(aws: None) -> None:
    def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
        region = context.invoked_function_arn.split(":")[3]
        if region == "us-west-2":
            raise ConnectionError("the results table is unreachable from here")
        return {"round_id": event["round_id"], "reason": f"round done in {region}"}

    invoker = LambdaProbeInvoker(ProbeFunctions(ARNS, timeout_seconds=5))
    with lambda_dispatch({"quorum-dr-probe": probe}) as calls:
        sentences = invoker.run_round(
            service="booking", round_id="inc-1-r1", incident_id="inc-1", sites=["main"]
        )

    assert sorted(region for region, _, _ in calls) == REGIONS
    assert {event["round_id"] for _, _, event in calls} == {"inc-1-r1"}
    assert calls[0][2] == {
        "round_id": "inc-1-r1",
        "service": "booking",
        "sites": ["main"],
        "incident_id": "inc-1",
    }
    assert sentences["eu-west-2"] == "eu-west-2: round done in eu-west-2"
    assert sentences["us-west-2"] == (
        "us-west-2: its probe failed: ConnectionError: the results table is unreachable from here"
    )


def test_probe_invoker_bounds_each_invocation(aws: None) -> None:
    release = threading.Event()

    def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if context.invoked_function_arn.split(":")[3] == "us-east-1":
            release.wait(60)  # hangs until the test ends (bounded)
        return {"reason": "round done"}

    # 8 s: the answering regions must make it on a loaded CI machine (a busy 2-core run once took
    # over 2 s for one trivial invocation through moto); the hung one waits until released
    invoker = LambdaProbeInvoker(ProbeFunctions(ARNS, timeout_seconds=8))
    try:
        with lambda_dispatch({"quorum-dr-probe": probe}):
            sentences = invoker.run_round(
                service="booking", round_id="r1", incident_id="inc-2", sites=["main"]
            )
    finally:
        release.set()
    assert sentences["us-east-1"] == "us-east-1: its probe did not answer within 8 s"
    assert sentences["eu-west-2"] == "eu-west-2: round done"


def test_verifier_needs_a_quorum_of_regions_seeing_the_marker(aws: None) -> None:
    markers = {"eu-west-2": "dr", "us-east-1": "dr", "us-west-2": "main"}

    def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
        region = context.invoked_function_arn.split(":")[3]
        seen = markers[region]
        return {"ok": seen == event["expect_site"], "marker_seen": seen, "reason": f"{region}: saw {seen}"}

    verifier = LambdaSwitchVerifier(
        ProbeFunctions(ARNS, timeout_seconds=5), quorum=2, public_hostname=lambda _: "app.example.com"
    )
    with lambda_dispatch({"quorum-dr-probe": probe}) as calls:
        ok = verifier.verify(service="booking", expect_site="dr", incident_id="inc-3", origin_only=False)
        markers["us-east-1"] = "main"
        not_ok = verifier.verify(service="booking", expect_site="dr", incident_id="inc-3", origin_only=False)

    # only this test's calls: an invocation abandoned by an earlier test may still land late
    verify_calls = [event for _, _, event in calls if event.get("incident_id") == "inc-3"]
    assert len(verify_calls) == 6
    assert all(e["action"] == "verify" and e["expect_site"] == "dr" for e in verify_calls)
    assert ok["verified"] is True
    assert ok["reason"].startswith(
        "verified: 2 of 3 regions see that app.example.com is served by dr (quorum 2)"
    )
    assert ok["regions"]["us-west-2"] == {"ok": False, "marker_seen": "main", "reason": "us-west-2: saw main"}
    assert not_ok["verified"] is False and not_ok["reason"].startswith("NOT verified: 1 of 3")


class Edge:
    """A stand-in for the public edge: answers /health with the X-Site marker of the active site,
    and remembers the Host header each request carried."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.hosts: list[str] = []
        edge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                edge.hosts.append(self.headers.get("Host", ""))
                self.send_response(200)
                self.send_header("X-Site", edge.marker)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def test_probe_verify_round_reads_the_public_hostname_through_public_endpoint() -> None:
    from quorum_dr.probes.event import VerifyRequest
    from quorum_dr.probes.service import ProbeService
    from tests.fakes import FakeResults

    edge = Edge("dr")
    try:
        data = example()
        data["services"][0]["public_endpoint"] = f"http://127.0.0.1:{edge.port}"
        config = parse_config(data)

        class NoEvents:
            def publish(self, detail_type: str, detail: Any) -> None:
                raise AssertionError("a verify round publishes nothing")

        results = FakeResults()
        service = ProbeService(
            config, region="us-east-1", results=results, events=NoEvents(), secrets=StaticSecrets({})
        )  # type: ignore[arg-type]
        dr = service.verify(VerifyRequest(action="verify", service="booking", expect_site="dr"))
        main = service.verify(VerifyRequest(action="verify", service="booking", expect_site="main"))
    finally:
        edge.stop()

    assert edge.hosts == ["app.example.com", "app.example.com"]
    assert dr.seen.ok is True and dr.seen.marker_seen == "dr"
    assert dr.seen.reason == (
        f"us-east-1: app.example.com via http://127.0.0.1:{edge.port}/health is served by dr (marker 'dr')"
    )
    assert main.seen.ok is False and "expected main's marker 'main'" in main.seen.reason
    assert results.items == [], "a verify round is not a vote: nothing is stored"


# -- notifier, hooks, cold site ----------------------------------------------------------------


def test_notifier_maps_a_failover_message_onto_an_sns_notification(aws: None) -> None:
    sns = boto3.client("sns", region_name=HOME)
    topic = sns.create_topic(Name="quorum-dr-alerts")["TopicArn"]
    sqs = boto3.client("sqs", region_name=HOME)
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    from quorum_dr.adapters.notifier import build_notifier

    notifier = OperatorNotifier(build_notifier(topic, [], StaticSecrets({})))
    receipt = notifier.notify(
        "[quorum-dr] booking: failed over (inc-9)",
        "main is DOWN from 3 of 3 regions; DR promoted and serving",
        incident_id="inc-9",
        detail={"incident_id": "inc-9", "service": "booking", "kind": "failed_over", "rto_seconds": 42},
    )

    assert receipt["delivered"] == 1 and receipt["reason"] == "delivered on 1 of 1 channel(s)"
    body = json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])
    assert body["Subject"] == "[quorum-dr] booking: failed over (inc-9)"
    assert "DR promoted and serving" in body["Message"] and "rto_seconds: 42" in body["Message"]
    assert body["MessageAttributes"]["event"]["Value"] == "failed_over"
    assert body["MessageAttributes"]["incident_id"]["Value"] == "inc-9"


LAUNCH_SCRIPT = "#!/bin/bash\nQDR_SERVICE='booking'\nQDR_TASK_TOKEN='@@TASK_TOKEN@@'\necho ready\n"


def test_cold_site_launch_fills_the_task_token_and_launches_once_per_incident(
    aws: None, tmp_path: Path
) -> None:
    ec2 = boto3.client("ec2", region_name="us-west-2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName="quorum-dr-booking-cold",
        LaunchTemplateData={"ImageId": image, "InstanceType": "t3.small"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    (tmp_path / "cold_site").mkdir()
    (tmp_path / "cold_site" / "booking.sh").write_text(LAUNCH_SCRIPT)
    data = example()
    data["services"][0]["cold_site"].update(
        ami_id=image, ami_ssm_parameter=None, subnet_id=None, vpc_id=None, elastic_ip_allocation_id=None
    )
    service = parse_config(data).service("booking")
    launch = ColdSiteLaunch(
        service,
        Ec2ColdSiteLauncher(),
        script_dir=tmp_path / "cold_site",
        launch_templates={"booking": {"region": "us-west-2", "launch_template_id": template}},
    )

    dry = launch.launch(incident_id="inc-c", task_token="tok-1", dry_run=True)
    assert ec2.describe_instances()["Reservations"] == []
    first = launch.launch(incident_id="inc-c", task_token="tok-1", dry_run=False)
    again = launch.launch(incident_id="inc-c", task_token="tok-2", dry_run=False)

    assert dry["dry_run"] is True and f"launch template {template}" in dry["reason"]
    instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert [i["InstanceId"] for i in instances] == [first["instance_id"]]
    assert again["instance_id"] == first["instance_id"] and again["already_existed"] is True
    user_data = ec2.describe_instance_attribute(InstanceId=first["instance_id"], Attribute="userData")
    script = base64.b64decode(user_data["UserData"]["Value"]).decode()
    assert "QDR_TASK_TOKEN='tok-1'" in script and "@@TASK_TOKEN@@" not in script


def test_cold_site_launch_without_its_bundled_script_fails_with_the_path(tmp_path: Path) -> None:
    service = parse_config(example()).service("booking")
    launch = ColdSiteLaunch(service, Ec2ColdSiteLauncher(region="us-west-2"), script_dir=tmp_path)
    with pytest.raises(ColdSiteFailed, match=r"booking\.sh is not in the bundle"):
        launch.launch(incident_id="inc-x", task_token="t", dry_run=False)
