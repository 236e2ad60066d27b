"""SQS behind the RoundQueue port: the probe region's round queue (`stacks/probe_schedule.py`)."""

from __future__ import annotations

from typing import Any

from quorum_dr.ports import RoundQueue

MAX_DELAY_SECONDS = 900  # SQS's limit on DelaySeconds


class SqsRoundQueue(RoundQueue):
    def __init__(self, client: Any, *, queue_url: str) -> None:
        """`client` is a boto3 SQS client of the queue's region."""
        self.client = client
        self.queue_url = queue_url
        self.name = queue_url.rstrip("/").rsplit("/", 1)[-1]

    @classmethod
    def from_url(cls, queue_url: str, *, region: str | None = None) -> SqsRoundQueue:
        import boto3

        return cls(boto3.client("sqs", region_name=region), queue_url=queue_url)

    def send(self, body: str, *, delay_seconds: int) -> None:
        delay = min(MAX_DELAY_SECONDS, max(0, int(delay_seconds)))
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=body, DelaySeconds=delay)
