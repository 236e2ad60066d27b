"""Notify the operators (SNS, signed webhook); veto and approval requests keep their task token."""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.entry import run
from quorum_dr.failover.notify import notify


def handler(event: Any, context: Any) -> dict[str, Any]:
    return run("notify", event, notify)
