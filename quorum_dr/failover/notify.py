"""Tell the operators: outcome, escalation, no decision, and the veto / approval requests that
carry a task token (kept in the incident record for `drctl approve|veto`)."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.errors import NotificationNotDelivered
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import as_dict, entry
from quorum_dr.failover.request import Incident

KINDS = (
    "no_decision",
    "no_action",
    "gates_closed",
    "called_off",
    "veto_window",
    "approval_request",
    "alert_only",
    "failed_over",
    "escalation",
)
# A notification that asks an operator for an answer: delivered on no channel, it is a failure
# (the veto window would otherwise pass silently to auto, the approval wait for nobody).
MUST_REACH_SOMEONE = ("veto_window", "approval_request")
# What a shadow execution really tells: where auto would have acted, or would have escalated.
SHADOW_TOLD = ("failed_over", "escalation")


def _message(incident: Incident, kind: str, event: dict[str, Any]) -> str:
    scenario = event.get("scenario") or {}
    if kind == "veto_window":
        return (
            f"{scenario.get('reason', '')}. The failover starts in {incident.veto_seconds} s unless an "
            f"operator runs: drctl veto {incident.incident_id} --service {incident.service}"
        )
    if kind == "approval_request":
        return (
            f"{scenario.get('reason', '')}. Approve within {incident.approval_timeout_seconds} s with: "
            f"drctl approve {incident.incident_id} --service {incident.service} (or veto it)"
        )
    if kind == "alert_only":
        return f"{scenario.get('reason', '')}. Mode manual: start it with drctl failover if you agree."
    if kind == "failed_over":
        return str((event.get("record") or {}).get("reason", "failover done"))
    if kind == "escalation":
        return _escalation_message(incident, event)
    if kind == "gates_closed":
        confirm = (event.get("confirm") or {}).get("reason")
        return (
            f"{event.get('reason') or 'the gates are closed'}. The outage is confirmed "
            f"({confirm or 'main is DOWN'}) and nothing is done automatically: an operator must act "
            f"(drctl failover --service {incident.service} --to dr|cold --reason ...)"
        )
    if kind == "no_action":
        return f"{event.get('reason') or 'no failover applies'}. Nothing was done automatically."
    return str(event.get("reason") or kind.replace("_", " "))


def _escalation_message(incident: Incident, event: dict[str, Any]) -> str:
    """What Escalate recorded; when Escalate itself failed (its Catch put the error at
    $.escalation), say so with the original error: NEEDS_ATTENTION may not be set."""
    escalation = event.get("escalation") or {}
    error = event.get("error") or {}
    original = error.get("Cause") or error.get("Error") or "unknown error"
    if escalation.get("reason"):
        return str(escalation["reason"])
    failure = escalation.get("Cause") or escalation.get("Error") or "no answer"
    return (
        f"{incident.service} needs attention after incident {incident.incident_id}: {original}. "
        f"Recording the escalation ALSO failed ({escalation.get('Error', 'Error')}: {failure}): the "
        f"state may not say NEEDS_ATTENTION; check drctl status and the incident, then drctl reset."
    )


def notify(ports: Ports, event: dict[str, Any]) -> dict[str, Any]:
    incident = Incident.model_validate(event["incident"])
    kind = str(event.get("kind"))
    if kind not in KINDS:
        raise ValueError(f"notify: unknown kind {kind!r}")
    message = _message(incident, kind, event)
    subject = f"[quorum-dr] {incident.service}: {kind.replace('_', ' ')} ({incident.incident_id})"
    now = ports.clock()
    fields: dict[str, Any] = {}
    if event.get("task_token"):
        fields = {"task_token": event["task_token"], "awaiting": kind}
    # Mode shadow tells what auto would have done (a failover, an escalation); the rest of a shadow
    # run is a dry run's silence.
    told_in_shadow = incident.shadow and kind in SHADOW_TOLD
    if told_in_shadow:
        subject = f"[quorum-dr] {incident.service}: shadow decision ({incident.incident_id})"
    if incident.dry_run and not told_in_shadow:
        reason = f"dry run: would notify '{subject}': {message}"
        receipt: dict[str, Any] = {"dry_run": True}
    else:
        detail = {"incident_id": incident.incident_id, "service": incident.service, "kind": kind}
        receipt = as_dict(
            ports.notifier().notify(subject, message, incident_id=incident.incident_id, detail=detail)
        )
        reason = f"notified: {subject}"
        delivered = receipt.get("delivered")
        if kind in MUST_REACH_SOMEONE and not (isinstance(delivered, int) and delivered > 0):
            sentence = (
                f"the {kind.replace('_', ' ')} of incident {incident.incident_id} reached no operator "
                f"({receipt.get('reason') or 'no delivery was reported'}): not waiting for an answer "
                f"nobody was asked for"
            )
            ports.store.update_incident(
                incident.service, incident.incident_id, {}, timeline=entry(f"notify_{kind}", sentence, now)
            )
            raise NotificationNotDelivered(sentence)
    ports.store.update_incident(
        incident.service, incident.incident_id, fields, timeline=entry(f"notify_{kind}", reason, now)
    )
    return {"kind": kind, "reason": reason, "receipt": receipt, "at": now}
