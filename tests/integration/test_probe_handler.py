"""The probe Lambda handler against moto (DynamoDB, EventBridge -> SQS) and a real local HTTP server."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from moto import mock_aws

from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
from quorum_dr.adapters.eventbridge import EventBridgePublisher
from quorum_dr.adapters.secrets import SecretsManagerSecrets
from quorum_dr.adapters.tables import create_table
from quorum_dr.domain.results import ProbeResult, Vote
from quorum_dr.probes.event import InvalidProbeEvent
from quorum_dr_local.iam_enforcement import IamEnforcement
from quorum_dr_local.iam_policies import Statement, principal_policies, synthesize
from quorum_dr_local.standins.health_page import HealthPage

ROOT = Path(__file__).resolve().parents[2]
HOME, PROBE_REGION = "eu-west-2", "us-east-1"
TABLE, STATE_TABLE, BUS = "quorum-dr-results", "quorum-dr-state", "quorum-dr"
ROUND_QUEUE = "quorum-dr-probe-rounds"  # stacks/probe_schedule.py RoundQueue
ACCOUNT = "123456789012"


def _load_handler() -> Any:
    spec = importlib.util.spec_from_file_location("probe_handler", ROOT / "lambdas" / "probe" / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


probe_handler = _load_handler()
_HANDLER = probe_handler.handler


@dataclass
class LambdaContext:
    function_name: str = "quorum-dr-probe"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{PROBE_REGION}:123456789012:function:quorum-dr-probe"
    aws_request_id: str = "req-1"


@pytest.fixture()
def origin() -> Iterator[HealthPage]:
    server = HealthPage("main").start()
    yield server
    server.stop()


@pytest.fixture()
def config_path(tmp_path: Path, origin: HealthPage) -> Path:
    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["home_region"] = HOME
    data["probe"]["timeout_seconds"] = 10  # loose: a busy machine must not turn a check into a timeout
    data["probe"]["retrigger_rounds"] = 3
    data["probe"]["control_target"] = {
        "checks": [{"name": "control", "type": "tcp", "host": "127.0.0.1", "port": origin.port}]
    }
    http = {
        "type": "http",
        "url": f"http://127.0.0.1:{origin.port}/health",
        "body_contains": '"status": "ok"',
    }
    service = data["services"][0]
    service["sites"]["main"]["checks"] = [{**http, "name": "health", "expect_headers": {"X-Site": "main"}}]
    service["sites"]["dr"]["checks"] = [
        {"name": "tcp", "type": "tcp", "host": "127.0.0.1", "port": origin.port}
    ]
    del service["sites"]["cold"], service["cold_site"]
    path = tmp_path / "watchdog.json"
    path.write_text(json.dumps(data))  # the Lambda bundle carries the config as JSON
    return path


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[dict[str, Any]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": PROBE_REGION,
        "AWS_REGION": PROBE_REGION,
        "QUORUM_DR_CONFIG_PATH": str(config_path),
        "RESULTS_TABLE_NAME": TABLE,
        "STATE_TABLE_NAME": STATE_TABLE,
        "EVENT_BUS_NAME": BUS,
        "POWERTOOLS_METRICS_NAMESPACE": "QuorumDR",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        # The handler runs under the probe role the app synthesizes for this region, moto's IAM on
        # (where aws_cdk is installed: on the Lambda runtime's Python, .venv-lambda, it runs plain).
        iam = None
        if CDK_PRESENT:
            iam = IamEnforcement(_probe_policies(config_path), region=PROBE_REGION).install()
        if iam is not None:
            monkeypatch.setattr(
                probe_handler, "handler", iam.handler_as(lambda _ctx: f"probe:{PROBE_REGION}", _HANDLER)
            )
        dynamodb = boto3.client("dynamodb", region_name=HOME)
        create_table(dynamodb, TABLE)
        create_table(dynamodb, STATE_TABLE)  # the standby watch reads the state and claims its record
        events = boto3.client("events", region_name=PROBE_REGION)
        events.create_event_bus(Name=BUS)
        sqs = boto3.client("sqs", region_name=PROBE_REGION)
        queue_url = sqs.create_queue(QueueName="captured")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name="capture", EventBusName=BUS, EventPattern=json.dumps({"source": ["quorum-dr"]}))
        events.put_targets(Rule="capture", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])
        # The region's round queue; the handler uses it only with ROUND_QUEUE_URL (the `rounds` fixture).
        round_queue_url = sqs.create_queue(QueueName=ROUND_QUEUE)["QueueUrl"]
        answer = {
            "dynamodb": dynamodb,
            "sqs": sqs,
            "queue_url": queue_url,
            "round_queue_url": round_queue_url,
        }
        if iam is None:
            yield answer
            return
        iam.enforce()
        try:
            yield answer
        finally:
            iam.close()
        iam.assert_clean()


CDK_PRESENT = importlib.util.find_spec("aws_cdk") is not None

_SYNTHESIZED: dict[str, dict[str, list[Statement]]] = {}


def _probe_policies(config_path: Path) -> dict[str, list[Statement]]:
    """The probe stacks' roles, synthesized from this test's config (once per distinct config)."""
    text = config_path.read_text()
    if text not in _SYNTHESIZED:
        _SYNTHESIZED[text] = {
            key: statements
            for key, statements in principal_policies(synthesize(json.loads(text))).items()
            if key.startswith("probe:")
        }
    return _SYNTHESIZED[text]


def captured(aws: dict[str, Any]) -> list[dict[str, Any]]:
    events = []
    for _ in range(20):  # bounded drain
        answer = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)
        messages = answer.get("Messages", [])
        if not messages:
            break
        for message in messages:
            events.append(json.loads(message["Body"]))
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=message["ReceiptHandle"])
    return events


def stored_items(aws: dict[str, Any]) -> list[dict[str, Any]]:
    return aws["dynamodb"].scan(TableName=TABLE)["Items"]


def test_scheduled_round_writes_every_result_with_ttl_and_received_at(aws: dict[str, Any]) -> None:
    answer = probe_handler.handler({}, LambdaContext())
    assert answer["kind"] == "scheduled" and answer["region"] == PROBE_REGION
    assert answer["abstaining"] is False
    assert {(v["site"], v["vote"]) for v in answer["verdicts"]} == {("main", "up"), ("dr", "up")}
    items = stored_items(aws)
    assert len(items) == len(answer["results"]) == 3  # control, main/health, dr/tcp
    for item in items:
        result = ProbeResult.model_validate_json(item["result"]["S"])
        assert result.received_at is not None
        assert int(item["expires_at"]["N"]) == int(result.received_at) + 86400
        assert item["pk"]["S"] == "booking"
        assert item["sk"]["S"] == (
            f"{result.received_at:017.6f}#{result.site}#{result.check}#{PROBE_REGION}#{answer['round_id']}"
        )
    assert captured(aws) == []


def test_events_on_failure_and_on_verdict_change_only(aws: dict[str, Any], origin: HealthPage) -> None:
    probe_handler.handler({}, LambdaContext())
    probe_handler.handler({}, LambdaContext())
    assert captured(aws) == [], "a second identical healthy round puts no event"

    origin.broken.set()
    answer = probe_handler.handler(
        {"round_id": "inc-1-confirm-1", "service": "booking", "sites": ["main"], "incident_id": "inc-1"},
        LambdaContext(),
    )
    assert answer["round_id"] == "inc-1-confirm-1" and answer["incident_id"] == "inc-1"
    assert {r["site"] for r in answer["results"]} == {"_control", "main"}
    events = captured(aws)
    assert [(e["source"], e["detail-type"]) for e in events] == [
        ("quorum-dr", "ProbeFailed"),
        ("quorum-dr", "VerdictChanged"),
    ]
    failed = events[0]["detail"]
    assert failed["service"] == "booking" and failed["site"] == "main" and failed["region"] == PROBE_REGION
    assert failed["round_id"] == "inc-1-confirm-1"
    assert [r["failure_class"] for r in failed["failing"]] == ["http_status"]
    assert "HTTP 500 from http://127.0.0.1" in failed["failing"][0]["detail"]
    assert events[1]["detail"]["previous_vote"] == "up"

    assert failed["failing_rounds"] == 1

    probe_handler.handler({}, LambdaContext())  # still failing, 2nd round of 3: no event at all
    assert captured(aws) == []
    probe_handler.handler({}, LambdaContext())  # 3rd consecutive failing round: ProbeFailed again
    events = captured(aws)
    assert [(e["detail-type"], e["detail"]["site"], e["detail"]["failing_rounds"]) for e in events] == [
        ("ProbeFailed", "main", 3)
    ]
    assert "for 3 consecutive rounds" in events[0]["detail"]["why"]
    counts = {
        json.loads(item["result"]["S"])["failing_rounds"]
        for item in stored_items(aws)
        if json.loads(item["result"]["S"])["site"] == "main"
    }
    assert counts == {0, 1, 2, 3}, "the count rides on the stored results, read back from DynamoDB"

    origin.broken.clear()
    probe_handler.handler({}, LambdaContext())
    events = captured(aws)
    assert [(e["detail-type"], e["detail"]["vote"]) for e in events] == [("VerdictChanged", "up")]


def test_malformed_event_is_rejected_before_any_side_effect(aws: dict[str, Any]) -> None:
    with pytest.raises(InvalidProbeEvent, match="round_id: Field required"):
        probe_handler.handler({"service": "booking", "sites": ["main"]}, LambdaContext())
    with pytest.raises(InvalidProbeEvent, match="no service named 'shop'"):
        probe_handler.handler({"round_id": "r1", "service": "shop"}, LambdaContext())
    assert stored_items(aws) == []
    assert captured(aws) == []


def test_results_store_query_by_receive_time(aws: dict[str, Any]) -> None:
    now = [1_700_000_000.0]
    store = DynamoDbResultStore.from_name(TABLE, ttl_seconds=3600, clock=lambda: now[0], region=HOME)
    base = dict(
        service="booking",
        check="health",
        check_type="http",
        region="us-east-1",
        vote=Vote.UP,
        latency_ms=1.0,
        probe_time=0.0,
    )
    store.put_results([ProbeResult(site="main", round_id="old", **base)])
    now[0] += 100
    written = store.put_results(
        [ProbeResult(site=site, round_id=f"new-{i}", **base) for i in range(30) for site in ("main", "dr")]
    )
    assert {r.received_at for r in written} == {now[0]}
    recent = store.recent_results("booking", since=now[0] - 50)
    assert len(recent) == 60 and all(r.round_id != "old" for r in recent)
    assert len(store.recent_results("booking", since=0)) == 61
    assert store.recent_results("other", since=0) == []


def test_secrets_manager_source_reads_json_secrets(aws: dict[str, Any]) -> None:
    client = boto3.client("secretsmanager", region_name=PROBE_REGION)
    client.create_secret(
        Name="quorum-dr/db", SecretString=json.dumps({"username": "monitor", "password": "p"})
    )
    secrets = SecretsManagerSecrets(max_age=60, boto3_client=client)
    assert secrets.get_json("quorum-dr/db") == {"username": "monitor", "password": "p"}


def test_secrets_manager_source_builds_one_bounded_client_from_the_default_session(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its own boto3 session would parse botocore's endpoint data again (issue 14: ~60 ms of CPU a
    # function); the client is the default session's, with the SDK bound every adapter uses, made
    # once however many of a round's threads ask at once.
    from quorum_dr.adapters import aws_sdk

    boto3.client("secretsmanager", region_name=PROBE_REGION).create_secret(
        Name="quorum-dr/db", SecretString=json.dumps({"username": "monitor"})
    )
    monkeypatch.setenv("AWS_DEFAULT_REGION", PROBE_REGION)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # put back after the test: no session leaks
    boto3.setup_default_session()
    sessions: list[Any] = []
    original = boto3.session.Session.__init__

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        sessions.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "__init__", counted)
    secrets = SecretsManagerSecrets(max_age=60)
    start = threading.Barrier(8)
    answers: list[Any] = []

    def read() -> None:
        start.wait(5)
        answers.append(secrets.get_json("quorum-dr/db"))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == [{"username": "monitor"}] * 8
    assert sessions == [], "a session of its own was built"
    config = secrets._provider.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (
        aws_sdk.CONNECT_TIMEOUT_SECONDS,
        aws_sdk.READ_TIMEOUT_SECONDS,
    )


def test_event_publisher_puts_quorum_dr_events_on_the_bus(aws: dict[str, Any]) -> None:
    publisher = EventBridgePublisher.from_name(BUS, region=PROBE_REGION)
    publisher.publish("ProbeFailed", {"service": "booking", "site": "main"})
    events = captured(aws)
    assert [(e["source"], e["detail-type"], e["detail"]["site"]) for e in events] == [
        ("quorum-dr", "ProbeFailed", "main")
    ]


def test_the_schedule_input_runs_several_rounds_in_one_invocation(aws: dict[str, Any]) -> None:
    answer = probe_handler.handler(
        {"source": "schedule", "rounds": 2, "round_spacing_seconds": 0}, LambdaContext()
    )
    first, second = answer["rounds"]
    assert second["round_id"] == first["round_id"] + "-2"
    assert answer["reason"] == "ran 2 of 2 round(s), 0 s apart"
    rounds = {item["round_id"]["S"] for item in stored_items(aws)}
    assert rounds == {first["round_id"], second["round_id"]}


# -- the minute's later rounds through the round queue (SQS) ----------------------------------------

NOW = 1_800_000_000.0


@pytest.fixture()
def rounds(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The deployed wiring: ROUND_QUEUE_URL set, the probe's clock fixed at NOW."""
    monkeypatch.setenv("ROUND_QUEUE_URL", aws["round_queue_url"])
    monkeypatch.setattr(probe_handler, "clock", lambda: NOW)
    return aws


