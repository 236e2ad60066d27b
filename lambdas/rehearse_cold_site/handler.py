"""The cold site's restore rehearsal, one step per `action` (statemachines/rehearsal.asl.yaml):
begin, launch (its bootstrap answers the task token), judge (record, publish), terminate."""

from __future__ import annotations

from typing import Any

from quorum_dr.observability import logger, metrics, tracer
from quorum_dr.rehearsal import wiring
from quorum_dr.rehearsal.service import run


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    rehearsal = event.get("rehearsal") if isinstance(event, dict) else None
    if isinstance(rehearsal, dict):
        logger.set_correlation_id(rehearsal.get("rehearsal_id"))
    logger.append_keys(step=event.get("action") if isinstance(event, dict) else None)
    answer = run(wiring.current(), event if isinstance(event, dict) else {})
    logger.info(str(answer.get("reason", "done")))
    return answer
