"""How long one failover execution can hold the incident lock, from the configured timings.

The lock's TTL must outlast the longest execution the configuration allows: if it expired while
its execution still ran, a second execution could take the lock and promote or switch again
(invariant 5). `longest_execution` adds up the worst case of the path that holds the lock longest,
from the moment ValidateInput reads the clock for `lock_expires_at` to the last lock write
(ReleaseLock, or Escalate keeping it), and the config validator and the tests both use it.

Why validation and not renewal: renewal would not remove the bound. The longest single step (an
approval wait of 30 minutes, a cold site's ready timeout, a promotion retried three times) holds
the lock without any chance to renew it, so the TTL must still cover that step; renewal would add
a write before every step (states in the ASL, or the table in every function's role), each one a
new way for a failover to stop half-done. The price of a long TTL is paid only when an execution
dies without releasing its lock (stopped by hand, or the Escalate step itself failing): automation
then waits out the TTL, which is the safe direction. No execution outlives the state machine's
own TimeoutSeconds, so that caps the bound.

Every per-step bound is the step's hard limit, not its usual time: each attempt of a Lambda Task
may run to the function's timeout, and the ASL retries it (`LAMBDA_RETRY`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quorum_dr.functions import timeout

# The config (quorum_dr.config) validates lock_ttl_seconds with this module, so this module does
# not import the config, not even for its types: a WatchdogConfig and one of its Services.
WatchdogConfig = Any
Service = Any


@dataclass(frozen=True)
class RetryPolicy:
    """One ASL Retry rule: `max_attempts` retries after the first attempt."""

    interval_seconds: float
    max_attempts: int
    backoff_rate: float
    max_delay_seconds: float | None = None

    def attempts(self) -> int:
        return 1 + self.max_attempts

    def total_backoff(self) -> float:
        waits = [self.interval_seconds * self.backoff_rate**k for k in range(self.max_attempts)]
        if self.max_delay_seconds is not None:
            waits = [min(w, self.max_delay_seconds) for w in waits]
        return sum(waits)


# What the ASL says (tests/infrastructure/test_asl.py checks these against it).
LAMBDA_RETRY = RetryPolicy(interval_seconds=2, max_attempts=3, backoff_rate=2.0, max_delay_seconds=20)
LOCK_WRITE_RETRY = RetryPolicy(interval_seconds=1, max_attempts=4, backoff_rate=2.0)
EXECUTION_TIMEOUT_SECONDS = 86400
# A direct DynamoDB PutItem has no TimeoutSeconds in the ASL; one attempt is taken to answer (or
# fail, and be retried) within this. An assumption about Step Functions, not a documented limit.
DIRECT_WRITE_SECONDS = 30
# The lock compares epoch seconds written by a Lambda's clock with the next one's: room for skew.
CLOCK_MARGIN_SECONDS = 60


def lambda_task(function: str) -> float:
    """Worst case of one Lambda Task: every attempt runs to the timeout, with every backoff."""
    return LAMBDA_RETRY.attempts() * timeout(function) + LAMBDA_RETRY.total_backoff()


def wait_task(function: str, timeout_seconds: float) -> float:
    """A waitForTaskToken Task: the answer's wait (TimeoutSeconds) on the attempt that succeeds;
    the retried attempts fail in the invoke, each within the function's timeout."""
    retried = LAMBDA_RETRY.max_attempts * timeout(function)
    return timeout_seconds + retried + LAMBDA_RETRY.total_backoff()


@dataclass(frozen=True)
class LongestPath:
    seconds: int
    path: str
    parts: list[tuple[str, float]] = field(default_factory=list)

    def sentence(self) -> str:
        top = sorted(self.parts, key=lambda p: -p[1])[:3]
        biggest = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in top)
        return f"{self.path}: {self.seconds} s (largest: {biggest})"


