"""What `drctl approve|veto|status|reset` do, against the state store and Step Functions."""

from __future__ import annotations

import json
from typing import Any

from quorum_dr.config_types import MAX_REASON_CHARS, clean_text
from quorum_dr.domain.state import ServiceState, ServiceStatus
from quorum_dr.failover.receipts import entry
from quorum_dr.ports import StateStore


class OperatorError(Exception):
    """The operator's command cannot be carried out; the message says why."""


def answer_request(
    store: StateStore, sfn: Any, *, service: str, incident_id: str, decision: str, by: str, now: float
) -> str:
    """Send the approve / veto answer to the incident's waiting step."""
    record = store.get_incident(service, incident_id)
    if not record:
        raise OperatorError(f"no incident {incident_id} for service {service}")
    token = record.task_token
    if not token:
        raise OperatorError(f"incident {incident_id} is not waiting for an approval or a veto")
    if decision == "veto":
        sfn.send_task_failure(taskToken=token, error="Vetoed", cause=f"{by} vetoed incident {incident_id}")
    else:
        sfn.send_task_success(taskToken=token, output=json.dumps({"decision": decision, "by": by}))
    sentence = f"{by} answered {decision} to incident {incident_id}"
    store.update_incident(
        service,
        incident_id,
        {"task_token": None, "awaiting": None},
        timeline=entry(f"operator_{decision}", sentence, now),
    )
    return sentence


def status(store: StateStore, service: str) -> dict[str, Any]:
    return {
        "state": store.get_state(service),
        "lock": store.get_lock(service),
        "incidents": [
            {
                "incident_id": i.incident_id,
                "status": i.status,
                "outcome": i.outcome,
                "trigger": i.trigger,
                "rto_seconds": i.rto_seconds,
                "finished_at": i.finished_at,
            }
            for i in store.list_incidents(service, limit=5)
        ],
    }


def reset(store: StateStore, service: str, *, reason: str, by: str, now: float) -> str:
    """Clear NEEDS_ATTENTION and the lock. The active site stays as it is. The reason is stored
    without control characters and may be at most MAX_REASON_CHARS long."""
    reason = clean_text(reason)
    if not reason:
        raise OperatorError("reset needs a reason")
    if len(reason) > MAX_REASON_CHARS:
        raise OperatorError(
            f"the reset's reason is {len(reason)} characters long; at most {MAX_REASON_CHARS}"
        )
    lock = store.clear_lock(service)
    raw = store.get_state(service)
    state = ServiceState.model_validate({**raw, "service": service})
    new = state.model_copy(
        update={
            "status": ServiceStatus.FAILED_OVER if state.active_site != "main" else ServiceStatus.HEALTHY,
            "lock_holder": None,
            "lock_expires_at": None,
        }
    )
    store.put_state(new.model_dump(mode="json"), expected_version=state.version)
    holder = (lock or {}).get("incident_id")
    sentence = f"{by} reset {service} ({reason.strip()}): status {new.status.value}, " + (
        f"lock of incident {holder} cleared" if holder else "no lock was held"
    )
    if holder:
        store.update_incident(service, holder, {"status": "RESET"}, timeline=entry("reset", sentence, now))
    return sentence
