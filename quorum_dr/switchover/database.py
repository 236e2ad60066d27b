"""The switchover's database steps, through the two sites' agents and the database sync check.

Every agent operation carries an operation id made of the incident id, the step and the site, so
a retried Task sends the same id and the agent answers with what it did the first time (it never
freezes, stops or promotes twice). A dry run asks nothing of the agents but their status: each
step returns the sentence of what it would do.

Step answers (`$.freeze`, `$.stop`, ...) are JSON for the state machine's Choice states; each
holds a `reason` sentence and appends it to the incident's timeline.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from quorum_dr.agent.contract import Operation, OperationAnswer, SiteStatus, Upstream
from quorum_dr.config import Service
from quorum_dr.domain.decisions import Decision
from quorum_dr.domain.switchover import (
    check_databases,
    check_final_position,
    check_following,
    check_frozen,
    check_replayed,
    check_stopped,
    check_writable,
)
from quorum_dr.failover.errors import FailoverError, PromotionFailed, TransientError
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import as_dict, entry
from quorum_dr.ports import SiteAgent, SiteAgentError, SiteAgentUnreachable, SyncDigester
from quorum_dr.switchover.request import Switchover

POLL_SECONDS = 0.5  # between two status reads while waiting for the target's replay
SYNC_ATTEMPTS = 2  # comparisons when the positions moved between the two digests


class SwitchoverStepFailed(FailoverError):
    """A database step did not give what the next one needs; the message is the sentence."""


class FollowFailed(FailoverError):
    """The old active site did not start as a standby of the new primary (the switch stands)."""


def operation_id(switchover: Switchover, step: str, site: str) -> str:
    """The same id for every attempt of one step on one site: `<incident>.<step>.<site>`."""
    return f"{switchover.incident_id}.{step}.{site}"


def _agent(ports: Ports, switchover: Switchover, site: str) -> SiteAgent:
    return ports.site_agent(ports.service(switchover.service), site)


def _run(
    ports: Ports,
    switchover: Switchover,
    site: str,
    operation: Operation,
    step: str,
    primary: Upstream | None = None,
) -> OperationAnswer:
    """One agent operation; unreachable is transient (the Task retries it with the same id), a
    refusal or an answer that is not ok fails the step with the agent's sentence."""
    try:
        answer = _agent(ports, switchover, site).run(operation, operation_id(switchover, step, site), primary)
    except SiteAgentUnreachable as exc:
        raise TransientError(f"{site}'s agent did not answer {operation.value}: {exc}") from None
    except SiteAgentError as exc:
        raise SwitchoverStepFailed(f"{site}'s agent refused {operation.value}: {exc}") from None
    if not answer.ok:
        raise SwitchoverStepFailed(f"{site}'s agent could not {operation.value}: {answer.reason}")
    return answer


def _status(ports: Ports, switchover: Switchover, site: str) -> SiteStatus:
    try:
        return _agent(ports, switchover, site).status()
    except SiteAgentUnreachable as exc:
        raise TransientError(f"{site}'s agent did not answer its status: {exc}") from None


def _note(ports: Ports, switchover: Switchover, step: str, reason: str, **fields: Any) -> float:
    now = ports.clock()
    ports.store.update_incident(
        switchover.service, switchover.incident_id, fields, timeline=entry(step, reason, now)
    )
    return now


def _dry(ports: Ports, switchover: Switchover, step: str, would: str, **answer: Any) -> dict[str, Any]:
    reason = f"dry run: would {would}"
    now = _note(ports, switchover, step, reason)
    return {**answer, "dry_run": True, "reason": reason, "at": now}


def _upstream(service: Service, site: str) -> Upstream:
    """The new primary's address for the old one's primary_conninfo: the site's database endpoint."""
    assert service.database is not None
    endpoint = getattr(service.database, site)
    return Upstream(host=endpoint.host, port=endpoint.port)


# ---------------------------------------------------------------------------------------------
# Before the lock: both databases as their agents see them
# ---------------------------------------------------------------------------------------------


