"""Verify the switch through the public hostname, or the cold origin's health as a fallback."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.entry import run
from quorum_dr.failover.request import Incident
from quorum_dr.failover.verify import verify
from quorum_dr.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    return run(
        "verify_switch",
        event,
        lambda ports, e: verify(
            ports,
            Incident.model_validate(e["incident"]),
            str(e.get("target")),
            origin_only=e.get("action") == "cold_health",
        ),
    )
