"""EventBridge behind the EventPublisher port: source "quorum-dr", one entry per event."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from quorum_dr.ports import EventPublisher

SOURCE = "quorum-dr"


class PublishFailed(RuntimeError):
    pass


class EventBridgePublisher(EventPublisher):
    def __init__(self, client: Any, *, bus_name: str, source: str = SOURCE) -> None:
        """`client` is a boto3 EventBridge client (`boto3.client("events")`)."""
        self.client = client
        self.bus_name = bus_name
        self.source = source

    @classmethod
    def from_name(cls, bus_name: str, *, region: str | None = None) -> EventBridgePublisher:
        import boto3

        return cls(boto3.client("events", region_name=region), bus_name=bus_name)

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        entry = {
            "Source": self.source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, default=str),
            "EventBusName": self.bus_name,
        }
        answer = self.client.put_events(Entries=[entry])
        if answer.get("FailedEntryCount"):
            failed = answer["Entries"][0]
            raise PublishFailed(
                f"EventBridge refused {detail_type} on {self.bus_name}: "
                f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}"
            )
