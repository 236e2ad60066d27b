"""The quorum engine: from probe results, a verdict per site with the sentence that explains it.

Pure code: no I/O, no clock of its own (the caller passes `now`). Read top to bottom:

1. Only results of the site, from configured probe regions, with a receive time no older than
   `freshness_seconds` are looked at. Self-check results (site `_control`) are never votes.
2. Per region, the fresh results are grouped into rounds (by round id) and the rounds ordered by
   when they were received. A round is DOWN if any voting check failed, UP if every voting check
   passed. A round in which the region failed its self-check is an abstaining round.
3. A region votes DOWN only when its latest `down_after_rounds` rounds are all DOWN; UP when its
   latest round is UP. Otherwise it abstains, is suspect (failing, not long enough yet), is
   stale (only old results) or missing (no results): none of these is a vote.
4. The site is DOWN when at least `quorum` regions vote DOWN, UP when at least `quorum` vote UP,
   and UNKNOWN otherwise.
5. Database veto (main only): if the DR standby still streams from the primary and either its
   receive position advanced between two fresh results or its last message from the primary (an
   idle primary still answers keepalives) is recent, the primary is alive; what the regions see
   is a partition, so main cannot be DOWN. When the veto does not hold, the DOWN sentence says
   why (no DR database check, the check failed, not streaming, not heard from the primary).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from quorum_dr.domain.results import CONTROL_SITE, DbRole, DbStatus, ProbeResult, Vote, format_lsn, parse_lsn

if TYPE_CHECKING:  # the config is only a type here; the engine reads plain numbers from it
    from quorum_dr.config import WatchdogConfig

VoteKind = Literal["down", "up", "suspect", "abstain", "stale", "missing"]


class Verdict(StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"


class RegionVote(BaseModel):
    model_config = ConfigDict(frozen=True)

    region: str
    kind: VoteKind
    rounds_considered: int
    reason: str


class SiteVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str
    site: str
    verdict: Verdict
    reason: str
    votes: list[RegionVote]
    down_votes: int
    up_votes: int
    quorum: int
    vetoed: bool = False
    # vetoed only: in how many seconds, at the latest, every witness of the veto will have gone
    # silent for longer than its bound if the primary says nothing more (None: not predictable)
    veto_lapses_in_seconds: float | None = None
    evaluated_at: float


class _Round(BaseModel):
    """The fresh results of one region's round for one site."""

    round_id: str
    received_at: float
    abstaining: bool
    down: bool  # a voting check failed
    up: bool  # every voting check passed (and there was at least one)
    failing: list[str]  # "check: failure class" of the failing voting checks


def _is_fresh(result: ProbeResult, now: float, freshness_seconds: float) -> bool:
    return result.received_at is not None and now - result.received_at <= freshness_seconds


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _names(regions: Iterable[str]) -> str:
    return ", ".join(regions)


def _rounds(results: list[ProbeResult], control_down: set[str]) -> list[_Round]:
    """Group one region's fresh results of one site into rounds, oldest first."""
    by_round: dict[str, list[ProbeResult]] = defaultdict(list)
    for result in results:
        by_round[result.round_id].append(result)
    rounds = []
    for round_id, members in by_round.items():
        voting = [r for r in members if r.counts]
        failing = sorted(f"{r.check}: {r.failure_class or 'down'}" for r in voting if r.vote is Vote.DOWN)
        rounds.append(
            _Round(
                round_id=round_id,
                received_at=max(r.received_at or 0.0 for r in members),
                abstaining=any(r.abstaining for r in members) or round_id in control_down,
                down=bool(failing),
                up=bool(voting) and not failing,
                failing=failing,
            )
        )
    rounds.sort(key=lambda r: (r.received_at, r.round_id))
    return rounds


