"""Fence main (it holds or it blocks) and promote the DR database, once per incident."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.errors import FenceFailed, PromotionFailed, TransientError
from quorum_dr.failover.incident import count_failover
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import as_dict, entry
from quorum_dr.failover.request import Incident
from quorum_dr.ports import (
    DatabaseUnreachableError,
    Promoter,
    PromotionError,
    PromotionReceipt,
    ReplicaNotReadyError,
)


def _promote_once(promoter: Promoter, incident_id: str) -> PromotionReceipt:
    """The promoter's errors as the state machine's: unreachable or not ready is retried,
    a promotion that does not give a writable primary escalates."""
    try:
        return promoter.promote(incident_id)
    except (DatabaseUnreachableError, ReplicaNotReadyError) as exc:
        raise TransientError(str(exc)) from None
    except PromotionError as exc:
        raise PromotionFailed(str(exc)) from None


def fence(ports: Ports, incident: Incident) -> dict[str, Any]:
    """Fence main before any promotion (DESIGN invariant 4b): main's database fenced, or
    unreachable (its evidence in the timeline), or FenceFailed, which escalates; then the
    fence_main hook (a required one that fails raises HookFailed, which escalates too).

    The answer always carries `fenced`, `unreachable` and `no_database`: the state machine's
    MainFenced Choice reads them and proceeds only on one of them (or a dry run)."""
    service = ports.service(incident.service)
    now = ports.clock()
    answer: dict[str, Any] = {"fenced": False, "unreachable": False, "no_database": service.database is None}
    if incident.dry_run:
        reason = f"dry run: would fence main's database of {service.name} and call the fence_main hook"
        answer["dry_run"] = True
    else:
        if service.database is not None:
            database = ports.promoter(service).fence_old_primary(incident.incident_id)
            answer["database"] = as_dict(database)
            if database.reachable and not database.fenced:
                refusal = f"no promotion: {database.reason}"
                ports.store.update_incident(
                    service.name,
                    incident.incident_id,
                    {"fence": answer},
                    timeline=entry("fence", refusal, ports.clock()),
                )
                raise FenceFailed(refusal)
            answer["fenced"] = database.fenced
            answer["unreachable"] = not database.reachable
            if not database.reachable:
                answer["evidence"] = {
                    "failure_class": database.failure_class,
                    "address": database.address,
                    "reason": database.reason,
                }
            reason = database.reason
        else:
            reason = f"{service.name} has no database to fence; the fence_main hook is its only fence"
        answer["hook"] = as_dict(
            ports.hooks(service).run(
                "fence_main", incident_id=incident.incident_id, payload={"service": service.name}
            )
        )
    ports.store.update_incident(
        service.name, incident.incident_id, {"fence": answer}, timeline=entry("fence", reason, now)
    )
    return {**answer, "reason": reason, "at": now}


def promote(ports: Ports, incident: Incident) -> dict[str, Any]:
    service = ports.service(incident.service)
    now = ports.clock()
    db = service.database
    if db is None:
        return {"writable": True, "reason": f"{service.name} has no database: nothing to promote", "at": now}
    if incident.dry_run:
        reason = (
            "dry run: would run the before_promote hook, promote the DR database at "
            f"{db.dr.host}:{db.dr.port}, "
            f"verify it is writable, then run the after_promote hook"
        )
        ports.store.update_incident(
            service.name, incident.incident_id, {}, timeline=entry("promote", reason, now)
        )
        return {"dry_run": True, "writable": False, "reason": reason, "at": now}
    record = ports.store.get_incident(service.name, incident.incident_id)
    promoter = ports.promoter(service)
    if record is not None and record.promoted_at:
        receipt: dict[str, Any] = {"already_promoted": True}
        reason = f"already promoted for incident {incident.incident_id}: not promoting again"
    else:
        hooks = ports.hooks(service)
        count_failover(ports, incident, "the promotion")
        hooks.run("before_promote", incident_id=incident.incident_id, payload={"service": service.name})
        receipt = as_dict(_promote_once(promoter, incident.incident_id))
        reason = str(receipt.get("reason") or f"promoted the DR database at {db.dr.host}:{db.dr.port}")
        ports.store.update_incident(
            service.name,
            incident.incident_id,
            {"promoted_at": ports.clock(), "promotion": receipt},
            timeline=entry("promote", reason, ports.clock()),
        )
        hooks.run("after_promote", incident_id=incident.incident_id, payload={"service": service.name})
    check = promoter.verify_writable()
    if not check.writable:
        raise PromotionFailed(
            f"the DR database of {service.name} was promoted but a test write failed ({check.reason}): "
            "not switching traffic to it"
        )
    verified = f"{reason}; a test write succeeded: {check.reason}"
    ports.store.update_incident(
        service.name,
        incident.incident_id,
        {"writable_verified_at": ports.clock()},
        timeline=entry("writable", verified, ports.clock()),
    )
    return {**receipt, "writable": True, "reason": verified, "at": ports.clock()}
