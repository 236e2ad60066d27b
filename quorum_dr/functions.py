"""The watchdog's Lambda functions by name: one table for the stacks and the local harness.

Each function is `lambdas/<key>/handler.py` exposing `handler(event, context)`, deployed as
`quorum-dr-<key with dashes>`; the failover ASL names an action function's ARN by the
substitution `${<Key>FunctionArn}`. No CDK here, so the Step Functions harness
(`quorum_dr_local.sfn_harness`) reads the same table as the stacks (`stacks/naming.py`).
"""

from __future__ import annotations

PREFIX = "quorum-dr"

# The 11 functions: the probe (one per probe region) and the 10 the failover state machine calls.
PROBE = "probe"
ACTION_FUNCTIONS = (
    "validate_input",
    "incident_state",
    "confirm_outage",
    "check_replica",
    "promote_database",
    "fence_main",
    "switch_edge",
    "launch_cold_site",
    "verify_switch",
    "notify",
)


def function_name(name: str) -> str:
    """`promote_database` -> `quorum-dr-promote-database`."""
    return f"{PREFIX}-{name.replace('_', '-')}"


def substitution_name(name: str) -> str:
    """`promote_database` -> `PromoteDatabaseFunctionArn` (the ASL's ${...} name)."""
    return "".join(part.capitalize() for part in name.split("_")) + "FunctionArn"
