"""The planned switchover's decisions, pure: may it start, did each database step give what the
next one needs, and the sentences its record and notification say (DESIGN invariant 7: going
home is a planned switchover; writes frozen, the target has exactly the active site's final
position, checked, then promote, switch, verify).

Every function returns a `Decision` (a machine word and a sentence) from what the state store,
the quorum and the site agents said; none of them does any I/O. The agents' answers are the
contract's `SiteStatus` (`quorum_dr.agent.contract`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from quorum_dr.agent.contract import DatabaseRole, SiteStatus
from quorum_dr.domain.decisions import Decision
from quorum_dr.domain.quorum import SiteVerdict, Verdict
from quorum_dr.domain.results import parse_lsn
from quorum_dr.domain.state import ServiceState, ServiceStatus, utc_text

SWITCHOVER_SITES = ("main", "dr")


def _refuse(code: str, reason: str) -> Decision:
    return Decision(proceed=False, code=code, reason=reason)


def other_site(site: str) -> str:
    """main <-> dr: the site a switchover leaves when it goes to `site`."""
    return "dr" if site == "main" else "main"


# ---------------------------------------------------------------------------------------------
# May it start? (the state, the lock, the quorum)
# ---------------------------------------------------------------------------------------------


def check_preconditions(
    state: ServiceState,
    *,
    target: str,
    lock: Mapping[str, Any] | None,
    own_execution: str,
    target_verdict: SiteVerdict | None,
) -> Decision:
    """May a planned switchover of `state.service` to `target` start? Not onto the active site,
    not from the cold site, not while the service needs attention or an incident holds the lock,
    and only when the quorum of recent probe results sees the target's application UP."""
    service = state.service
    prefix = f"switchover of {service} to {target} refused"
    if target not in SWITCHOVER_SITES:
        return _refuse("bad_target", f"{prefix}: a switchover goes to main or dr, not {target!r}")
    if state.active_site == target:
        return _refuse(
            "already_active", f"{prefix}: {target} is already the active site of {service}: nothing to switch"
        )
    if state.active_site not in SWITCHOVER_SITES:
        return _refuse(
            "not_from_cold",
            f"{prefix}: {service} serves from {state.active_site}; a planned switchover runs between main "
            "and dr only (bring the data back to a streaming standby first)",
        )
    if state.status is ServiceStatus.NEEDS_ATTENTION:
        return _refuse(
            "needs_attention",
            f"{prefix}: {service} needs attention after incident {state.lock_holder or '(unknown)'}; "
            "an operator must look and run drctl reset first",
        )
    if lock and lock.get("holder") != own_execution:
        kept = " and keeps it until drctl reset" if lock.get("kept") else ""
        return _refuse(
            "lock_held",
            f"{prefix}: incident {lock.get('incident_id', '(unknown)')} holds the lock of {service}{kept}; "
            "a failover and a switchover never run together",
        )
    if target_verdict is None:
        return _refuse("no_verdict", f"{prefix}: the quorum has no verdict on {target}")
    if target_verdict.verdict is not Verdict.UP:
        return _refuse(
            "target_not_up",
            f"{prefix}: the quorum does not see {target}'s application UP ({target_verdict.reason})",
        )
    return Decision(
        proceed=True,
        code="ok",
        reason=f"switchover of {service} from {state.active_site} to {target} may start: no incident holds "
        f"the lock, {service} is {state.status.value}, and {target_verdict.reason}",
    )


# ---------------------------------------------------------------------------------------------
# The databases, as their agents see them
# ---------------------------------------------------------------------------------------------


def _behind(ahead: str, behind: str) -> int:
    return parse_lsn(ahead) - parse_lsn(behind)


