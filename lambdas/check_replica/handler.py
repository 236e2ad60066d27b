"""Is the DR standby safe to promote (lag limits, bounded wait for replay)?"""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.entry import run
from quorum_dr.failover.replica import handle


def handler(event: Any, context: Any) -> dict[str, Any]:
    return run("check_replica", event, handle)