def _region_vote(
    region: str,
    fresh: list[ProbeResult],
    any_seen: bool,
    control_down: set[str],
    site: str,
    down_after_rounds: int,
) -> RegionVote:
    if not fresh:
        if any_seen:
            return RegionVote(
                region=region,
                kind="stale",
                rounds_considered=0,
                reason=f"{region}'s results for {site} are stale",
            )
        return RegionVote(
            region=region, kind="missing", rounds_considered=0, reason=f"{region} has no results for {site}"
        )
    # Informational checks alone do not make a round, unless the round abstains.
    rounds = [r for r in _rounds(fresh, control_down) if r.up or r.down or r.abstaining]
    if not rounds:
        return RegionVote(
            region=region,
            kind="missing",
            rounds_considered=0,
            reason=f"{region} has no voting check results for {site}",
        )
    latest = rounds[-1]
    if latest.abstaining:
        return RegionVote(
            region=region,
            kind="abstain",
            rounds_considered=1,
            reason=f"{region} abstains (control target unreachable in round {latest.round_id})",
        )
    if latest.up:
        return RegionVote(
            region=region,
            kind="up",
            rounds_considered=1,
            reason=f"{region} votes UP: every voting check passed in round {latest.round_id}",
        )
    window = rounds[-down_after_rounds:]
    consecutive = 0
    for round_ in reversed(rounds):
        if round_.abstaining or not round_.down:
            break
        consecutive += 1
    failing = "; ".join(latest.failing)
    if len(window) == down_after_rounds and consecutive >= down_after_rounds:
        return RegionVote(
            region=region,
            kind="down",
            rounds_considered=down_after_rounds,
            reason=f"{region} votes DOWN: {down_after_rounds} consecutive failing "
            f"{_plural(down_after_rounds, 'round', 'rounds')} ({failing})",
        )
    return RegionVote(
        region=region,
        kind="suspect",
        rounds_considered=len(window),
        reason=f"{region} is suspect: {consecutive} of {down_after_rounds} failing rounds so far ({failing})",
    )


# How far past half of the standby's wal_receiver_timeout its last message from a live, idle main
# may be: the receiver's loop wakes at most every 100 ms, and the sender answers a ping at once.
KEEPALIVE_SLACK_SECONDS = 5.0
# PostgreSQL's default wal_receiver_timeout is 60 s: a standby that reports none pings at 30 s.
DEFAULT_RECEIVER_TIMEOUT_SECONDS = 60.0


def heard_bound(db: DbStatus, configured: float | None) -> float:
    """How recent the standby's last message from main must be to count as hearing from it.

    An idle main writes no WAL; its WAL receiver pings main's WAL sender when it has heard nothing
    for half of `wal_receiver_timeout`, and the sender answers at once (PostgreSQL 15, walreceiver.c;
    the sender's own keepalive at half of `wal_sender_timeout` waits for the standby's silence,
    which its status replies every `wal_receiver_status_interval` prevent). So on a live main the
    standby's last message is never much older than half its `wal_receiver_timeout`.
    """
    if configured is not None:
        return configured
    timeout = db.wal_receiver_timeout_seconds or DEFAULT_RECEIVER_TIMEOUT_SECONDS
    return timeout / 2 + KEEPALIVE_SLACK_SECONDS


def _veto_witness(
    dr_results: Iterable[ProbeResult],
    regions: set[str],
    service: str,
    heard_within: float | None,
    now: float,
) -> tuple[str | None, str, float | None]:
    """(a sentence naming the evidence that the primary is alive, or None; why there is none; with
    a witness, in how many seconds the last witness lapses if nothing more is heard, or None).

    A witness lapses when the standby's silence since its last message from main passes the bound:
    the heard age the standby reported at the check plus the time since the check (`received_at`,
    home time as `now`). A witness by an advanced receive position whose standby reported no heard
    age counts as heard at the check: the later lapse, so the next round comes no sooner than it
    should. Only a prediction: the next round reads the standby afresh, and a live main's keepalive
    restarts the count.

    Per region and check, the latest fresh result of the DR database check must itself be a
    standby report saying the WAL receiver is streaming, and either its receive position is past
    the one of the standby report before it (main writes), or its last message from main (data or
    keepalive: an idle main still answers) is within `heard_bound` of that result. A latest
    result that failed (the DR database is down or cut off) is no evidence at all, however recent
    the reports before it: only the present counts.
    """
    series: dict[tuple[str, str], list[ProbeResult]] = defaultdict(list)
    for result in dr_results:
        if (
            result.service == service
            and result.region in regions
            and not result.abstaining
            and (result.check_type == "postgres" or result.db is not None)
        ):
            series[(result.region, result.check)].append(result)
    if not series:
        return (
            None,
            "no fresh result of the DR database check, so nothing shows whether the primary is alive",
            None,
        )
    gaps = []
    first: str | None = None
    lapses: list[float | None] = []
    for (region, _check), results in sorted(series.items()):
        results.sort(key=lambda r: (r.received_at or 0.0, r.round_id))
        after = results[-1]
        witness, gap = _region_witness(
            region, after, [r for r in results[:-1] if _standby_report(r)], heard_within
        )
        if witness:
            first = first or witness
            lapses.append(_lapses_in(after, heard_within, now))
        else:
            gaps.append(gap)
    if first is not None:  # the veto holds until its last witness lapses; one unknown: unknown
        return first, "", None if None in lapses else max(lapse for lapse in lapses if lapse is not None)
    return None, "; ".join(gaps), None


