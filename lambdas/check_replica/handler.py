"""Is the DR standby safe to promote (lag limits, bounded wait for replay)?"""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.entry import run
from quorum_dr.failover.replica import handle
from quorum_dr.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    return run("check_replica", event, handle)
