"""The pure failover decisions: every branch and its sentence."""

from __future__ import annotations

import pytest

from quorum_dr.config import Database, DatabaseEndpoint, FailoverMode, FailoverPolicy
from quorum_dr.domain.data_loss import LossReceipt
from quorum_dr.domain.decisions import (
    check_gates,
    check_replica,
    choose_mode_action,
    data_loss_receipt,
    decide_scenario,
    trigger_applies,
)
from quorum_dr.domain.quorum import SiteVerdict, Verdict
from quorum_dr.domain.results import DbRole, DbStatus, FailureClass, ProbeResult, ReplicationPeer, Vote
from quorum_dr.domain.state import ServiceState, ServiceStatus, utc_day

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
POLICY = FailoverPolicy(cooldown_seconds=3600, daily_cap=1)


def state(**kw: object) -> ServiceState:
    return ServiceState(service="booking", **kw)


# ---------------------------------------------------------------------------------------------
# Gates
# ---------------------------------------------------------------------------------------------


def test_automatic_failover_passes_open_gates() -> None:
    decision = check_gates(state(), POLICY, trigger="auto", target="dr", now=NOW)
    assert decision.proceed and decision.code == "ok"
    assert decision.reason == (
        "automatic failover of booking to dr may proceed: automation is enabled, no cooldown, "
        "0 of 1 automatic failovers used today"
    )


def test_kill_switch_stops_automatic_but_not_manual() -> None:
    off = state(automation_enabled=False)
    auto = check_gates(off, POLICY, trigger="auto", target="dr", now=NOW)
    assert (auto.proceed, auto.code) == (False, "kill_switch")
    assert auto.reason == (
        "automatic failover of booking to dr refused: automation is disabled for booking (kill switch); "
        "a manual start is still possible"
    )
    manual = check_gates(off, POLICY, trigger="manual", target="dr", now=NOW)
    assert (manual.proceed, manual.code) == (True, "manual")
    assert manual.reason == (
        "manual start of a failover of booking to dr: kill switch, cooldown and daily cap apply to "
        "automatic failovers only"
    )


def test_cooldown_stops_automatic_failover() -> None:
    decision = check_gates(state(cooldown_until=NOW + 600), POLICY, trigger="auto", target="dr", now=NOW)
    assert (decision.proceed, decision.code) == (False, "cooldown")
    assert decision.reason == (
        "automatic failover of booking to dr refused: in cooldown until 2023-11-14 22:23:20Z (600 s left) "
        "after the last failover"
    )
    assert check_gates(state(cooldown_until=NOW - 1), POLICY, trigger="auto", target="dr", now=NOW).proceed
    assert check_gates(
        state(cooldown_until=NOW + 600), POLICY, trigger="manual", target="dr", now=NOW
    ).proceed


def test_daily_cap_counts_only_today() -> None:
    today = utc_day(NOW)
    capped = state(failover_day=today, failovers_today=1)
    decision = check_gates(capped, POLICY, trigger="auto", target="dr", now=NOW)
    assert (decision.proceed, decision.code) == (False, "daily_cap")
    assert decision.reason == (
        "automatic failover of booking to dr refused: the daily cap of 1 automatic failover is reached "
        "(1 on 2023-11-14 UTC)"
    )
    yesterday = state(failover_day="2023-11-13", failovers_today=5)
    assert check_gates(yesterday, POLICY, trigger="auto", target="dr", now=NOW).proceed
    zero = FailoverPolicy(daily_cap=0)
    assert check_gates(state(), zero, trigger="auto", target="dr", now=NOW).code == "daily_cap"


def test_no_automatic_failback_and_no_failover_to_the_active_site() -> None:
    on_dr = state(active_site="dr", status=ServiceStatus.FAILED_OVER)
    back = check_gates(on_dr, POLICY, trigger="auto", target="main", now=NOW)
    assert (back.proceed, back.code) == (False, "failback")
    assert back.reason == (
        "automatic failover of booking to main refused: there is no automatic failback to main; "
        "an operator must start it"
    )
    assert check_gates(on_dr, POLICY, trigger="manual", target="main", now=NOW).proceed
    again = check_gates(on_dr, POLICY, trigger="auto", target="dr", now=NOW)
    assert (again.proceed, again.code) == (False, "already_active")
    assert again.reason == "dr is already the active site of booking: nothing to fail over"


