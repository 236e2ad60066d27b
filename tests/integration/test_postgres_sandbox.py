"""The sandbox clusters themselves: teardown leaves nothing, crash is a crash, sync mode waits."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg2
import pytest

from quorum_dr_local.standins.postgres import PgCluster, PgPair, SandboxError, make_primary, make_standby


def test_destroy_after_crash_leaves_no_process_and_no_data(pg_base_dir: Path) -> None:
    cluster = make_primary(pg_base_dir, name="crashing")
    pid = cluster.pid()
    assert pid is not None and cluster.value("SELECT pg_backend_pid() > 0")

    cluster.crash()
    crashed_pid = cluster.pid()
    cluster.destroy()
    cluster.destroy()  # a second teardown is harmless

    assert crashed_pid is None
    assert (
        not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    )
    assert not cluster.data_dir.exists() and not cluster.log_path.exists()


def test_stopped_cluster_restarts_with_its_data(pg_base_dir: Path) -> None:
    with make_primary(pg_base_dir, name="restarting") as cluster:
        cluster.sql("CREATE TABLE kept (n int)", who="app")
        cluster.sql("INSERT INTO kept VALUES (7)", who="app")
        cluster.stop()
        assert cluster.pid() is None
        cluster.start()
        assert cluster.value("SELECT n FROM kept", who="app") == 7
        assert cluster.psql("SELECT count(*) FROM kept", dbname="app") == "1"


def test_roles_have_their_passwords_and_no_more(pg_primary: PgCluster) -> None:
    assert pg_primary.value("SELECT pg_has_role(current_user, 'pg_monitor', 'member')", who="monitor")
    assert pg_primary.value("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", who="app") is False
    wrong = {**pg_primary.conn_params("app"), "password": "wrong"}
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(**wrong, connect_timeout=3)


def test_second_cluster_in_same_directory_is_refused(pg_primary: PgCluster) -> None:
    with pytest.raises(SandboxError, match="already exists"):
        make_standby(pg_primary, name=pg_primary.name)


def test_sync_primary_commit_waits_for_its_standby(pg_pair_factory) -> None:  # type: ignore[no-untyped-def]
    pair: PgPair = pg_pair_factory(sync=True)
    assert pair.primary.value("SELECT sync_state FROM pg_stat_replication") == "sync"
    assert pair.standby.value("SHOW synchronous_standby_names") == ""
    pair.standby.cut_streaming(pair.primary)
    pair.primary.wait_until("SELECT count(*) = 0 FROM pg_stat_replication")
    committed = threading.Event()

    def commit() -> None:
        pair.primary.sql("CREATE TABLE waiting (n int)", who="app")
        committed.set()

    writer = threading.Thread(target=commit, daemon=True)
    writer.start()
    try:
        # The commit is written locally but does not return while no standby confirms it.
        pair.primary.wait_until("SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
        assert not committed.is_set()
        pair.standby.restore_streaming()
        writer.join(15)
    finally:
        pair.standby.restore_streaming()
    assert committed.is_set()
    pair.standby.wait_until("SELECT count(*) = 1 FROM pg_tables WHERE tablename = 'waiting'", dbname="app")


def test_crashed_cluster_starts_again_with_committed_data(pg_base_dir: Path) -> None:
    # A crash leaves a postmaster.pid that still says "ready"; start must wait for the new server.
    with make_primary(pg_base_dir, name="phoenix") as cluster:
        cluster.sql("CREATE TABLE kept (n int)", who="app")
        cluster.sql("INSERT INTO kept VALUES (1)", who="app")
        cluster.crash()
        assert cluster.pid() is None

        cluster.start()

        assert cluster.value("SELECT count(*) FROM kept", who="app") == 1
