"""The state machine's first step: the execution input becomes the incident context."""

from __future__ import annotations

from typing import Any, Protocol

from quorum_dr.domain.decisions import Decision, trigger_applies
from quorum_dr.failover.errors import InvalidInput
from quorum_dr.failover.holding import read_state
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.request import Incident, start_incident


def handle(ports: Ports, event: dict[str, Any]) -> dict[str, Any]:
    incident = start_incident(
        event.get("input"),
        execution_name=str(event.get("execution_name") or ""),
        started_at=event.get("started_at"),
        config=ports.config,
        now=ports.clock(),
    )
    refuse_reused_incident_id(ports, incident)
    answer = incident.model_dump(mode="json")
    answer["reason"] = f"{incident.trigger} start of incident {incident.incident_id}: {incident.reason}"
    applies = trigger_decision(ports, incident)
    answer["trigger_applies"] = applies.proceed
    if not applies.proceed:
        answer["reason"] += f"; {applies.reason}"
    return answer


def trigger_decision(ports: Ports, incident: Incident) -> Decision:
    """A manual start always goes on to the lock (the operator named the target; the gates judge
    it). An automatic trigger for a site that does not serve ends here (`TriggerApplies`)."""
    if incident.trigger != "auto" or incident.trigger_site is None:
        return Decision(proceed=True, code="manual", reason="a manual start goes on to the lock")
    return trigger_applies(read_state(ports, incident.service), incident.trigger_site)


class Identified(Protocol):
    """What names one incident (a failover's or a planned switchover's)."""

    @property
    def service(self) -> str: ...

    @property
    def incident_id(self) -> str: ...


def refuse_reused_incident_id(ports: Ports, incident: Identified) -> None:
    """An incident id names one incident: a start that reuses one (an escalated incident's, whose
    lock is kept, or any other) is refused before it takes a lock or writes a record. The lock's
    condition would stop it too (its holder is the execution's name), but this says why."""
    record = ports.store.get_incident(incident.service, incident.incident_id)
    if record is None:
        return
    sentence = (
        f"input rejected: incident {incident.incident_id} of {incident.service} already exists "
        f"(status {record.status or 'unknown'}); a new start needs a new incident id"
    )
    lock = ports.store.get_lock(incident.service) or {}
    if lock.get("kept") and lock.get("incident_id") == incident.incident_id:
        sentence += (
            f"; {incident.incident_id} keeps the lock of {incident.service}: "
            "an operator must run drctl reset before automation acts again"
        )
    raise InvalidInput(sentence)
