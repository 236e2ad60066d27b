"""The cold site's restore rehearsal, one step per `action` (statemachines/rehearsal.asl.yaml):
begin, launch (its bootstrap answers the task token), judge (record, publish), terminate.

Metrics as every state machine step (namespace QuorumDR, dimension `step` = rehearse_cold_site):
StepSucceeded or StepFailed and StepSeconds; the judge step adds `RehearsalPassed` (1 passed, 0
failed). The service is a dimension too when the event names it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from quorum_dr.observability import logger, measured_step, metrics, tracer
from quorum_dr.rehearsal import wiring
from quorum_dr.rehearsal.service import run

STEP = "rehearse_cold_site"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}
    state = event.get("state") if isinstance(event.get("state"), dict) else event
    rehearsal = state.get("rehearsal") if isinstance(state, dict) else None
    request = event.get("input") if isinstance(event.get("input"), dict) else {}
    if isinstance(rehearsal, dict):
        logger.set_correlation_id(rehearsal.get("rehearsal_id"))
    service = (rehearsal or {}).get("service") if isinstance(rehearsal, dict) else request.get("service")
    if isinstance(service, str) and service:
        metrics.add_dimension(name="service", value=service[:63])
    logger.append_keys(step=STEP, action=event.get("action"))
    with measured_step(STEP, f"{STEP} {event.get('action')}"):
        answer = run(wiring.current(), event)
    if event.get("action") == "judge":
        metrics.add_metric(
            name="RehearsalPassed", unit=MetricUnit.Count, value=1 if answer.get("passed") else 0
        )
    logger.info(str(answer.get("reason", "done")))
    return answer
