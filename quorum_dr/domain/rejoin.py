"""Rejoin: after a failover, the old primary becomes a streaming standby of the active site.

Pure: the facts come in (the state's active site, the incident lock, what the edge serves, each
site's database as its agent sees it), a plan and its sentence come out. No I/O, no clock.

- `plan_rejoin`: refuse (the site is the active one, the edge still serves it or cannot be read
  as one site, the edge and the state disagree, a lock is held, the active site's database is not
  a running primary) / wait (already a standby streaming from the active site) / rewind (freeze
  first when it is a running primary that takes writes) / rebuild (only when an earlier rewind of
  this attempt said it cannot work, and only with `allow_rebuild`).
- `plan_after_rewind`: what a failed rewind leaves: a rebuild, refused without `allow_rebuild`
  (the sentence names the flag), or a refusal with the agent's reason.
- `judge_caught_up`: does the site stream from the active site with its lag within the limit?
- `record_id`, `operation_id`, `next_attempt`: one record per service, site and UTC day; the
  agent's operation ids derive from it, so a re-run continues the same attempt instead of
  redoing it, and a new rejoin after a finished one the same day gets a new attempt.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from quorum_dr.agent.contract import DatabaseRole, SiteStatus, Upstream
from quorum_dr.domain.results import parse_lsn
from quorum_dr.domain.state import utc_day, utc_text

ALLOW_REBUILD_FLAG = "--allow-rebuild"
REJOINABLE = ("main", "dr")  # the sites with a database in the config (database.main, database.dr)

RejoinSite = Literal["main", "dr"]


class RejoinStep(StrEnum):
    REFUSE = "refuse"
    WAIT = "wait"  # already a standby of the active site: only wait until its lag is within the limit
    REWIND = "rewind"  # pg_rewind against the active site, then follow (the agent's rewind)
    REBUILD = "rebuild"  # a fresh base backup of the active site, the old data directory kept


class LockView(BaseModel):
    """The incident lock as the state table holds it (only what the plan reads)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    incident_id: str | None = None
    holder: str | None = None
    lock_expires_at: float | None = None
    kept: bool = False

    def holds(self, now: float) -> bool:
        """A kept lock holds until an operator resets it; any other until it expires."""
        return self.kept or self.lock_expires_at is None or self.lock_expires_at >= now


class RejoinFacts(BaseModel):
    """What the plan is made from, each read just before."""

    model_config = ConfigDict(frozen=True)

    service: str
    site: RejoinSite
    active_site: str = Field(description="the state table's active site")
    now: float
    lock: LockView | None = None
    edge_site: str | None = Field(description="the site the edge points at, None when not one known site")
    edge_reason: str
    site_status: SiteStatus = Field(description="the rejoined site's database, from its agent")
    active_status: SiteStatus | None = Field(
        default=None, description="the active site's database from its agent; None when it has none"
    )
    upstream: Upstream | None = Field(
        default=None, description="the active site's database (config: database.<active>.host, port)"
    )
    allow_rebuild: bool = False
    rebuild_needed: str | None = Field(
        default=None, description="an earlier rewind of this attempt could not work: the agent's reason"
    )


class RejoinPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: RejoinStep
    freeze_first: bool = False
    reason: str


def plan_rejoin(facts: RejoinFacts) -> RejoinPlan:
    """The next step of the rejoin, and why."""
    refusal = _refusal(facts)
    if refusal is not None:
        return RejoinPlan(step=RejoinStep.REFUSE, reason=f"not rejoined, nothing changed: {refusal}")
    assert facts.upstream is not None  # _refusal checked it
    site, active, status = facts.site, facts.active_site, facts.site_status
    source = f"{active}'s database ({facts.upstream.address()})"
    if _streams_from(status, facts):
        return RejoinPlan(
            step=RejoinStep.WAIT,
            reason=f"{site} is already a standby streaming from {source}: {status.reason}; "
            "only its lag is left to check",
        )
    freeze = status.role == DatabaseRole.PRIMARY and not status.frozen
    first = (
        "freeze it first (it is a running primary that takes writes: its application roles lose LOGIN "
        "and their sessions end, so nothing more is written to a history that is left behind), then "
        if freeze
        else ""
    )
    if facts.rebuild_needed:
        plan = plan_after_rewind(facts, facts.rebuild_needed, rebuild_needed=True)
        if plan.step != RejoinStep.REBUILD:
            return plan
        return RejoinPlan(
            step=RejoinStep.REBUILD, freeze_first=freeze, reason=f"{plan.reason}: {first}rebuild"
        )
    return RejoinPlan(
        step=RejoinStep.REWIND,
        freeze_first=freeze,
        reason=f"{site} is not a standby streaming from {source} ({_what_it_is(status, facts)}): "
        f"{first}pg_rewind against {active} (it discards what {site} wrote after the histories "
        f"parted; there is nothing to discard when they did not) and follow it",
    )


