"""The watchdog's Lambda functions by name: one table for the stacks and the local harness.

Each function is `lambdas/<key>/handler.py` exposing `handler(event, context)`, deployed as
`quorum-dr-<key with dashes>`; a state machine's ASL names an action function's ARN by the
substitution `${<Key>FunctionArn}`, and each state machine calls its own functions only
(`MACHINE_FUNCTIONS`). No CDK here, so the Step Functions harness
(`quorum_dr_local.sfn_harness`) reads the same table as the stacks (`stacks/naming.py`).
"""

from __future__ import annotations

PREFIX = "quorum-dr"

# The 15 functions: the probe (one per probe region), the 10 the failover state machine calls and
# the 4 of the planned switchover.
PROBE = "probe"
# The scheduled readiness evaluation (home region, every 5 minutes; no state machine calls it).
READINESS = "readiness"
# Per service: the tables, Step Functions, Secrets Manager in each region, EC2 / SSM, two Cloudflare
# reads each within the edge adapter's 10 s retry budget, the file-sync marker; then the event.
READINESS_TIMEOUT = 180
FAILOVER_FUNCTIONS = (
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
# The planned switchover: plan and refuse (state and results tables only), the databases (the
# site agents' keys and the sync check's database secrets), the edge (the API token, the probe
# functions), the record (state, lock, notifications).
SWITCHOVER_FUNCTIONS = (
    "switchover_plan",
    "switchover_database",
    "switchover_edge",
    "switchover_record",
)
ACTION_FUNCTIONS = FAILOVER_FUNCTIONS + SWITCHOVER_FUNCTIONS  # every function a state machine calls
# The cold site's restore rehearsal (statemachines/rehearsal.asl.yaml): one function, its own role
# (stacks/rehearsal.py); not an action function of the failover or the switchover.
REHEARSAL_FUNCTIONS = ("rehearse_cold_site",)
MACHINE_FUNCTIONS = {
    "failover": FAILOVER_FUNCTIONS,
    "switchover": SWITCHOVER_FUNCTIONS,
    "rehearsal": REHEARSAL_FUNCTIONS,
}

# Each holds its function's worst case: every call it makes at its timeout, every retry and wait
# (tests/infrastructure/test_budgets.py adds them up from the config and the code's constants).
TIMEOUTS = {
    "incident_state": 150,  # up to 4 state-table calls
    "confirm_outage": 120,  # one on-demand round from every region, invoked in parallel
    "check_replica": 150,  # two secrets, the bounded wait for replay
    "promote_database": 660,  # hooks, advisory lock and pg_promote(true, 60), verify, record
    "fence_main": 210,  # the fence of main (roles, sessions, the check, the final position) and the hook
    "switch_edge": 780,  # up to 9 Cloudflare calls (3 load-balancer pools), each retried for 60 s
    "launch_cold_site": 720,  # five EC2/SSM calls and the wait for running before the Elastic IP
    "verify_switch": 420,  # verify rounds for up to verify.window_seconds (at most 300 s), one more round
    "notify": 110,  # SNS and a webhook; below the veto window (WaitForVeto's task timeout)
    "switchover_plan": 120,  # the state, the lock, the recent results, the incident record
    # the sync check: twice (when the positions moved) both digests and the bounded wait between
    # them; or three agent requests (the roll back), or the bounded wait for the final position
    "switchover_database": 720,
    "switchover_edge": 780,  # as switch_edge (the Cloudflare calls) and verify_switch (the window)
    "switchover_record": 180,  # the escalation (up to 6 state-table calls) or the notification
}
DEFAULT_TIMEOUT = 30


def timeout(name: str) -> int:
    """The deployed timeout of action function `name`, in seconds."""
    return TIMEOUTS.get(name, DEFAULT_TIMEOUT)


def function_name(name: str) -> str:
    """`promote_database` -> `quorum-dr-promote-database`."""
    return f"{PREFIX}-{name.replace('_', '-')}"


def substitution_name(name: str) -> str:
    """`promote_database` -> `PromoteDatabaseFunctionArn` (the ASL's ${...} name)."""
    return "".join(part.capitalize() for part in name.split("_")) + "FunctionArn"
