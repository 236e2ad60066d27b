"""The shape every failover and switchover Lambda shares: correlation id, ports, one call, a JSON
answer. The correlation id is the incident id (`$.incident` of a failover, `$.switchover` of a
planned switchover, else the execution's name).

Each call counts in the metrics (namespace QuorumDR, dimension `step`, the function's name):
`StepSucceeded` or `StepFailed` (1 per invocation; what failed is in the log line and the
EMF record's `error` field) and `StepSeconds`. The handler's `metrics.log_metrics` flushes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from quorum_dr.failover import wiring
from quorum_dr.failover.ports import Ports
from quorum_dr.observability import logger, measured_step, metrics

Step = Callable[[Ports, dict[str, Any]], dict[str, Any]]


def run(step: str, event: Any, call: Step) -> dict[str, Any]:
    if not isinstance(event, dict):
        event = {"input": event}
    context = event.get("incident") or event.get("switchover")
    incident = context if isinstance(context, dict) else {}
    incident_id = incident.get("incident_id") or event.get("execution_name")
    logger.set_correlation_id(incident_id)
    logger.append_keys(step=step, service=incident.get("service"))
    if incident_id:
        metrics.add_metadata(key="incident_id", value=str(incident_id))
    with measured_step(step, step):
        answer = call(wiring.current(), event)
    if answer.get("shadow_decision"):
        metrics.add_metric(name="ShadowDecisions", unit=MetricUnit.Count, value=1)
    logger.info(f"{step}: {answer.get('reason', 'done')}")
    return answer
