"""The PostgreSQL check against real PostgreSQL 15 clusters: role, WAL figures, failure classes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from quorum_dr.config import PostgresCheck
from quorum_dr.domain.data_loss import data_loss_receipt
from quorum_dr.domain.quorum import Verdict, evaluate_site
from quorum_dr.domain.results import DbRole, FailureClass, ProbeResult, Vote, parse_lsn
from quorum_dr.probes.outcome import CheckOutcome
from quorum_dr.probes.postgres import check_postgres
from quorum_dr_local.standins.postgres import PgCluster, PgPair, free_port

TIMEOUT = 10.0  # a bound for answers that come; a loaded CI machine may be slow to give them


def pg_check(cluster: PgCluster, port: int | None = None, host: str = "127.0.0.1") -> PostgresCheck:
    return PostgresCheck(
        name="postgres",
        host=host,
        port=port or cluster.port,
        dbname="postgres",
        credentials_secret="sandbox/monitor",
        sslmode="disable",
    )


def monitor(cluster: PgCluster) -> dict[str, str]:
    return cluster.roles.monitor.as_secret()


def test_primary_reports_role_and_current_lsn(pg_pair: PgPair) -> None:
    outcome = check_postgres(pg_check(pg_pair.primary), credentials=monitor(pg_pair.primary), timeout=TIMEOUT)

    assert outcome.vote == Vote.UP, outcome.detail
    assert outcome.failure_class is None
    assert outcome.db is not None and outcome.db.role == DbRole.PRIMARY
    assert outcome.db.current_lsn is not None and parse_lsn(outcome.db.current_lsn) > 0
    assert outcome.db.receive_lsn is None and outcome.db.streaming is None
    assert "primary at WAL" in outcome.detail


def test_standby_reports_streaming_receive_and_replay(pg_pair: PgPair) -> None:
    primary, standby = pg_pair
    primary.sql("CREATE TABLE IF NOT EXISTS probe_writes (n int)", who="app")
    primary.sql("INSERT INTO probe_writes VALUES (1)", who="app")
    standby.wait_replayed(primary.value("SELECT pg_current_wal_lsn()::text"))

    outcome = check_postgres(pg_check(standby), credentials=monitor(standby), timeout=TIMEOUT)

    db = outcome.db
    assert outcome.vote == Vote.UP, outcome.detail
    assert db is not None and db.role == DbRole.STANDBY
    assert db.streaming is True
    assert db.receive_lsn is not None and db.replay_lsn is not None
    assert db.replay_lag_bytes is not None and db.replay_lag_bytes >= 0
    assert db.replay_lag_seconds is not None and db.last_replay_at is not None
    assert db.current_lsn is None
    assert "standby streaming" in outcome.detail


def test_standby_receive_lsn_advances_after_writes_on_primary(pg_pair: PgPair) -> None:
    primary, standby = pg_pair
    before = check_postgres(pg_check(standby), credentials=monitor(standby), timeout=TIMEOUT).db
    primary.sql("CREATE TABLE IF NOT EXISTS probe_writes (n int)", who="app")
    primary.sql("INSERT INTO probe_writes SELECT generate_series(1, 1000)", who="app")
    target = primary.value("SELECT pg_current_wal_lsn()::text")
    standby.wait_until(f"SELECT pg_last_wal_receive_lsn() >= '{target}'::pg_lsn")

    after = check_postgres(pg_check(standby), credentials=monitor(standby), timeout=TIMEOUT).db

    assert before is not None and after is not None
    assert before.receive_lsn is not None and after.receive_lsn is not None
    assert parse_lsn(after.receive_lsn) > parse_lsn(before.receive_lsn)
    assert parse_lsn(after.receive_lsn) >= parse_lsn(target)


def test_replay_paused_shows_lag_in_bytes(pg_pair_factory) -> None:  # type: ignore[no-untyped-def]
    primary, standby = pg_pair_factory()
    primary.sql("CREATE TABLE lagging (n int)", who="app")
    standby.wait_replayed(primary.value("SELECT pg_current_wal_lsn()::text"))
    standby.pause_replay()
    primary.sql("INSERT INTO lagging SELECT generate_series(1, 5000)", who="app")
    target = primary.value("SELECT pg_current_wal_lsn()::text")
    standby.wait_until(f"SELECT pg_last_wal_receive_lsn() >= '{target}'::pg_lsn")

    db = check_postgres(pg_check(standby), credentials=monitor(standby), timeout=TIMEOUT).db

    assert db is not None and db.replay_lag_bytes is not None
    assert db.replay_lag_bytes > 0
    assert db.receive_lsn is not None and db.replay_lsn is not None
    assert db.replay_lag_bytes == parse_lsn(db.receive_lsn) - parse_lsn(db.replay_lsn)


def test_standby_cut_from_primary_is_not_streaming(pg_pair_factory) -> None:  # type: ignore[no-untyped-def]
    primary, standby = pg_pair_factory()
    standby.cut_streaming(primary)
    standby.wait_until("SELECT count(*) = 0 FROM pg_stat_wal_receiver WHERE status = 'streaming'")

    outcome = check_postgres(pg_check(standby), credentials=monitor(standby), timeout=TIMEOUT)

    assert outcome.vote == Vote.UP
    assert outcome.db is not None and outcome.db.streaming is False
    assert "NOT streaming" in outcome.detail


def test_stopped_cluster_is_connect_refused(pg_base_dir) -> None:  # type: ignore[no-untyped-def]
    from quorum_dr_local.standins.postgres import make_primary

    with make_primary(pg_base_dir, name="stopped") as cluster:
        cluster.stop()
        outcome = check_postgres(pg_check(cluster), credentials=monitor(cluster), timeout=TIMEOUT)

    assert outcome.vote == Vote.DOWN
    assert outcome.failure_class == FailureClass.CONNECT_REFUSED, outcome.detail


def test_wrong_password_is_db_error_without_the_password(pg_primary: PgCluster) -> None:
    secret = "not-the-password-Zq81"
    credentials = {"username": pg_primary.roles.monitor.username, "password": secret}

    outcome = check_postgres(pg_check(pg_primary), credentials=credentials, timeout=TIMEOUT)

    assert outcome.vote == Vote.DOWN
    assert outcome.failure_class == FailureClass.DB_ERROR
    assert "password authentication failed" in outcome.detail
    assert secret not in outcome.detail


def test_unknown_host_is_dns() -> None:
    check = PostgresCheck(name="pg", host="no-such-host.invalid", credentials_secret="x")

    outcome = check_postgres(check, credentials={"username": "u", "password": "p"}, timeout=TIMEOUT)

    assert outcome.failure_class == FailureClass.DNS, outcome.detail


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def test_server_that_never_answers_is_connect_timeout(silent_listener: int) -> None:
    check = PostgresCheck(
        name="pg", host="127.0.0.1", port=silent_listener, credentials_secret="x", sslmode="disable"
    )

    outcome = check_postgres(check, credentials={"username": "u", "password": "p"}, timeout=0.5)

    assert outcome.vote == Vote.DOWN
    assert outcome.failure_class == FailureClass.CONNECT_TIMEOUT, outcome.detail


def test_statement_stuck_behind_a_lock_is_timeout(pg_primary: PgCluster) -> None:
    # The status statement reads pg_stat_wal_receiver; a session holding that view's ACCESS
    # EXCLUSIVE lock makes it wait until the check's bound cancels it.
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with pg_primary.connect() as conn, conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("LOCK TABLE pg_catalog.pg_stat_wal_receiver IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(30)
            cur.execute("ROLLBACK")

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        outcome = check_postgres(pg_check(pg_primary), credentials=monitor(pg_primary), timeout=1.0)
    finally:
        release.set()
        holder.join(10)

    assert outcome.vote == Vote.DOWN
    assert outcome.failure_class == FailureClass.TIMEOUT, outcome.detail


def test_closed_port_on_loopback_is_connect_refused() -> None:
    check = PostgresCheck(
        name="pg", host="127.0.0.1", port=free_port(), credentials_secret="x", sslmode="disable"
    )

    outcome = check_postgres(check, credentials={"username": "u", "password": "p"}, timeout=TIMEOUT)

    assert outcome.failure_class == FailureClass.CONNECT_REFUSED


# ---------------------------------------------------------------------------------------------
# The facts invariants 3 and 4 decide on: synchronous standbys, and hearing from an idle primary
# ---------------------------------------------------------------------------------------------


def _result(site: str, outcome: CheckOutcome, received_at: float) -> ProbeResult:
    return ProbeResult(
        service="booking",
        site=site,
        check="postgres",
        check_type="postgres",
        region="us-east-1",
        round_id=f"{site}-{received_at}",
        vote=outcome.vote,
        failure_class=outcome.failure_class,
        latency_ms=outcome.latency_ms,
        detail=outcome.detail,
        probe_time=received_at,
        received_at=received_at,
        counts=False,
        db=outcome.db,
    )


def test_a_synchronous_primary_shows_the_standby_as_sync(pg_pair_factory) -> None:  # type: ignore[no-untyped-def]
    """synchronous_standby_names = '*': main's view lists the DR standby, by the application name
    the standby itself reports, as sync; that bounds the loss at 0 (invariant 4 (b))."""
    primary, standby = pg_pair_factory(sync=True)
    main = check_postgres(pg_check(primary), credentials=monitor(primary), timeout=TIMEOUT)
    dr = check_postgres(pg_check(standby), credentials=monitor(standby), timeout=TIMEOUT)

    assert main.db is not None and dr.db is not None
    assert (main.db.synchronous_commit, main.db.synchronous_standby_names) == ("on", "*")
    assert dr.db.application_name == standby.name
    peers = {p.application_name: p for p in main.db.standbys}
    assert peers[standby.name].sync_state == "sync" and peers[standby.name].state == "streaming"
    assert f"synchronous standby {standby.name}" in main.detail

    now = time.time()
    failed = _result("main", CheckOutcome.down(FailureClass.CONNECT_TIMEOUT, 1.0, "main down"), now)
    receipt = data_loss_receipt(
        [_result("main", main, now - 2), failed],
        service="booking",
        standby_status=dr.db,
        now=now,
        freshness_seconds=90,
    )
    assert (receipt.evidence, receipt.bound_bytes, receipt.bound_seconds) == ("synchronous", 0, 0.0)


def test_an_async_primary_shows_the_standby_as_async(pg_pair: PgPair) -> None:
    main = check_postgres(pg_check(pg_pair.primary), credentials=monitor(pg_pair.primary), timeout=TIMEOUT)
    assert main.db is not None
    assert [p.sync_state for p in main.db.standbys if p.application_name == pg_pair.standby.name] == ["async"]


def test_an_idle_primary_keeps_talking_to_its_standby(pg_pair_factory) -> None:  # type: ignore[no-untyped-def]
    """No writes at all: the standby's receive position stands still, yet its WAL receiver keeps
    hearing from main (it pings main every wal_receiver_timeout / 2 = 2.5 s here and main's WAL
    sender answers), so the database veto holds against a quorum of outside DOWN votes."""
    primary, standby = pg_pair_factory()
    first = check_postgres(pg_check(standby), credentials=monitor(standby), timeout=TIMEOUT).db
    time.sleep(6)  # longer than two keepalive rounds, with nothing written on main
    latest = check_postgres(pg_check(standby), credentials=monitor(standby), timeout=TIMEOUT)
    after = latest.db

    assert first is not None and after is not None
    assert first.last_msg_receipt_at is not None and after.last_msg_receipt_at is not None
    assert after.last_msg_receipt_at > first.last_msg_receipt_at + 2
    assert after.last_msg_age_seconds is not None and after.last_msg_age_seconds < 3.5
    assert after.wal_receiver_timeout_seconds == 5.0
    assert after.latest_end_lsn is not None
    assert "last heard from main" in latest.detail

    now = time.time()
    outside_down = [
        ProbeResult(
            service="booking",
            site="main",
            check="https-health",
            check_type="http",
            region=region,
            round_id=f"r{n}",
            vote=Vote.DOWN,
            failure_class=FailureClass.CONNECT_TIMEOUT,
            latency_ms=1.0,
            probe_time=now - n,
            received_at=now - n,
        )
        for region in ("eu-west-2", "us-east-1", "us-west-2")
        for n in (1, 2)
    ]
    verdict = evaluate_site(
        outside_down,
        service="booking",
        site="main",
        regions=["eu-west-2", "us-east-1", "us-west-2"],
        quorum=2,
        freshness_seconds=90,
        down_after_rounds=2,
        now=now,
        db_veto=True,
        dr_results=[_result("dr", latest, now)],  # one report: the receive position cannot advance
    )
    assert verdict.vetoed and verdict.verdict is Verdict.UNKNOWN
    assert "heard from it" in verdict.reason and "an idle primary still answers" in verdict.reason
