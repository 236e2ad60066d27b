"""The quorum engine: verdicts and the sentences that explain them."""

from __future__ import annotations

from pathlib import Path

import pytest

from quorum_dr.config import load_config
from quorum_dr.domain.quorum import SiteVerdict, Verdict, evaluate_service, evaluate_site
from quorum_dr.domain.results import CONTROL_SITE, DbRole, DbStatus, FailureClass, ProbeResult, Vote

REGIONS = ["eu-west-2", "us-east-1", "us-west-2"]
NOW = 1_700_000_000.0


def result(
    region: str,
    round_no: int,
    vote: Vote,
    *,
    site: str = "main",
    check: str = "https-health",
    age: float | None = None,
    abstaining: bool = False,
    counts: bool = True,
    db: DbStatus | None = None,
    service: str = "booking",
) -> ProbeResult:
    """A result of round `round_no`; rounds are 30 s apart, round 9 received 5 s ago by default."""
    received = NOW - (age if age is not None else 5 + (9 - round_no) * 30)
    return ProbeResult(
        service=service,
        site=site,
        check=check,
        check_type="postgres" if db else "http",
        region=region,
        round_id=f"r{round_no}",
        vote=vote,
        failure_class=FailureClass.CONNECT_TIMEOUT if vote is Vote.DOWN else None,
        latency_ms=12.0,
        probe_time=received,
        received_at=received,
        abstaining=abstaining,
        counts=counts,
        db=db,
    )


def main_verdict(results: list[ProbeResult], **kw: object) -> SiteVerdict:
    args: dict = dict(
        service="booking",
        site="main",
        regions=REGIONS,
        quorum=2,
        freshness_seconds=90,
        down_after_rounds=2,
        now=NOW,
    )
    args.update(kw)
    return evaluate_site(results, **args)


def failing(region: str, rounds: tuple[int, ...] = (8, 9)) -> list[ProbeResult]:
    return [result(region, n, Vote.DOWN) for n in rounds]


def test_down_when_a_quorum_of_regions_saw_consecutive_failing_rounds() -> None:
    verdict = main_verdict(failing("eu-west-2") + failing("us-east-1") + [result("us-west-2", 9, Vote.UP)])
    assert verdict.verdict is Verdict.DOWN
    assert verdict.reason == (
        "main is DOWN: 2 of 3 regions (eu-west-2, us-east-1) saw 2 consecutive failing rounds; quorum is 2"
    )
    assert (verdict.down_votes, verdict.up_votes, verdict.vetoed) == (2, 1, False)
    assert [v.kind for v in verdict.votes] == ["down", "down", "up"]
    assert verdict.votes[0].reason == (
        "eu-west-2 votes DOWN: 2 consecutive failing rounds (https-health: connect_timeout)"
    )


def test_unknown_names_every_region_that_is_not_a_vote() -> None:
    results = (
        failing("us-east-1")
        + [result("us-west-2", 9, Vote.DOWN, abstaining=True)]
        + [result("eu-west-2", 5, Vote.DOWN, age=300)]
    )
    verdict = main_verdict(results)
    assert verdict.verdict is Verdict.UNKNOWN
    assert verdict.reason == (
        "main is UNKNOWN: only 1 region votes DOWN (us-east-1); us-west-2 abstains (control target "
        "unreachable); eu-west-2's results are stale; quorum is 2"
    )
    assert [v.kind for v in verdict.votes] == ["stale", "down", "abstain"]


def test_up_when_a_quorum_saw_every_voting_check_pass() -> None:
    verdict = main_verdict([result(r, 9, Vote.UP) for r in REGIONS])
    assert verdict.verdict is Verdict.UP
    assert verdict.reason == (
        "main is UP: 3 of 3 regions (eu-west-2, us-east-1, us-west-2) saw every voting check pass in "
        "their latest round; quorum is 2"
    )


def test_one_failing_round_makes_a_region_suspect_not_a_down_vote() -> None:
    results = [result(r, 9, Vote.DOWN) for r in REGIONS]
    verdict = main_verdict(results)
    assert verdict.verdict is Verdict.UNKNOWN
    assert all(v.kind == "suspect" for v in verdict.votes)
    assert verdict.reason == (
        "main is UNKNOWN: no region votes DOWN or UP; "
        "eu-west-2 is suspect: 1 of 2 failing rounds so far (https-health: connect_timeout); "
        "us-east-1 is suspect: 1 of 2 failing rounds so far (https-health: connect_timeout); "
        "us-west-2 is suspect: 1 of 2 failing rounds so far (https-health: connect_timeout); quorum is 2"
    )


def test_a_recovered_round_breaks_the_failing_streak() -> None:
    results = [
        result("eu-west-2", 7, Vote.DOWN),
        result("eu-west-2", 8, Vote.UP),
        result("eu-west-2", 9, Vote.DOWN),
    ]
    vote = main_verdict(results).votes[0]
    assert vote.kind == "suspect"
    assert vote.reason.startswith("eu-west-2 is suspect: 1 of 2 failing rounds so far")


