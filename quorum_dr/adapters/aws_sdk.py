"""One bound for every AWS SDK call an action function makes.

botocore's defaults (60 s to connect, 60 s per read, 5 attempts in legacy mode) would let one
DynamoDB call take ten minutes, longer than any Lambda may run. Every client the failover
adapters create uses this config instead, so a function's worst case is a sum of known numbers
(tests/infrastructure/test_budgets.py adds them up against each function's timeout). The probe
invocations (`lambda_probes`) keep their own, longer read timeout: they wait for a whole round.
"""

from __future__ import annotations

from typing import Any

CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 3.0
MAX_ATTEMPTS = 3  # standard retry mode: throttling and transient errors, with jittered backoff


def sdk_config() -> Any:
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
    )
