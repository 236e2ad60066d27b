"""Switch the Cloudflare edge to the target site and read it back."""

from __future__ import annotations

from typing import Any

# The Cloudflare SDK takes about a second to import: in the init phase of the function, not inside
# the switch, where every second is the clients' outage (the port builds its client lazily).
import quorum_dr.adapters.cloudflare_edge  # noqa: F401
from quorum_dr.failover.entry import run
from quorum_dr.failover.request import Incident
from quorum_dr.failover.switch import switch
from quorum_dr.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    return run(
        "switch_edge",
        event,
        lambda ports, e: switch(
            ports, Incident.model_validate(e["incident"]), str(e["target"]), e.get("promotion")
        ),
    )