def longest_execution(config: WatchdogConfig, service: Service) -> LongestPath:
    """The longest time one execution can hold `service`'s lock, with the configured timings."""
    policy = service.failover
    rounds = config.confirmation.max_rounds
    head: list[tuple[str, float]] = [
        ("ValidateInput after reading the clock", timeout("validate_input")),
        (
            "AcquireIncidentLock",
            LOCK_WRITE_RETRY.attempts() * DIRECT_WRITE_SECONDS + LOCK_WRITE_RETRY.total_backoff(),
        ),
        ("CheckGates", lambda_task("incident_state")),
        (
            f"confirmation ({rounds} rounds, {config.confirmation.wait_seconds} s apart)",
            rounds * lambda_task("confirm_outage") + (rounds - 1) * config.confirmation.wait_seconds,
        ),
        ("DecideScenario", lambda_task("confirm_outage")),
    ]
    waits = {
        "veto": wait_task("notify", policy.veto_seconds),
        "approve": wait_task("notify", policy.approval_timeout_seconds),
    }
    if policy.mode.value in waits:
        head.append((f"mode {policy.mode.value} wait", waits[policy.mode.value]))
    head.append(("MarkFailingOver", lambda_task("incident_state")))
    hot = [
        ("CheckDrReplica", lambda_task("check_replica")),
        ("WaitForReplay", lambda_task("check_replica")),
        ("FenceMain", lambda_task("fence_main")),
        ("PromoteDrDatabase", lambda_task("promote_database")),
        ("SwitchEdgeToDr", lambda_task("switch_edge")),
        ("VerifyThroughPublicHostname", lambda_task("verify_switch")),
    ]
    branches = {"hot": hot}
    if service.cold_site is not None:
        branches["cold"] = [
            ("LaunchColdSite", wait_task("launch_cold_site", service.cold_site.ready_timeout_seconds)),
            ("CheckColdSiteHealth", lambda_task("verify_switch")),
            ("SwitchEdgeToCold", lambda_task("switch_edge")),
            ("VerifyColdSite", lambda_task("verify_switch")),
        ]
    # The success tail, then an escalation from its last step: the worst way to the last lock write.
    tail = [
        ("RecordIncident", lambda_task("incident_state")),
        ("NotifyOutcome", lambda_task("notify")),
        ("SetActiveSite", lambda_task("incident_state")),
        ("ReleaseLock", lambda_task("incident_state")),
        ("Escalate", lambda_task("incident_state")),
    ]
    name, branch = max(branches.items(), key=lambda item: sum(s for _, s in item[1]))
    parts = [*head, *branch, *tail]
    total = sum(s for _, s in parts)
    path = f"the {name} failover path"
    if total > EXECUTION_TIMEOUT_SECONDS:
        total = EXECUTION_TIMEOUT_SECONDS
        path += f" (capped by the execution timeout of {EXECUTION_TIMEOUT_SECONDS} s)"
    return LongestPath(seconds=int(total) + CLOCK_MARGIN_SECONDS, path=path, parts=parts)


def longest_switchover(config: WatchdogConfig, service: Service) -> LongestPath:
    """The longest time one planned switchover can hold `service`'s lock (statemachines/
    switchover.asl.yaml): from ValidateSwitchover reading the clock, every step to the promotion,
    then the longer of the way on (switch, verify, follow, record, an escalation from the release)
    and the way back (roll back, record it, an escalation if that fails)."""
    head: list[tuple[str, float]] = [
        ("ValidateSwitchover after reading the clock", timeout("switchover_plan")),
        ("CheckPreconditions", lambda_task("switchover_plan")),
        ("CheckDatabases", lambda_task("switchover_database")),
        ("CheckEdge", lambda_task("switchover_edge")),
        (
            "AcquireSwitchoverLock",
            LOCK_WRITE_RETRY.attempts() * DIRECT_WRITE_SECONDS + LOCK_WRITE_RETRY.total_backoff(),
        ),
        ("FreezeActive", lambda_task("switchover_database")),
        ("SyncCheck", lambda_task("switchover_database")),
        ("StopActive", lambda_task("switchover_database")),
        ("WaitForFinalPosition", lambda_task("switchover_database")),
        ("StartCooldown", lambda_task("switchover_record")),
    ]
    onward = [
        ("PromoteTarget", lambda_task("switchover_database")),
        ("SwitchEdge", lambda_task("switchover_edge")),
        ("VerifySwitch", lambda_task("switchover_edge")),
        ("FollowNewPrimary", lambda_task("switchover_database")),
        ("SetActiveSite", lambda_task("switchover_record")),
        ("ReleaseLock", lambda_task("switchover_record")),
        ("Escalate", lambda_task("switchover_record")),
    ]
    back = [
        ("RollBack", lambda_task("switchover_database")),
        ("RecordRollBack", lambda_task("switchover_record")),
        ("Escalate", lambda_task("switchover_record")),
    ]
    name, branch = max((("onward", onward), ("roll-back", back)), key=lambda item: sum(s for _, s in item[1]))
    parts = [*head, *branch]
    total = sum(s for _, s in parts)
    path = f"the switchover's {name} path"
    if total > EXECUTION_TIMEOUT_SECONDS:
        total = EXECUTION_TIMEOUT_SECONDS
        path += f" (capped by the execution timeout of {EXECUTION_TIMEOUT_SECONDS} s)"
    return LongestPath(seconds=int(total) + CLOCK_MARGIN_SECONDS, path=path, parts=parts)
