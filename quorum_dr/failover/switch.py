"""Switch the edge to the new site: once per incident, read back, never to an unverified database."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.errors import SwitchFailed
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import as_dict, entry
from quorum_dr.failover.request import Incident


def switch(ports: Ports, incident: Incident, target: str, promotion: dict[str, Any] | None) -> dict[str, Any]:
    service = ports.service(incident.service)
    if target == "dr" and service.database is not None and not incident.dry_run:
        if not (promotion or {}).get("writable"):
            raise SwitchFailed(
                f"refusing to switch {service.name} to dr: "
                "its database is not verified writable (invariant 6)"
            )
    record = ports.store.get_incident(service.name, incident.incident_id)
    if record is not None and record.switched_to == target and not incident.dry_run:
        reason = f"the edge of {service.name} was already switched to {target} by this incident"
        return {"changed": False, "already_switched": True, "reason": reason, "at": record.switched_at}
    receipt = as_dict(
        ports.edge(service).switch_to(target, incident_id=incident.incident_id, dry_run=incident.dry_run)
    )
    reason = receipt.get("reason") or f"switched the edge of {service.name} to {target}"
    if not incident.dry_run and not receipt.get("verified_read_back", False):
        raise SwitchFailed(f"the edge of {service.name} did not read back as {target}: {reason}")
    now = ports.clock()
    fields = {} if incident.dry_run else {"switched_to": target, "switched_at": now, "switch": receipt}
    ports.store.update_incident(
        service.name, incident.incident_id, fields, timeline=entry("switch", reason, now)
    )
    return {**receipt, "reason": reason, "at": now}
