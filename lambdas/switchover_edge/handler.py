"""Switch the edge to the switchover's target (only once it is verified writable) and verify through
the public hostname."""

from __future__ import annotations

from typing import Any

# The Cloudflare SDK takes about a second to import: in the init phase of the function, not inside
# the switch, where every second is the clients' outage (the port builds its client lazily).
import quorum_dr.adapters.cloudflare_edge  # noqa: F401
from quorum_dr.failover.entry import run
from quorum_dr.observability import logger, metrics, tracer
from quorum_dr.switchover.edge import handle


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    return run("switchover_edge", event, handle)
