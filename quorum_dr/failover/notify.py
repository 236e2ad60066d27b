"""Tell the operators: outcome, escalation, no decision, and the veto / approval requests that
carry a task token (kept in the incident record for `drctl approve|veto`)."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import as_dict, entry
from quorum_dr.failover.request import Incident

KINDS = ("no_decision", "veto_window", "approval_request", "alert_only", "failed_over", "escalation")


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
        return str(
            (event.get("escalation") or {}).get("reason") or (event.get("error") or {}).get("Cause", "")
        )
    return str(event.get("reason") or kind.replace("_", " "))


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
    if incident.dry_run:
        reason = f"dry run: would notify '{subject}': {message}"
        receipt: dict[str, Any] = {"dry_run": True}
    else:
        detail = {"incident_id": incident.incident_id, "service": incident.service, "kind": kind}
        receipt = as_dict(
            ports.notifier().notify(subject, message, incident_id=incident.incident_id, detail=detail)
        )
        reason = f"notified: {subject}"
    ports.store.update_incident(
        incident.service, incident.incident_id, fields, timeline=entry(f"notify_{kind}", reason, now)
    )
    return {"kind": kind, "reason": reason, "receipt": receipt, "at": now}
