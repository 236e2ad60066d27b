"""Fence main's database (fenced, unreachable with evidence, or FenceFailed) and call the fence_main hook."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.entry import run
from quorum_dr.failover.promote import fence
from quorum_dr.failover.request import Incident
from quorum_dr.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    return run("fence_main", event, lambda ports, e: fence(ports, Incident.model_validate(e["incident"])))
