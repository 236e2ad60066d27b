"""Notifications: SNS and HMAC-signed webhooks.

`post_signed` is the one way this project sends a signed HTTP request (notifications and hooks):
the body is signed with `quorum_dr.signing`, the request has a timeout, and it is retried with
exponential backoff on connection errors, timeouts and 5xx answers, never on a 4xx (the receiver
refused: sending again would not help). Signing keys come from the SecretSource and are never
logged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import boto3
import requests
from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from quorum_dr.adapters.aws_sdk import sdk_config
from quorum_dr.config import Webhook
from quorum_dr.ports import Notification, NotificationChannel, Notifier, NotifyReceipt, SecretSource
from quorum_dr.signing import signed_headers

logger = Logger(service="quorum-dr", child=True)

USER_AGENT = "quorum-dr"
SNS_SUBJECT_LIMIT = 100
POST_ATTEMPTS = 3  # a signed POST (webhook or hook): attempts on timeouts, connection errors and 5xx
POST_BACKOFF_SECONDS = 0.5  # before the second attempt; doubled before each further one


class Delivery(BaseModel):
    """What happened to one signed POST."""

    model_config = ConfigDict(frozen=True)

    delivered: bool
    attempts: int
    status_code: int | None
    reason: str
    body: str = ""


def redact_url(url: str) -> str:
    """The URL without query or credentials, fit for logs (tokens often hide in query strings)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def post_signed(
    url: str,
    body: Mapping[str, Any],
    key: str,
    *,
    timeout_seconds: float,
    extra_headers: Mapping[str, str] | None = None,
    attempts: int = POST_ATTEMPTS,
    backoff_seconds: float = POST_BACKOFF_SECONDS,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST `body` as JSON, signed; retry transient failures; never raise for HTTP trouble."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    http = session or requests.Session()
    text = json.dumps(body, sort_keys=True, default=str)
    where = redact_url(url)
    reason = ""
    status: int | None = None
    for attempt in range(1, attempts + 1):
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(extra_headers or {})}
        headers.update(signed_headers(key, text))  # a fresh timestamp on every attempt
        try:
            response = http.post(url, data=text.encode("utf-8"), headers=headers, timeout=timeout_seconds)
        except requests.Timeout:
            status, reason = None, f"{where} did not answer within {timeout_seconds:g} s"
        except requests.ConnectionError as exc:
            status, reason = None, f"cannot connect to {where}: {type(exc).__name__}"
        else:
            status = response.status_code
            if 200 <= status < 300:
                return Delivery(
                    delivered=True,
                    attempts=attempt,
                    status_code=status,
                    reason=f"{where} accepted it with HTTP {status} (attempt {attempt})",
                    body=response.text[:4000],
                )
            reason = f"{where} answered HTTP {status}"
            if status < 500:
                return Delivery(
                    delivered=False,
                    attempts=attempt,
                    status_code=status,
                    reason=f"{reason}: refused, not retried",
                    body=response.text[:4000],
                )
        if attempt < attempts:
            delay = backoff_seconds * (2 ** (attempt - 1))
            logger.warning(f"{reason}; retrying in {delay:g} s", extra={"attempt": attempt, "url": where})
            sleep(delay)
    return Delivery(
        delivered=False,
        attempts=attempts,
        status_code=status,
        reason=f"{reason}; gave up after {attempts} attempts",
    )


def _sns_subject(subject: str) -> str:
    """SNS subjects: ASCII, no line breaks, at most 100 characters."""
    flat = " ".join(subject.split()).encode("ascii", "replace").decode("ascii")
    return flat if len(flat) <= SNS_SUBJECT_LIMIT else flat[: SNS_SUBJECT_LIMIT - 3] + "..."


def readable_text(message: Notification) -> str:
    """The summary followed by the details, one per line, and the incident id to correlate."""
    lines = [message.summary, ""]
    for name, value in message.details.items():
        lines.append(f"{name}: {value if isinstance(value, str) else json.dumps(value, default=str)}")
    lines += [
        "",
        f"service: {message.service}",
        f"incident: {message.incident_id}",
        f"event: {message.event}",
    ]
    return "\n".join(lines).strip() + "\n"


class SnsNotifier(NotificationChannel):
    def __init__(self, topic_arn: str, client: Any | None = None) -> None:
        self.topic_arn = topic_arn
        self._client = client or boto3.client(
            "sns", region_name=topic_arn.split(":")[3] or None, config=sdk_config()
        )

    def notify(self, message: Notification) -> list[NotifyReceipt]:
        channel = f"sns:{self.topic_arn}"
        try:
            answer = self._client.publish(
                TopicArn=self.topic_arn,
                Subject=_sns_subject(message.subject),
                Message=readable_text(message),
                MessageAttributes={
                    "incident_id": {"DataType": "String", "StringValue": message.incident_id},
                    "service": {"DataType": "String", "StringValue": message.service},
                    "event": {"DataType": "String", "StringValue": message.event},
                },
            )
        except Exception as exc:  # botocore errors: one failed channel never stops the others
            reason = f"SNS publish to {self.topic_arn} failed: {type(exc).__name__}: {exc}"
            logger.error(reason, extra={"incident_id": message.incident_id})
            return [NotifyReceipt(channel=channel, delivered=False, attempts=1, reason=reason)]
        return [
            NotifyReceipt(
                channel=channel,
                delivered=True,
                attempts=1,
                reason=f"published to {self.topic_arn} as message {answer.get('MessageId')}",
            )
        ]


