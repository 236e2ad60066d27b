"""`drctl replay`'s core (quorum_dr/replay/moments.py): hand-built recorded rounds through the
watchdog's own engine and decision code, moment by moment, and two configs compared.

The recordings: three regions (eu-west-2, us-east-1, us-west-2) each run a scheduled round every
30 s, 0, 7 and 14 s into the interval, received 0.5 s after it starts; main fails at T0 + 600.
"""

from __future__ import annotations

import unicodedata

import pytest

from quorum_dr.config import parse_config
from quorum_dr.config_file import read_yaml
from quorum_dr.domain.results import ProbeResult
from quorum_dr.replay.moments import Moment, ReplayOutcome, describe, differences, replay
from tests.recorded_rounds import (
    EXAMPLE,
    REGIONS,
    SERVICE,
    T0,
    example_config,
    example_config_data,
    main_down_from,
    recorded,
    round_results,
    standby_losing_main_at,
    streaming,
)

FAULT = T0 + 600  # main dies: rounds from here on fail


def _outage(rounds: int = 40) -> list[ProbeResult]:
    """Main's host is gone from FAULT on: every region fails it, and its standby lost it at once."""
    return recorded(rounds, main_up=main_down_from(FAULT), standby=standby_losing_main_at(FAULT))


def _verdicts(outcome: ReplayOutcome, site: str = "main") -> list[tuple[float, str]]:
    return [(m.at, str(m.verdict)) for m in outcome.of_kind("verdict") if m.site == site]


def test_main_down_in_three_regions_turns_down_on_the_quorums_second_failing_round_and_fails_over() -> None:
    outcome = replay(_outage(), example_config(), SERVICE)

    # down_after_rounds 2, quorum 2: eu-west-2's second failing round ends at FAULT + 30.5,
    # us-east-1's at FAULT + 37.5: that is when main turns DOWN, not before
    assert _verdicts(outcome) == [
        (T0 + 0.5, "UNKNOWN"),
        (T0 + 7.5, "UP"),
        (FAULT + 7.5, "UNKNOWN"),
        (FAULT + 37.5, "DOWN"),
    ]
    down = outcome.of_kind("verdict")[-1]
    assert down.reason.startswith("main is DOWN: 2 of 3 regions (eu-west-2, us-east-1) saw 2 consecutive")
    assert "no database veto: the DR standby is not streaming from the primary" in down.reason

    first = outcome.of_kind("probe_failed")[0]
    assert (first.region, first.at) == ("eu-west-2", FAULT + 0.5)
    assert first.reason == "main turns DOWN from eu-west-2 (UP the round before): ProbeFailed"
    (started,) = outcome.of_kind("execution_starts")
    assert started.execution == "replay-1" and started.at == FAULT + 0.5 + 2.0

    # its second confirmation round starts 10 s after the first ended (FAULT + 14.5) and is answered
    # by eu-west-2's and us-east-1's next rounds: DOWN by quorum, the settle rule waits for no more
    (decision,) = outcome.of_kind("would_fail_over")
    assert decision.target == "dr" and decision.at == FAULT + 37.5
    assert decision.reason.startswith("would fail over to dr at 2026-12-03 04:03:57.50Z (mode auto: ")
    assert "because hot failover to dr: main is DOWN (2 regions vote DOWN, quorum 2)" in decision.reason
    deciding = [m for m in outcome.of_kind("confirmation_round") if m.at == decision.at]
    assert [(m.round, m.verdicts, m.step) for m in deciding] == [
        (2, {"main": "DOWN", "dr": "UP"}, "OutageConfirmed")
    ]
    assert deciding[0].judged_on == {
        "eu-west-2": f"sched-{int(FAULT + 30)}-eu-west-2",
        "us-east-1": f"sched-{int(FAULT + 37)}-us-east-1",
        "us-west-2": None,
    }
    assert outcome.outcomes == {"scenario hot": 1}


def test_a_trigger_while_an_execution_holds_the_lock_ends_as_already_handling() -> None:
    outcome = replay(_outage(), example_config(), SERVICE)
    early = [m for m in outcome.of_kind("execution_ends_at_once") if m.at < FAULT + 60]
    assert [(m.region, m.code) for m in early] == [
        ("us-east-1", "already_handling"),
        ("us-west-2", "already_handling"),
    ]
    assert "replay-1 holds the incident lock of booking" in early[0].reason


def test_after_the_simulated_failover_mains_triggers_end_as_not_the_active_site() -> None:
    outcome = replay(_outage(), example_config(), SERVICE)
    (decision,) = outcome.of_kind("would_fail_over")
    later = [m for m in outcome.of_kind("execution_ends_at_once") if m.at > decision.at]
    # retrigger_rounds 10: each region publishes ProbeFailed again on its 10th and 20th failing round
    assert [m.region for m in later] == list(REGIONS) * 2
    assert {m.code for m in later} == {"not_active"}
    assert "main is not the active site of booking (dr serves): a probe failure there starts no failover" in (
        later[0].reason
    )
    assert len(outcome.of_kind("execution_starts")) == 1 and outcome.executions == 1


