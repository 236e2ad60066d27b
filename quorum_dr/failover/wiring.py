"""Which ports the failover steps use in this process: set once, read by every step.

A deployed function never calls `use`: on first use `current()` builds the production set from
the environment (`quorum_dr.failover.production.from_env`). Tests and the drill hand their own
set to `use(...)`, and `use(None)` goes back to the environment.
"""

from __future__ import annotations

import threading

from quorum_dr.failover.ports import Ports
from quorum_dr.failover.production import from_env

_lock = threading.Lock()
_ports: Ports | None = None


def use(ports: Ports | None) -> None:
    """Use this set of ports from now on (None: build from the environment on next use)."""
    global _ports
    with _lock:
        _ports = ports


def current() -> Ports:
    """The ports in use, built from the environment the first time if nobody set them."""
    global _ports
    with _lock:
        if _ports is None:
            _ports = from_env()
        return _ports