def test_one_failing_voting_check_makes_the_round_down_and_informational_checks_never_do() -> None:
    rounds = []
    for region in REGIONS[:2]:
        for n in (8, 9):
            rounds += [result(region, n, Vote.UP), result(region, n, Vote.DOWN, check="tcp-443")]
    verdict = main_verdict(rounds)
    assert verdict.verdict is Verdict.DOWN
    assert "tcp-443: connect_timeout" in verdict.votes[0].reason

    info_only = [result(r, n, Vote.DOWN, check="postgres", counts=False) for r in REGIONS for n in (8, 9)]
    info_only += [result(r, n, Vote.UP) for r in REGIONS for n in (8, 9)]
    assert main_verdict(info_only).verdict is Verdict.UP


def test_missing_regions_and_unconfigured_regions_are_not_votes() -> None:
    results = failing("eu-west-2") + failing("ap-south-1") + failing("eu-central-1")
    verdict = main_verdict(results)
    assert verdict.verdict is Verdict.UNKNOWN
    assert verdict.reason == (
        "main is UNKNOWN: only 1 region votes DOWN (eu-west-2); us-east-1 has no results; "
        "us-west-2 has no results; quorum is 2"
    )


def test_a_failing_self_check_in_the_same_round_makes_the_region_abstain() -> None:
    control = [result(r, 9, Vote.DOWN, site=CONTROL_SITE, check="control-aws") for r in REGIONS[:2]]
    verdict = main_verdict(failing("eu-west-2") + failing("us-east-1") + control)
    assert verdict.verdict is Verdict.UNKNOWN
    assert [v.kind for v in verdict.votes[:2]] == ["abstain", "abstain"]


def test_results_without_receive_time_are_stale() -> None:
    unstamped = [r.model_copy(update={"received_at": None}) for r in failing("eu-west-2")]
    assert main_verdict(unstamped).votes[0].kind == "stale"


def test_quorum_must_be_a_majority() -> None:
    with pytest.raises(ValueError, match="more than half of the 3 probe regions"):
        main_verdict([], quorum=1)


def standby(
    region: str,
    round_no: int,
    receive: str,
    streaming: bool = True,
    *,
    last_msg_age_seconds: float | None = None,
    wal_receiver_timeout_seconds: float | None = None,
    **kw: object,
) -> ProbeResult:
    db = DbStatus(
        role=DbRole.STANDBY,
        receive_lsn=receive,
        replay_lsn=receive,
        streaming=streaming,
        last_msg_age_seconds=last_msg_age_seconds,
        wal_receiver_timeout_seconds=wal_receiver_timeout_seconds,
    )
    return result(region, round_no, Vote.UP, site="dr", check="postgres", counts=False, db=db, **kw)  # type: ignore[arg-type]


def outside_down() -> list[ProbeResult]:
    return failing("eu-west-2") + failing("us-east-1") + failing("us-west-2")


def test_database_veto_turns_down_into_unknown_while_the_standby_streams() -> None:
    dr = [standby("us-east-1", 8, "0/3000060"), standby("us-east-1", 9, "0/3000148")]
    verdict = main_verdict(outside_down(), db_veto=True, dr_results=dr)
    assert verdict.verdict is Verdict.UNKNOWN
    assert verdict.vetoed
    assert verdict.reason == (
        "main is UNKNOWN: 3 of 3 regions (eu-west-2, us-east-1, us-west-2) vote DOWN, but the DR standby "
        "is still streaming from the primary and its receive position advanced from 0/3000060 to "
        "0/3000148 (seen from us-east-1): the primary is alive and this looks like a partition; quorum is 2"
    )


def test_an_idle_primary_is_alive_when_the_standby_still_hears_its_keepalives() -> None:
    """No writes, so the receive position stands still; the WAL receiver's last message from
    main (a keepalive answer) is 2.5 s old: the primary is alive (invariant 3, docs/architecture.md)."""
    dr = [
        standby("us-east-1", 8, "0/3000148", last_msg_age_seconds=4.0),
        standby("us-east-1", 9, "0/3000148", last_msg_age_seconds=2.5, wal_receiver_timeout_seconds=60.0),
    ]
    verdict = main_verdict(outside_down(), db_veto=True, dr_results=dr)
    assert verdict.verdict is Verdict.UNKNOWN
    assert verdict.vetoed
    assert verdict.reason == (
        "main is UNKNOWN: 3 of 3 regions (eu-west-2, us-east-1, us-west-2) vote DOWN, but the DR standby "
        "is still streaming from the primary and heard from it 2.5 s before its check (within 35 s: an "
        "idle primary still answers the standby's keepalives) (seen from us-east-1): the primary is alive "
        "and this looks like a partition; quorum is 2"
    )


