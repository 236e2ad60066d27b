"""The PostgreSQL promoter against real clusters: promote once, verify, wait bounded, fence (it
holds or it is not fenced), and main's final position after the fence."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.errors
import pytest

from quorum_dr.adapters.postgres_promoter import RECORD_TABLE, PostgresPromoter
from quorum_dr.domain.data_loss import final_position_receipt
from quorum_dr.domain.results import DbRole, parse_lsn
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


def app_connect(cluster: PgCluster, **options: str) -> Any:
    return psycopg2.connect(**{**cluster.conn_params("app"), **options})


def test_invariant_4b_a_fenced_main_takes_no_write_from_the_app_role_even_when_a_session_asks(
    pg_pair_factory: Callable[..., PgPair],
) -> None:
    """Fails on the old fence (ALTER SYSTEM default_transaction_read_only): a session undid it with
    SET / BEGIN READ WRITE and wrote. Now the role cannot log in, and its sessions are gone."""
    pair = pg_pair_factory()
    pair.primary.sql("CREATE TABLE orders (id int)", who="app")
    open_session = app_connect(pair.primary)
    disguised = app_connect(pair.primary, application_name="quorum-dr-not-really")

    receipt = promoter_for(pair).fence_old_primary("inc-fence")

    assert receipt.reachable is True and receipt.fenced is True, receipt.reason
    assert receipt.roles == ("app",) and receipt.terminated_sessions >= 2
    assert receipt.final_lsn is not None and receipt.address == admin(pair.primary).describe()
    assert receipt.reason.startswith(f"fenced main's database at {receipt.address}: application role(s) app")
    assert "LOGIN taken from app" in receipt.reason and "none of theirs remain" in receipt.reason
    for session in (open_session, disguised):  # both terminated, whatever they called themselves
        with pytest.raises(psycopg2.Error), session.cursor() as cur:
            cur.execute("INSERT INTO orders VALUES (1)")
        session.close()
    with pytest.raises(psycopg2.OperationalError, match='role "app" is not permitted to log in'):
        conn = app_connect(pair.primary)
        with conn.cursor() as cur:  # what a session could do against a read-only default
            cur.execute("SET default_transaction_read_only = off")
            cur.execute("BEGIN READ WRITE")
            cur.execute("INSERT INTO orders VALUES (2)")
            cur.execute("COMMIT")
    assert pair.primary.value("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app'") is False
    assert pair.primary.value("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'") == 0
    assert pair.primary.value("SELECT count(*) FROM orders", dbname="app") == 0

    again = promoter_for(pair).fence_old_primary("inc-fence")  # idempotent, and verified again

    assert again.fenced is True and again.terminated_sessions == 0
    assert "app already without LOGIN" in again.reason


def test_invariant_4b_fencing_with_credentials_that_lack_the_privilege_is_not_fenced(
    pg_pair_factory: Callable[..., PgPair],
) -> None:
    pair = pg_pair_factory()
    monitor = pair.primary.roles.monitor
    weak = PgEndpoint(
        pair.primary.host, pair.primary.port, "app", monitor.username, monitor.password, "disable"
    )
    promoter = PostgresPromoter(admin(pair.standby), weak, timeout=3.0)

    receipt = promoter.fence_old_primary("inc-weak")

    assert receipt.reachable is True and receipt.fenced is False
    assert "is reachable but fencing it failed" in receipt.reason
    assert "permission denied" in receipt.reason and monitor.password not in receipt.reason
    assert pair.primary.value("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app'") is True


def test_invariant_4b_an_app_role_main_does_not_have_is_not_fenced(pg_pair: PgPair) -> None:
    promoter = PostgresPromoter(admin(pg_pair.standby), admin(pg_pair.primary), app_roles=("booking",))

    receipt = promoter.fence_old_primary("inc-norole")

    assert receipt.reachable is True and receipt.fenced is False
    assert "has no role booking (database.app_roles" in receipt.reason


def test_invariant_4b_an_unreachable_main_is_said_with_its_evidence(
    pg_pair_factory: Callable[..., PgPair],
) -> None:
    pair = pg_pair_factory()
    pair.primary.crash()

    receipt = promoter_for(pair).fence_old_primary("inc-fence")

    assert receipt.reachable is False and receipt.fenced is False
    assert receipt.failure_class == "connect_refused"
    assert receipt.address == f"{pair.primary.host}:{pair.primary.port}/app"
    assert f"main's database at {receipt.address} is unreachable (connect_refused:" in receipt.reason


def test_writes_between_the_check_and_the_fence_reach_the_standby_and_count_as_zero_lost(
    pg_pair_factory: Callable[..., PgPair],
) -> None:
    """Invariant 4 after the fence: main alive, the app writes after the replica check; main's
    final position after the fence is reached by the standby, and the promoted DR has every
    order, and its app role may log in again (the fence had replicated to it)."""
    pair = pg_pair_factory()
    replicated_orders(pair, 100)
    promoter = promoter_for(pair)
    checked = promoter.wait_for_replay(10)  # the replica check
    with app_connect(pair.primary) as conn, conn.cursor() as cur:  # writes after the check
        cur.execute("INSERT INTO orders SELECT n, 'late ' || n FROM generate_series(101, 350) n")
    conn.close()

    fence = promoter.fence_old_primary("inc-late")
    assert fence.fenced is True and fence.final_lsn is not None
    status = promoter.wait_for_position(fence.final_lsn, 10)
    receipt = final_position_receipt(fence.final_lsn, status, waited_seconds=10)
    promotion = promoter.promote("inc-late")

    assert parse_lsn(checked.receive_lsn or "0/0") < parse_lsn(fence.final_lsn)
    assert receipt.loss_bytes == 0 and receipt.evidence == "final_position"
    assert receipt.reason.startswith(
        f"no data lost: main's final position after the fence, {fence.final_lsn}, reached by the standby"
    )
    assert promotion.logins_restored == ("app",) and "may log in again" in promotion.reason
    assert pair.standby.value("SELECT count(*) FROM orders", who="app") == 350
    pair.standby.sql("INSERT INTO orders VALUES (351, 'after the failover')", who="app")


def test_writes_the_standby_never_received_are_reported_after_the_fence(
    pg_pair_factory: Callable[..., PgPair],
) -> None:
    pair = pg_pair_factory()
    replicated_orders(pair, 10)
    promoter = promoter_for(pair)
    promoter.wait_for_replay(10)  # the replica check
    pair.standby.cut_streaming(pair.primary)
    pair.primary.sql("INSERT INTO orders SELECT n, 'lost ' || n FROM generate_series(11, 500) n", who="app")

    fence = promoter.fence_old_primary("inc-lost")
    assert fence.fenced is True and fence.final_lsn is not None
    status = promoter.wait_for_position(fence.final_lsn, 1.0)
    receipt = final_position_receipt(fence.final_lsn, status, waited_seconds=1.0)

    assert receipt.evidence is None and receipt.loss_bytes is not None and receipt.loss_bytes > 0
    assert f"main's final position after the fence, {fence.final_lsn}, not reached by the standby" in (
        receipt.reason
    )
    assert f"{receipt.loss_bytes} bytes of WAL lost" in receipt.reason


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