def plan_after_rewind(facts: RejoinFacts, failure: str, *, rebuild_needed: bool) -> RejoinPlan:
    """A rewind that failed: rebuild when the agent says only a fresh base backup can work and the
    operator allowed it; refused otherwise."""
    site, active = facts.site, facts.active_site
    if not rebuild_needed:
        return RejoinPlan(
            step=RejoinStep.REFUSE, reason=f"not rejoined: the rewind of {site} failed: {failure}"
        )
    if not facts.allow_rebuild:
        return RejoinPlan(
            step=RejoinStep.REFUSE,
            reason=f"not rejoined: a rewind cannot make {site} a standby of {active}: {failure}. Only a "
            f"fresh base backup of {active} can (pg_basebackup; {site}'s data directory is moved aside and "
            f"kept, never deleted): run it again with {ALLOW_REBUILD_FLAG}",
        )
    return RejoinPlan(
        step=RejoinStep.REBUILD,
        reason=f"a rewind cannot make {site} a standby of {active} ({failure}); {ALLOW_REBUILD_FLAG} was "
        f"given, so {site} is rebuilt from a fresh base backup of {active} (its data directory is moved "
        "aside and kept)",
    )


def _refusal(facts: RejoinFacts) -> str | None:
    site, active, service = facts.site, facts.active_site, facts.service
    if site == active:
        return (
            f"{site} is the active site of {service} (the state table says so): rejoin turns a former "
            f"primary into a standby of the active site, never the active site itself"
        )
    if active not in REJOINABLE or facts.upstream is None:
        return (
            f"the active site of {service} is {active}, whose database is not in the config's database "
            f"section (only main and dr are): there is no primary {site} can stream from"
        )
    lock = facts.lock
    if lock is not None and lock.holds(facts.now):
        until = (
            "kept until an operator resets it"
            if lock.kept
            else f"until {utc_text(lock.lock_expires_at)}"
            if lock.lock_expires_at is not None
            else "with no expiry"
        )
        return (
            f"incident {lock.incident_id or lock.holder} holds the lock of {service} ({until}): a "
            f"failover or switchover is under way or waits for a person; rejoin once it is over "
            f"(drctl status, drctl reset)"
        )
    if facts.edge_site == site:
        return (
            f"the edge still serves {site} ({facts.edge_reason}): a database the public hostname still "
            f"reaches is not rewound; switch the edge to {active} first"
        )
    if facts.edge_site is None:
        return (
            f"the edge does not point at one known site ({facts.edge_reason}), so nothing shows that it "
            f"does not serve {site}; put it on {active} first"
        )
    if facts.edge_site != active:
        return (
            f"the edge serves {facts.edge_site} ({facts.edge_reason}) but the state's active site is "
            f"{active}: they disagree; find out which is right before rejoining {site}"
        )
    primary = facts.active_status
    if primary is not None and not (primary.running and primary.role == DatabaseRole.PRIMARY):
        return (
            f"{active}, the active site, has no running primary ({primary.reason}): there is nothing "
            f"for {site} to stream from"
        )
    return None


def _streams_from(status: SiteStatus, facts: RejoinFacts) -> bool:
    assert facts.upstream is not None
    primary = facts.active_status
    return (
        status.role == DatabaseRole.STANDBY
        and status.streaming
        and status.following == facts.upstream.address()
        and (primary is None or primary.timeline is None or status.timeline == primary.timeline)
    )