def _lapses_in(witness: ProbeResult, heard_within: float | None, now: float) -> float | None:
    """In how many seconds this witness's standby will have been silent past its bound."""
    db = witness.db
    if db is None or witness.received_at is None:
        return None
    heard_age = db.last_msg_age_seconds if db.last_msg_age_seconds is not None else 0.0
    return heard_bound(db, heard_within) - heard_age - max(0.0, now - witness.received_at)


def _region_witness(
    region: str, after: ProbeResult, earlier: list[ProbeResult], heard_within: float | None
) -> tuple[str | None, str]:
    db = after.db
    if after.vote is Vote.DOWN or db is None:
        why = after.failure_class or "no status"
        return None, f"the DR database check failed from {region} ({why})"
    if db.role is not DbRole.STANDBY:
        return None, f"the DR database answered {region} as a {db.role}, not a standby"
    if not db.streaming or not db.receive_lsn:
        return None, f"the DR standby is not streaming from the primary (seen from {region})"
    if earlier:
        before = earlier[-1]
        assert before.db is not None
        start, end = parse_lsn(before.db.receive_lsn or "0/0"), parse_lsn(db.receive_lsn)
        if end > start:
            return (
                f"the DR standby is still streaming from the primary and its receive position "
                f"advanced from {format_lsn(start)} to {format_lsn(end)} (seen from {region})"
            ), ""
    moved = "did not advance" if earlier else "was seen once"
    bound = heard_bound(db, heard_within)
    if db.last_msg_age_seconds is None:
        return None, (
            f"the DR standby's receive position {moved} ({db.receive_lsn}) and when it last heard "
            f"from the primary is unknown (seen from {region})"
        )
    if db.last_msg_age_seconds <= bound:
        return (
            f"the DR standby is still streaming from the primary and heard from it "
            f"{db.last_msg_age_seconds:.1f} s before its check (within {bound:g} s: an idle primary "
            f"still answers the standby's keepalives) (seen from {region})"
        ), ""
    return None, (
        f"the DR standby's receive position {moved} ({db.receive_lsn}) and it last heard from the "
        f"primary {db.last_msg_age_seconds:.1f} s before its check (more than {bound:g} s; "
        f"seen from {region})"
    )


def _database_veto(
    fresh_dr: list[ProbeResult],
    regions: set[str],
    service: str,
    heard_within: float | None,
    dr_check_configured: bool,
    now: float,
) -> tuple[str | None, str, float | None]:
    """(the veto's witness or None; the clause a DOWN sentence ends with when it does not hold;
    when it holds, in how many seconds it lapses if nothing more is heard, or None)."""
    if not dr_check_configured:
        return None, "; no database veto: the DR site has no PostgreSQL check configured", None
    witness, gap, lapses_in = _veto_witness(fresh_dr, regions, service, heard_within, now)
    return witness, f"; no database veto: {gap}", lapses_in


def _standby_report(result: ProbeResult) -> bool:
    db = result.db
    return db is not None and db.role is DbRole.STANDBY and bool(db.receive_lsn)


def _check_quorum(quorum: int, regions: Sequence[str]) -> None:
    if quorum * 2 <= len(regions) or quorum > len(regions):
        raise ValueError(
            f"quorum {quorum} must be more than half of the {len(regions)} probe regions "
            f"and not more than them"
        )


