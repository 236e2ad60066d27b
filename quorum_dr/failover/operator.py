"""What `drctl approve|veto|status|reset` do, against the state store and Step Functions."""

from __future__ import annotations

import json
from typing import Any

from quorum_dr.config_types import MAX_REASON_CHARS, clean_text
from quorum_dr.domain.history import kind_of, started_of
from quorum_dr.domain.state import AutomationChange, ResetRecord, ServiceState, ServiceStatus
from quorum_dr.failover.errors import StaleState
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
                "kind": kind_of(i),
                "started_at": started_of(i),
                "target": i.target,
                "status": i.status,
                "outcome": i.outcome,
                "trigger": i.trigger,
                "rto_seconds": i.rto_seconds,
                "finished_at": i.finished_at,
            }
            for i in store.list_incidents(service, limit=5)
        ],
    }


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:aws:states:R:A:stateMachine:M + name -> arn:aws:states:R:A:execution:M:name."""
    if ":stateMachine:" not in state_machine_arn:
        raise OperatorError(f"{state_machine_arn!r} is not a state machine ARN")
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


def execution_status(sfn: Any, state_machine_arn: str, name: str) -> str:
    """What Step Functions says of the lock holder's execution: RUNNING, SUCCEEDED, ... or
    NOT_FOUND. The state machine itself must exist, so a mistyped ARN cannot pass the check."""
    from botocore.exceptions import ClientError

    try:
        sfn.describe_state_machine(stateMachineArn=state_machine_arn)
    except ClientError as exc:
        raise OperatorError(
            f"cannot check the lock's execution: state machine {state_machine_arn}: "
            f"{exc.response.get('Error', {}).get('Message') or exc}"
        ) from None
    try:
        described = sfn.describe_execution(executionArn=execution_arn(state_machine_arn, name))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return "NOT_FOUND"
        raise
    return str(described["status"])


def reset(
    store: StateStore,
    service: str,
    *,
    reason: str,
    by: str,
    now: float,
    sfn: Any = None,
    state_machine_arn: str | None = None,
    force: bool = False,
) -> str:
    """Clear NEEDS_ATTENTION and the lock. The active site stays as it is.

    Refused while the lock's execution is RUNNING (Step Functions is asked), unless `force`; the
    state and the lock change in one transaction, so a concurrent change leaves both as they were.
    """
    reason = clean_text(reason)  # stored and echoed: no control characters, bounded
    if not reason:
        raise OperatorError("reset needs a reason")
    if len(reason) > MAX_REASON_CHARS:
        raise OperatorError(
            f"the reset's reason is {len(reason)} characters long; at most {MAX_REASON_CHARS}"
        )
    lock = store.get_lock(service)
    incident = (lock or {}).get("incident_id")
    # Locks from before holders existed: executions are named after their incidents.
    holder = (lock or {}).get("holder") or incident
    holder_status: str | None = None
    if lock and holder:
        if sfn is not None and state_machine_arn:
            holder_status = execution_status(sfn, state_machine_arn, holder)
        elif not force:
            raise OperatorError(
                f"cannot check whether execution {holder} (incident {incident}), which holds the lock of "
                f"{service}, is still running: give --state-machine-arn or set STATE_MACHINE_ARN "
                "(or --force with a reason)"
            )
        if holder_status == "RUNNING" and not force:
            raise OperatorError(
                f"reset refused: execution {holder} (incident {incident}) is still RUNNING and holds the "
                f"lock of {service}; wait for it or stop it, or give --force with a reason (audited)"
            )
    raw = store.get_state(service)
    state = ServiceState.model_validate({**raw, "service": service})
    new = state.model_copy(
        update={
            "status": ServiceStatus.FAILED_OVER if state.active_site != "main" else ServiceStatus.HEALTHY,
            "lock_holder": None,
            "lock_expires_at": None,
            "last_reset": ResetRecord(
                at=now,
                by=by,
                reason=reason.strip(),
                forced=force,
                holder=holder if lock else None,
                holder_status=holder_status or ("UNCHECKED" if lock else None),
            ),
        }
    )
    try:
        store.reset_state(new.model_dump(mode="json"), expected_version=state.version, lock=lock)
    except StaleState as exc:
        raise OperatorError(
            f"reset not done, nothing changed (the lock is as it was): {exc}; run drctl status and try again"
        ) from None
    forced = (
        f" with --force while execution {holder} was {holder_status or 'unchecked'}" if force and lock else ""
    )
    sentence = f"{by} reset {service}{forced} ({reason.strip()}): status {new.status.value}, " + (
        f"lock of incident {incident} cleared" if lock else "no lock was held"
    )
    if incident:
        store.update_incident(service, incident, {"status": "RESET"}, timeline=entry("reset", sentence, now))
    return sentence


def set_automation(
    store: StateStore, service: str, *, enabled: bool, reason: str, by: str, now: float
) -> str:
    """Pause (`enabled=False`) or resume automatic failover of `service`: the kill switch.

    While paused, the gates refuse every automatic trigger (an outage is still confirmed and told
    to a person: invariant 10); a manual `drctl failover` still runs. Who, when and why are kept in
    the state item. A versioned write: a concurrent change leaves the state as it was.
    """
    reason = clean_text(reason)
    verb = "resume" if enabled else "pause"
    if not reason:
        raise OperatorError(f"{verb} needs a reason")
    if len(reason) > MAX_REASON_CHARS:
        raise OperatorError(
            f"the {verb}'s reason is {len(reason)} characters long; at most {MAX_REASON_CHARS}"
        )
    raw = store.get_state(service)
    state = ServiceState.model_validate({**raw, "service": service})
    change = AutomationChange(at=now, by=by, reason=reason.strip(), enabled=enabled)
    new = state.model_copy(update={"automation_enabled": enabled, "automation_changed": change})
    try:
        store.put_state(new.model_dump(mode="json"), expected_version=state.version)
    except StaleState as exc:
        raise OperatorError(
            f"{verb} not done, nothing changed: {exc}; run drctl status and try again"
        ) from None
    was = "" if state.automation_enabled != enabled else f" (it was already {'on' if enabled else 'off'})"
    if enabled:
        return (
            f"{by} resumed automatic failover of {service}{was} ({change.reason}): automatic triggers "
            f"act again (status {new.status.value}, active site {new.active_site})"
        )
    return (
        f"{by} paused automatic failover of {service}{was} ({change.reason}): automatic triggers are "
        "refused at the gates (a confirmed outage is still told) until drctl resume; drctl failover "
        "still works"
    )