def check_databases(
    active: SiteStatus, target: SiteStatus, *, active_site: str, target_site: str, max_lag_bytes: int
) -> Decision:
    """Is the active site a running, writable primary and the target a streaming standby within
    the lag limit, on the same timeline? Unknown lag is not zero."""
    prefix = f"switchover from {active_site} to {target_site} refused"
    if active.role is not DatabaseRole.PRIMARY:
        return _refuse(
            "active_not_primary",
            f"{prefix}: {active_site}'s database is {active.role.value}, not a running primary "
            f"({active.reason})",
        )
    if active.frozen:
        return _refuse(
            "active_frozen",
            f"{prefix}: writes on {active_site} are frozen already (an earlier switchover or a fence?); "
            "unfreeze it or find out why first",
        )
    if target.role is not DatabaseRole.STANDBY:
        return _refuse(
            "target_not_standby",
            f"{prefix}: {target_site}'s database is {target.role.value}, not a streaming standby "
            f"({target.reason})",
        )
    if not target.streaming:
        return _refuse(
            "target_not_streaming",
            f"{prefix}: {target_site}'s standby is not streaming from a primary ({target.reason})",
        )
    if active.current_lsn is None or target.replay_lsn is None:
        return _refuse(
            "lag_unknown",
            f"{prefix}: the lag of {target_site} is unknown ({active_site}'s position "
            f"{active.current_lsn or 'unknown'}, {target_site}'s replay {target.replay_lsn or 'unknown'}); "
            "unknown is not zero",
        )
    if active.timeline is not None and target.timeline is not None and active.timeline != target.timeline:
        return _refuse(
            "timeline_differs",
            f"{prefix}: {active_site} writes timeline {active.timeline} but {target_site} receives timeline "
            f"{target.timeline}: rejoin {target_site} first (drctl rejoin)",
        )
    lag = max(0, _behind(active.current_lsn, target.replay_lsn))
    if lag > max_lag_bytes:
        return _refuse(
            "lag_above_limit",
            f"{prefix}: {target_site} has replayed up to {target.replay_lsn}, {lag} bytes behind "
            f"{active_site}'s {active.current_lsn}; the limit is {max_lag_bytes} bytes",
        )
    following = f" from {target.following}" if target.following else ""
    return Decision(
        proceed=True,
        code="ok",
        reason=f"{active_site} is a writable primary at {active.current_lsn}; {target_site} streams"
        f"{following} and has replayed up to {target.replay_lsn}, {lag} bytes behind (limit {max_lag_bytes})",
    )


def check_edge(points_at: str | None, *, service: str, source: str, target: str) -> Decision:
    """Before anything is frozen: the edge answers (the API and its token work now) and points at
    the active site, so the switch at the end is the one expected. Found out here, a broken token
    is a refusal; found out after the promotion, it is an escalation with the service down."""
    prefix = f"switchover of {service} from {source} to {target} refused"
    if points_at == source:
        return Decision(
            proceed=True,
            code="ok",
            reason=f"the edge of {service} answers and points at {source}, the active site",
        )
    if points_at is None:
        return _refuse(
            "edge_unknown",
            f"{prefix}: the edge of {service} points at no single known site; find out why and point it "
            f"at {source} before switching",
        )
    return _refuse(
        "edge_elsewhere",
        f"{prefix}: the edge of {service} points at {points_at} while the state says {source} is active; "
        "find out which is right before switching",
    )


def check_frozen(status: SiteStatus, site: str) -> Decision:
    """After the freeze: the agent's status must say no application role may log in."""
    if status.running and status.frozen:
        position = f" at {status.current_lsn}" if status.current_lsn else ""
        return Decision(
            proceed=True,
            code="frozen",
            reason=f"writes on {site} are frozen{position}: no application role may log in and their "
            f"sessions are ended ({status.reason})",
        )
    return _refuse("not_frozen", f"writes on {site} are NOT frozen after the freeze: {status.reason}")


