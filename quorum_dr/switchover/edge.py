"""The switchover's edge steps: before anything is frozen, check that the edge answers and points
at the active site (which also warms this function for the switch); point the public hostname at
the new primary's site (once, read back, never before the database is verified writable) and
verify through the public hostname (the failover's verification: retried with backoff for
`verify.window_seconds`)."""

from __future__ import annotations

from typing import Any

from quorum_dr.domain.switchover import check_edge
from quorum_dr.failover.errors import SwitchFailed
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import as_dict, entry
from quorum_dr.failover.verify import verify_attempts
from quorum_dr.switchover.request import Switchover


def check(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    """Read where the edge points (a refused token or an unreachable API raises: the state machine
    refuses on it) and judge it against the active site; dry runs check too."""
    service = ports.service(switchover.service)
    points_at = ports.edge(service).current_site()
    decision = check_edge(points_at, service=service.name, source=switchover.source, target=switchover.target)
    reason = decision.reason + (" (dry run)" if switchover.dry_run else "")
    now = ports.clock()
    ports.store.update_incident(
        service.name, switchover.incident_id, {}, timeline=entry("edge check", reason, now)
    )
    return {
        "proceed": decision.proceed,
        "code": decision.code,
        "reason": reason,
        "points_at": points_at,
        "at": now,
    }


def switch(ports: Ports, switchover: Switchover, promotion: dict[str, Any] | None) -> dict[str, Any]:
    service = ports.service(switchover.service)
    target = switchover.target
    if not switchover.dry_run and not (promotion or {}).get("writable"):
        raise SwitchFailed(
            f"refusing to switch {service.name} to {target}: its database is not verified writable "
            "(invariant 6)"
        )
    record = ports.store.get_incident(service.name, switchover.incident_id)
    if record is not None and record.switched_to == target and not switchover.dry_run:
        reason = f"the edge of {service.name} was already switched to {target} by this switchover"
        return {"changed": False, "already_switched": True, "reason": reason, "at": record.switched_at}
    receipt = as_dict(
        ports.edge(service).switch_to(target, incident_id=switchover.incident_id, dry_run=switchover.dry_run)
    )
    reason = str(receipt.get("reason") or f"switched the edge of {service.name} to {target}")
    if not switchover.dry_run and not receipt.get("verified_read_back", False):
        raise SwitchFailed(f"the edge of {service.name} did not read back as {target}: {reason}")
    now = ports.clock()
    fields = {} if switchover.dry_run else {"switched_to": target, "switched_at": now, "switch": receipt}
    ports.store.update_incident(
        service.name, switchover.incident_id, fields, timeline=entry("switch", reason, now)
    )
    return {**receipt, "reason": reason, "at": now}


def verify(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    service = ports.service(switchover.service)
    target = switchover.target
    if switchover.dry_run:
        reason = f"dry run: would verify that {service.public_hostname} answers with the {target} marker"
        now = ports.clock()
        ports.store.update_incident(
            service.name, switchover.incident_id, {}, timeline=entry("verify", reason, now)
        )
        return {"verified": True, "dry_run": True, "reason": reason, "at": now}
    answer = verify_attempts(ports, service.name, switchover.incident_id, target, origin_only=False)
    now = ports.clock()
    fields = {"verified_at": now} if answer["verified"] else {}
    ports.store.update_incident(
        service.name, switchover.incident_id, fields, timeline=entry("verify", answer["reason"], now)
    )
    return {**answer, "at": now}


def handle(ports: Ports, event: dict[str, Any]) -> dict[str, Any]:
    switchover = Switchover.model_validate(event["switchover"])
    action = event.get("action")
    if action == "check":
        return check(ports, switchover)
    if action == "switch":
        return switch(ports, switchover, event.get("promotion"))
    if action == "verify":
        return verify(ports, switchover)
    raise ValueError(f"switchover_edge: unknown action {action!r}")