def test_a_held_veto_says_when_its_last_witness_lapses() -> None:
    # Received 5 s ago: us-east-1's standby had heard from main 2.5 s before its check, us-west-2's
    # 10 s before: with the 35 s bound, silence passes it in 27.5 s and in 20 s; the veto holds
    # until the later one.
    dr = [
        standby("us-east-1", 9, "0/3000148", last_msg_age_seconds=2.5, wal_receiver_timeout_seconds=60.0),
        standby("us-west-2", 9, "0/3000148", last_msg_age_seconds=10.0, wal_receiver_timeout_seconds=60.0),
    ]
    verdict = main_verdict(outside_down(), db_veto=True, dr_results=dr)
    assert verdict.vetoed and verdict.veto_lapses_in_seconds == pytest.approx(27.5)
    # not vetoed: nothing to lapse
    late = [
        standby("us-east-1", 9, "0/3000148", last_msg_age_seconds=40.0, wal_receiver_timeout_seconds=60.0)
    ]
    down = main_verdict(outside_down(), db_veto=True, dr_results=late)
    assert down.verdict is Verdict.DOWN and down.veto_lapses_in_seconds is None


def test_the_keepalive_bound_follows_the_standby_timeout_or_the_config() -> None:
    dr = [standby("us-east-1", 9, "0/3000148", last_msg_age_seconds=8.0, wal_receiver_timeout_seconds=5.0)]
    # half of 5 s plus 5 s of slack is 7.5 s: 8 s of silence is too long
    assert main_verdict(outside_down(), db_veto=True, dr_results=dr).verdict is Verdict.DOWN
    configured = main_verdict(outside_down(), db_veto=True, dr_results=dr, heard_within_seconds=10)
    assert configured.vetoed


DOWN = (
    "main is DOWN: 3 of 3 regions (eu-west-2, us-east-1, us-west-2) saw 2 consecutive failing rounds; "
    "quorum is 2; no database veto: "
)


@pytest.mark.parametrize(
    ("dr", "why"),
    [
        (
            [standby("us-east-1", 8, "0/3000148"), standby("us-east-1", 9, "0/3000148")],
            "the DR standby's receive position did not advance (0/3000148) and when it last heard from "
            "the primary is unknown (seen from us-east-1)",
        ),
        (
            [
                standby("us-east-1", 8, "0/3000148", last_msg_age_seconds=50.0),
                standby("us-east-1", 9, "0/3000148", last_msg_age_seconds=80.0),
            ],
            "the DR standby's receive position did not advance (0/3000148) and it last heard from the "
            "primary 80.0 s before its check (more than 35 s; seen from us-east-1)",
        ),
        (
            [
                standby("us-east-1", 8, "0/3000060"),
                standby("us-east-1", 9, "0/3000148", streaming=False, last_msg_age_seconds=1.0),
            ],
            "the DR standby is not streaming from the primary (seen from us-east-1)",
        ),
        (
            [standby("us-east-1", 9, "0/3000148")],
            "the DR standby's receive position was seen once (0/3000148) and when it last heard from the "
            "primary is unknown (seen from us-east-1)",
        ),
        (
            [standby("us-east-1", 8, "0/3000060", age=200), standby("us-east-1", 9, "0/3000148")],
            "the DR standby's receive position was seen once (0/3000148) and when it last heard from the "
            "primary is unknown (seen from us-east-1)",
        ),
        (
            [standby("us-east-1", 9, "0/3000148", age=200, last_msg_age_seconds=1.0)],
            "no fresh result of the DR database check, so nothing shows whether the primary is alive",
        ),
        ([], "no fresh result of the DR database check, so nothing shows whether the primary is alive"),
    ],
    ids=[
        "not-advancing-unknown",
        "not-heard",
        "not-streaming",
        "one-report",
        "stale-report",
        "stale",
        "none",
    ],
)
def test_no_veto_without_fresh_evidence_and_the_sentence_says_why(dr: list[ProbeResult], why: str) -> None:
    verdict = main_verdict(outside_down(), db_veto=True, dr_results=dr)
    assert verdict.verdict is Verdict.DOWN
    assert not verdict.vetoed
    assert verdict.reason == DOWN + why


def test_veto_only_when_asked() -> None:
    dr = [standby("us-east-1", 8, "0/3000060"), standby("us-east-1", 9, "0/3000148")]
    assert main_verdict(outside_down(), dr_results=dr).verdict is Verdict.DOWN


def test_evaluate_service_vetoes_main_with_the_dr_postgres_results(example_config_path: Path) -> None:
    config = load_config(example_config_path)
    dr = [standby("us-east-1", 8, "0/3000060"), standby("us-east-1", 9, "0/3000148")]
    dr_up = [result(r, 9, Vote.UP, site="dr") for r in REGIONS]
    cold_down = [result(r, n, Vote.DOWN, site="cold") for r in REGIONS for n in (8, 9)]
    verdicts = evaluate_service(outside_down() + dr + dr_up + cold_down, config, "booking", NOW)
    assert set(verdicts) == {"main", "dr", "cold"}
    assert verdicts["main"].vetoed and verdicts["main"].verdict is Verdict.UNKNOWN
    assert verdicts["dr"].verdict is Verdict.UP
    assert verdicts["cold"].verdict is Verdict.DOWN
    assert verdicts["cold"].reason.startswith("cold is DOWN: 3 of 3 regions")


def test_other_services_results_are_ignored() -> None:
    other = [r.model_copy(update={"service": "billing"}) for r in outside_down()]
    assert main_verdict(other).verdict is Verdict.UNKNOWN
