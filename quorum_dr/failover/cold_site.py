"""Launch the cold site (ClientToken = incident id: a retry never launches twice)."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.incident import count_failover
from quorum_dr.failover.receipts import as_dict, entry
from quorum_dr.failover.request import Incident
from quorum_dr.failover.wiring import Ports


def launch(ports: Ports, incident: Incident, task_token: str | None) -> dict[str, Any]:
    service = ports.service(incident.service)
    if not incident.dry_run:
        count_failover(ports, incident, "the cold launch")
    now = ports.clock()
    receipt = as_dict(
        ports.launcher(service).launch(
            incident_id=incident.incident_id, task_token=task_token, dry_run=incident.dry_run
        )
    )
    reason = receipt.get("reason") or f"launched the cold site of {service.name}"
    if incident.dry_run:
        receipt.setdefault("ready", True)
        reason = receipt.get("reason") or f"dry run: would launch the cold site of {service.name}"
    ports.store.update_incident(
        service.name,
        incident.incident_id,
        {"cold_launch": receipt},
        timeline=entry("cold_launch", reason, now),
    )
    return {**receipt, "reason": reason, "at": now}
