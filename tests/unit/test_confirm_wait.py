"""The wait before the next confirmation round: `confirmation.wait_seconds`, or less when the
database veto alone holds main back and lapses sooner (the state machine's WaitBetweenRounds
reads the answer's `next_wait_seconds`)."""

from __future__ import annotations

import pytest
import yaml

from quorum_dr.domain.quorum import SiteVerdict, Verdict
from quorum_dr.failover.confirm import next_wait_seconds
from tests.fakes import ROOT


def main(*, vetoed: bool, lapses_in: float | None) -> SiteVerdict:
    return SiteVerdict(
        service="booking",
        site="main",
        verdict=Verdict.UNKNOWN if vetoed else Verdict.DOWN,
        reason="",
        votes=[],
        down_votes=3,
        up_votes=0,
        quorum=2,
        vetoed=vetoed,
        veto_lapses_in_seconds=lapses_in,
        evaluated_at=0.0,
    )


@pytest.mark.parametrize(
    ("verdict", "wait", "sooner"),
    [
        (main(vetoed=True, lapses_in=3.2), 5, True),  # one second after the lapse, rounded up
        (main(vetoed=True, lapses_in=-2.0), 1, True),  # already past: the next round at once
        (main(vetoed=True, lapses_in=27.5), 10, False),  # lapses after the usual wait: the usual wait
        (main(vetoed=True, lapses_in=8.5), 10, False),  # 9 + 1 s is the usual wait anyway
        (main(vetoed=True, lapses_in=None), 10, False),  # not predictable
        (main(vetoed=False, lapses_in=None), 10, False),
        (None, 10, False),
    ],
)
def test_the_next_wait(verdict: SiteVerdict | None, wait: int, sooner: bool) -> None:
    seconds, why = next_wait_seconds(verdict, 10)
    assert seconds == wait
    assert bool(why) is sooner
    if sooner:
        assert why.startswith(f"the next round in {wait} s, not 10 s: the veto's last witness lapses in")


def test_the_state_machine_waits_what_the_round_says() -> None:
    asl = yaml.safe_load((ROOT / "statemachines" / "failover.asl.yaml").read_text())
    wait = asl["States"]["WaitBetweenRounds"]
    assert wait["Type"] == "Wait" and wait["SecondsPath"] == "$.confirm.next_wait_seconds"
    assert asl["States"]["ConfirmOutageRound"]["ResultPath"] == "$.confirm"


def test_the_rounds_own_length_is_taken_off_the_lapse() -> None:
    # The results came in 5 s after the standby was read (main's checks waited for their timeout):
    # a lapse counted from their receipt is 5 s later than the standby's silence says.
    assert next_wait_seconds(main(vetoed=True, lapses_in=9.0), 10, round_seconds=5.0)[0] == 5
    assert next_wait_seconds(main(vetoed=True, lapses_in=9.0), 10, round_seconds=0.0)[0] == 10
