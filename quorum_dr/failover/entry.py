"""The shape every failover Lambda shares: correlation id, ports, one call, a JSON answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quorum_dr.failover import wiring
from quorum_dr.failover.ports import Ports
from quorum_dr.observability import logger

Step = Callable[[Ports, dict[str, Any]], dict[str, Any]]


def run(step: str, event: Any, call: Step) -> dict[str, Any]:
    if not isinstance(event, dict):
        event = {"input": event}
    incident = event.get("incident") if isinstance(event.get("incident"), dict) else {}
    incident_id = incident.get("incident_id") or event.get("execution_name")
    logger.set_correlation_id(incident_id)
    logger.append_keys(step=step, service=incident.get("service"))
    try:
        answer = call(wiring.current(), event)
    except Exception as exc:
        logger.warning(f"{step} failed: {type(exc).__name__}: {exc}")
        raise
    logger.info(f"{step}: {answer.get('reason', 'done')}")
    return answer
