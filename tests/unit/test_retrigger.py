"""The pure decision: when a region publishes ProbeFailed for a site."""

from __future__ import annotations

import pytest

from quorum_dr.domain.retrigger import decide_probe_failed


def walk(votes: list[bool], retrigger_rounds: int = 10) -> list[int]:
    """Round numbers (1-based) that publish, for a sequence of round verdicts (True = DOWN),
    carrying the count from each round to the next as the probe service does."""
    published, previous = [], None
    for number, down in enumerate(votes, start=1):
        decision = decide_probe_failed(
            site="main",
            region="eu-west-2",
            down=down,
            previous_failing_rounds=previous,
            retrigger_rounds=retrigger_rounds,
        )
        if decision.publish:
            published.append(number)
        previous = decision.failing_rounds
    return published


def test_the_first_failing_round_triggers_with_or_without_a_previous_round() -> None:
    first = decide_probe_failed(
        site="main", region="us-east-1", down=True, previous_failing_rounds=None, retrigger_rounds=10
    )
    assert first.publish and first.failing_rounds == 1
    assert first.reason == "main turns DOWN from us-east-1 (no previous round): ProbeFailed"
    after_up = decide_probe_failed(
        site="main", region="us-east-1", down=True, previous_failing_rounds=0, retrigger_rounds=10
    )
    assert after_up.publish and "UP the round before" in after_up.reason


def test_the_2nd_to_9th_consecutive_failing_rounds_are_quiet_and_the_10th_triggers() -> None:
    for previous in range(1, 9):
        quiet = decide_probe_failed(
            site="main", region="eu-west-2", down=True, previous_failing_rounds=previous, retrigger_rounds=10
        )
        assert not quiet.publish and quiet.failing_rounds == previous + 1
        assert "next at round 10" in quiet.reason
    tenth = decide_probe_failed(
        site="main", region="eu-west-2", down=True, previous_failing_rounds=9, retrigger_rounds=10
    )
    assert tenth.publish and tenth.failing_rounds == 10
    assert "for 10 consecutive rounds: ProbeFailed again" in tenth.reason


def test_a_long_outage_triggers_on_the_first_round_and_every_tenth() -> None:
    assert walk([True] * 35) == [1, 10, 20, 30]


def test_an_up_round_rearms_so_a_flapping_site_triggers_on_each_turn_to_down() -> None:
    assert walk([True, True, False, True, False, True, True, True]) == [1, 4, 6]
    up = decide_probe_failed(
        site="main", region="eu-west-2", down=False, previous_failing_rounds=7, retrigger_rounds=10
    )
    assert not up.publish and up.failing_rounds == 0 and "next failing round triggers at once" in up.reason


def test_retrigger_every_round_when_set_to_one() -> None:
    assert walk([True] * 4, retrigger_rounds=1) == [1, 2, 3, 4]


def test_retrigger_rounds_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        decide_probe_failed(
            site="main", region="eu-west-2", down=True, previous_failing_rounds=0, retrigger_rounds=0
        )
