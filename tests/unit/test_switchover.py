"""The planned switchover's decisions (pure) and its request model: each verdict with its sentence,
held against DESIGN invariant 7 (writes frozen, the target has exactly the active site's final
position, checked) and invariant 9 (bad input changes nothing)."""

from __future__ import annotations

from typing import Any

import pytest

from quorum_dr.agent.contract import DatabaseRole, SiteStatus
from quorum_dr.domain.quorum import SiteVerdict, Verdict
from quorum_dr.domain.state import ServiceState, ServiceStatus
from quorum_dr.domain.switchover import (
    SwitchoverFigures,
    automation_sentence,
    check_databases,
    check_edge,
    check_final_position,
    check_following,
    check_frozen,
    check_preconditions,
    check_replayed,
    check_stopped,
    check_writable,
    follow_sentence,
    write_outage_seconds,
)
from quorum_dr.failover.errors import InvalidInput
from quorum_dr.failover.longest_path import longest_execution, longest_switchover
from quorum_dr.switchover.request import parse_request, start_switchover
from tests.fakes import make_config

NOW = 1_800_000_000.0
LIMIT = 16 * 1024 * 1024


def verdict(site: str, kind: Verdict) -> SiteVerdict:
    reason = f"{site} is {kind.value}: 3 of 3 regions saw every voting check pass in their latest round"
    reason += "; quorum is 2"
    return SiteVerdict(
        service="booking",
        site=site,
        verdict=kind,
        reason=reason,
        votes=[],
        down_votes=0,
        up_votes=3,
        quorum=2,
        evaluated_at=NOW,
    )


def preconditions(state: ServiceState | None = None, **kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "target": "dr",
        "lock": None,
        "own_execution": "sw-1",
        "target_verdict": verdict("dr", Verdict.UP),
        **kwargs,
    }
    return check_preconditions(state or ServiceState(service="booking"), **args)


# ---------------------------------------------------------------------------------------------
# Preconditions: the state, the lock, the quorum
# ---------------------------------------------------------------------------------------------


def test_a_healthy_service_with_the_target_up_may_switch() -> None:
    decision = preconditions()
    assert decision.proceed and decision.code == "ok"
    assert decision.reason == (
        "switchover of booking from main to dr may start: no incident holds the lock, booking is HEALTHY, "
        "and dr is UP: 3 of 3 regions saw every voting check pass in their latest round; quorum is 2"
    )


@pytest.mark.parametrize(
    ("state", "kwargs", "code", "sentence"),
    [
        (
            {"active_site": "dr"},
            {},
            "already_active",
            "switchover of booking to dr refused: dr is already the active site of booking: nothing to "
            "switch",
        ),
        (
            {"active_site": "cold"},
            {},
            "not_from_cold",
            "booking serves from cold; a planned switchover runs between main and dr only",
        ),
        (
            {"status": ServiceStatus.NEEDS_ATTENTION, "lock_holder": "inc-7"},
            {},
            "needs_attention",
            "booking needs attention after incident inc-7; an operator must look and run drctl reset first",
        ),
        (
            {},
            {"lock": {"incident_id": "inc-9", "holder": "inc-9", "kept": True}},
            "lock_held",
            "incident inc-9 holds the lock of booking and keeps it until drctl reset; a failover and a "
            "switchover never run together",
        ),
        ({}, {"target_verdict": None}, "no_verdict", "the quorum has no verdict on dr"),
        (
            {},
            {"target_verdict": verdict("dr", Verdict.DOWN)},
            "target_not_up",
            "the quorum does not see dr's application UP (dr is DOWN:",
        ),
        ({}, {"target": "cold"}, "bad_target", "a switchover goes to main or dr, not 'cold'"),
    ],
)
def test_each_precondition_refuses_with_its_sentence(
    state: dict[str, Any], kwargs: dict[str, Any], code: str, sentence: str
) -> None:
    decision = preconditions(ServiceState(service="booking", **state), **kwargs)
    assert not decision.proceed and decision.code == code
    assert sentence in decision.reason


def test_the_switchovers_own_lock_is_not_someone_elses() -> None:
    decision = preconditions(lock={"incident_id": "sw-1", "holder": "sw-1", "kept": False})
    assert decision.proceed, decision.reason