def queued_messages() -> list[Any]:
    """What waits on the round queue, delayed or not (moto's queue itself: a delayed message is
    not receivable yet, and its delay is what is checked)."""
    from moto.sqs.models import sqs_backends

    return list(sqs_backends[ACCOUNT][PROBE_REGION].get_queue(ROUND_QUEUE)._messages)


def sqs_event(body: str, message_id: str = "m-1") -> dict[str, Any]:
    """The event the round queue's event source mapping invokes the probe with (batch size 1)."""
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": "handle-1",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(NOW * 1000))},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{PROBE_REGION}:{ACCOUNT}:{ROUND_QUEUE}",
                "awsRegion": PROBE_REGION,
            }
        ]
    }


def queued_body(**fields: Any) -> str:
    body = {"series": "sched-1-abc", "index": 2, "due_at": NOW, "remaining": 0, "spacing_seconds": 30}
    return json.dumps({**body, **fields})


def test_the_scheduled_invocation_runs_one_round_and_queues_the_next(rounds: dict[str, Any]) -> None:
    answer = probe_handler.handler(
        {"source": "schedule", "rounds": 2, "round_spacing_seconds": 30}, LambdaContext()
    )
    assert answer["kind"] == "scheduled" and "rounds" not in answer, "one round, not the minute's two"
    assert {item["round_id"]["S"] for item in stored_items(rounds)} == {answer["round_id"]}
    (message,) = queued_messages()
    assert json.loads(message.body) == {
        "series": answer["round_id"],
        "index": 2,
        "due_at": NOW + 30,
        "remaining": 0,
        "spacing_seconds": 30.0,
    }
    assert (message.delayed_until - message.sent_timestamp) / 1000 == pytest.approx(30, abs=1)
    assert answer["schedule"] == (
        f"ran round 1 of 2; round {answer['round_id']}-2 queued on {ROUND_QUEUE}, due in 30 s"
    )