def evaluate_site(
    results: Iterable[ProbeResult],
    *,
    service: str,
    site: str,
    regions: Sequence[str],
    quorum: int,
    freshness_seconds: float,
    down_after_rounds: int,
    now: float,
    db_veto: bool = False,
    dr_results: Iterable[ProbeResult] = (),
    heard_within_seconds: float | None = None,
    dr_check_configured: bool = True,
) -> SiteVerdict:
    """The verdict on one site of one service. `dr_results` feed the database veto (main only);
    `heard_within_seconds` overrides its keepalive bound (see `heard_bound`)."""
    _check_quorum(quorum, regions)
    if down_after_rounds < 1:
        raise ValueError(f"down_after_rounds must be at least 1, got {down_after_rounds}")
    configured = set(regions)
    seen: dict[str, list[ProbeResult]] = defaultdict(list)
    fresh: dict[str, list[ProbeResult]] = defaultdict(list)
    control_down: dict[str, set[str]] = defaultdict(set)
    for result in results:
        if result.service != service or result.region not in configured:
            continue
        is_fresh = _is_fresh(result, now, freshness_seconds)
        if result.site == CONTROL_SITE:
            if is_fresh and result.vote is Vote.DOWN:
                control_down[result.region].add(result.round_id)
            continue
        if result.site != site:
            continue
        seen[result.region].append(result)
        if is_fresh:
            fresh[result.region].append(result)

    votes = [
        _region_vote(region, fresh[region], bool(seen[region]), control_down[region], site, down_after_rounds)
        for region in regions
    ]
    down = [v.region for v in votes if v.kind == "down"]
    up = [v.region for v in votes if v.kind == "up"]
    total = len(regions)

    verdict = Verdict.UNKNOWN
    vetoed = False
    lapses_in: float | None = None
    if len(down) >= quorum:
        witness, no_veto = None, ""
        if db_veto:
            fresh_dr = [r for r in dr_results if r.site == "dr" and _is_fresh(r, now, freshness_seconds)]
            witness, no_veto, lapses_in = _database_veto(
                fresh_dr, configured, service, heard_within_seconds, dr_check_configured, now
            )
        if witness:
            vetoed = True
            reason = (
                f"{site} is UNKNOWN: {len(down)} of {total} regions ({_names(down)}) vote DOWN, but "
                f"{witness}: the primary is alive and this looks like a partition; quorum is {quorum}"
            )
        else:
            verdict = Verdict.DOWN
            reason = (
                f"{site} is DOWN: {len(down)} of {total} regions ({_names(down)}) saw "
                f"{down_after_rounds} consecutive failing {_plural(down_after_rounds, 'round', 'rounds')}; "
                f"quorum is {quorum}{no_veto}"
            )
    elif len(up) >= quorum:
        verdict = Verdict.UP
        reason = (
            f"{site} is UP: {len(up)} of {total} regions ({_names(up)}) saw every voting check pass "
            f"in their latest round; quorum is {quorum}"
        )
    else:
        reason = f"{site} is UNKNOWN: " + "; ".join(
            _unknown_clauses(votes, down, up) + [f"quorum is {quorum}"]
        )

    return SiteVerdict(
        service=service,
        site=site,
        verdict=verdict,
        reason=reason,
        votes=votes,
        down_votes=len(down),
        up_votes=len(up),
        quorum=quorum,
        vetoed=vetoed,
        veto_lapses_in_seconds=lapses_in if vetoed else None,
        evaluated_at=now,
    )


def _unknown_clauses(votes: list[RegionVote], down: list[str], up: list[str]) -> list[str]:
    clauses = []
    if down:
        clauses.append(
            f"only {len(down)} {_plural(len(down), 'region votes', 'regions vote')} DOWN ({_names(down)})"
        )
    if up:
        clauses.append(f"{len(up)} {_plural(len(up), 'region votes', 'regions vote')} UP ({_names(up)})")
    if not down and not up:
        clauses.append("no region votes DOWN or UP")
    order: dict[str, int] = {"suspect": 0, "abstain": 1, "stale": 2, "missing": 3}
    for vote in sorted((v for v in votes if v.kind in order), key=lambda v: order[v.kind]):
        if vote.kind == "abstain":
            clauses.append(f"{vote.region} abstains (control target unreachable)")
        elif vote.kind == "stale":
            clauses.append(f"{vote.region}'s results are stale")
        elif vote.kind == "missing":
            clauses.append(f"{vote.region} has no results")
        elif vote.kind == "suspect":
            clauses.append(vote.reason)
    return clauses


def evaluate_service(
    results: Iterable[ProbeResult], config: WatchdogConfig, service: str, now: float
) -> dict[str, SiteVerdict]:
    """Verdicts on main, dr and (when configured) cold; main is subject to the database veto."""
    spec = config.service(service)
    pool = list(results)
    sites = ["main", "dr"] + (["cold"] if spec.sites.cold is not None else [])
    dr_postgres = [r for r in pool if r.site == "dr" and r.check_type == "postgres"]
    dr_check = any(check.type == "postgres" for check in spec.sites.dr.checks)
    heard_within = spec.database.veto_heard_within_seconds if spec.database else None
    return {
        site: evaluate_site(
            pool,
            service=service,
            site=site,
            regions=config.probe_regions,
            quorum=config.quorum,
            freshness_seconds=config.probe.freshness_seconds,
            down_after_rounds=config.probe.down_after_rounds,
            now=now,
            db_veto=site == "main",
            dr_results=dr_postgres if site == "main" else (),
            heard_within_seconds=heard_within,
            dr_check_configured=dr_check,
        )
        for site in sites
    }
