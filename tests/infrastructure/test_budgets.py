"""Budgets that fit: each function's worst case is below its synthesized timeout, and each Task of
the state machine waits longer than the function it runs.

The worst case is a sum of numbers the code uses (imported, never copied): every AWS SDK call at
its connect and read timeouts for every attempt plus the SDK's largest backoffs; every Cloudflare
call at its retry budget plus one last request; every signed POST at its attempts; every
PostgreSQL session at its connect timeout and statement timeouts; every waiter at its attempts.
The call counts per function are read off the code (named below, one line each); a function that
makes a new call must say so here, and the test tells whether its timeout still holds it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff

from quorum_dr import state_machines
from quorum_dr.adapters import aws_sdk, cloudflare_edge, cold_site, file_sync, lambda_probes, notifier
from quorum_dr.adapters import postgres_promoter as pg
from quorum_dr.config import VERIFY_WINDOW_MAX_SECONDS, Hook, Service, WatchdogConfig, load_config
from quorum_dr.failover.production import AGENT_TIMEOUT_SECONDS, probe_invoke_timeout
from quorum_dr.switchover import database as switchover_database_step
from stacks import naming
from tests.infrastructure.conftest import Synth

pytestmark = pytest.mark.infrastructure

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_MAX_SECONDS = 900


# -- the cost of one call of each kind --------------------------------------------------------


def sdk_call() -> float:
    """One AWS SDK call: every attempt at connect + read timeout, and the largest backoff between
    attempts (throttling scale 1 s, doubled, capped; plus what x-amz-retry-after may add)."""
    attempts = aws_sdk.MAX_ATTEMPTS
    backoffs = sum(
        min(2.0**i, ExponentialBackoff._MAX_BACKOFF) + ExponentialBackoff._RETRY_AFTER_MAX_ADDITIONAL
        for i in range(attempts - 1)
    )
    return attempts * (aws_sdk.CONNECT_TIMEOUT_SECONDS + aws_sdk.READ_TIMEOUT_SECONDS) + backoffs


def cloudflare_call() -> float:
    """One Cloudflare API call: waits only while they fit the retry budget, then one last request."""
    return cloudflare_edge.DEFAULT_RETRY_BUDGET_SECONDS + cloudflare_edge.REQUEST_TIMEOUT_SECONDS


def signed_post(timeout: float) -> float:
    attempts = notifier.POST_ATTEMPTS
    return attempts * timeout + sum(notifier.POST_BACKOFF_SECONDS * 2**i for i in range(attempts - 1))


def hook(h: Hook | None) -> float:
    """A configured hook: its signing secret and the signed POST."""
    return sdk_call() + signed_post(h.timeout_seconds) if h else 0.0


def probe_round(config: WatchdogConfig) -> float:
    """Every region's probe function in parallel, each bounded, plus the thread deadline's grace."""
    return probe_invoke_timeout(config) + lambda_probes.DEADLINE_GRACE_SECONDS


def session(statements: int, timeout: float) -> float:
    """A PostgreSQL session: connect (libpq's whole seconds, at least 2), then its statements."""
    return max(2, int(timeout + 0.999)) + statements * timeout


# -- each function's worst case, max over its actions -----------------------------------------


def validate_input(config: WatchdogConfig, service: Service) -> float:
    return 0.0  # parses its input against the bundled config: no call


def incident_state(config: WatchdogConfig, service: Service) -> float:
    # escalate: get_incident (what was promoted / switched), keep_lock, get_state, put_state,
    # update_incident (set_active_site: fewer)
    return 5 * sdk_call()


def confirm_outage(config: WatchdogConfig, service: Service) -> float:
    round_ = probe_round(config) + 2 * sdk_call()  # the round, results query, update_incident
    decide = 2 * sdk_call()  # get_state, update_incident
    return max(round_, decide)


def check_replica(config: WatchdogConfig, service: Service) -> float:
    assert service.database
    secrets = 2 * sdk_call()  # PostgresPromoter.from_config reads the main and the DR secret
    check = pg.TIMEOUT_SECONDS + 2 * sdk_call()  # replica status, results query, update_incident
    if service.file_sync:  # the file-sync marker DR serves: one read, abandoned at its deadline
        check += service.file_sync.timeout_seconds + file_sync.DEADLINE_GRACE_SECONDS
    replay = service.database.replay_wait_seconds + pg.TIMEOUT_SECONDS + pg.POLL_INTERVAL_SECONDS + sdk_call()
    final_position = replay  # after the fence: the same bounded wait, for main's final position
    return secrets + max(check, replay, final_position)


def fence_main(config: WatchdogConfig, service: Service) -> float:
    secrets = 2 * sdk_call()
    f = pg.FENCE_TIMEOUT_SECONDS
    assert service.database
    # SET synchronous_commit, in recovery? and who am I, the roles, ALTER ROLE per role, ALTER
    # SYSTEM, reload, the check of LOGIN, the final position
    statements = 7 + len(service.database.app_roles)
    read_only = f + f + 0.05  # the read-only wait: its bound, one more bounded query and a sleep
    sessions_ended = f + 2 * f + pg.POLL_INTERVAL_SECONDS  # its bound, overrun by one last round
    database = session(statements, f) + read_only + sessions_ended
    return secrets + database + hook(service.hooks.fence_main) + sdk_call()


def promote_database(config: WatchdogConfig, service: Service) -> float:
    secrets = 2 * sdk_call()
    statement = pg.PROMOTE_WAIT_SECONDS + pg.TIMEOUT_SECONDS  # the promote session's statement bound
    # connect; two SETs at the session's bound; lock, in recovery?, pg_promote, in recovery?, unlock
    promote = session(2, pg.TIMEOUT_SECONDS) + 5 * statement
    record = session(4, pg.TIMEOUT_SECONDS)  # the fresh session that records the incident
    writable = session(3, pg.TIMEOUT_SECONDS)  # verify_writable
    store = 3 * sdk_call()  # get_incident, two update_incident
    hooks = hook(service.hooks.before_promote) + hook(service.hooks.after_promote)
    return secrets + promote + record + writable + store + hooks


def edge_calls(service: Service) -> int:
    """Reads, writes and read-backs of a switch (see CloudflareEdge's docstring)."""
    if service.edge.kind == "dns":
        return 3 * len(service.edge.records)
    pools = service.edge.pools
    assert pools
    n = 2 + (1 if pools.cold else 0)
    return n + 2 * n  # one GET per pool, then per changed pool one PATCH and one read-back


def switch_edge(config: WatchdogConfig, service: Service) -> float:
    # the API token's secret, get_incident, update_incident, and the Cloudflare calls
    return 3 * sdk_call() + edge_calls(service) * cloudflare_call()


def launch_cold_site(config: WatchdogConfig, service: Service) -> float:
    polls = cold_site.RUNNING_WAIT_MAX_ATTEMPTS
    waiter = polls * sdk_call() + (polls - 1) * cold_site.RUNNING_WAIT_DELAY_SECONDS
    # describe (reuse), SSM image, RunInstances, DescribeAddresses, AssociateAddress, update_incident
    return 6 * sdk_call() + waiter


def verify_switch(config: WatchdogConfig, service: Service) -> float:
    # verify rounds within the window at the most any config may set (the timeout is one number
    # for every config); the last round starts by the window's end; then update_incident
    return VERIFY_WINDOW_MAX_SECONDS + probe_round(config) + sdk_call()


def notify(config: WatchdogConfig, service: Service) -> float:
    webhooks = sum(sdk_call() + signed_post(w.timeout_seconds) for w in config.notifications.webhooks)
    return sdk_call() + webhooks + sdk_call()  # SNS publish, the webhooks, update_incident


# -- the planned switchover's functions ----------------------------------------------------------

# One side's digest by the sync check (quorum_dr/adapters/postgres_sync.py, not in this branch):
# its bound is database.sync_check.timeout_seconds (default 30) plus its connection. Assumed here
# until the adapter merges; then count its own numbers.
SYNC_DIGEST_SECONDS = 30 + 30


def agent_call() -> float:
    """One signed request to a site agent, at the client's timeout."""
    return AGENT_TIMEOUT_SECONDS


def switchover_plan(config: WatchdogConfig, service: Service) -> float:
    # preconditions: get_state, the recent results, get_lock, update_incident (validate: fewer)
    return 4 * sdk_call()


def switchover_database(config: WatchdogConfig, service: Service) -> float:
    assert service.database
    secrets = 4 * sdk_call()  # both agents' keys, the sync check's two database secrets
    check = 2 * agent_call()  # both statuses
    # the bounded wait for the target's replay: the last status read starts by the deadline
    wait = service.database.replay_wait_seconds + agent_call() + switchover_database_step.POLL_SECONDS
    # the active site, the wait, the target, as many times as the positions may move
    sync_check = switchover_database_step.SYNC_ATTEMPTS * (SYNC_DIGEST_SECONDS + wait + SYNC_DIGEST_SECONDS)
    promote = 2 * agent_call() + sdk_call()  # promote, unfreeze, and one more incident update
    roll_back = 3 * agent_call()  # status, start, unfreeze
    return secrets + max(check, wait, sync_check, promote, roll_back) + sdk_call()  # update_incident


def switchover_edge(config: WatchdogConfig, service: Service) -> float:
    return max(switch_edge(config, service), verify_switch(config, service))  # the same calls


def switchover_record(config: WatchdogConfig, service: Service) -> float:
    # escalate: get_incident, keep_lock, get_lock (when it could not be kept), get_state,
    # put_state, update_incident; notify: as the notify function
    return max(6 * sdk_call(), notify(config, service))


WORST_CASE: dict[str, Callable[[WatchdogConfig, Service], float]] = {
    "validate_input": validate_input,
    "incident_state": incident_state,
    "confirm_outage": confirm_outage,
    "check_replica": check_replica,
    "promote_database": promote_database,
    "fence_main": fence_main,
    "switch_edge": switch_edge,
    "launch_cold_site": launch_cold_site,
    "verify_switch": verify_switch,
    "notify": notify,
    "switchover_plan": switchover_plan,
    "switchover_database": switchover_database,
    "switchover_edge": switchover_edge,
    "switchover_record": switchover_record,
}


@pytest.fixture(scope="module")
def config(example_config_path: Path) -> WatchdogConfig:
    return load_config(example_config_path)


def synthesized_timeouts(synth: Synth) -> dict[str, int]:
    names = {naming.function_name(name): name for name in naming.ACTION_FUNCTIONS}
    found = {}
    for resource in synth.resources(synth.deployment.control, "AWS::Lambda::Function").values():
        props = resource["Properties"]
        if props.get("FunctionName") in names:
            found[names[props["FunctionName"]]] = int(props["Timeout"])
    assert set(found) == set(naming.ACTION_FUNCTIONS)
    return found


def three_pool_variant(service: Service) -> Service:
    """The largest edge the example's shape allows: load-balancer pools for main, dr and cold."""
    edge = type(service.edge).model_validate(
        {
            **service.edge.model_dump(),
            "kind": "load_balancer",
            "account_id": "acc",
            "pools": {"main": "p-main", "dr": "p-dr", "cold": "p-cold"},
        }
    )
    return service.model_copy(update={"edge": edge})


def test_every_action_function_has_a_worst_case() -> None:
    assert set(WORST_CASE) == set(naming.ACTION_FUNCTIONS)


def test_each_function_worst_case_is_below_its_synthesized_timeout(
    synth: Synth, config: WatchdogConfig
) -> None:
    timeouts = synthesized_timeouts(synth)
    services = [*config.services, *(three_pool_variant(s) for s in config.services)]
    problems = []
    for name, worst_case in WORST_CASE.items():
        worst = max(worst_case(config, service) for service in services)
        timeout = timeouts[name]
        assert timeout <= LAMBDA_MAX_SECONDS, f"{name}: {timeout} s is above Lambda's {LAMBDA_MAX_SECONDS} s"
        if worst >= timeout:
            problems.append(f"{name}: worst case {worst:.1f} s, timeout {timeout} s")
    assert not problems, "\n".join(problems)


def test_the_sdk_bound_is_the_one_the_adapters_use() -> None:
    config = aws_sdk.sdk_config()
    assert (config.connect_timeout, config.read_timeout) == (
        aws_sdk.CONNECT_TIMEOUT_SECONDS,
        aws_sdk.READ_TIMEOUT_SECONDS,
    )
    assert config.retries == {"mode": "standard", "max_attempts": aws_sdk.MAX_ATTEMPTS}
    assert sdk_call() < 60, "one SDK call may not take a minute"


def _tasks(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from _tasks(branch["States"])
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _tasks(state[key]["States"])


def _function_of(state: dict[str, Any]) -> str | None:
    text = json.dumps({"Resource": state.get("Resource"), "Parameters": state.get("Parameters")})
    found = [n for n in naming.ACTION_FUNCTIONS if "${" + naming.substitution_name(n) + "}" in text]
    assert len(found) <= 1, found
    return found[0] if found else None


def _task_timeout(state: dict[str, Any], service: Service) -> tuple[str, float | None]:
    """The Task's timeout (and heartbeat) as this service's config makes them; None when absent."""
    from_config = {
        "$.incident.veto_seconds": service.failover.veto_seconds,
        "$.incident.approval_timeout_seconds": service.failover.approval_timeout_seconds,
        "$.incident.cold_ready_timeout_seconds": (
            service.cold_site.ready_timeout_seconds if service.cold_site else None
        ),
    }
    for key in ("TimeoutSeconds", "HeartbeatSeconds"):
        if key in state:
            return key, float(state[key])
        if key + "Path" in state:
            path = state[key + "Path"]
            assert path in from_config, f"{path}: say here which config value it comes from"
            value = from_config[path]
            return key + "Path", None if value is None else float(value)
    return "TimeoutSeconds", None


@pytest.mark.parametrize("machine", ["failover", "switchover"])
def test_every_task_waits_longer_than_its_function_may_run(
    synth: Synth, config: WatchdogConfig, machine: str
) -> None:
    timeouts = synthesized_timeouts(synth)
    tasks = dict(_tasks(state_machines.definition(machine)["States"]))
    assert len(tasks) > 20
    bounded = 0
    problems = []
    for name, state in tasks.items():
        function = _function_of(state)
        if function is None:
            continue  # a direct service integration (DynamoDB): no function timeout to hold
        for service in config.services:
            key, limit = _task_timeout(state, service)
            if limit is None:
                continue  # no task timeout: the function's own timeout ends it
            bounded += 1
            if limit <= timeouts[function]:
                problems.append(
                    f"{name}: {key} {limit:g} s for {service.name} is not above {function}'s "
                    f"timeout of {timeouts[function]} s"
                )
    if machine == "failover":
        assert bounded >= 3, "the veto, approval and cold-site waits must be among the bounded tasks"
    else:
        assert bounded == 0, "the switchover waits inside its functions only (their timeouts end it)"
    assert not problems, "\n".join(problems)