def test_an_interval_of_10_seconds_chains_the_minutes_six_rounds(rounds: dict[str, Any]) -> None:
    probe_handler.handler({"source": "schedule", "rounds": 6, "round_spacing_seconds": 10}, LambdaContext())
    (message,) = queued_messages()
    second = json.loads(message.body)
    assert (second["index"], second["remaining"], second["due_at"]) == (2, 4, NOW + 10)


def test_a_queued_round_runs_and_queues_the_next_while_the_minute_has_more(
    rounds: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Round 2 of 3 arrives 1 s after its due time: it runs and queues round 3, due 30 s after round 2's due.
    monkeypatch.setattr(probe_handler, "clock", lambda: NOW + 1)
    answer = probe_handler.handler(sqs_event(queued_body(remaining=1)), LambdaContext())
    (done,) = answer["messages"]
    assert done["round"]["round_id"] == "sched-1-abc-2"
    assert done["reason"] == (
        "ran round 2 of 3, +1.0 s from its due time; "
        f"round sched-1-abc-3 queued on {ROUND_QUEUE}, due in 29 s"
    )
    assert {item["round_id"]["S"] for item in stored_items(rounds)} == {"sched-1-abc-2"}
    (message,) = queued_messages()
    assert json.loads(message.body) == {
        "series": "sched-1-abc",
        "index": 3,
        "due_at": NOW + 30,
        "remaining": 0,
        "spacing_seconds": 30.0,
    }
    # The minute's last round (that message, delivered on time) runs and queues nothing.
    rounds["sqs"].purge_queue(QueueUrl=rounds["round_queue_url"])
    monkeypatch.setattr(probe_handler, "clock", lambda: NOW + 30)
    answer = probe_handler.handler(sqs_event(message.body, "m-2"), LambdaContext())
    assert answer["messages"][0]["reason"].endswith("the minute has no round after it")
    assert queued_messages() == []
    assert {item["round_id"]["S"] for item in stored_items(rounds)} == {"sched-1-abc-2", "sched-1-abc-3"}


def test_a_late_round_is_dropped_never_caught_up(
    rounds: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # Due 16 s ago with 30 s spacing: more than half the spacing late (as a redelivery after the
    # visibility timeout always is).
    answer = probe_handler.handler(sqs_event(queued_body(due_at=NOW - 16, remaining=3)), LambdaContext())
    (dropped,) = answer["messages"]
    assert dropped["round"] is None
    assert dropped["reason"] == (
        "dropped round sched-1-abc-2 (2 of 5 of its minute): due 16.0 s ago, more than half the "
        "spacing (15 s); a late round is never caught up"
    )
    assert any(r.getMessage() == dropped["reason"] for r in caplog.records)
    assert stored_items(rounds) == [] and queued_messages() == [] and captured(rounds) == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("not json", "invalid queued round: (top level): Invalid JSON"),
        (queued_body(index=1), "index: Input should be greater than or equal to 2"),
        (queued_body(due_at="soon"), "due_at: Input should be a valid number"),
        (queued_body(spacing_seconds=0), "spacing_seconds: Input should be greater than 0"),
        (
            json.dumps({"series": "s", "index": 2, "due_at": NOW, "remaining": 0}),
            "spacing_seconds: Field required",
        ),
        (queued_body(extra=1), "extra: unknown field"),
        (queued_body(series="a#b"), "series: String should match pattern"),
    ],
)
def test_a_malformed_queued_round_runs_nothing_and_does_not_raise(
    rounds: dict[str, Any], caplog: pytest.LogCaptureFixture, body: str, problem: str
) -> None:
    answer = probe_handler.handler(sqs_event(body, "m-bad"), LambdaContext())
    (rejected,) = answer["messages"]
    assert problem in rejected["rejected"]
    (error,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert (
        error.startswith("rejected queued round message m-bad: invalid queued round: ") and problem in error
    )
    assert stored_items(rounds) == [] and queued_messages() == [] and captured(rounds) == []


def test_a_failed_send_loses_the_next_round_and_the_current_one_stands(
    rounds: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    rounds["sqs"].delete_queue(QueueUrl=rounds["round_queue_url"])  # SendMessage now fails
    answer = probe_handler.handler(
        {"source": "schedule", "rounds": 2, "round_spacing_seconds": 30}, LambdaContext()
    )
    assert {item["round_id"]["S"] for item in stored_items(rounds)} == {answer["round_id"]}
    assert answer["schedule"] == (
        f"ran round 1 of 2; round {answer['round_id']}-2 is lost: queueing it on {ROUND_QUEUE} failed"
    )
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    error = {"message": record.getMessage(), "queue": record.queue, "lost_round_id": record.lost_round_id}  # type: ignore[attr-defined]
    assert error["message"].startswith(
        f"round {answer['round_id']}-2 is lost: queueing it on {ROUND_QUEUE} failed: "
    )
    assert "NonExistentQueue" in error["message"] or "QueueDoesNotExist" in error["message"]
    assert (error["queue"], error["lost_round_id"]) == (ROUND_QUEUE, f"{answer['round_id']}-2")


def test_a_verify_round_reports_the_marker_and_stores_nothing(
    aws: dict[str, Any], origin: HealthPage, config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads(config_path.read_text())
    data["services"][0]["public_endpoint"] = f"http://127.0.0.1:{origin.port}/health"
    config_path.write_text(json.dumps(data))
    # Storing nothing, it builds no SDK client either (three of them cost more CPU than the round).
    made: list[str] = []
    create_client = botocore.session.Session.create_client

    def counted(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        made.append(service_name)
        return create_client(self, service_name, *args, **kwargs)

    # Patched for this block only: the `aws` fixture's IAM enforcement patches create_client too and
    # is torn down before monkeypatch is, which would then put the enforcement's patch back for good.
    probe_handler._config.cache_clear()
    try:
        with monkeypatch.context() as patched:
            patched.setattr(botocore.session.Session, "create_client", counted)
            answer = probe_handler.handler(
                {"action": "verify", "service": "booking", "expect_site": "main", "incident_id": "inc-v"},
                LambdaContext(),
            )
    finally:
        probe_handler._config.cache_clear()
    assert made == []
    assert answer["kind"] == "verify" and answer["region"] == PROBE_REGION
    assert answer["ok"] is True and answer["marker_seen"] == "main"
    assert stored_items(aws) == [] and captured(aws) == []