def test_one_regions_partition_from_main_starts_executions_that_end_as_false_alarms() -> None:
    cut = main_down_from(FAULT, regions=["eu-west-2"], until=FAULT + 1200)
    outcome = replay(recorded(60, main_up=cut), example_config(), SERVICE)

    assert _verdicts(outcome) == [(T0 + 0.5, "UNKNOWN"), (T0 + 7.5, "UP")]  # main stays UP throughout
    # 40 failing rounds in eu-west-2: ProbeFailed on the 1st, then on every 10th (retrigger_rounds)
    assert [m.region for m in outcome.of_kind("probe_failed")] == ["eu-west-2"] * 5
    assert outcome.of_kind("would_fail_over") == [] and outcome.of_kind("scenario") == []
    assert outcome.outcomes == {"RecordFalseAlarm": 5}
    rounds = outcome.of_kind("confirmation_round")
    assert rounds and all(m.verdicts and m.verdicts["main"] == "UP" for m in rounds)
    assert "main is UP: a false alarm, the execution ends" in rounds[0].reason


def test_two_regions_cut_off_while_the_standby_still_streams_are_vetoed_by_the_database() -> None:
    transit = main_down_from(FAULT, regions=["eu-west-2", "us-east-1"], until=FAULT + 900)
    outcome = replay(recorded(60, main_up=transit), example_config(), SERVICE)

    # eu-west-2's and us-east-1's second failing rounds make a DOWN quorum at FAULT + 37.5; the
    # standby still hears from main, so the veto holds it, until the cut heals
    assert _verdicts(outcome) == [
        (T0 + 0.5, "UNKNOWN"),
        (T0 + 7.5, "UP"),
        (FAULT + 7.5, "UNKNOWN"),
        (FAULT + 37.5, "UNKNOWN (vetoed)"),
        (FAULT + 900.5, "UP"),  # eu-west-2 reaches main again: with us-west-2, a quorum of UP
    ]
    vetoed = next(m for m in outcome.of_kind("verdict") if m.verdict == "UNKNOWN (vetoed)")
    assert (
        "2 of 3 regions (eu-west-2, us-east-1) vote DOWN, but the DR standby is still streaming"
        in vetoed.reason
    )
    assert "the primary is alive and this looks like a partition" in vetoed.reason
    assert outcome.of_kind("would_fail_over") == []
    confirmed = outcome.of_kind("confirmation_round")
    assert any("looks like a partition" in m.reason for m in confirmed)

    # the same cut, with a standby that lost main: the veto is what held it
    lost = replay(
        recorded(60, main_up=transit, standby=standby_losing_main_at(FAULT)), example_config(), SERVICE
    )
    assert [m.target for m in lost.of_kind("would_fail_over")] == ["dr"]


def test_a_region_that_abstains_publishes_no_probe_failed() -> None:
    results = [
        r
        for k in range(30)
        for r in round_results(
            "eu-west-2", T0 + 30 * k, main_up=k < 10, standby=streaming(T0 + 30 * k), control_up=k < 10
        )
    ] + recorded(30, regions=["us-east-1", "us-west-2"])
    outcome = replay(results, example_config(), SERVICE)
    assert outcome.of_kind("probe_failed") == [] and outcome.executions == 0


def test_in_mode_manual_it_would_only_alert_and_main_stays_the_active_site() -> None:
    data = example_config_data()
    data["services"][0]["failover"]["mode"] = "manual"
    outcome = replay(_outage(), parse_config(data, str(EXAMPLE)), SERVICE)
    assert outcome.of_kind("would_fail_over") == []
    (alert, *_) = outcome.of_kind("would_alert")
    assert alert.at == FAULT + 37.5
    assert alert.reason.startswith("would alert at 2026-12-03 04:03:57.50Z (mode manual: an operator must")
    # nothing moved: main's next ProbeFailed (its 10th failing round) starts an execution again
    assert [m.code for m in outcome.of_kind("execution_ends_at_once") if m.code == "not_active"] == []
    assert outcome.executions > 1


def test_in_mode_veto_it_says_the_failover_waits_for_the_veto_window() -> None:
    data = example_config_data()
    data["services"][0]["failover"]["mode"] = "veto"
    (decision,) = replay(_outage(), parse_config(data, str(EXAMPLE)), SERVICE).of_kind("would_fail_over")
    assert "(mode veto: after the veto window (120 s) unless an operator vetoes it" in decision.reason


# -- two configs side by side -------------------------------------------------------------------


def _main_down(outcome: ReplayOutcome) -> float:
    return next(m.at for m in outcome.of_kind("verdict") if m.site == "main" and m.verdict == "DOWN")


