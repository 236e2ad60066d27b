"""Property tests of the quorum engine: DESIGN §2 invariants 1-3 over generated results."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from quorum_dr.domain.quorum import SiteVerdict, Verdict, evaluate_site
from quorum_dr.domain.results import CONTROL_SITE, DbRole, DbStatus, ProbeResult, Vote

NOW = 1_700_000_000.0
FRESHNESS = 90.0
REGIONS_POOL = ["eu-west-2", "us-east-1", "us-west-2", "eu-central-1", "ap-south-1"]
UNCONFIGURED = "sa-east-1"


@dataclass(frozen=True)
class Setup:
    regions: list[str]
    quorum: int
    down_after_rounds: int


@st.composite
def setups(draw: st.DrawFn) -> Setup:
    count = draw(st.integers(min_value=3, max_value=5))
    quorum = draw(st.integers(min_value=count // 2 + 1, max_value=count))
    return Setup(REGIONS_POOL[:count], quorum, draw(st.integers(min_value=1, max_value=3)))


@st.composite
def probe_results(
    draw: st.DrawFn,
    regions: list[str],
    *,
    sites: tuple[str, ...] = ("main", "dr", CONTROL_SITE),
    fresh: bool | None = None,
    abstaining: bool | None = None,
) -> ProbeResult:
    site = draw(st.sampled_from(sites))
    if fresh is None:
        age = draw(
            st.one_of(st.floats(min_value=0, max_value=FRESHNESS), st.floats(min_value=91, max_value=900))
        )
    elif fresh:
        age = draw(st.floats(min_value=0, max_value=FRESHNESS))
    else:
        age = draw(st.floats(min_value=FRESHNESS + 0.001, max_value=900))
    received = draw(st.one_of(st.just(NOW - age), st.just(None))) if fresh is None else NOW - age
    db = None
    check = draw(st.sampled_from(["https-health", "tcp-443"]))
    counts = draw(st.booleans())
    if site == "dr" and draw(st.booleans()):
        check, counts = "postgres", False
        db = DbStatus(
            role=draw(st.sampled_from(list(DbRole))),
            receive_lsn=f"0/{draw(st.integers(min_value=0, max_value=0xFFFF)):X}",
            streaming=draw(st.sampled_from([True, False, None])),
            last_msg_age_seconds=draw(st.one_of(st.none(), st.floats(min_value=0, max_value=200))),
        )
    return ProbeResult(
        service="booking",
        site=site,
        check=check,
        check_type="postgres" if db else "http",
        region=draw(st.sampled_from(regions)),
        round_id=f"r{draw(st.integers(min_value=0, max_value=6))}",
        vote=draw(st.sampled_from(list(Vote))),
        latency_ms=1.0,
        probe_time=NOW,
        received_at=received,
        abstaining=draw(st.booleans()) if abstaining is None else abstaining,
        counts=counts,
        db=db,
    )


def verdict_of(results: list[ProbeResult], setup: Setup, veto: bool = True) -> SiteVerdict:
    return evaluate_site(
        results,
        service="booking",
        site="main",
        regions=setup.regions,
        quorum=setup.quorum,
        freshness_seconds=FRESHNESS,
        down_after_rounds=setup.down_after_rounds,
        now=NOW,
        db_veto=veto,
        dr_results=results,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Setup, list[ProbeResult]]:
    setup = draw(setups())
    # Bias towards failing main rounds so that DOWN verdicts are common enough to matter.
    failing = draw(
        st.lists(
            st.builds(
                lambda region, n, age: ProbeResult(
                    service="booking",
                    site="main",
                    check="https-health",
                    check_type="http",
                    region=region,
                    round_id=f"r{n}",
                    vote=Vote.DOWN,
                    latency_ms=1.0,
                    probe_time=NOW,
                    received_at=NOW - age,
                ),
                st.sampled_from(setup.regions),
                st.integers(min_value=0, max_value=6),
                st.floats(min_value=0, max_value=FRESHNESS),
            ),
            max_size=20,
        )
    )
    mixed = draw(st.lists(probe_results(setup.regions), max_size=25))
    return setup, failing + mixed


COMMON = settings(max_examples=300, deadline=None)


@COMMON
@given(scenarios(), st.data())
def test_an_added_abstention_never_makes_main_down(
    scenario: tuple[Setup, list[ProbeResult]], data: st.DataObject
) -> None:
    setup, results = scenario
    before = verdict_of(results, setup)
    extra = data.draw(probe_results(setup.regions, abstaining=True, fresh=True))
    after = verdict_of(results + [extra], setup)
    if before.verdict is not Verdict.DOWN:
        assert after.verdict is not Verdict.DOWN
    assert after.down_votes <= before.down_votes


@COMMON
@given(scenarios(), st.data())
def test_a_failed_self_check_never_makes_main_down(
    scenario: tuple[Setup, list[ProbeResult]], data: st.DataObject
) -> None:
    setup, results = scenario
    before = verdict_of(results, setup)
    control = data.draw(probe_results(setup.regions, sites=(CONTROL_SITE,), fresh=True))
    after = verdict_of(results + [control.model_copy(update={"vote": Vote.DOWN})], setup)
    if before.verdict is not Verdict.DOWN:
        assert after.verdict is not Verdict.DOWN


@COMMON
@given(scenarios(), st.data())
def test_an_added_stale_result_never_makes_main_down(
    scenario: tuple[Setup, list[ProbeResult]], data: st.DataObject
) -> None:
    setup, results = scenario
    before = verdict_of(results, setup)
    stale = data.draw(probe_results(setup.regions, fresh=False))
    after = verdict_of(results + [stale], setup)
    assert after.verdict == before.verdict
    assert (after.down_votes, after.up_votes) == (before.down_votes, before.up_votes)


@COMMON
@given(scenarios(), st.data())
def test_a_result_from_an_unconfigured_region_changes_nothing(
    scenario: tuple[Setup, list[ProbeResult]], data: st.DataObject
) -> None:
    setup, results = scenario
    before = verdict_of(results, setup)
    stranger = data.draw(probe_results([UNCONFIGURED], fresh=True, abstaining=False))
    after = verdict_of(results + [stranger, stranger.model_copy(update={"vote": Vote.DOWN})], setup)
    assert after == before


@COMMON
@given(scenarios())
def test_fewer_than_quorum_regions_with_fresh_down_results_is_never_down(
    scenario: tuple[Setup, list[ProbeResult]],
) -> None:
    setup, results = scenario
    verdict = verdict_of(results, setup)
    # An independent, generous count: any region with at least one fresh failing voting result.
    regions_seeing_down = {
        r.region
        for r in results
        if r.site == "main"
        and r.region in setup.regions
        and r.vote is Vote.DOWN
        and r.counts
        and not r.abstaining
        and r.received_at is not None
        and NOW - r.received_at <= FRESHNESS
    }
    if len(regions_seeing_down) < setup.quorum:
        assert verdict.verdict is not Verdict.DOWN
    if verdict.verdict is Verdict.DOWN:
        assert verdict.down_votes >= setup.quorum
        assert sum(v.kind == "down" for v in verdict.votes) == verdict.down_votes


@COMMON
@given(scenarios(), st.randoms(use_true_random=False))
def test_the_order_of_results_never_changes_the_verdict(
    scenario: tuple[Setup, list[ProbeResult]], rnd: object
) -> None:
    setup, results = scenario
    shuffled = list(results)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert verdict_of(shuffled, setup) == verdict_of(results, setup)


@COMMON
@given(scenarios(), st.sampled_from(REGIONS_POOL[:3]), st.integers(min_value=1, max_value=10_000))
def test_the_database_veto_always_wins_over_outside_down_votes(
    scenario: tuple[Setup, list[ProbeResult]], region: str, advance: int
) -> None:
    setup, results = scenario

    def standby(received_at: float, lsn: int) -> ProbeResult:
        return ProbeResult(
            service="booking",
            site="dr",
            check="postgres-veto",
            check_type="postgres",
            region=region,
            round_id=f"v{received_at}",
            vote=Vote.UP,
            latency_ms=1.0,
            probe_time=received_at,
            received_at=received_at,
            counts=False,
            db=DbStatus(role=DbRole.STANDBY, receive_lsn=f"0/{lsn:X}", streaming=True),
        )

    evidence = [standby(NOW - 40, 0x3000000), standby(NOW - 10, 0x3000000 + advance)]
    without = verdict_of(results, setup, veto=False)
    with_veto = verdict_of(results + evidence, setup)
    assert with_veto.verdict is not Verdict.DOWN
    if without.verdict is Verdict.DOWN:
        assert with_veto.vetoed
        assert with_veto.verdict is Verdict.UNKNOWN
        assert "the primary is alive and this looks like a partition" in with_veto.reason


@COMMON
@given(
    scenarios(),
    st.sampled_from(REGIONS_POOL[:3]),
    st.floats(min_value=0, max_value=FRESHNESS),
    st.floats(min_value=0, max_value=35),
)
def test_an_idle_primary_heard_by_a_streaming_standby_is_never_down(
    scenario: tuple[Setup, list[ProbeResult]], region: str, age: float, heard: float
) -> None:
    """DESIGN invariant 3 with no writes at all: one fresh standby report, receive position never
    moving, but its last keepalive from main within the default bound (60 s / 2 + 5 s)."""
    setup, results = scenario
    latest = ProbeResult(
        service="booking",
        site="dr",
        check="postgres-idle",
        check_type="postgres",
        region=region,
        round_id="idle",
        vote=Vote.UP,
        latency_ms=1.0,
        probe_time=NOW - age,
        received_at=NOW - age,
        counts=False,
        db=DbStatus(role=DbRole.STANDBY, receive_lsn="0/3000148", streaming=True, last_msg_age_seconds=heard),
    )
    earlier = latest.model_copy(update={"round_id": "idle-0", "received_at": NOW - age - 30})
    without = verdict_of(results, setup, veto=False)
    with_veto = verdict_of(results + [earlier, latest], setup)
    assert with_veto.verdict is not Verdict.DOWN
    if without.verdict is Verdict.DOWN:
        assert with_veto.vetoed