def test_an_automatic_trigger_for_a_site_that_does_not_serve_stops_before_the_lock() -> None:
    on_main = trigger_applies(state(), "main")
    assert (on_main.proceed, on_main.code) == (True, "active")
    on_dr = state(active_site="dr")
    stale = trigger_applies(on_dr, "main")
    assert (stale.proceed, stale.code) == (False, "not_active")
    assert stale.reason == (
        "main is not the active site of booking (dr serves): a probe failure there starts no failover; "
        "no lock taken, nothing recorded"
    )
    assert trigger_applies(on_dr, "dr").proceed


def test_needs_attention_stops_automatic_failover() -> None:
    stuck = state(status=ServiceStatus.NEEDS_ATTENTION, lock_holder="inc-42")
    decision = check_gates(stuck, POLICY, trigger="auto", target="dr", now=NOW)
    assert (decision.proceed, decision.code) == (False, "needs_attention")
    assert decision.reason == (
        "automatic failover of booking to dr refused: booking needs attention after an earlier incident "
        "(inc-42); an operator must reset it"
    )


def test_unknown_target_is_refused() -> None:
    decision = check_gates(state(), POLICY, trigger="manual", target="moon", now=NOW)
    assert (decision.proceed, decision.code, decision.reason) == (
        False,
        "bad_target",
        "'moon' is not a site (main, dr, cold)",
    )


# ---------------------------------------------------------------------------------------------
# Scenario
# ---------------------------------------------------------------------------------------------


def verdict(site: str, value: Verdict, reason: str = "", down: int = 0, up: int = 0) -> SiteVerdict:
    return SiteVerdict(
        service="booking",
        site=site,
        verdict=value,
        reason=reason or f"{site} is {value}",
        votes=[],
        down_votes=down,
        up_votes=up,
        quorum=2,
        evaluated_at=NOW,
    )


MAIN_DOWN = verdict("main", Verdict.DOWN, down=3)


def test_main_down_and_dr_up_is_a_hot_failover() -> None:
    decision = decide_scenario(
        {"main": MAIN_DOWN, "dr": verdict("dr", Verdict.UP, up=2)}, cold_configured=True, active_site="main"
    )
    assert (decision.scenario, decision.target) == ("hot", "dr")
    assert decision.reason == (
        "hot failover to dr: main is DOWN (3 regions vote DOWN, quorum 2) and dr is UP (2 regions vote UP)"
    )


def test_both_down_is_cold_when_configured_else_nothing() -> None:
    verdicts = {"main": MAIN_DOWN, "dr": verdict("dr", Verdict.DOWN)}
    cold = decide_scenario(verdicts, cold_configured=True, active_site="main")
    assert (cold.scenario, cold.target) == ("cold", "cold")
    assert cold.reason == "cold failover: main and dr are both DOWN; launching the cold site"
    none = decide_scenario(verdicts, cold_configured=False, active_site="main")
    assert (none.scenario, none.target) == ("none", None)
    assert none.reason == (
        "no failover: main and dr are both DOWN and no cold site is configured; an operator must act"
    )


@pytest.mark.parametrize(
    ("verdicts", "active", "reason"),
    [
        (
            {
                "main": verdict("main", Verdict.UNKNOWN, "main is UNKNOWN: only 1 region votes DOWN"),
                "dr": verdict("dr", Verdict.UP),
            },
            "main",
            "no failover: main is UNKNOWN: only 1 region votes DOWN",
        ),
        (
            {"main": MAIN_DOWN, "dr": verdict("dr", Verdict.UNKNOWN, "dr is UNKNOWN: no region votes")},
            "main",
            "no failover: main is DOWN but dr is not confirmed UP (dr is UNKNOWN: no region votes)",
        ),
        ({"main": MAIN_DOWN}, "main", "no failover: no verdict on dr"),
        (
            {"main": MAIN_DOWN, "dr": verdict("dr", Verdict.UP)},
            "dr",
            "no failover: dr is the active site, not main",
        ),
    ],
    ids=["main-not-down", "dr-unknown", "dr-missing", "already-on-dr"],
)
def test_anything_else_is_no_action_with_its_reason(
    verdicts: dict[str, SiteVerdict], active: str, reason: str
) -> None:
    decision = decide_scenario(verdicts, cold_configured=True, active_site=active)
    assert (decision.scenario, decision.target, decision.reason) == ("none", None, reason)


