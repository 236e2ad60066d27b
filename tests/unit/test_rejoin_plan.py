"""The rejoin's plan, its wait and its ids (`quorum_dr.domain.rejoin`): every branch with its
sentence. A rejoin rewinds a database, so every refusal must hold before anything acts."""

from __future__ import annotations

from typing import Any

import pytest

from quorum_dr.agent.contract import DatabaseRole, SiteStatus, Upstream
from quorum_dr.domain.rejoin import (
    LockView,
    RejoinFacts,
    RejoinPlan,
    RejoinProgress,
    RejoinStep,
    judge_caught_up,
    next_attempt,
    operation_id,
    plan_after_rewind,
    plan_rejoin,
    record_id,
)

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
DR = Upstream(host="10.0.2.7", port=5432)


def primary(timeline: int = 1, lsn: str = "0/5000000", frozen: bool = False) -> SiteStatus:
    writes = "takes no writes from the application" if frozen else "accepts writes"
    return SiteStatus(
        role=DatabaseRole.PRIMARY,
        running=True,
        timeline=timeline,
        current_lsn=lsn,
        frozen=frozen,
        reason=f"primary on timeline {timeline} at WAL {lsn}, {writes}",
    )


def standby(
    following: str | None = "10.0.2.7:5432",
    timeline: int = 2,
    streaming: bool = True,
    replay: str = "0/6000000",
    lag: int | None = 0,
) -> SiteStatus:
    return SiteStatus(
        role=DatabaseRole.STANDBY,
        running=True,
        timeline=timeline,
        receive_lsn=replay,
        replay_lsn=replay,
        lag_bytes=lag,
        following=following,
        streaming=streaming,
        reason=f"standby on timeline {timeline}, streaming from {following}, replayed up to {replay}",
    )


STOPPED = SiteStatus(
    role=DatabaseRole.STOPPED,
    running=False,
    timeline=1,
    shutdown_clean=False,
    reason="stopped but not cleanly (cluster state 'in production', latest checkpoint 0/4000000 on "
    "timeline 1)",
)


def facts(**changes: Any) -> RejoinFacts:
    base: dict[str, Any] = {
        "service": "booking",
        "site": "main",
        "active_site": "dr",
        "now": NOW,
        "edge_site": "dr",
        "edge_reason": "app.example.com points at dr (198.51.100.20)",
        "site_status": primary(),
        "active_status": primary(timeline=2, lsn="0/6000000"),
        "upstream": DR,
    }
    return RejoinFacts(**{**base, **changes})


def refused(plan: RejoinPlan) -> str:
    assert plan.step == RejoinStep.REFUSE and not plan.freeze_first
    return plan.reason


# -- refusals: nothing changes ----------------------------------------------------------------


def test_the_active_site_itself_is_never_rejoined() -> None:
    plan = plan_rejoin(facts(site="dr"))

    assert refused(plan) == (
        "not rejoined, nothing changed: dr is the active site of booking (the state table says so): rejoin "
        "turns a former primary into a standby of the active site, never the active site itself"
    )


def test_a_cold_active_site_has_no_database_to_stream_from() -> None:
    plan = plan_rejoin(facts(active_site="cold", upstream=None, edge_site="cold", active_status=None))

    assert refused(plan) == (
        "not rejoined, nothing changed: the active site of booking is cold, whose database is not in the "
        "config's database section (only main and dr are): there is no primary main can stream from"
    )


def test_the_edge_still_serving_the_site_refuses() -> None:
    plan = plan_rejoin(facts(edge_site="main", edge_reason="app.example.com points at main (203.0.113.10)"))

    assert refused(plan) == (
        "not rejoined, nothing changed: the edge still serves main (app.example.com points at main "
        "(203.0.113.10)): a database the public hostname still reaches is not rewound; switch the edge to "
        "dr first"
    )


def test_an_edge_that_points_at_no_single_site_refuses() -> None:
    plan = plan_rejoin(facts(edge_site=None, edge_reason="records point at main and dr"))

    assert refused(plan) == (
        "not rejoined, nothing changed: the edge does not point at one known site (records point at main "
        "and dr), so nothing shows that it does not serve main; put it on dr first"
    )


def test_an_edge_that_disagrees_with_the_state_refuses() -> None:
    plan = plan_rejoin(facts(edge_site="cold", edge_reason="app.example.com points at cold"))

    assert refused(plan) == (
        "not rejoined, nothing changed: the edge serves cold (app.example.com points at cold) but the "
        "state's active site is dr: they disagree; find out which is right before rejoining main"
    )


