"""Launch the cold site; its bootstrap answers the task token when it is ready."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.cold_site import launch
from quorum_dr.failover.entry import run
from quorum_dr.failover.request import Incident
from quorum_dr.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    return run(
        "launch_cold_site",
        event,
        lambda ports, e: launch(ports, Incident.model_validate(e["incident"]), e.get("task_token")),
    )
