"""The switchover's record: refusal, cooldown, active site, lock, roll back, escalation, notifications."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.entry import run
from quorum_dr.observability import logger, metrics, tracer
from quorum_dr.switchover.record import handle


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    return run("switchover_record", event, handle)
