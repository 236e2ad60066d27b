"""The PostgreSQL promoter against real clusters: promote once, verify, wait bounded, fence."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg2
import psycopg2.errors
import pytest

from quorum_dr.adapters.postgres_promoter import RECORD_TABLE, PostgresPromoter
from quorum_dr.domain.results import DbRole
from quorum_dr.ports import DatabaseUnreachableError, PromotionReceipt
from quorum_dr.probes.postgres import PgEndpoint
from quorum_dr_local.standins.postgres import PgCluster, PgPair, free_port


def admin(cluster: PgCluster, dbname: str | None = None) -> PgEndpoint:
    creds = cluster.roles.superuser
    return PgEndpoint(
        cluster.host, cluster.port, dbname or cluster.app_db, creds.username, creds.password, "disable"
    )


def promoter_for(pair: PgPair, **options: float) -> PostgresPromoter:
    return PostgresPromoter(admin(pair.standby), admin(pair.primary), timeout=3.0, **options)  # type: ignore[arg-type]


def replicated_orders(pair: PgPair, count: int) -> None:
    pair.primary.sql("CREATE TABLE orders (id int PRIMARY KEY, note text)", who="app")
    pair.primary.sql(
        "INSERT INTO orders SELECT n, 'order ' || n FROM generate_series(1, %s) n", (count,), who="app"
    )


def test_replica_status_reads_the_standby(pg_pair: PgPair) -> None:
    status = promoter_for(pg_pair).replica_status()

    assert status.role == DbRole.STANDBY
    assert status.streaming is True
    assert status.replay_lag_bytes is not None and status.replay_lag_bytes >= 0
    # what the data-loss receipt's "heard from main" bound is made of
    assert status.last_msg_age_seconds is not None and status.last_msg_age_seconds < 5
    assert status.application_name == pg_pair.standby.name


def test_committed_data_present_after_promote(pg_pair_factory: Callable[..., PgPair]) -> None:
    pair = pg_pair_factory()
    replicated_orders(pair, 250)
    promoter = promoter_for(pair)
    caught_up = promoter.wait_for_replay(10)
    assert caught_up.replay_lag_bytes == 0

    receipt = promoter.promote("inc-1")

    assert receipt.promoted is True and receipt.already is False and receipt.writable is True
    assert receipt.promoted_by == "inc-1"
    assert "promoted" in receipt.reason and "inc-1" in receipt.reason
    assert pair.standby.in_recovery() is False
    assert pair.standby.value("SELECT count(*) FROM orders", who="app") == 250
    assert pair.standby.value(f"SELECT incident_id FROM {RECORD_TABLE}", dbname="app") == "inc-1"


def test_second_promote_says_already_promoted(pg_pair_factory: Callable[..., PgPair]) -> None:
    pair = pg_pair_factory()
    promoter = promoter_for(pair)
    first = promoter.promote("inc-2")

    again = promoter.promote("inc-2")
    other = promoter.promote("inc-3")

    assert first.promoted is True
    assert again.promoted is False and again.already is True and again.writable is True
    assert again.reason.startswith("already promoted for incident inc-2")
    assert other.promoted is False and other.already is True
    assert "already promoted (by incident inc-2)" in other.reason
    assert pair.standby.value(f"SELECT count(*) FROM {RECORD_TABLE}", dbname="app") == 1


def test_concurrent_promotes_promote_exactly_once(pg_pair_factory: Callable[..., PgPair]) -> None:
    pair = pg_pair_factory()
    receipts: list[PromotionReceipt] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run() -> None:
        start.wait(10)
        try:
            receipts.append(promoter_for(pair).promote("inc-4"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sorted(r.promoted for r in receipts) == [False, False, True]
    assert all(r.writable for r in receipts)


def test_promote_of_a_primary_is_already_promoted_outside_quorum_dr(pg_pair: PgPair) -> None:
    promoter = PostgresPromoter(admin(pg_pair.primary), None, timeout=10.0)

    receipt = promoter.promote("inc-5")

    assert receipt.promoted is False and receipt.already is True
    assert "outside quorum-dr" in receipt.reason


def test_verify_writable_on_standby_and_primary(pg_pair: PgPair) -> None:
    on_standby = PostgresPromoter(admin(pg_pair.standby), timeout=10.0).verify_writable()
    on_primary = PostgresPromoter(admin(pg_pair.primary), timeout=10.0).verify_writable()

    assert on_standby.writable is False and "standby" in on_standby.reason
    assert on_primary.writable is True and "committed a write" in on_primary.reason


def test_wait_for_replay_is_bounded_while_replay_is_paused(pg_pair_factory: Callable[..., PgPair]) -> None:
    pair = pg_pair_factory()
    pair.primary.sql("CREATE TABLE lagging (n int)", who="app")
    pair.standby.wait_replayed(pair.primary.value("SELECT pg_current_wal_lsn()::text"))
    pair.standby.pause_replay()
    pair.primary.sql("INSERT INTO lagging SELECT generate_series(1, 2000)", who="app")
    target = pair.primary.value("SELECT pg_current_wal_lsn()::text")
    pair.standby.wait_until(f"SELECT pg_last_wal_receive_lsn() >= '{target}'::pg_lsn")

    status = promoter_for(pair).wait_for_replay(0.5)

    assert status.role == DbRole.STANDBY
    assert status.replay_lag_bytes is not None and status.replay_lag_bytes > 0
    pair.standby.resume_replay()
    assert promoter_for(pair).wait_for_replay(10).replay_lag_bytes == 0


def test_unreachable_replica_raises_database_unreachable() -> None:
    dead = PgEndpoint("127.0.0.1", free_port(), "app", "postgres", "secret-pw-91", "disable")
    promoter = PostgresPromoter(dead, timeout=1.0)

    with pytest.raises(DatabaseUnreachableError, match="connect_refused") as info:
        promoter.promote("inc-6")
    with pytest.raises(DatabaseUnreachableError):
        promoter.wait_for_replay(0.3)
    assert "secret-pw-91" not in str(info.value)


def test_fence_live_old_primary_makes_writes_fail(pg_pair_factory: Callable[..., PgPair]) -> None:
    pair = pg_pair_factory()
    pair.primary.sql("CREATE TABLE orders (id int)", who="app")
    open_session = psycopg2.connect(**pair.primary.conn_params("app"))

    receipt = promoter_for(pair).fence_old_primary("inc-fence")

    assert receipt.reachable is True and receipt.fenced is True, receipt.reason
    assert receipt.terminated_sessions >= 1
    assert "fenced old primary" in receipt.reason
    with pytest.raises(psycopg2.Error):  # the open session was terminated
        with open_session.cursor() as cur:
            cur.execute("INSERT INTO orders VALUES (1)")
    open_session.close()
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        pair.primary.sql("INSERT INTO orders VALUES (2)", who="app")


def test_fence_unreachable_old_primary_reports_without_error(pg_pair_factory: Callable[..., PgPair]) -> None:
    pair = pg_pair_factory()
    pair.primary.crash()

    receipt = promoter_for(pair).fence_old_primary("inc-fence")

    assert receipt.reachable is False and receipt.fenced is False
    assert "not reachable" in receipt.reason and "fence_main hook" in receipt.reason


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_failover_after_primary_crash_keeps_replayed_commits(
    pg_pair_factory: Callable[..., PgPair], sync: bool
) -> None:
    pair = pg_pair_factory(sync=sync)
    pair.primary.sql("CREATE TABLE orders (id int PRIMARY KEY)", who="app")
    with pair.primary.connect("app") as conn, conn.cursor() as cur:
        for n in range(1, 51):  # 50 separate commits; in sync mode each waits for the standby
            cur.execute("INSERT INTO orders VALUES (%s)", (n,))
    if not sync:
        pair.standby.wait_replayed(pair.primary.value("SELECT pg_current_wal_lsn()::text"))
    pair.primary.crash()
    promoter = promoter_for(pair)

    status = promoter.wait_for_replay(10)
    receipt = promoter.promote("inc-crash")

    assert status.replay_lag_bytes == 0
    assert receipt.promoted is True and receipt.writable is True
    assert pair.standby.value("SELECT count(*) FROM orders", who="app") == 50