# ---------------------------------------------------------------------------------------------
# The databases as their agents see them
# ---------------------------------------------------------------------------------------------


def primary(**fields: Any) -> SiteStatus:
    base: dict[str, Any] = {
        "role": DatabaseRole.PRIMARY,
        "running": True,
        "timeline": 1,
        "current_lsn": "0/5000000",
        "reason": "primary",
    }
    return SiteStatus(**{**base, **fields})


def standby(**fields: Any) -> SiteStatus:
    base: dict[str, Any] = {
        "role": DatabaseRole.STANDBY,
        "running": True,
        "timeline": 1,
        "receive_lsn": "0/5000000",
        "replay_lsn": "0/4FFF000",
        "streaming": True,
        "following": "203.0.113.10:5432",
        "reason": "standby",
    }
    return SiteStatus(**{**base, **fields})


def stopped(**fields: Any) -> SiteStatus:
    base: dict[str, Any] = {
        "role": DatabaseRole.STOPPED,
        "running": False,
        "checkpoint_lsn": "0/5000000",
        "shutdown_clean": True,
        "reason": "shut down",
    }
    return SiteStatus(**{**base, **fields})


def test_a_streaming_standby_within_the_limit_may_take_over() -> None:
    decision = check_databases(
        primary(), standby(), active_site="main", target_site="dr", max_lag_bytes=LIMIT
    )
    assert decision.proceed
    assert decision.reason == (
        "main is a writable primary at 0/5000000; dr streams from 203.0.113.10:5432 and has replayed up to "
        "0/4FFF000, 4096 bytes behind (limit 16777216)"
    )


@pytest.mark.parametrize(
    ("active", "target", "code", "sentence"),
    [
        (stopped(), standby(), "active_not_primary", "main's database is stopped, not a running primary"),
        (primary(frozen=True), standby(), "active_frozen", "writes on main are frozen already"),
        (primary(), primary(), "target_not_standby", "dr's database is primary, not a streaming standby"),
        (primary(), standby(streaming=False), "target_not_streaming", "dr's standby is not streaming"),
        (primary(), standby(replay_lsn=None), "lag_unknown", "the lag of dr is unknown"),
        (primary(current_lsn=None), standby(), "lag_unknown", "unknown is not zero"),
        (
            primary(timeline=2),
            standby(),
            "timeline_differs",
            "main writes timeline 2 but dr receives timeline 1",
        ),
        (
            primary(current_lsn="0/9000000"),
            standby(),
            "lag_above_limit",
            "dr has replayed up to 0/4FFF000, 67112960 bytes behind main's 0/9000000; the limit is "
            "16777216 bytes",
        ),
    ],
)
def test_the_databases_refuse_unless_the_target_can_take_over(
    active: SiteStatus, target: SiteStatus, code: str, sentence: str
) -> None:
    decision = check_databases(active, target, active_site="main", target_site="dr", max_lag_bytes=LIMIT)
    assert not decision.proceed and decision.code == code
    assert decision.reason.startswith("switchover from main to dr refused: ") and sentence in decision.reason


def test_a_freeze_counts_only_when_the_agent_says_frozen() -> None:
    assert check_frozen(primary(frozen=True), "main").proceed
    refused = check_frozen(primary(frozen=False, reason="role booking still has LOGIN"), "main")
    assert not refused.proceed
    assert refused.reason == "writes on main are NOT frozen after the freeze: role booking still has LOGIN"


def test_only_a_clean_stop_gives_a_final_position() -> None:
    clean = check_stopped(stopped(), "main")
    assert clean.proceed
    assert clean.reason == (
        "main's database stopped cleanly; its final position (the shutdown checkpoint) is 0/5000000"
    )
    assert check_stopped(stopped(shutdown_clean=False), "main").code == "unclean_stop"
    assert check_stopped(stopped(shutdown_clean=None), "main").code == "unclean_stop"
    assert check_stopped(stopped(checkpoint_lsn=None), "main").code == "no_final_position"
    assert check_stopped(primary(), "main").code == "not_stopped"


