"""Standby health: is the site that would take over (dr while main serves) DOWN by quorum?

While main serves, nothing else watches the DR site: a failover only asks about it once main is
down, too late to learn that there is no hot standby to go to. The probe regions already check
every site every round; this module reads those results, across every region, and says when the
standby turns DOWN and when it is back: once per change, not every round. Pure: reads results and
the last thing said (a `StandbyRecord`, kept in the state table by the probe), does no I/O.

The decision, top to bottom:

1. The standby is the configured site that is not the active one: dr while main serves, main
   while dr serves (after a failover). While the cold site serves, or while a failover is under
   way (status FAILING_OVER: the standby is being promoted, so its database stops being a
   standby on purpose), there is no standby to watch and nothing changes.
2. The standby's PostgreSQL checks vote here whatever their `vote` setting (which is about
   main's failover quorum: a standby whose database is gone is no standby), and they vote DOWN not
   only when they fail but also when the database answers and is not a streaming standby (a
   primary, or a standby whose WAL receiver is not streaming). This replication clause holds only
   while the active site is not DOWN by quorum itself: a standby cannot stream from a dead
   primary, and that outage is the failover's business, not a second alert.
3. The quorum engine (`evaluate_site`, the same rounds, freshness, `down_after_rounds` and
   `quorum` as the failover's verdicts) decides the standby's verdict from every region's
   results: one region with a bad network votes DOWN alone and is no quorum.
4. Compared with the last thing said: DOWN when nothing (or UP, or another site) was said turns
   it DOWN; UP when DOWN was said for this site turns it back; UNKNOWN keeps what was said (too
   few fresh votes either way is no news).

Timing (default settings: `probe.interval_seconds` I = 30, `down_after_rounds` = 2,
`freshness_seconds` = 90, `timeout_seconds` = 5, quorum 2 of 3). The DR site dies at t0. Each
region's next round starts within I, so its first failing round starts by t0 + I and its second
by t0 + 2I; a round takes at most 2 * timeout + 5 = 15 s (self-check, then the checks, then the
writes: `ProbeService.round_budget_seconds`). So every region votes DOWN by t0 + 2I + 15 = 75 s,
and the second region to do so evaluates after writing its own round, sees the quorum and
publishes then: at most 75 s < 3I = 90 s after the death. Both failing rounds of a voter are at
most I + 15 = 45 s old at that moment, within the 90 s freshness. In general the bound holds
while `down_after_rounds` * I + round budget <= 3 * I. The return is said within I + 15 s
(a region votes UP on its latest round alone).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from quorum_dr.domain.quorum import RegionVote, SiteVerdict, Verdict, evaluate_service, evaluate_site
from quorum_dr.domain.results import CONTROL_SITE, DbRole, ProbeResult, Vote
from quorum_dr.domain.state import ServiceStatus, utc_text

if TYPE_CHECKING:  # the config is only a type here, as in the quorum engine
    from quorum_dr.config import WatchdogConfig

STANDBY_DOWN = "StandbyDown"
STANDBY_RECOVERED = "StandbyRecovered"
STANDBY_DETAIL_TYPES = (STANDBY_DOWN, STANDBY_RECOVERED)
# The state table item of the record (sk STANDBY): every attribute the probe's UpdateItem names.
# Its IAM statement allows these and no others (`dynamodb:Attributes`), so the probe can never
# write a state or lock attribute.
STANDBY_SK = "STANDBY"
STANDBY_ATTRIBUTES = ("pk", "sk", "standby_record", "standby_version")

Change = Literal["down", "recovered"]


class StandbyRecord(BaseModel):
    """The last thing said about a service's standby (state table, sk STANDBY): the claim a
    region's conditional write makes before it publishes, so two regions say a change once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str
    down: bool
    since: float | None = Field(default=None, description="when the standby's failing rounds began")
    said_at: float = Field(description="home-region time of the round that said it")
    reason: str
    region: str = Field(description="the region whose round said it")
    round_id: str


class StandbyView(BaseModel):
    """The standby as the regions see it now (or why there is none to watch)."""

    model_config = ConfigDict(frozen=True)

    service: str
    active_site: str
    site: str | None
    verdict: SiteVerdict | None
    failing: list[str] = Field(default_factory=list, description="'check: what failed' of the DOWN voters")
    since: float | None = None
    reason: str