# ---------------------------------------------------------------------------------------------
# Replica readiness
# ---------------------------------------------------------------------------------------------

LIMITS = Database(
    main=DatabaseEndpoint(host="main", credentials_secret="s"),
    dr=DatabaseEndpoint(host="dr", credentials_secret="s"),
    max_lag_bytes=1000,
    max_lag_seconds=30,
)


def standby(**kw: object) -> DbStatus:
    base: dict = dict(
        role=DbRole.STANDBY,
        receive_lsn="0/3000148",
        replay_lsn="0/3000148",
        replay_lag_bytes=0,
        replay_lag_seconds=2.0,
        streaming=True,
    )
    base.update(kw)
    return DbStatus(**base)


FRESHNESS = 90.0


def main_primary(
    lsn: str,
    service: str = "booking",
    site: str = "main",
    *,
    at: float = NOW - 20,
    **db: object,
) -> ProbeResult:
    """A probe's view of main's database, received at `at` (20 s before NOW by default)."""
    return ProbeResult(
        service=service,
        site=site,
        check="postgres",
        check_type="postgres",
        region="us-east-1",
        round_id=f"r{at}",
        vote=Vote.UP,
        latency_ms=1,
        probe_time=at,
        received_at=at,
        counts=False,
        db=DbStatus(role=DbRole.PRIMARY, current_lsn=lsn, **db),  # type: ignore[arg-type]
    )


def main_failed(at: float = NOW - 15, region: str = "eu-west-2") -> ProbeResult:
    return ProbeResult(
        service="booking",
        site="main",
        check="https-health",
        check_type="http",
        region=region,
        round_id=f"f{at}",
        vote=Vote.DOWN,
        failure_class=FailureClass.CONNECT_TIMEOUT,
        latency_ms=1,
        probe_time=at,
        received_at=at,
    )


def dr_seen(at: float, heard_age: float, latest_end: str | None, receive: str = "0/3000148") -> ProbeResult:
    """A DR check's report received at `at`: the standby heard from main `heard_age` s earlier."""
    return ProbeResult(
        service="booking",
        site="dr",
        check="postgres",
        check_type="postgres",
        region="us-east-1",
        round_id=f"d{at}",
        vote=Vote.UP,
        latency_ms=1,
        probe_time=at,
        received_at=at,
        counts=False,
        db=standby(receive_lsn=receive, last_msg_age_seconds=heard_age, latest_end_lsn=latest_end),
    )


def receipt_of(results: list[ProbeResult], status: DbStatus | None) -> LossReceipt:
    return data_loss_receipt(
        results, service="booking", standby_status=status, now=NOW, freshness_seconds=FRESHNESS
    )


def bounded() -> LossReceipt:
    """Main seen at 0/3000148 5 s before it failed; the standby received exactly that."""
    return receipt_of([main_primary("0/3000148"), main_failed()], standby())


def test_a_caught_up_standby_with_a_known_bound_may_be_promoted() -> None:
    decision = check_replica(standby(), LIMITS, allow_data_loss=False, receipt=bounded())
    assert (decision.proceed, decision.code) == (True, "ok")
    assert decision.reason == (
        "the DR standby may be promoted: replay is 0 bytes behind what it received (limit 1000); the loss "
        "is bounded by a probe's view of main's WAL position at 0 bytes and 5 s (limits 1000 bytes, "
        "30 s); the WAL receiver is streaming"
    )


def test_unknown_loss_is_not_zero_loss() -> None:
    """The issue's case: not streaming, 7,200 s since the last replayed transaction, and no probe
    ever saw main's WAL position nor when the standby last heard from main."""
    status = standby(streaming=False, replay_lag_seconds=7200.0)
    receipt = receipt_of([main_failed()], status)
    assert (receipt.evidence, receipt.bound_bytes, receipt.bound_seconds) == (None, None, None)
    decision = check_replica(status, LIMITS, allow_data_loss=False, receipt=receipt)
    assert (decision.proceed, decision.code) == (False, "loss_unbounded")
    assert decision.reason == (
        "no automatic promotion: data loss unknown, no known bound: no probe saw main's WAL position; the "
        "standby's last message from main is unknown; only a manual start with allow_data_loss may proceed"
    )
    assert check_replica(status, LIMITS, allow_data_loss=False, receipt=None).code == "loss_unbounded"