class WebhookNotifier(NotificationChannel):
    """POSTs the notification as signed JSON to each configured webhook."""

    def __init__(
        self,
        webhooks: Sequence[Webhook],
        secrets: SecretSource,
        *,
        attempts: int = POST_ATTEMPTS,
        backoff_seconds: float = POST_BACKOFF_SECONDS,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.webhooks = list(webhooks)
        self._secrets = secrets
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._session = session or requests.Session()
        self._sleep = sleep

    def notify(self, message: Notification) -> list[NotifyReceipt]:
        body = {**message.model_dump(mode="json"), "sent_at": time.time()}
        receipts = []
        for webhook in self.webhooks:
            url = str(webhook.url)
            channel = f"webhook:{redact_url(url)}"
            try:
                key = self._secrets.get(webhook.signing_secret)
            except Exception as exc:  # the secret store's own errors; the key itself is never shown
                reason = f"cannot read signing secret {webhook.signing_secret!r}: {type(exc).__name__}"
                receipts.append(NotifyReceipt(channel=channel, delivered=False, attempts=0, reason=reason))
                continue
            delivery = post_signed(
                url,
                body,
                key,
                timeout_seconds=webhook.timeout_seconds,
                extra_headers={"X-QuorumDR-Incident": message.incident_id},
                attempts=self._attempts,
                backoff_seconds=self._backoff,
                session=self._session,
                sleep=self._sleep,
            )
            receipts.append(
                NotifyReceipt(
                    channel=channel,
                    delivered=delivery.delivered,
                    attempts=delivery.attempts,
                    reason=delivery.reason,
                )
            )
        return receipts


class BroadcastNotifier(NotificationChannel):
    """Every channel, in order; logs each outcome with the incident id."""

    def __init__(self, channels: Iterable[NotificationChannel]) -> None:
        self.channels = list(channels)

    def notify(self, message: Notification) -> list[NotifyReceipt]:
        receipts: list[NotifyReceipt] = []
        for channel in self.channels:
            receipts.extend(channel.notify(message))
        for receipt in receipts:
            log = logger.info if receipt.delivered else logger.error
            log(receipt.reason, extra={"incident_id": message.incident_id, "channel": receipt.channel})
        return receipts


def build_notifier(
    topic_arn: str | None,
    webhooks: Sequence[Webhook],
    secrets: SecretSource,
    *,
    sns_client: Any | None = None,
) -> BroadcastNotifier:
    """SNS (when a topic is given) and every configured webhook."""
    channels: list[NotificationChannel] = []
    if topic_arn:
        channels.append(SnsNotifier(topic_arn, client=sns_client))
    if webhooks:
        channels.append(WebhookNotifier(webhooks, secrets))
    return BroadcastNotifier(channels)


class OperatorNotifier(Notifier):
    """The failover layer's Notifier port over the notification channels.

    `notify(subject, message, incident_id=..., detail=...)` becomes one Notification: the detail's
    `service` and `kind` give its service and event word, the rest its details. A channel that
    fails is named in the receipt; it never stops the failover (the incident record keeps it).
    """

    def __init__(self, channel: NotificationChannel) -> None:
        self.channel = channel

    def notify(
        self, subject: str, message: str, *, incident_id: str, detail: Mapping[str, Any]
    ) -> dict[str, Any]:
        note = Notification(
            incident_id=incident_id,
            service=str(detail.get("service") or "quorum-dr"),
            event=str(detail.get("kind") or detail.get("event") or "notice"),
            subject=subject,
            summary=message,
            details={k: v for k, v in detail.items() if k not in ("incident_id", "service", "kind", "event")},
        )
        receipts = self.channel.notify(note)
        delivered = [r for r in receipts if r.delivered]
        if not receipts:
            reason = "no notification channel is configured: nobody was told"
        elif delivered:
            reason = f"delivered on {len(delivered)} of {len(receipts)} channel(s)"
        else:
            reason = f"NOT delivered on any of {len(receipts)} channel(s)"
        failed = [r.reason for r in receipts if not r.delivered]
        if failed:
            reason += ": " + "; ".join(failed)
        return {
            "delivered": len(delivered),
            "channels": [r.model_dump(mode="json") for r in receipts],
            "reason": reason,
        }
