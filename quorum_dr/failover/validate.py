"""The state machine's first step: the execution input becomes the incident context."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.ports import Ports
from quorum_dr.failover.request import start_incident


def handle(ports: Ports, event: dict[str, Any]) -> dict[str, Any]:
    incident = start_incident(
        event.get("input"),
        execution_name=str(event.get("execution_name") or ""),
        started_at=event.get("started_at"),
        config=ports.config,
        now=ports.clock(),
    )
    answer = incident.model_dump(mode="json")
    answer["reason"] = f"{incident.trigger} start of incident {incident.incident_id}: {incident.reason}"
    return answer