def test_an_idle_primary_does_not_make_a_caught_up_standby_late() -> None:
    idle = standby(replay_lag_seconds=900.0, streaming=False)
    decision = check_replica(idle, LIMITS, allow_data_loss=False, receipt=bounded())
    assert decision.proceed
    assert decision.reason.endswith("the WAL receiver is not streaming")


@pytest.mark.parametrize(
    ("status", "age", "code", "sentence"),
    [
        (None, None, "lag_unknown", "the DR standby's status is unknown"),
        (
            standby(replay_lag_bytes=None),
            None,
            "lag_unknown",
            "the DR standby's replay lag in bytes is unknown",
        ),
        (
            standby(replay_lag_bytes=5000),
            None,
            "lag_bytes",
            "replay is 5000 bytes behind what the standby received (limit 1000)",
        ),
        (
            standby(replay_lag_bytes=10, replay_lag_seconds=45.0),
            None,
            "lag_seconds",
            "replay is 45.0 s behind (limit 30 s)",
        ),
        (
            standby(replay_lag_bytes=10, replay_lag_seconds=None),
            None,
            "lag_unknown",
            "replay is behind and its lag in seconds is unknown",
        ),
        (standby(), 120.0, "status_stale", "the DR standby's status is 120 s old (more than 30 s)"),
    ],
    ids=["no-status", "bytes-unknown", "bytes-over", "seconds-over", "seconds-unknown", "stale-status"],
)
def test_no_automatic_promotion_when_behind_or_unknown(
    status: DbStatus | None, age: float | None, code: str, sentence: str
) -> None:
    decision = check_replica(status, LIMITS, allow_data_loss=False, status_age_seconds=age, receipt=bounded())
    assert (decision.proceed, decision.code) == (False, code)
    assert decision.reason == (
        f"no automatic promotion: {sentence}; only a manual start with allow_data_loss may proceed"
    )


def test_allow_data_loss_proceeds_and_says_how_much() -> None:
    decision = check_replica(
        standby(replay_lag_bytes=5000, replay_lag_seconds=12.5),
        LIMITS,
        allow_data_loss=True,
        receipt=bounded(),
    )
    assert (decision.proceed, decision.code) == (True, "data_loss_allowed")
    assert decision.reason == (
        "promoting although replay is 5000 bytes behind what the standby received (limit 1000): data may "
        "be lost (WAL loss up to 0 bytes and 5 s, replay 5000 bytes behind, 12.5 s); allow_data_loss was "
        "given by an operator"
    )
    unknown = check_replica(None, LIMITS, allow_data_loss=True, receipt=receipt_of([], None))
    assert unknown.proceed
    assert unknown.reason == (
        "promoting although the DR standby's status is unknown: data may be lost (WAL loss unbounded, "
        "replay lag unknown); allow_data_loss was given by an operator"
    )


def test_not_a_standby_is_never_promoted_even_with_allow_data_loss() -> None:
    primary = DbStatus(role=DbRole.PRIMARY, current_lsn="0/5000000")
    decision = check_replica(primary, LIMITS, allow_data_loss=True, receipt=bounded())
    assert (decision.proceed, decision.code) == (False, "not_standby")
    assert decision.reason == "the DR database is a primary, not a standby: there is nothing to promote"


def test_a_receipt_showing_wal_not_received_beyond_the_limit_stops_promotion() -> None:
    receipt = receipt_of([main_primary("0/3010000"), main_failed()], standby(receive_lsn="0/3000000"))
    decision = check_replica(standby(), LIMITS, allow_data_loss=False, receipt=receipt)
    assert (decision.proceed, decision.code) == (False, "loss_bytes")
    assert (
        "the standby received 65536 bytes less than main was last seen writing (limit 1000)"
        in decision.reason
    )
    allowed = check_replica(standby(), LIMITS, allow_data_loss=True, receipt=receipt)
    assert allowed.proceed and "65536 bytes not received" in allowed.reason


# ---------------------------------------------------------------------------------------------
# Data-loss receipt: the evidence that bounds it
# ---------------------------------------------------------------------------------------------