def test_a_held_lock_refuses_until_it_expires_and_a_kept_one_until_a_reset() -> None:
    running = LockView(incident_id="inc-9", holder="inc-9", lock_expires_at=NOW + 60)
    kept = LockView(incident_id="inc-8", holder="inc-8", lock_expires_at=2**53, kept=True)
    expired = LockView(incident_id="inc-7", holder="inc-7", lock_expires_at=NOW - 1)

    assert refused(plan_rejoin(facts(lock=running))) == (
        "not rejoined, nothing changed: incident inc-9 holds the lock of booking (until 2027-01-15 "
        "08:01:00Z): a failover or switchover is under way or waits for a person; rejoin once it is over "
        "(drctl status, drctl reset)"
    )
    assert "incident inc-8 holds the lock of booking (kept until an operator resets it)" in refused(
        plan_rejoin(facts(lock=kept))
    )
    assert plan_rejoin(facts(lock=expired)).step == RejoinStep.REWIND


def test_an_active_site_without_a_running_primary_refuses() -> None:
    plan = plan_rejoin(facts(active_status=standby(following="10.0.1.5:5432", timeline=1)))

    assert refused(plan) == (
        "not rejoined, nothing changed: dr, the active site, has no running primary (standby on timeline 1, "
        "streaming from 10.0.1.5:5432, replayed up to 0/6000000): there is nothing for main to stream from"
    )
    assert plan_rejoin(facts(active_status=STOPPED)).step == RejoinStep.REFUSE


# -- what to do ---------------------------------------------------------------------------------


def test_a_site_already_streaming_from_the_active_site_is_only_waited_for() -> None:
    status = standby()

    plan = plan_rejoin(facts(site_status=status))

    assert (plan.step, plan.freeze_first) == (RejoinStep.WAIT, False)
    assert plan.reason == (
        f"main is already a standby streaming from dr's database (10.0.2.7:5432): {status.reason}; only its "
        "lag is left to check"
    )
    # without the active site's agent, the upstream alone says it
    assert plan_rejoin(facts(site_status=status, active_status=None)).step == RejoinStep.WAIT


def test_an_old_primary_that_takes_writes_is_frozen_then_rewound() -> None:
    plan = plan_rejoin(facts())

    assert (plan.step, plan.freeze_first) == (RejoinStep.REWIND, True)
    assert plan.reason == (
        "main is not a standby streaming from dr's database (10.0.2.7:5432) (primary on timeline 1 at WAL "
        "0/5000000, accepts writes; dr writes timeline 2): freeze it first (it is a running primary that "
        "takes writes: its application roles lose LOGIN and their sessions end, so nothing more is written "
        "to a history that is left behind), then pg_rewind against dr (it discards what main wrote after "
        "the histories parted; there is nothing to discard when they did not) and follow it"
    )


@pytest.mark.parametrize(
    "status",
    [
        primary(frozen=True),
        STOPPED,
        standby(following="10.0.9.9:5432"),  # another upstream
        standby(streaming=False),
        standby(timeline=1),  # streams, but not the active site's timeline
    ],
    ids=["frozen-primary", "stopped-uncleanly", "other-upstream", "not-streaming", "old-timeline"],
)
def test_anything_else_is_rewound_without_a_freeze(status: SiteStatus) -> None:
    plan = plan_rejoin(facts(site_status=status))

    assert (plan.step, plan.freeze_first) == (RejoinStep.REWIND, False)
    assert plan.reason.startswith(
        f"main is not a standby streaming from dr's database (10.0.2.7:5432) ({status.reason}; dr writes "
        "timeline 2): pg_rewind against dr"
    )


def test_a_rewind_that_cannot_work_needs_the_rebuild_flag() -> None:
    why = (
        "pg_rewind against 10.0.2.7:5432 failed: target server needs to use either data checksums or "
        "wal_log_hints"
    )

    refusal = plan_rejoin(facts(rebuild_needed=why))
    allowed = plan_rejoin(facts(rebuild_needed=why, allow_rebuild=True))

    assert refused(refusal) == (
        f"not rejoined: a rewind cannot make main a standby of dr: {why}. Only a fresh base backup of dr can "
        "(pg_basebackup; main's data directory is moved aside and kept, never deleted): run it again with "
        "--allow-rebuild"
    )
    assert (allowed.step, allowed.freeze_first) == (RejoinStep.REBUILD, True)
    assert allowed.reason == (
        f"a rewind cannot make main a standby of dr ({why}); --allow-rebuild was given, so main is rebuilt "
        "from a fresh base backup of dr (its data directory is moved aside and kept): freeze it first (it is "
        "a running primary that takes writes: its application roles lose LOGIN and their sessions end, so "
        "nothing more is written to a history that is left behind), then rebuild"
    )
    stopped = plan_rejoin(facts(site_status=STOPPED, rebuild_needed=why, allow_rebuild=True))
    assert (stopped.step, stopped.freeze_first) == (RejoinStep.REBUILD, False)
    assert stopped.reason.endswith("(its data directory is moved aside and kept): rebuild")


