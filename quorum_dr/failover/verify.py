"""Verify the switch through the public hostname (or the cold origin's health as a fallback)."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import as_dict, entry
from quorum_dr.failover.request import Incident


def verify(ports: Ports, incident: Incident, target: str, *, origin_only: bool) -> dict[str, Any]:
    service = ports.service(incident.service)
    now = ports.clock()
    if incident.dry_run and not origin_only:
        reason = f"dry run: would verify that {service.public_hostname} answers with the {target} marker"
        ports.store.update_incident(
            service.name, incident.incident_id, {}, timeline=entry("verify", reason, now)
        )
        return {"verified": True, "dry_run": True, "reason": reason, "at": now}
    receipt = as_dict(
        ports.verifier().verify(
            service=service.name,
            expect_site=target,
            incident_id=incident.incident_id,
            origin_only=origin_only,
        )
    )
    verified = bool(receipt.get("verified"))
    reason = receipt.get("reason") or (f"{target} verified" if verified else f"{target} not verified")
    step = "cold_health" if origin_only else "verify"
    fields = {"verified_at": now} if verified and not origin_only else {}
    ports.store.update_incident(service.name, incident.incident_id, fields, timeline=entry(step, reason, now))
    answer = {**receipt, "verified": verified, "reason": reason, "at": now}
    if origin_only:
        answer["ready"] = verified
    return answer
