"""Property tests of invariant 4 (docs/architecture.md): unknown loss is not zero loss.

An automatic promotion needs a known bound on the loss from (a) a fresh probe view of main's WAL
position that the standby reached, (b) main's view of the DR standby as synchronous with a
synchronous_commit that waits for it, or (c) the standby hearing from main shortly before main's
first failed probe. The worlds below break all three, each in one of its ways, and leave every
other field to chance: no automatic promotion may follow, whatever those fields say.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from quorum_dr.config import Database, DatabaseEndpoint
from quorum_dr.domain.data_loss import final_position_receipt
from quorum_dr.domain.decisions import check_replica, data_loss_receipt
from quorum_dr.domain.results import DbRole, DbStatus, FailureClass, ProbeResult, ReplicationPeer, Vote

NOW = 1_700_000_000.0
FRESHNESS = 90.0
LIMITS = Database(
    main=DatabaseEndpoint(host="main", credentials_secret="s"),
    dr=DatabaseEndpoint(host="dr", credentials_secret="s"),
    max_lag_bytes=16 * 1024 * 1024,
    max_lag_seconds=30,
)
LSNS = st.integers(min_value=0x3000000, max_value=0x3FFFFFF)


def lsn(value: int) -> str:
    return f"0/{value:X}"


def result(
    site: str, at: float, vote: Vote, db: DbStatus | None = None, abstaining: bool = False
) -> ProbeResult:
    return ProbeResult(
        service="booking",
        site=site,
        check="postgres" if db else "https-health",
        check_type="postgres" if db else "http",
        region="us-east-1",
        round_id=f"r{at}",
        vote=vote,
        failure_class=None if vote is Vote.UP else FailureClass.CONNECT_TIMEOUT,
        latency_ms=1.0,
        probe_time=at,
        received_at=at,
        abstaining=abstaining,
        counts=db is None,
        db=db,
    )


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[ProbeResult], DbStatus | None]:
    failed_at = NOW - draw(st.floats(min_value=0, max_value=300))
    results = [result("main", failed_at, Vote.DOWN)]
    # later failures, and failures of abstaining regions before it, change nothing
    results += [
        result("main", failed_at + d, Vote.DOWN) for d in draw(st.lists(st.floats(0, 60), max_size=3))
    ]
    results += [
        result("main", failed_at - d, Vote.DOWN, abstaining=True)
        for d in draw(st.lists(st.floats(0.001, 600), max_size=2))
    ]
    receive = draw(LSNS)
    name = draw(st.sampled_from(["dr", None]))
    status = DbStatus(
        role=DbRole.STANDBY,
        receive_lsn=lsn(receive),
        replay_lsn=lsn(receive),
        replay_lag_bytes=draw(st.sampled_from([0, 0, 10, None])),
        replay_lag_seconds=draw(st.one_of(st.none(), st.floats(0, 10_000))),
        streaming=draw(st.sampled_from([True, False, None])),
        application_name=name,
        # (c) broken: the decision's own reading heard from main too long before the failure
        last_msg_age_seconds=draw(
            st.one_of(st.none(), st.floats(min_value=NOW - failed_at + 30.001, max_value=10_000))
        ),
        latest_end_lsn=draw(st.one_of(st.none(), LSNS.map(lsn))),
    )

    # (a) and (b) broken: main's last view is too old, or the standby is short of it and main's
    # view does not make it synchronous
    how = draw(st.sampled_from(["no view", "old view", "short and not synchronous"]))
    if how != "no view":
        if how == "old view":
            seen_at = failed_at - draw(st.floats(min_value=FRESHNESS + 0.001, max_value=3600))
            main_lsn = draw(LSNS)
        else:
            seen_at = failed_at - draw(st.floats(min_value=0.001, max_value=FRESHNESS))
            main_lsn = receive + draw(st.integers(min_value=1, max_value=1 << 20))
        not_sync = draw(st.sampled_from(["commit", "async", "unlisted", "any"]))
        view = DbStatus(
            role=DbRole.PRIMARY,
            current_lsn=lsn(main_lsn),
            synchronous_commit=draw(st.sampled_from(["local", "off", None]))
            if not_sync == "commit"
            else draw(st.sampled_from(["on", "remote_write", "remote_apply"])),
            synchronous_standby_names="ANY 1 (dr, other)" if not_sync == "any" else "*",
            standbys=(
                ()
                if not_sync == "unlisted"
                else (
                    ReplicationPeer(
                        application_name="dr",
                        sync_state="quorum"
                        if not_sync == "any"
                        else draw(st.sampled_from(["async", "potential", "sync"]))
                        if how == "old view" or not_sync == "commit"
                        else draw(st.sampled_from(["async", "potential"])),
                    ),
                    ReplicationPeer(application_name="other", sync_state="quorum"),
                )
            ),
        )
        results.append(result("main", seen_at, Vote.UP, db=view))
        results += [
            result("main", seen_at - d, Vote.UP) for d in draw(st.lists(st.floats(0, 600), max_size=2))
        ]

    # (c) broken in the probes' reports too: each heard from main too early, or without main's WAL end
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        seen = failed_at - draw(st.floats(min_value=-60, max_value=600))
        heard_too_early = draw(st.booleans())
        age = draw(
            st.floats(min_value=seen - failed_at + 30.001, max_value=seen - failed_at + 3600)
            if heard_too_early
            else st.floats(min_value=0, max_value=max(0.0, seen - failed_at + 30))
        )
        report = status.model_copy(
            update={
                "last_msg_age_seconds": max(0.0, age),
                "latest_end_lsn": draw(LSNS.map(lsn)) if heard_too_early else None,
            }
        )
        results.append(result("dr", seen, Vote.UP, db=report))
    return results, draw(st.sampled_from([status, status, None]))


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_without_a_known_bound_no_automatic_promotion(
    world: tuple[list[ProbeResult], DbStatus | None],
) -> None:
    results, status = world
    receipt = data_loss_receipt(
        results, service="booking", standby_status=status, now=NOW, freshness_seconds=FRESHNESS
    )
    decision = check_replica(status, LIMITS, allow_data_loss=False, receipt=receipt)
    assert not decision.proceed, (receipt, decision)
    assert decision.reason.endswith("only a manual start with allow_data_loss may proceed")
    assert "no known data loss" not in receipt.reason
    if receipt.evidence is None:
        assert (receipt.bound_bytes, receipt.bound_seconds) == (None, None)


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_an_operator_may_still_promote_and_it_is_said(
    world: tuple[list[ProbeResult], DbStatus | None],
) -> None:
    results, status = world
    receipt = data_loss_receipt(
        results, service="booking", standby_status=status, now=NOW, freshness_seconds=FRESHNESS
    )
    decision = check_replica(status, LIMITS, allow_data_loss=True, receipt=receipt)
    assert (decision.proceed, decision.code) == (True, "data_loss_allowed")
    assert decision.reason.endswith("allow_data_loss was given by an operator")


# ---------------------------------------------------------------------------------------------
# After the fence: main's final position (issue 10, item 6)
# ---------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(final=LSNS, received=LSNS, replay_behind=st.integers(min_value=0, max_value=0x10000))
def test_zero_loss_after_the_fence_only_when_the_standby_received_and_replayed_mains_final_position(
    final: int, received: int, replay_behind: int
) -> None:
    replayed = max(0, received - replay_behind)
    standby = DbStatus(
        role=DbRole.STANDBY,
        receive_lsn=lsn(received),
        replay_lsn=lsn(replayed),
        replay_lag_bytes=received - replayed,
    )
    receipt = final_position_receipt(lsn(final), standby, waited_seconds=5)
    if received >= final and replayed >= final:
        assert receipt.evidence == "final_position" and receipt.loss_bytes == 0
        assert receipt.bound_bytes == 0 and receipt.bound_seconds == 0
        assert receipt.reason.startswith(
            f"no data lost: main's final position after the fence, {lsn(final)}, reached by the standby"
        )
    else:
        assert receipt.evidence is None and receipt.bound_bytes is None
        assert receipt.loss_bytes == max(0, final - received)
        assert "not reached by the standby within 5 s" in receipt.reason
        assert "no data lost" not in receipt.reason


def test_the_receipt_after_the_fence_without_a_standby_to_compare_is_unknown() -> None:
    primary = DbStatus(role=DbRole.PRIMARY, current_lsn="0/5000000")
    for status in (None, primary):
        receipt = final_position_receipt("0/4000000", status, waited_seconds=5)
        assert receipt.evidence is None and receipt.loss_bytes is None
        assert receipt.reason.startswith("data loss unknown, no known bound: ")