class StandbyAlertDetail(BaseModel):
    """The detail of `StandbyDown` / `StandbyRecovered`: one model for the producer, the tests and
    whoever reads the event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    site: str
    active_site: str
    change: Change
    reason: str
    region: str = Field(description="the region whose round saw the change and said it")
    round_id: str
    regions: list[str] = Field(description="the regions voting DOWN (down) or UP (recovered)")
    failing: list[str]
    down_since: float | None
    quorum: int
    votes: list[RegionVote]


class StandbyChange(BaseModel):
    """What this round changed about the standby: `change` is None when nothing did."""

    model_config = ConfigDict(frozen=True)

    view: StandbyView
    change: Change | None
    record: StandbyRecord | None = Field(default=None, description="what to claim when change is set")
    reason: str

    @property
    def detail_type(self) -> str:
        return STANDBY_DOWN if self.change == "down" else STANDBY_RECOVERED

    def detail(self) -> StandbyAlertDetail:
        assert self.change is not None and self.record is not None and self.view.verdict is not None
        verdict = self.view.verdict
        kind = "down" if self.change == "down" else "up"
        return StandbyAlertDetail(
            service=self.view.service,
            site=self.record.site,
            active_site=self.view.active_site,
            change=self.change,
            reason=self.reason,
            region=self.record.region,
            round_id=self.record.round_id,
            regions=[v.region for v in verdict.votes if v.kind == kind],
            failing=self.view.failing,
            down_since=self.record.since,
            quorum=verdict.quorum,
            votes=verdict.votes,
        )


def standby_site(active_site: str, status: ServiceStatus) -> tuple[str | None, str]:
    """(the site to watch, or None; why)."""
    if status is ServiceStatus.FAILING_OVER:
        return None, "a failover is under way: the standby is being promoted, so it is not watched"
    if active_site == "main":
        return "dr", "dr is the standby while main serves"
    if active_site == "dr":
        return "main", "main is the standby while dr serves"
    return None, f"{active_site} serves: there is no hot standby to watch"


def _not_replicating(result: ProbeResult) -> str | None:
    """Why a database that answered is no streaming standby, or None when it is one (or unknown)."""
    db = result.db
    if db is None:
        return None
    if db.role is DbRole.PRIMARY:
        return "answered as a primary, not a streaming standby"
    if db.streaming is False:
        return "standby NOT streaming from the primary"
    return None


def _as_standby(results: Iterable[ProbeResult], site: str, *, replication: bool) -> list[ProbeResult]:
    """The results with the standby's database checks voting, and with `replication` those that
    answered but do not replicate as DOWN votes."""
    out = []
    for result in results:
        if result.site == site and result.check_type == "postgres":
            why = _not_replicating(result) if replication and result.vote is Vote.UP else None
            if why is not None:
                result = result.model_copy(
                    update={"counts": True, "vote": Vote.DOWN, "failure_class": None, "detail": why}
                )
            elif not result.counts:
                result = result.model_copy(update={"counts": True})
        out.append(result)
    return out


def _what_failed(result: ProbeResult) -> str:
    if result.failure_class is None:
        return f"{result.check}: {result.detail or 'down'}"
    return f"{result.check}: {result.failure_class.value}"


def _failing_and_since(
    results: Sequence[ProbeResult], site: str, regions: Sequence[str], now: float, freshness: float
) -> tuple[list[str], float | None]:
    """The failing checks of the DOWN voters' latest rounds, and when the earliest of their current
    failing streaks began (within the fresh window the quorum reads)."""
    rounds: dict[str, dict[str, list[ProbeResult]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        if result.site != site or result.region not in regions or result.received_at is None:
            continue
        if now - result.received_at <= freshness:
            rounds[result.region][result.round_id].append(result)
    failing: set[str] = set()
    since: float | None = None
    for region in regions:
        ordered = sorted(
            rounds[region].values(), key=lambda rs: (max(r.received_at or 0.0 for r in rs), rs[0].round_id)
        )
        streak_start = None
        for members in reversed(ordered):
            down = [r for r in members if r.counts and r.vote is Vote.DOWN]
            if not down or any(r.abstaining for r in members):
                break
            streak_start = min(r.received_at or 0.0 for r in members)
            if members is ordered[-1]:
                failing.update(f"{_what_failed(r)} (from {region})" for r in down)
        if streak_start is not None:
            since = streak_start if since is None else min(since, streak_start)
    return sorted(failing), since


def _label(config: WatchdogConfig, service: str, site: str) -> str:
    spec = getattr(config.service(service).sites, site, None)
    return f"{site} ({spec.label})" if spec is not None else site


def evaluate_standby(
    results: Iterable[ProbeResult],
    config: WatchdogConfig,
    service: str,
    *,
    active_site: str,
    status: ServiceStatus,
    now: float,
) -> StandbyView:
    """The standby's verdict by quorum across every region (see the module's steps 1 to 3)."""
    site, why = standby_site(active_site, status)
    if site is None or getattr(config.service(service).sites, site, None) is None:
        return StandbyView(service=service, active_site=active_site, site=None, verdict=None, reason=why)
    pool = [r for r in results if r.service == service]
    probe = config.probe
    active_down = evaluate_service(pool, config, service, now)[active_site].verdict is Verdict.DOWN
    seen = _as_standby(pool, site, replication=not active_down)
    verdict = evaluate_site(
        seen,
        service=service,
        site=site,
        regions=config.probe_regions,
        quorum=config.quorum,
        freshness_seconds=probe.freshness_seconds,
        down_after_rounds=probe.down_after_rounds,
        now=now,
    )
    down_regions = [v.region for v in verdict.votes if v.kind == "down"]
    failing, since = _failing_and_since(
        [r for r in seen if r.site != CONTROL_SITE], site, down_regions, now, probe.freshness_seconds
    )
    if active_down:
        why += f"; {active_site} itself is DOWN by quorum, so the standby's replication is not judged"
    return StandbyView(
        service=service,
        active_site=active_site,
        site=site,
        verdict=verdict,
        failing=failing,
        since=since,
        reason=f"{why}: {verdict.reason}",
    )


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def standby_change(
    view: StandbyView,
    previous: StandbyRecord | None,
    config: WatchdogConfig,
    *,
    region: str,
    round_id: str,
    now: float,
) -> StandbyChange:
    """Compare the standby's verdict now with the last thing said (module step 4)."""
    verdict, site = view.verdict, view.site
    if verdict is None or site is None:
        return StandbyChange(view=view, change=None, reason=view.reason)
    said_down = previous is not None and previous.site == site and previous.down
    label = _label(config, view.service, site)
    role = f"the standby of {view.service} while {view.active_site} serves"
    total = len(verdict.votes)
    if verdict.verdict is Verdict.DOWN and not said_down:
        voters = [v.region for v in verdict.votes if v.kind == "down"]
        since = view.since if view.since is not None else now
        reason = (
            f"{label}, {role}, is DOWN: {len(voters)} of {total} probe regions ({', '.join(voters)}) saw "
            f"{config.probe.down_after_rounds} consecutive failing rounds; failing: "
            f"{'; '.join(view.failing) or 'unknown'}; failing since {utc_text(since)} "
            f"({_ago(now - since)} ago); quorum is {verdict.quorum}. Until it is back, a failover of "
            f"{view.active_site} has no hot standby to go to"
        )
        record = StandbyRecord(
            site=site, down=True, since=since, said_at=now, reason=reason, region=region, round_id=round_id
        )
        return StandbyChange(view=view, change="down", record=record, reason=reason)
    if verdict.verdict is Verdict.UP and said_down:
        assert previous is not None
        voters = [v.region for v in verdict.votes if v.kind == "up"]
        since = previous.since if previous.since is not None else previous.said_at
        reason = (
            f"{label}, {role}, is back UP: {len(voters)} of {total} probe regions ({', '.join(voters)}) saw "
            f"every voting check pass (its database a streaming standby, where checked) in their latest "
            f"round; quorum is {verdict.quorum}. It had been DOWN since {utc_text(since)} "
            f"({_ago(now - since)}), said at {utc_text(previous.said_at)}"
        )
        record = StandbyRecord(
            site=site, down=False, since=since, said_at=now, reason=reason, region=region, round_id=round_id
        )
        return StandbyChange(view=view, change="recovered", record=record, reason=reason)
    if said_down:
        still = "still DOWN" if verdict.verdict is Verdict.DOWN else "not yet UP by quorum"
        return StandbyChange(
            view=view, change=None, reason=f"{label} is {still} (said already): {verdict.reason}"
        )
    return StandbyChange(view=view, change=None, reason=f"no change for {label}: {verdict.reason}")
