"""NotificationChannel: SNS through moto (read back from a subscribed SQS queue) and signed webhooks
against a real local HTTP server that verifies every signature."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import boto3
import pytest
import requests
from moto import mock_aws

from quorum_dr.adapters.notifier import BroadcastNotifier, SnsNotifier, WebhookNotifier, build_notifier
from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.config import Webhook
from quorum_dr.ports import Notification, NotificationChannel, NotifyReceipt
from quorum_dr.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, SignatureVerifier

KEY = "whk-0123456789abcdef-never-log-me"
REGION = "eu-west-2"

MESSAGE = Notification(
    incident_id="inc-20231114-booking-1",
    service="booking",
    event="failed_over",
    subject="booking failed over to dr",
    summary="main is DOWN: 2 of 3 regions saw 2 consecutive failing rounds; promoted dr, switched the edge",
    details={"rto_seconds": 41.5, "loss": "no known data loss"},
)


@dataclass
class Receiver:
    """A local webhook receiver: answers the scripted statuses in turn, verifies each signature."""

    statuses: list[int] = field(default_factory=lambda: [200])
    delay_seconds: float = 0.0
    answer: str = '{"ok": true}'
    requests: list[dict] = field(default_factory=list)
    url: str = ""
    verifier: SignatureVerifier = field(default_factory=lambda: SignatureVerifier(KEY))

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        headers = dict(handler.headers.items())
        try:
            self.verifier.verify(handler.command, handler.path, headers, body)
            signature_ok = True
        except SignatureError:
            signature_ok = False
        self.requests.append({"headers": headers, "body": json.loads(body), "signature_ok": signature_ok})
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        payload = self.answer.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


@pytest.fixture
def receiver(post_receiver: Callable[[Callable[[BaseHTTPRequestHandler], None]], str]) -> Receiver:
    state = Receiver()
    state.url = post_receiver(state.handle) + "/quorum-dr?token=abc"
    return state


def webhook_notifier(url: str, timeout: float = 5, **kw: object) -> WebhookNotifier:
    hook = Webhook(url=url, signing_secret="quorum-dr/webhook-key", timeout_seconds=timeout)
    return WebhookNotifier([hook], StaticSecrets({"quorum-dr/webhook-key": KEY}), backoff_seconds=0.01, **kw)  # type: ignore[arg-type]


def test_sns_message_reaches_a_subscribed_queue_with_the_incident_id() -> None:
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="quorum-dr-alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        receipts = SnsNotifier(topic).notify(MESSAGE)

        assert [r.delivered for r in receipts] == [True]
        assert receipts[0].channel == f"sns:{topic}"
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
        assert len(messages) == 1
        envelope = json.loads(messages[0]["Body"])
        assert envelope["Subject"] == "booking failed over to dr"
        assert envelope["Message"].startswith("main is DOWN: 2 of 3 regions")
        assert "incident: inc-20231114-booking-1" in envelope["Message"]
        assert "rto_seconds: 41.5" in envelope["Message"]
        assert envelope["MessageAttributes"]["incident_id"]["Value"] == "inc-20231114-booking-1"
        assert envelope["MessageAttributes"]["event"]["Value"] == "failed_over"


def test_sns_failure_is_a_receipt_not_an_exception() -> None:
    with mock_aws():
        missing = f"arn:aws:sns:{REGION}:123456789012:no-such-topic"
        receipts = SnsNotifier(missing).notify(MESSAGE)
        assert [r.delivered for r in receipts] == [False]
        assert receipts[0].reason.startswith(f"SNS publish to {missing} failed: NotFoundException")


def test_a_long_subject_is_cut_to_what_sns_accepts() -> None:
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="quorum-dr-alerts")["TopicArn"]
        long = MESSAGE.model_copy(update={"subject": "booking: " + "é" * 150 + "\nsecond line"})
        receipts = SnsNotifier(topic).notify(long)
        assert receipts[0].delivered, receipts[0].reason


def test_webhook_is_signed_and_carries_the_incident_as_correlation_id(receiver: Receiver) -> None:
    receipts = webhook_notifier(receiver.url).notify(MESSAGE)

    assert [(r.delivered, r.attempts) for r in receipts] == [(True, 1)]
    assert receipts[0].channel.endswith("/quorum-dr?token=***") and "abc" not in receipts[0].channel
    (request,) = receiver.requests
    assert request["signature_ok"]  # over the path and query as received
    assert request["headers"][SIGNATURE_HEADER].startswith("v2=")
    assert int(request["headers"][TIMESTAMP_HEADER]) == pytest.approx(time.time(), abs=60)
    assert request["headers"]["X-QuorumDR-Incident"] == "inc-20231114-booking-1"
    assert request["body"]["incident_id"] == "inc-20231114-booking-1"
    assert request["body"]["subject"] == "booking failed over to dr"
    assert request["body"]["summary"] == MESSAGE.summary
    assert request["body"]["details"] == {"rto_seconds": 41.5, "loss": "no known data loss"}


def test_webhook_retries_a_500_and_then_delivers(receiver: Receiver) -> None:
    receiver.statuses = [500, 200]
    receipts = webhook_notifier(receiver.url).notify(MESSAGE)

    assert [(r.delivered, r.attempts) for r in receipts] == [(True, 2)]
    assert len(receiver.requests) == 2
    assert all(r["signature_ok"] for r in receiver.requests)
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]


def test_webhook_never_retries_a_4xx(receiver: Receiver) -> None:
    receiver.statuses = [400, 200]
    receipts = webhook_notifier(receiver.url).notify(MESSAGE)

    assert [(r.delivered, r.attempts) for r in receipts] == [(False, 1)]
    assert receipts[0].reason.endswith("answered HTTP 400: refused, not retried")
    assert len(receiver.requests) == 1


def test_webhook_gives_up_after_the_attempts_on_5xx(receiver: Receiver) -> None:
    receiver.statuses = [503]
    receipts = webhook_notifier(receiver.url, attempts=3).notify(MESSAGE)
    assert [(r.delivered, r.attempts) for r in receipts] == [(False, 3)]
    assert receipts[0].reason.endswith("answered HTTP 503; gave up after 3 attempts")
    assert len(receiver.requests) == 3


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_webhook_retries_connection_errors_then_reports_them() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    receipts = webhook_notifier(url, attempts=2).notify(MESSAGE)
    assert [(r.delivered, r.attempts) for r in receipts] == [(False, 2)]
    assert receipts[0].reason.startswith(f"cannot connect to {url}: ConnectionError")


def test_webhook_timeout_is_reported(receiver: Receiver) -> None:
    receiver.delay_seconds = 1.0
    receipts = webhook_notifier(receiver.url, timeout=0.2, attempts=1).notify(MESSAGE)
    assert [r.delivered for r in receipts] == [False]
    assert "did not answer within 0.2 s" in receipts[0].reason


def test_the_signing_key_never_appears_in_logs_or_receipts(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.statuses = [500, 500, 401]
    caplog.set_level(logging.DEBUG)
    receipts = webhook_notifier(receiver.url).notify(MESSAGE)
    broadcast = BroadcastNotifier([webhook_notifier(receiver.url)]).notify(MESSAGE)
    assert caplog.records, "the retries should have been logged"
    assert KEY not in caplog.text
    assert all(KEY not in r.reason for r in receipts + broadcast)


class Exploding(NotificationChannel):
    def notify(self, message: Notification) -> list[NotifyReceipt]:
        return [NotifyReceipt(channel="broken", delivered=False, attempts=1, reason="broken channel")]


def test_one_failing_channel_never_stops_the_others(receiver: Receiver) -> None:
    receipts = BroadcastNotifier([Exploding(), webhook_notifier(receiver.url)]).notify(MESSAGE)
    assert [r.delivered for r in receipts] == [False, True]
    assert len(receiver.requests) == 1


def test_a_missing_signing_secret_is_reported_without_sending(receiver: Receiver) -> None:
    hook = Webhook(url=receiver.url, signing_secret="absent")
    receipts = WebhookNotifier([hook], StaticSecrets({})).notify(MESSAGE)
    assert [(r.delivered, r.attempts) for r in receipts] == [(False, 0)]
    assert receipts[0].reason == "cannot read signing secret 'absent': SecretNotFound"
    assert receiver.requests == []


def test_build_notifier_sends_on_sns_and_every_webhook(receiver: Receiver) -> None:
    with mock_aws():
        topic = boto3.client("sns", region_name=REGION).create_topic(Name="quorum-dr-alerts")["TopicArn"]
        hook = Webhook(url=receiver.url, signing_secret="k")
        notifier = build_notifier(topic, [hook], StaticSecrets({"k": KEY}))
        receipts = notifier.notify(MESSAGE)
    assert [r.channel.split(":")[0] for r in receipts] == ["sns", "webhook"]
    assert all(r.delivered for r in receipts)
    assert receiver.requests[0]["signature_ok"]


def test_a_captured_webhook_replayed_is_refused_by_the_reference_verifier(receiver: Receiver) -> None:
    webhook_notifier(receiver.url).notify(MESSAGE)
    (first,) = receiver.requests
    body = json.dumps(first["body"], sort_keys=True).encode()
    again = requests.post(receiver.url, data=body, headers=first["headers"], timeout=5)
    assert again.status_code == 200  # the scripted answer; what counts is the verifier's verdict
    assert [r["signature_ok"] for r in receiver.requests] == [True, False]


def redirector(post_receiver: Callable[..., str], location: str, hits: list[str]) -> str:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        hits.append(handler.path)
        handler.send_response(307)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return post_receiver(handle)


def test_a_signed_webhook_never_follows_a_redirect(
    receiver: Receiver, post_receiver: Callable[..., str]
) -> None:
    hits: list[str] = []
    elsewhere = receiver.url.replace("?token=abc", "?key=stolen")
    url = redirector(post_receiver, elsewhere, hits) + "/hook"
    receipts = webhook_notifier(url).notify(MESSAGE)
    assert [(r.delivered, r.attempts) for r in receipts] == [(False, 1)]
    assert receipts[0].reason == (
        f"{url} answered HTTP 307, a redirect to {elsewhere.replace('stolen', '***')}: "
        "signed requests never follow redirects (configure the final URL)"
    )
    assert hits == ["/hook"]
    assert receiver.requests == []  # the body and its signature never reached the other place