def check_stopped(status: SiteStatus, site: str) -> Decision:
    """After the clean stop: stopped, shut down cleanly, and its last checkpoint is the final position
    its WAL senders shipped before they exited."""
    if status.running or status.role is not DatabaseRole.STOPPED:
        return _refuse("not_stopped", f"{site}'s database did not stop: {status.reason}")
    if status.shutdown_clean is not True:
        return _refuse(
            "unclean_stop",
            f"{site}'s database stopped but not cleanly (shutdown_clean {status.shutdown_clean}): its final "
            f"position is not known to be shipped ({status.reason})",
        )
    if status.checkpoint_lsn is None:
        return _refuse(
            "no_final_position", f"{site}'s database stopped without a checkpoint position: {status.reason}"
        )
    return Decision(
        proceed=True,
        code="stopped",
        reason=f"{site}'s database stopped cleanly; its final position (the shutdown checkpoint) is "
        f"{status.checkpoint_lsn}",
    )


def check_final_position(status: SiteStatus, *, final_position: str, site: str, active_site: str) -> Decision:
    """Has the target received AND replayed the active site's final position?

    The final position is where the active site's shutdown checkpoint record starts, the last
    record it wrote. The target must have replayed that record too (its replay position is past
    the start): then it holds every write of the active site, and the active site can follow the
    promoted target without a rewind (its WAL ends where the new timeline begins)."""
    received, replayed = status.receive_lsn, status.replay_lsn
    if status.role is not DatabaseRole.STANDBY:
        return _refuse(
            "target_not_standby",
            f"{site} is {status.role.value}, not a standby waiting for {active_site}'s final position "
            f"{final_position}",
        )
    if received is None or replayed is None:
        return _refuse(
            "position_unknown",
            f"{site}'s positions are unknown (received {received or 'unknown'}, replayed "
            f"{replayed or 'unknown'}); {active_site}'s final position is {final_position}",
        )
    short = [
        f"{what} up to {where}"
        for what, where in (("received", received), ("replayed", replayed))
        if parse_lsn(where) <= parse_lsn(final_position)
    ]
    if short:
        return _refuse(
            "short_of_final",
            f"{site} has {' and '.join(short)}, not past {active_site}'s final position {final_position} "
            f"(its shutdown checkpoint): it does not hold all of {active_site}'s WAL",
        )
    return Decision(
        proceed=True,
        code="reached",
        reason=f"{site} has received ({received}) and replayed ({replayed}) {active_site}'s final position "
        f"{final_position}, its shutdown checkpoint: it holds every committed write",
    )


def check_replayed(status: SiteStatus, *, position: str, site: str, active_site: str) -> Decision:
    """Before the content check: has the target replayed the active site's frozen position? Both
    sites are then digested at that one position (the check compares like with like)."""
    replayed = status.replay_lsn
    if status.role is not DatabaseRole.STANDBY or replayed is None:
        return _refuse(
            "not_replaying",
            f"{site} is not a standby replaying {active_site}'s WAL ({status.reason}); {active_site}'s "
            f"frozen position is {position}",
        )
    if parse_lsn(replayed) < parse_lsn(position):
        return _refuse(
            "short_of_frozen",
            f"{site} has replayed up to {replayed}, {_behind(position, replayed)} bytes short of "
            f"{active_site}'s frozen position {position}",
        )
    return Decision(
        proceed=True,
        code="replayed",
        reason=f"{site} has replayed {active_site}'s frozen position {position} ({replayed})",
    )


def check_writable(status: SiteStatus, site: str) -> Decision:
    """A running primary whose application roles may log in (the agent checks pg_roles)."""
    if status.role is DatabaseRole.PRIMARY and status.running and not status.frozen:
        position = f" at {status.current_lsn}" if status.current_lsn else ""
        timeline = f" on timeline {status.timeline}" if status.timeline else ""
        return Decision(
            proceed=True,
            code="writable",
            reason=f"{site}'s database is a writable primary{position}{timeline}, its application roles may "
            "log in",
        )
    why = (
        "writes are still frozen"
        if status.role is DatabaseRole.PRIMARY and status.frozen
        else f"it is {status.role.value}{'' if status.running else ', not running'}"
    )
    return _refuse("not_writable", f"{site}'s database is NOT writable: {why} ({status.reason})")