def test_after_a_failed_rewind_only_rebuild_needed_leads_to_a_rebuild() -> None:
    failure = "not rewound, nothing changed: cannot open a replication connection to 10.0.2.7:5432"

    plain = plan_after_rewind(facts(allow_rebuild=True), failure, rebuild_needed=False)
    needed = plan_after_rewind(facts(allow_rebuild=True), "pg_rewind failed", rebuild_needed=True)

    assert refused(plain) == f"not rejoined: the rewind of main failed: {failure}"
    assert needed.step == RejoinStep.REBUILD
    assert refused(plan_after_rewind(facts(), "pg_rewind failed", rebuild_needed=True)).endswith(
        "run it again with --allow-rebuild"
    )


# -- the wait -----------------------------------------------------------------------------------


def test_caught_up_measures_the_lag_from_the_active_sites_own_position() -> None:
    site = standby(replay="0/5FFF000")
    active = primary(timeline=2, lsn="0/6000000")

    within = judge_caught_up("main", "dr", site, active, DR, max_lag_bytes=4096)
    above = judge_caught_up("main", "dr", site, active, DR, max_lag_bytes=4095)

    assert (within.ok, within.lag_bytes) == (True, 4096)
    assert within.reason == (
        "main streams from dr (10.0.2.7:5432) on timeline 2, 4096 bytes behind dr's WAL 0/6000000 (replayed "
        "up to 0/5FFF000): within the limit of 4096 bytes (database.max_lag_bytes)"
    )
    assert (above.ok, above.lag_bytes) == (False, 4096)
    assert above.reason.endswith(": above the limit of 4095 bytes (database.max_lag_bytes)")


def test_without_the_active_sites_agent_the_standbys_own_lag_is_used_and_unknown_is_not_within() -> None:
    known = judge_caught_up("main", "dr", standby(lag=100), None, DR, max_lag_bytes=1000)
    unknown = judge_caught_up("main", "dr", standby(lag=None), None, DR, max_lag_bytes=1000)

    assert known.ok and known.lag_bytes == 100
    assert "100 bytes received and not yet replayed (dr's own position was not read: it has no agent)" in (
        known.reason
    )
    assert not unknown.ok and unknown.reason.endswith(
        "lag unknown (neither site said it): unknown is not within the limit"
    )


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (primary(), "main is not a standby yet: primary on timeline 1"),
        (standby(streaming=False), "main is not streaming from dr (10.0.2.7:5432) yet: standby on"),
        (standby(following="10.0.9.9:5432"), "main is not streaming from dr (10.0.2.7:5432) yet: standby on"),
        (standby(timeline=1), "main streams timeline 1, dr writes timeline 2: standby on timeline 1"),
    ],
    ids=["primary", "not-streaming", "other-upstream", "old-timeline"],
)
def test_not_caught_up_says_what_is_missing(status: SiteStatus, said: str) -> None:
    verdict = judge_caught_up("main", "dr", status, primary(timeline=2), DR, max_lag_bytes=10**9)

    assert not verdict.ok and verdict.lag_bytes is None
    assert verdict.reason.startswith(said)


# -- the record, the ids, the attempts ----------------------------------------------------------


def test_ids_derive_from_the_service_the_site_and_the_utc_day() -> None:
    record = record_id("booking", "main", NOW)

    assert record == "rejoin-booking-main-2027-01-15"
    assert record_id("booking", "main", NOW + 15 * 3600) == "rejoin-booking-main-2027-01-15"
    assert record_id("booking", "main", NOW + 16 * 3600) == "rejoin-booking-main-2027-01-16"
    assert operation_id(record, 2, "rewind") == "rejoin-booking-main-2027-01-15:2:rewind"


def test_a_rerun_continues_its_attempt_and_a_finished_one_starts_a_new_only_when_there_is_work() -> None:
    rewind = RejoinPlan(step=RejoinStep.REWIND, reason="r")
    wait = RejoinPlan(step=RejoinStep.WAIT, reason="w")
    going = RejoinProgress(site="main", attempt=1, rebuild_needed="pg_rewind failed")
    done = RejoinProgress(site="main", attempt=1, finished=True, notified=True)

    assert next_attempt(None, rewind) is None
    assert next_attempt(going, rewind) == going
    assert next_attempt(done, wait) == done
    again = next_attempt(done, rewind)
    assert again == RejoinProgress(site="main", attempt=2)
    assert again is not None and not again.notified and again.rebuild_needed is None
