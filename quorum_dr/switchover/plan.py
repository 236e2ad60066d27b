"""Plan and refuse: the request becomes the switchover context, then the preconditions that need
no site agent (the service's state, the incident lock, the quorum of recent probe results)."""

from __future__ import annotations

from typing import Any

from quorum_dr.domain.quorum import evaluate_service
from quorum_dr.domain.switchover import check_preconditions
from quorum_dr.failover.holding import read_state
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import entry
from quorum_dr.failover.validate import refuse_reused_incident_id
from quorum_dr.switchover.request import Switchover, start_switchover


def validate(ports: Ports, event: dict[str, Any]) -> dict[str, Any]:
    """The execution input as the switchover context; bad input raises InvalidInput, before any
    side effect (not even the incident record is written)."""
    switchover = start_switchover(
        event.get("input"),
        execution_name=str(event.get("execution_name") or ""),
        started_at=event.get("started_at"),
        config=ports.config,
        now=ports.clock(),
    )
    refuse_reused_incident_id(ports, switchover)
    answer = switchover.model_dump(mode="json")
    answer["reason"] = (
        f"{'dry run of a ' if switchover.dry_run else ''}planned switchover of {switchover.service} from "
        f"{switchover.source} to {switchover.target} requested by {switchover.requested_by}: "
        f"{switchover.reason}"
    )
    return answer


def preconditions(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    """Refuse unless the target is not active, the service does not need attention, no incident
    holds the lock and the quorum of recent probe results sees the target's application UP."""
    name = switchover.service
    now = ports.clock()
    state = read_state(ports, name)
    results = ports.results().recent_results(name, now - ports.config.probe.freshness_seconds)
    verdicts = evaluate_service(results, ports.config, name, now)
    decision = check_preconditions(
        state,
        target=switchover.target,
        lock=ports.store.get_lock(name),
        own_execution=switchover.execution_name,
        target_verdict=verdicts.get(switchover.target),
    )
    reason = decision.reason + (" (dry run)" if switchover.dry_run else "")
    ports.store.update_incident(
        name,
        switchover.incident_id,
        {
            "kind": "switchover",
            "service": name,
            "trigger": "manual",
            "target": switchover.target,
            "reason": switchover.reason,
            "requested_by": switchover.requested_by,
            "dry_run": switchover.dry_run,
            "started_at": switchover.started_at,
            "detected_at": switchover.started_at,
            "status": "OPEN",
        },
        timeline=entry("preconditions", reason, now),
    )
    return {"proceed": decision.proceed, "code": decision.code, "reason": reason, "at": now}


def handle(ports: Ports, event: dict[str, Any]) -> dict[str, Any]:
    action = event.get("action")
    if action == "validate":
        return validate(ports, event)
    if action == "preconditions":
        return preconditions(ports, Switchover.model_validate(event["switchover"]))
    raise ValueError(f"switchover_plan: unknown action {action!r}")