@pytest.mark.parametrize(
    ("receive", "replay", "reached"),
    [
        ("0/5000028", "0/5000028", True),  # replayed the shutdown checkpoint record
        ("0/5000028", "0/5000000", False),  # received it, not replayed: not yet
        ("0/5000000", "0/5000000", False),  # up to its start only: the record is missing
        ("0/4FFFF00", "0/4FFFF00", False),  # writes missing
    ],
)
def test_the_target_must_replay_past_the_final_position(receive: str, replay: str, reached: bool) -> None:
    decision = check_final_position(
        standby(receive_lsn=receive, replay_lsn=replay),
        final_position="0/5000000",
        site="dr",
        active_site="main",
    )
    assert decision.proceed is reached
    if reached:
        assert decision.reason == (
            "dr has received (0/5000028) and replayed (0/5000028) main's final position 0/5000000, its "
            "shutdown checkpoint: it holds every committed write"
        )
    else:
        assert "not past main's final position 0/5000000" in decision.reason


def test_the_content_check_waits_for_the_target_at_the_frozen_position() -> None:
    replayed = check_replayed(
        standby(replay_lsn="0/5000000"), position="0/5000000", site="dr", active_site="main"
    )
    assert (
        replayed.proceed and replayed.reason == "dr has replayed main's frozen position 0/5000000 (0/5000000)"
    )
    behind = check_replayed(
        standby(replay_lsn="0/4FFFF00"), position="0/5000000", site="dr", active_site="main"
    )
    assert not behind.proceed
    assert (
        behind.reason
        == "dr has replayed up to 0/4FFFF00, 256 bytes short of main's frozen position 0/5000000"
    )
    assert (
        check_replayed(primary(), position="0/5000000", site="dr", active_site="main").code == "not_replaying"
    )


def test_a_target_that_is_no_standby_or_has_no_position_has_not_reached_it() -> None:
    assert check_final_position(primary(), final_position="0/1", site="dr", active_site="main").code == (
        "target_not_standby"
    )
    unknown = check_final_position(
        standby(receive_lsn=None), final_position="0/1", site="dr", active_site="main"
    )
    assert unknown.code == "position_unknown" and "received unknown" in unknown.reason


def test_writable_means_a_running_unfrozen_primary() -> None:
    assert check_writable(primary(timeline=2), "dr").reason == (
        "dr's database is a writable primary at 0/5000000 on timeline 2, its application roles may log in"
    )
    frozen = check_writable(primary(frozen=True), "dr")
    assert not frozen.proceed and "writes are still frozen" in frozen.reason
    assert "it is standby" in check_writable(standby(), "dr").reason
    assert "it is stopped, not running" in check_writable(stopped(), "main").reason


def test_the_old_active_site_must_come_back_as_a_standby() -> None:
    assert check_following(
        standby(following="198.51.100.20:5432"), "main", "dr", "198.51.100.20:5432"
    ).reason == ("main runs as a standby of dr (198.51.100.20:5432)")
    refused = check_following(stopped(), "main", "dr", "198.51.100.20:5432")
    assert not refused.proceed and refused.code == "not_following"


# ---------------------------------------------------------------------------------------------
# The end: automation, the figures
# ---------------------------------------------------------------------------------------------


def test_automatic_failover_stays_main_to_dr_only() -> None:
    away = automation_sentence("booking", "dr", NOW + 3600, NOW)
    assert away.startswith("automatic failover of booking is off until the service is home")
    assert "drctl switchover --service booking --to main" in away
    home = automation_sentence("booking", "main", NOW + 3600, NOW)
    assert home == (
        "automatic failover of booking is re-armed after the cooldown, which ends at 2027-01-15 09:00:00Z "
        "(3600 s; the switchover's promotion counts)"
    )
    assert automation_sentence("booking", "main", NOW - 1, NOW) == "automatic failover of booking is re-armed"


@pytest.mark.parametrize(
    ("points_at", "proceed", "code", "words"),
    [
        ("main", True, "ok", "the edge of booking answers and points at main, the active site"),
        ("dr", False, "edge_elsewhere", "points at dr while the state says main is active"),
        (None, False, "edge_unknown", "points at no single known site; find out why and point it at main"),
    ],
)
def test_the_edge_must_point_at_the_active_site_before_any_freeze(
    points_at: str | None, proceed: bool, code: str, words: str
) -> None:
    decision = check_edge(points_at, service="booking", source="main", target="dr")
    assert (decision.proceed, decision.code) == (proceed, code)
    assert words in decision.reason
    if not proceed:
        assert decision.reason.startswith("switchover of booking from main to dr refused: ")