def check_following(status: SiteStatus, site: str, primary_site: str, primary_address: str) -> Decision:
    """After `follow`: the old active site runs as a standby (no rewind was needed after a clean stop)."""
    if status.role is DatabaseRole.STANDBY and status.running:
        following = status.following or primary_address
        return Decision(
            proceed=True,
            code="following",
            reason=f"{site} runs as a standby of {primary_site} ({following})"
            + ("" if status.streaming else ", not streaming yet"),
        )
    return _refuse(
        "not_following",
        f"{site} did not start as a standby of {primary_site}: it is {status.role.value} ({status.reason})",
    )


# ---------------------------------------------------------------------------------------------
# The end: automation, the figures
# ---------------------------------------------------------------------------------------------


def automation_sentence(service: str, active_site: str, cooldown_until: float | None, now: float) -> str:
    """What automatic failover may do once the switchover is done: it goes main -> dr only."""
    if active_site != "main":
        return (
            f"automatic failover of {service} is off until the service is home: it goes from main to dr "
            f"only; switch back with drctl switchover --service {service} --to main"
        )
    if cooldown_until is not None and cooldown_until > now:
        return (
            f"automatic failover of {service} is re-armed after the cooldown, which ends at "
            f"{utc_text(cooldown_until)} ({cooldown_until - now:.0f} s; the switchover's promotion counts)"
        )
    return f"automatic failover of {service} is re-armed"


def write_outage_seconds(frozen_at: float | None, switched_at: float | None) -> float | None:
    """From the freeze on the active site to the edge pointing at the target: clients write through
    the public hostname, so they can write again only once the edge points at a writable primary."""
    if frozen_at is None or switched_at is None:
        return None
    return round(max(0.0, switched_at - frozen_at), 3)


def follow_sentence(service: str, site: str, follow: Mapping[str, Any] | None, failure: str | None) -> str:
    """How the old active site ended: a standby of the new primary, or an operator's rejoin to run."""
    if follow and follow.get("following"):
        return str(follow.get("reason") or f"{site} follows as a standby")
    cause = failure or (follow or {}).get("reason") or "no answer"
    return (
        f"{site} did NOT start as a standby ({cause}); the switch stands: run "
        f"drctl rejoin --service {service} --site {site}"
    )


class SwitchoverFigures(BaseModel):
    """What one planned switchover did, as its incident record keeps it (`switchover`) and its
    notification says it: the write outage runs from the freeze on the source to the edge pointing
    at the target (verified writable before that), as clients see it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    target: str
    frozen_at: float | None = None
    final_position: str | None = None
    replayed_position: str | None = None
    promoted_at: float | None = None
    writable_at: float | None = None
    switched_at: float | None = None
    verified_at: float | None = None
    write_outage_seconds: float | None = None
    sync_check: str | None = None
    following: bool | None = None
    rolled_back: bool = False

    def sentence(self, service: str) -> str:
        """The figures in one sentence (times as UTC text)."""
        outage = (
            f"write outage {self.write_outage_seconds:.1f} s (writes frozen on {self.source} at "
            f"{utc_text(self.frozen_at or 0)}, {self.target} writable at {utc_text(self.writable_at or 0)}, "
            f"the edge on {self.target} at {utc_text(self.switched_at or 0)})"
            if self.write_outage_seconds is not None
            else "write outage unknown"
        )
        positions = (
            f"{self.source}'s final position {self.final_position or 'unknown'}, {self.target} replayed "
            f"{self.replayed_position or 'unknown'}"
        )
        return (
            f"planned switchover of {service} from {self.source} to {self.target} done: {outage}; "
            f"{positions}; sync check: {self.sync_check or 'no verdict'}"
        )