def _what_it_is(status: SiteStatus, facts: RejoinFacts) -> str:
    primary = facts.active_status
    theirs = (
        f"; {facts.active_site} writes timeline {primary.timeline}"
        if primary is not None and primary.timeline is not None
        else ""
    )
    return f"{status.reason}{theirs}"


# -- the wait ----------------------------------------------------------------------------------


class CatchUp(BaseModel):
    """Whether the rejoined site streams from the active site within the lag limit."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    lag_bytes: int | None = None
    reason: str


def judge_caught_up(
    site: str,
    active: str,
    status: SiteStatus,
    active_status: SiteStatus | None,
    upstream: Upstream,
    max_lag_bytes: int,
) -> CatchUp:
    """The lag is the active site's current WAL position minus what the standby replayed, when the
    active site's agent tells that position; else the standby's own received-but-not-replayed
    bytes (said so). Unknown is not within the limit."""
    source = upstream.address()
    if status.role != DatabaseRole.STANDBY:
        return CatchUp(ok=False, reason=f"{site} is not a standby yet: {status.reason}")
    if not status.streaming or status.following != source:
        return CatchUp(
            ok=False, reason=f"{site} is not streaming from {active} ({source}) yet: {status.reason}"
        )
    if active_status is not None and active_status.timeline is not None:
        if status.timeline != active_status.timeline:
            return CatchUp(
                ok=False,
                reason=f"{site} streams timeline {status.timeline}, {active} writes timeline "
                f"{active_status.timeline}: {status.reason}",
            )
    if active_status is not None and active_status.current_lsn and status.replay_lsn:
        lag: int | None = max(0, parse_lsn(active_status.current_lsn) - parse_lsn(status.replay_lsn))
        measure = (
            f"{lag} bytes behind {active}'s WAL {active_status.current_lsn} "
            f"(replayed up to {status.replay_lsn})"
        )
    else:
        lag = status.lag_bytes
        measure = (
            f"{lag} bytes received and not yet replayed ({active}'s own position was not read: it has "
            "no agent)"
            if lag is not None
            else "lag unknown (neither site said it)"
        )
    where = f"{site} streams from {active} ({source}) on timeline {status.timeline}, {measure}"
    if lag is None:
        return CatchUp(ok=False, reason=f"{where}: unknown is not within the limit")
    if lag > max_lag_bytes:
        return CatchUp(
            ok=False,
            lag_bytes=lag,
            reason=f"{where}: above the limit of {max_lag_bytes} bytes (database.max_lag_bytes)",
        )
    return CatchUp(
        ok=True,
        lag_bytes=lag,
        reason=f"{where}: within the limit of {max_lag_bytes} bytes (database.max_lag_bytes)",
    )


# -- the record and the operation ids ----------------------------------------------------------


class RejoinProgress(BaseModel):
    """What the rejoin record keeps between runs (the incident record's `rejoin` field)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    site: RejoinSite
    attempt: int = Field(default=1, ge=1)
    active_site: str | None = None
    upstream: str | None = None
    plan: RejoinStep | None = None
    allow_rebuild: bool = False
    rebuild_needed: str | None = None
    finished: bool = Field(
        default=False, description="this attempt ended with the site streaming within the limit"
    )
    notified: bool = Field(default=False, description="this attempt's 'resolved' notification was delivered")
    lag_bytes: int | None = None


def record_id(service: str, site: str, now: float) -> str:
    """One rejoin record per service, site and UTC day: `rejoin-booking-main-2026-12-02`."""
    return f"rejoin-{service}-{site}-{utc_day(now)}"


def operation_id(record: str, attempt: int, step: str) -> str:
    """The agent's operation id of one step: the same record, attempt and step is the same
    operation (the agent runs it once and answers a repeat with its stored answer)."""
    return f"{record}:{attempt}:{step}"


def next_attempt(previous: RejoinProgress | None, plan: RejoinPlan) -> RejoinProgress | None:
    """The attempt this run belongs to: the previous one continues unless it finished and there is
    work again (the site stopped being a standby since, e.g. after another failover the same day),
    which starts a new attempt with fresh operation ids. None: no record yet."""
    if previous is None:
        return None
    if previous.finished and plan.step not in (RejoinStep.WAIT, RejoinStep.REFUSE):
        return RejoinProgress(site=previous.site, attempt=previous.attempt + 1)
    return previous