def test_a_larger_quorum_turns_main_down_on_the_third_regions_round() -> None:
    results = _outage()
    a, b = (
        replay(results, example_config(quorum=2), SERVICE),
        replay(results, example_config(quorum=3), SERVICE),
    )
    assert (_main_down(a), _main_down(b)) == (FAULT + 37.5, FAULT + 44.5)
    found = {d.what: d for d in differences(a.moments, b.moments)}
    assert found["main DOWN"].a is not None and found["main DOWN"].a.at == FAULT + 37.5
    assert found["main DOWN"].b is not None and found["main DOWN"].b.at == FAULT + 44.5
    assert "3 of 3 regions" in found["main DOWN"].b.reason and "quorum is 3" in found["main DOWN"].b.reason


def test_more_down_after_rounds_turns_main_down_one_interval_later() -> None:
    results = _outage()
    a = replay(results, example_config(down_after_rounds=2), SERVICE)
    b = replay(results, example_config(down_after_rounds=3), SERVICE)
    found = {d.what: d for d in differences(a.moments, b.moments)}
    down = found["main DOWN"]
    assert down.a is not None and down.b is not None and down.b.at - down.a.at == 30.0
    assert "would fail over to dr" in found


def test_the_same_config_twice_differs_nowhere() -> None:
    results = _outage()
    config = example_config()
    assert (
        differences(replay(results, config, SERVICE).moments, replay(results, config, SERVICE).moments) == []
    )


def test_a_failover_in_one_config_only_is_a_difference() -> None:
    transit = main_down_from(FAULT, regions=["eu-west-2", "us-east-1"], until=FAULT + 900)
    results = recorded(60, main_up=transit, standby=standby_losing_main_at(FAULT))
    a = replay(results, example_config(quorum=2), SERVICE)
    b = replay(results, example_config(quorum=3), SERVICE)
    (failover,) = [d for d in differences(a.moments, b.moments) if d.what == "would fail over to dr"]
    assert failover.a is not None and failover.b is None


# -- intervals ---------------------------------------------------------------------------------


def test_a_longer_interval_keeps_one_recorded_round_in_each_and_turns_main_down_later() -> None:
    outcome = replay(_outage(), example_config(interval_seconds=60), SERVICE)
    assert any("one recorded scheduled round in every 60 s is kept" in note for note in outcome.notes)
    assert outcome.rounds == 60  # of 120
    assert _main_down(outcome) == FAULT + 67.5  # us-east-1's second kept failing round


def test_a_shorter_interval_than_recorded_is_said_not_invented() -> None:
    outcome = replay(_outage(), example_config(interval_seconds=10, timeout_seconds=5), SERVICE)
    assert outcome.rounds == 120
    assert any("replay cannot make rounds that were not recorded" in note for note in outcome.notes)


# -- what reaches the terminal -------------------------------------------------------------------


def test_control_characters_of_the_recording_never_reach_a_moment() -> None:
    hostile = "sched-\x1b[2J\u202eevil"
    results = [
        r.model_copy(update={"round_id": hostile + r.round_id}) if r.region == "eu-west-2" else r
        for r in _outage()
    ]
    outcome = replay(results, example_config(), SERVICE)
    probe_failed = outcome.of_kind("probe_failed")[0]
    assert probe_failed.round_id is not None and "\x1b" not in probe_failed.round_id
    for moment in outcome.moments:
        line = describe(moment)
        assert not [c for c in line if unicodedata.category(c) in ("Cc", "Cf")], line


def test_results_of_regions_the_config_does_not_probe_from_are_left_out_and_said() -> None:
    results = _outage() + recorded(5, regions=["ap-south-1"])
    outcome = replay(results, example_config(), SERVICE)
    assert outcome.notes == ["results of regions the config does not probe from are left out: ap-south-1"]


@pytest.mark.parametrize("kind", ["verdict", "would_fail_over"])
def test_a_moment_is_a_model_that_forbids_unknown_fields(kind: str) -> None:
    with pytest.raises(ValueError):
        Moment.model_validate({"at": 1.0, "kind": kind, "reason": "x", "colour": "red"})


def test_a_cold_site_no_scheduled_round_checked_is_not_probed_not_unknown() -> None:
    """The recording has no cold results (scheduled rounds leave out a cold site that is not
    launched): the config's cold site reads NOT PROBED, with the rule's sentence, never UNKNOWN."""
    with_cold = example_config_data() | {"services": read_yaml(EXAMPLE)["services"]}
    config = parse_config(with_cold, str(EXAMPLE))
    outcome = replay(_outage(), config, SERVICE)

    cold = [m for m in outcome.of_kind("verdict") if m.site == "cold"]
    assert [(m.at, m.verdict) for m in cold] == [(T0 + 0.5, "NOT PROBED")]
    assert cold[0].reason.startswith("cold is not probed: the cold site of booking is not launched: ")
    assert cold[0].reason.endswith("no recorded round checked it lately")
    assert outcome.outcomes == {"scenario hot": 1}, "the decision is the same as without the cold site"