def test_a_probe_view_of_main_that_the_standby_reached_bounds_the_loss() -> None:
    results = [
        main_primary("0/3000000", at=NOW - 40),
        main_primary("0/3000148"),
        main_primary("0/9000000", service="other"),
        main_primary("0/9000000", site="dr"),
        main_failed(NOW - 15),
        main_failed(NOW - 5),
    ]
    receipt = receipt_of(results, standby(receive_lsn="0/3000200", last_replay_at=NOW - 3))
    assert (receipt.evidence, receipt.bound_bytes, receipt.bound_seconds) == ("wal_position", 0, 5.0)
    assert (receipt.last_main_lsn, receipt.standby_receive_lsn, receipt.loss_bytes) == (
        "0/3000148",
        "0/3000200",
        0,
    )
    assert (receipt.first_failure_at, receipt.main_seen_at) == (NOW - 15, NOW - 20)
    assert receipt.reason == (
        "data loss bounded (wal position): the standby received up to 0/3000200, at or past main's WAL "
        "position 0/3000148 seen 5.0 s before the first failed probe of main: at most the writes of those "
        "5.0 s are lost; last replayed transaction at 2023-11-14 22:13:17Z"
    )


def test_a_standby_short_of_the_last_view_has_no_wal_position_bound() -> None:
    receipt = receipt_of([main_primary("0/3000200"), main_failed()], standby(receive_lsn="0/3000148"))
    assert (receipt.evidence, receipt.loss_bytes) == (None, 184)
    assert receipt.reason == (
        "at least 184 bytes of WAL lost: main was last seen at 0/3000200 and the standby received up to "
        "0/3000148; data loss unknown, no known bound: the DR standby's application name is unknown, so "
        "main's view of it cannot be found; the standby received up to 0/3000148, short of main's WAL "
        "position 0/3000200 seen 5.0 s before the first failed probe of main; the standby's last message "
        "from main is unknown"
    )


def test_an_old_view_of_main_bounds_nothing() -> None:
    receipt = receipt_of([main_primary("0/3000148", at=NOW - 200), main_failed()], standby())
    assert receipt.evidence is None
    assert "the last probe view of main's WAL position is 185.0 s older than the first failed probe of " in (
        receipt.reason
    )


def test_a_recovered_flap_does_not_move_the_first_failure_back() -> None:
    """Main failed, came back (a probe saw it up), failed again: the loss counts from the second."""
    results = [main_failed(NOW - 100), main_primary("0/3000148", at=NOW - 60), main_failed(NOW - 50)]
    receipt = receipt_of(results, standby())
    assert (receipt.first_failure_at, receipt.bound_seconds) == (NOW - 50, 10.0)


SYNC_VIEW = dict(
    synchronous_commit="on",
    synchronous_standby_names="*",
    standbys=(ReplicationPeer(application_name="dr", state="streaming", sync_state="sync"),),
)


def test_a_synchronous_standby_bounds_the_loss_at_zero() -> None:
    status = standby(receive_lsn="0/3000100", application_name="dr")
    receipt = receipt_of([main_primary("0/3000148", **SYNC_VIEW), main_failed()], status)
    assert (receipt.evidence, receipt.bound_bytes, receipt.bound_seconds) == ("synchronous", 0, 0.0)
    assert receipt.reason == (
        "at least 72 bytes of WAL lost: main was last seen at 0/3000148 and the standby received up to "
        "0/3000100; data loss bounded (synchronous): main's last probed view, 5.0 s before the first "
        "failed probe of main, lists the DR standby dr as sync with synchronous_commit=on: every commit "
        "main acknowledged had reached it; at most 0 bytes and 0 s of acknowledged writes lost"
    )
    # WAL main wrote but never acknowledged is not a lost commit: the known-missing bytes stay
    # in the receipt, and they are within the limit here
    assert check_replica(status, LIMITS, allow_data_loss=False, receipt=receipt).proceed


@pytest.mark.parametrize(
    ("view", "why"),
    [
        (
            {**SYNC_VIEW, "synchronous_commit": "local"},
            "main's synchronous_commit is local: commits do not wait for a standby",
        ),
        (
            {
                **SYNC_VIEW,
                "synchronous_standby_names": "ANY 1 (dr, other)",
                "standbys": (
                    ReplicationPeer(application_name="dr", sync_state="quorum"),
                    ReplicationPeer(application_name="other", sync_state="quorum"),
                ),
            },
            "main lists dr in a quorum (ANY 1 (dr, other)) that does not need all of its 2 standbys, so a "
            "commit may have skipped it",
        ),
        (
            {**SYNC_VIEW, "standbys": (ReplicationPeer(application_name="dr", sync_state="async"),)},
            "main lists the DR standby dr as async, not sync",
        ),
        ({**SYNC_VIEW, "standbys": ()}, "main's view lists no standby named dr"),
    ],
    ids=["local-commit", "quorum-any-1-of-2", "async", "not-listed"],
)
def test_a_standby_that_commits_need_not_wait_for_is_not_synchronous(view: dict, why: str) -> None:
    status = standby(receive_lsn="0/3000100", application_name="dr")
    receipt = receipt_of([main_primary("0/3000148", **view), main_failed()], status)
    assert receipt.evidence is None
    assert why in receipt.reason