def test_the_write_outage_runs_from_the_freeze_to_the_edge_on_the_target() -> None:
    assert write_outage_seconds(NOW, NOW + 3.25) == 3.25
    assert write_outage_seconds(NOW, None) is None, "no switch, no end of the outage to count to"
    assert write_outage_seconds(None, NOW) is None
    figures = SwitchoverFigures(
        source="main",
        target="dr",
        frozen_at=NOW,
        writable_at=NOW + 2.5,
        switched_at=NOW + 3.25,
        write_outage_seconds=3.25,
        final_position="0/5000000",
        replayed_position="0/5000028",
        sync_check="2 tables agree",
    )
    assert figures.sentence("booking") == (
        "planned switchover of booking from main to dr done: write outage 3.2 s (writes frozen on main at "
        "2027-01-15 08:00:00Z, dr writable at 2027-01-15 08:00:02Z, the edge on dr at 2027-01-15 08:00:03Z); "
        "main's final position 0/5000000, dr "
        "replayed 0/5000028; sync check: 2 tables agree"
    )


def test_a_follow_that_failed_says_which_command_to_run() -> None:
    sentence = follow_sentence("booking", "main", None, "FollowFailed: timeline diverged")
    assert sentence == (
        "main did NOT start as a standby (FollowFailed: timeline diverged); the switch stands: run "
        "drctl rejoin --service booking --site main"
    )
    assert follow_sentence(
        "booking", "main", {"following": True, "reason": "main runs as a standby"}, None
    ) == ("main runs as a standby")


# ---------------------------------------------------------------------------------------------
# The request (invariant 9) and the lock's lifetime
# ---------------------------------------------------------------------------------------------

GOOD = {"service": "booking", "to": "main", "reason": "going home", "requested_by": "alice"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"to": "cold"}, "to: Input should be 'main' or 'dr'"),
        ({"reason": "   "}, "reason: must not be blank"),
        ({"reason": "x" * 501}, "reason: String should have at most 500 characters"),
        ({"allow_data_loss": True}, "allow_data_loss: unknown field"),
        ({"dry_run": "yes"}, "dry_run: Input should be a valid boolean"),
        ({"service": "Booking!"}, "service: String should match pattern"),
        ({"incident_id": "has spaces"}, "incident_id: String should match pattern"),
    ],
)
def test_invariant_9_a_bad_request_is_rejected_with_a_clear_message(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request({**GOOD, **change})
    assert str(caught.value).startswith("switchover request rejected: ") and message in str(caught.value)


def test_control_characters_are_stripped_from_the_reason() -> None:
    request = parse_request({**GOOD, "reason": "going\x1b[31m home\u202e now\n"})
    assert request.reason == "going[31m home now"


def test_the_context_goes_from_the_other_site_and_holds_the_lock_long_enough() -> None:
    config = make_config()
    switchover = start_switchover(GOOD, execution_name="sw-1", started_at=None, config=config, now=NOW)
    assert (switchover.source, switchover.target, switchover.incident_id) == ("dr", "main", "sw-1")
    service = config.service("booking")
    ttl = int(switchover.lock.expires_at) - int(switchover.lock.now)
    # The failover's TTL, or the switchover's own longest path where that is longer (every step
    # retried to its function's timeout): the lock never expires under a running switchover.
    assert ttl == max(longest_switchover(config, service).seconds, config.lock_ttl_seconds(service))
    assert config.lock_ttl_seconds(service) == longest_execution(config, service).seconds


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        ("not an object", "sw-1", "expected a JSON object"),
        (GOOD, "has spaces", "is not a valid id"),
        ({**GOOD, "service": "nope"}, "sw-1", "no service named 'nope'"),
    ],
)
def test_invariant_9_a_start_without_a_known_service_or_a_valid_name_is_rejected(
    data: Any, name: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        start_switchover(data, execution_name=name, started_at=None, config=make_config(), now=NOW)