def check(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    """The active site a writable primary, the target a streaming standby within the lag limit
    (`database.max_lag_bytes`). A site without an agent, or an agent that does not answer, is a
    refusal: nothing was changed."""
    service = ports.service(switchover.service)
    source, target = switchover.source, switchover.target
    missing = [site for site in (source, target) if getattr(service.sites, site).agent is None]
    statuses: dict[str, SiteStatus] = {}
    decision: Decision
    if missing:
        sites = " and ".join(missing)
        decision = Decision(
            proceed=False,
            code="no_agent",
            reason=f"switchover of {service.name} refused: no site agent on {sites} "
            f"({', '.join(f'sites.{s}.agent' for s in missing)}); a planned switchover needs one on both "
            "database hosts",
        )
    else:
        try:
            statuses = {site: _agent(ports, switchover, site).status() for site in (source, target)}
        except SiteAgentError as exc:
            decision = Decision(
                proceed=False,
                code="agent_unreachable",
                reason=f"switchover of {service.name} refused: a site agent did not answer its status "
                f"({exc})",
            )
        else:
            assert service.database is not None
            decision = check_databases(
                statuses[source],
                statuses[target],
                active_site=source,
                target_site=target,
                max_lag_bytes=service.database.max_lag_bytes,
            )
    reason = decision.reason + (" (dry run)" if switchover.dry_run else "")
    now = _note(ports, switchover, "databases", reason)
    return {
        "proceed": decision.proceed,
        "code": decision.code,
        "reason": reason,
        "sites": {site: status.model_dump(mode="json") for site, status in statuses.items()},
        "at": now,
    }


# ---------------------------------------------------------------------------------------------
# Under the lock, before the promotion: a failure here rolls back
# ---------------------------------------------------------------------------------------------


def freeze(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    """No new writes on the active site: its application roles lose LOGIN, their sessions end."""
    source = switchover.source
    if switchover.dry_run:
        return _dry(
            ports,
            switchover,
            "freeze",
            f"freeze writes on {source} (its application roles lose LOGIN, their sessions end)",
            frozen_at=None,
        )
    frozen_at = ports.clock()  # the write outage starts when the freeze is asked for
    answer = _run(ports, switchover, source, Operation.FREEZE, "freeze")
    decision = check_frozen(answer.status, source)
    if not decision.proceed:
        raise SwitchoverStepFailed(decision.reason)
    now = _note(ports, switchover, "freeze", decision.reason)
    return {
        "frozen_at": frozen_at,
        "position": answer.status.current_lsn,
        "reason": decision.reason,
        "at": now,
    }


def stop(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    """Stop the active site's PostgreSQL cleanly (fast): its WAL senders ship everything up to the
    shutdown checkpoint, whose position is the final position."""
    source = switchover.source
    if switchover.dry_run:
        return _dry(
            ports,
            switchover,
            "stop",
            f"stop {source}'s PostgreSQL cleanly; its shutdown checkpoint would be the final position",
            clean=True,
            final_position=None,
        )
    answer = _run(ports, switchover, source, Operation.STOP, "stop")
    decision = check_stopped(answer.status, source)
    now = _note(ports, switchover, "stop", decision.reason)
    return {
        "clean": decision.proceed,
        "final_position": answer.status.checkpoint_lsn if decision.proceed else None,
        "timeline": answer.status.timeline,
        "reason": decision.reason,
        "at": now,
    }


def _wait_for(
    ports: Ports, switchover: Switchover, until: Callable[[SiteStatus], Decision], what: str
) -> tuple[Decision, SiteStatus, float]:
    """Ask the target's agent for its status until `until` says yes or `replay_wait_seconds` have
    passed (a status that does not come is asked again); the last decision, status and wait."""
    target = switchover.target
    started = ports.clock()
    deadline = started + switchover.replay_wait_seconds
    agent = _agent(ports, switchover, target)
    status: SiteStatus | None = None
    decision: Decision | None = None
    silent = ""
    while True:
        try:
            status = agent.status()
            decision, silent = until(status), ""
        except SiteAgentUnreachable as exc:
            silent = str(exc)
        left = deadline - ports.clock()
        if (decision is not None and decision.proceed) or left <= 0:
            break
        ports.sleep(min(POLL_SECONDS, left))
    waited = ports.clock() - started
    if decision is None or status is None:
        raise SwitchoverStepFailed(
            f"{target}'s agent gave no status in {waited:.1f} s while waiting for {what}: {silent}"
        )
    if not decision.proceed:
        decision = decision.model_copy(
            update={
                "reason": f"{decision.reason} after waiting {waited:.1f} s "
                f"(limit {switchover.replay_wait_seconds:g} s)"
            }
        )
    return decision, status, waited


def _compare_once(ports: Ports, switchover: Switchover, sync: SyncDigester) -> dict[str, Any]:
    """One comparison: the active site's position settled (its WAL flushed to a record boundary),
    then its digest and, at the same time, the wait for the target to replay that position and the
    target's digest; the verdict (the evidence the incident keeps). Writes are frozen, so the two
    digests find the same position unless something wrote: the judge says so, and the comparison
    is made again. At the same time, not one after the other: writes are frozen until the switch,
    and each digest is dozens of round trips to a database."""
    source, target = switchover.source, switchover.target
    position = sync.settle(source)
    if not position:
        raise SwitchoverStepFailed(f"{source}'s database gave no WAL position to compare at")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-digest") as pool:
        on_active = pool.submit(sync.digest, source)
        replayed, _, waited = _wait_for(
            ports,
            switchover,
            lambda status: check_replayed(status, position=position, site=target, active_site=source),
            f"{source}'s frozen position {position}",
        )
        target_digest = as_dict(sync.digest(target)) if replayed.proceed else None
        active = as_dict(on_active.result())
    evidence: dict[str, Any] = {"final_position": position, "waited_seconds": round(waited, 3)}
    if target_digest is None:
        evidence["verdict"] = {
            "in_sync": False,
            "code": "not_replayed",
            "reason": f"not in sync: {replayed.reason}",
        }
        return evidence
    evidence.update(
        verdict=as_dict(sync.judge(active, target_digest, position)),
        active_position=active.get("position"),
        target_position=target_digest.get("position"),
    )
    return evidence


def sync_check(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    """The content check with writes frozen and both sides running: the active site's digest at its
    frozen position, the target's once it has replayed that position, and the judge's verdict.

    An idle primary still writes a little WAL that is no write (a standby snapshot, a checkpoint):
    when the target's digest is not at the active site's position, the comparison is made again
    (`SYNC_ATTEMPTS`), as the sync check's own command does."""
    source, target = switchover.source, switchover.target
    if switchover.dry_run:
        return _dry(
            ports,
            switchover,
            "sync_check",
            f"digest {source}'s tables at its frozen position, wait for {target} to replay it, digest "
            f"{target}'s and compare them",
            in_sync=True,
        )
    sync = ports.sync(ports.service(switchover.service))
    attempt = 0
    while True:
        attempt += 1
        evidence = _compare_once(ports, switchover, sync)
        moved = "target_position" in evidence and (
            evidence["target_position"] != evidence["final_position"]
            or evidence["active_position"] != evidence["final_position"]
        )
        if not moved or attempt >= SYNC_ATTEMPTS:
            break
    verdict = evidence["verdict"]
    in_sync = verdict.get("in_sync") is True
    reason = str(verdict.get("reason") or ("in sync" if in_sync else "not in sync"))
    if attempt > 1:
        reason += f" (comparison {attempt} of {SYNC_ATTEMPTS}: the positions moved between the digests)"
    evidence["attempts"] = attempt
    now = _note(ports, switchover, "sync_check", reason, sync_check=evidence)
    return {"in_sync": in_sync, "position": evidence["final_position"], "reason": reason, "at": now}


def wait_for_final_position(
    ports: Ports, switchover: Switchover, stop_answer: dict[str, Any]
) -> dict[str, Any]:
    """Wait, at most `replay_wait_seconds`, until the target received and replayed past the final
    position (the active site's shutdown checkpoint)."""
    source, target = switchover.source, switchover.target
    if switchover.dry_run:
        return _dry(
            ports,
            switchover,
            "final_position",
            f"wait up to {switchover.replay_wait_seconds:g} s for {target} to receive and replay {source}'s "
            "final position",
            reached=True,
        )
    final = str(stop_answer.get("final_position") or "")
    if not final:
        raise SwitchoverStepFailed(f"no final position of {source} to wait for: {stop_answer.get('reason')}")
    decision, status, waited = _wait_for(
        ports,
        switchover,
        lambda status: check_final_position(status, final_position=final, site=target, active_site=source),
        f"{source}'s final position {final}",
    )
    now = _note(ports, switchover, "final_position", decision.reason)
    return {
        "reached": decision.proceed,
        "final_position": final,
        "receive_lsn": status.receive_lsn,
        "replay_lsn": status.replay_lsn,
        "waited_seconds": round(waited, 3),
        "reason": decision.reason,
        "at": now,
    }


# ---------------------------------------------------------------------------------------------
# The promotion: from here on a failure escalates
# ---------------------------------------------------------------------------------------------


def promote(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    """Promote the target, give its application roles LOGIN back (the freeze replicated to it),
    and check that it is a writable primary."""
    target = switchover.target
    if switchover.dry_run:
        return _dry(
            ports,
            switchover,
            "promote",
            f"promote {target}, give its application roles LOGIN back, check that it is writable",
            writable=True,
        )
    promoted = _run(ports, switchover, target, Operation.PROMOTE, "promote")
    promoted_at = ports.clock()
    _note(
        ports,
        switchover,
        "promote",
        promoted.reason,
        promoted_at=promoted_at,
        promotion=promoted.model_dump(mode="json"),
    )
    unfrozen = _run(ports, switchover, target, Operation.UNFREEZE, "unfreeze")
    decision = check_writable(unfrozen.status, target)
    if not decision.proceed:
        raise PromotionFailed(decision.reason)
    writable_at = ports.clock()
    now = _note(ports, switchover, "writable", decision.reason, writable_verified_at=writable_at)
    return {
        "writable": True,
        "promoted_at": promoted_at,
        "writable_at": writable_at,
        "position": unfrozen.status.current_lsn,
        "timeline": unfrozen.status.timeline,
        "reason": f"{promoted.reason}; {decision.reason}",
        "at": now,
    }


def follow(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    """Start the old active site as a standby of the new primary. No rewind: it stopped cleanly
    before the promotion, so its WAL ends where the new timeline begins; the answer is checked."""
    source, target = switchover.source, switchover.target
    service = ports.service(switchover.service)
    upstream = _upstream(service, target)
    if switchover.dry_run:
        return _dry(
            ports,
            switchover,
            "follow",
            f"start {source} as a standby of {target} ({upstream.address()})",
            following=True,
        )
    try:
        answer = _run(ports, switchover, source, Operation.FOLLOW, "follow", upstream)
    except (SwitchoverStepFailed, TransientError) as exc:
        raise FollowFailed(str(exc)) from None
    decision = check_following(answer.status, source, target, upstream.address())
    if not decision.proceed:
        raise FollowFailed(decision.reason)
    now = _note(ports, switchover, "follow", decision.reason)
    return {"following": True, "reason": decision.reason, "at": now}


# ---------------------------------------------------------------------------------------------
# The way back
# ---------------------------------------------------------------------------------------------


def roll_back(ports: Ports, switchover: Switchover, error: dict[str, Any] | None) -> dict[str, Any]:
    """Before any promotion: start the active site again where it is stopped, give its
    application roles LOGIN back, and check that it takes writes. The target is untouched (still
    a standby of it)."""
    source = switchover.source
    why = (error or {}).get("Cause") or (error or {}).get("Error") or "a step failed"
    if switchover.dry_run:
        return _dry(
            ports,
            switchover,
            "roll_back",
            f"start {source} again, unfreeze it, check that it is writable",
            writable=True,
        )
    done = []
    if not _status(ports, switchover, source).running:
        started = _run(ports, switchover, source, Operation.START, "rollback-start")
        done.append(started.reason)
    unfrozen = _run(ports, switchover, source, Operation.UNFREEZE, "rollback-unfreeze")
    done.append(unfrozen.reason)
    decision = check_writable(unfrozen.status, source)
    reason = f"rolled back on {source} ({'; '.join(done)}): {decision.reason}"
    now = _note(ports, switchover, "roll_back", reason)
    return {"writable": decision.proceed, "reason": reason, "because": str(why), "at": now}


def handle(ports: Ports, event: dict[str, Any]) -> dict[str, Any]:
    switchover = Switchover.model_validate(event["switchover"])
    action = event.get("action")
    if action == "check":
        return check(ports, switchover)
    if action == "freeze":
        return freeze(ports, switchover)
    if action == "stop":
        return stop(ports, switchover)
    if action == "wait_for_final_position":
        return wait_for_final_position(ports, switchover, event.get("stop") or {})
    if action == "sync_check":
        return sync_check(ports, switchover)
    if action == "promote":
        return promote(ports, switchover)
    if action == "follow":
        return follow(ports, switchover)
    if action == "roll_back":
        return roll_back(ports, switchover, event.get("error"))
    raise ValueError(f"switchover_database: unknown action {action!r}")