def test_a_quorum_that_needs_every_standby_is_synchronous() -> None:
    view = {
        **SYNC_VIEW,
        "synchronous_standby_names": "ANY 2 (dr, other)",
        "standbys": (
            ReplicationPeer(application_name="dr", sync_state="quorum"),
            ReplicationPeer(application_name="other", sync_state="quorum"),
        ),
    }
    status = standby(application_name="dr")
    assert receipt_of([main_primary("0/3000148", **view), main_failed()], status).evidence == "synchronous"


def test_the_standby_hearing_from_main_shortly_before_the_failure_bounds_the_loss() -> None:
    """No probe ever saw main's position; the DR check 30 s ago had heard from main 2 s earlier,
    when main's WAL ended 0x100 bytes past what the standby has now."""
    results = [dr_seen(NOW - 30, 2.0, "0/3000248"), dr_seen(NOW - 60, 1.0, "0/3000148"), main_failed()]
    receipt = receipt_of(results, standby())
    assert (receipt.evidence, receipt.bound_bytes, receipt.bound_seconds) == ("heard_from_main", 256, 17.0)
    assert receipt.heard_from_main_at == NOW - 32
    assert receipt.reason == (
        "data loss bounded (heard from main): the standby last heard from main 17.0 s before the first "
        "failed probe of main, when main's WAL ended at 0/3000248 and the standby has received up to "
        "0/3000148 (256 bytes short): at most those bytes and the writes of those 17.0 s are lost"
    )
    decision = check_replica(standby(), LIMITS, allow_data_loss=False, receipt=receipt)
    assert decision.proceed


def test_a_standby_that_stopped_hearing_from_main_long_before_the_failure_is_beyond_the_limit() -> None:
    results = [dr_seen(NOW - 80, 40.0, "0/3000148"), main_failed()]
    receipt = receipt_of(results, standby())
    assert (receipt.evidence, receipt.bound_seconds) == ("heard_from_main", 105.0)
    decision = check_replica(standby(), LIMITS, allow_data_loss=False, receipt=receipt)
    assert (decision.proceed, decision.code) == (False, "loss_seconds")
    assert decision.reason == (
        "no automatic promotion: up to 105 s of main's writes may be lost by the standby's last message "
        "from main (limit 30 s); only a manual start with allow_data_loss may proceed"
    )


def test_the_decisions_own_reading_counts_as_hearing_from_main() -> None:
    status = standby(last_msg_age_seconds=1.5, latest_end_lsn="0/3000148")
    receipt = receipt_of([main_failed(NOW - 3)], status)
    assert (receipt.evidence, receipt.bound_bytes, receipt.bound_seconds) == ("heard_from_main", 0, 0.0)


def test_no_failed_probe_means_the_loss_runs_until_now() -> None:
    receipt = receipt_of([main_primary("0/3000148", at=NOW - 12)], standby())
    assert (receipt.first_failure_at, receipt.bound_seconds) == (NOW, 12.0)
    assert "seen 12.0 s before now (no probe saw main fail)" in receipt.reason


# ---------------------------------------------------------------------------------------------
# Mode
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "trigger", "action"),
    [
        (FailoverMode.AUTO, "auto", "proceed"),
        (FailoverMode.VETO, "auto", "wait_veto"),
        (FailoverMode.APPROVE, "auto", "wait_approval"),
        (FailoverMode.MANUAL, "auto", "alert_only"),
        (FailoverMode.MANUAL, "manual", "proceed"),
        (FailoverMode.APPROVE, "manual", "proceed"),
    ],
)
def test_mode_action(mode: FailoverMode, trigger: str, action: str) -> None:
    chosen = choose_mode_action(mode, trigger)  # type: ignore[arg-type]
    assert chosen.action == action
    assert chosen.reason.startswith("a manual start" if trigger == "manual" else f"mode {mode}")
