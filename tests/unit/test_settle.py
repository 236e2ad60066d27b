"""A round decides as soon as the answers in hand settle it: never a different verdict than waiting."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quorum_dr.domain.quorum import Verdict
from quorum_dr.domain.settle import SiteTally, round_settled, settled_verdict, verdict_of

KINDS = ("down", "up", "none")  # "none": suspect, abstaining, stale, missing: not a vote


@st.composite
def rounds(draw: st.DrawFn) -> tuple[list[str], int, int]:
    """Answered regions' vote kinds, the number still outstanding, and a valid quorum."""
    total = draw(st.integers(min_value=1, max_value=7))
    outstanding = draw(st.integers(min_value=0, max_value=total))
    answered = draw(
        st.lists(st.sampled_from(KINDS), min_size=total - outstanding, max_size=total - outstanding)
    )
    quorum = draw(st.integers(min_value=total // 2 + 1, max_value=total))
    return answered, outstanding, quorum


def final_verdicts(answered: list[str], outstanding: int, quorum: int) -> set[Verdict]:
    """Every verdict waiting for all answers could give."""
    seen = set()
    for late in itertools.product(KINDS, repeat=outstanding):
        votes = answered + list(late)
        seen.add(verdict_of(votes.count("down"), votes.count("up"), quorum))
    return seen


@given(rounds())
def test_deciding_early_gives_the_verdict_of_waiting_for_every_answer(
    case: tuple[list[str], int, int],
) -> None:
    answered, outstanding, quorum = case
    early = settled_verdict(answered.count("down"), answered.count("up"), outstanding, quorum)
    possible = final_verdicts(answered, outstanding, quorum)
    if early is not None:
        assert possible == {early}  # whatever the late regions say, waiting gives the same verdict
    else:
        assert len(possible) > 1  # and it never waits when the outcome can no longer change


@given(rounds())
def test_with_no_region_outstanding_the_verdict_is_the_quorum_rule(case: tuple[list[str], int, int]) -> None:
    answered, _, quorum = case
    down, up = answered.count("down"), answered.count("up")
    assert settled_verdict(down, up, 0, quorum) == verdict_of(down, up, quorum)


@pytest.mark.parametrize(
    ("down", "up", "verdict"),
    [(2, 0, Verdict.DOWN), (0, 2, Verdict.UP), (1, 1, None), (1, 0, None), (0, 0, Verdict.UNKNOWN)],
)
def test_three_regions_quorum_two_one_silent(down: int, up: int, verdict: Verdict | None) -> None:
    assert settled_verdict(down, up, 1, 2) is verdict


def test_a_bad_tally_is_refused() -> None:
    with pytest.raises(ValueError, match="bad tally"):
        settled_verdict(-1, 0, 1, 2)


def main_down_dr_up(outstanding: int = 1) -> list[SiteTally]:
    return [
        SiteTally(site="main", down=2, up=0, outstanding=outstanding, quorum=2),
        SiteTally(site="dr", down=0, up=2, outstanding=outstanding, quorum=2),
    ]


def test_main_down_settles_only_once_the_veto_has_seen_the_dr_database() -> None:
    waiting = round_settled(main_down_dr_up(), outstanding=["us-west-2"], veto_evidence_in_hand=False)
    assert not waiting.settled
    assert waiting.reason == (
        "waiting for us-west-2: no answered region reported the DR database in this round, "
        "so the database veto may still apply"
    )
    done = round_settled(main_down_dr_up(), outstanding=["us-west-2"], veto_evidence_in_hand=True)
    assert done.settled and done.verdicts == {"main": Verdict.DOWN, "dr": Verdict.UP}
    assert done.reason == "settled without us-west-2: no late answer can change main DOWN, dr UP"


def test_every_site_the_decision_reads_must_be_settled() -> None:
    tallies = [*main_down_dr_up(), SiteTally(site="cold", down=1, up=1, outstanding=1, quorum=2)]
    answer = round_settled(tallies, outstanding=["us-west-2"], veto_evidence_in_hand=True)
    assert not answer.settled
    assert answer.reason == "waiting for us-west-2: the verdict on cold may still change"


def test_main_up_settles_without_the_veto() -> None:
    tallies = [
        SiteTally(site="main", down=0, up=2, outstanding=1, quorum=2),
        SiteTally(site="dr", down=0, up=2, outstanding=1, quorum=2),
    ]
    assert round_settled(tallies, outstanding=["eu-west-2"], veto_evidence_in_hand=False).settled


def test_when_everyone_answered_the_round_is_settled() -> None:
    answer = round_settled(main_down_dr_up(outstanding=0), outstanding=[], veto_evidence_in_hand=False)
    assert answer.settled and answer.reason == "every region answered"
