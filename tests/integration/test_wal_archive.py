"""Base backups and WAL archiving with the real barman-cloud commands, against a real PostgreSQL 15
primary and streaming standby and a moto S3 server: the standby archives (`archive_mode = always`),
a base backup is taken on it, rows are written after the backup, and a point-in-time restore into an
empty data directory holds them all (base backup + replayed archive), then is promoted."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from quorum_dr.adapters.wal_archive import (
    ArchiveError,
    ArchiveTarget,
    apply_retention,
    archive_command,
    barman_tool,
    count_tables,
    delete_orphan_figures,
    main,
    newest_backup,
    newest_segment,
    read_figures,
    restore,
    segment_of,
    take_base_backup,
)
from quorum_dr.domain.backup_figures import BackupFigures
from quorum_dr.domain.cold_report import RestoreLine
from quorum_dr.domain.results import parse_lsn
from quorum_dr_local.standins.postgres import PgCluster, PgPair, free_port

BUCKET = "qdr-wal-archive"
PREFIX = "postgres/"
SERVER = "booking"


def _require_barman() -> None:
    if not Path(barman_tool("barman-cloud-backup")).exists():
        pytest.skip("barman-cloud commands missing: run `make setup` (apt-get install barman-cli-cloud)")


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """moto in this process and, sharing its backends, a moto server for barman's processes and
    for the PostgreSQL servers' archive and restore commands (they inherit this environment)."""
    _require_barman()
    for key, value in {
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            client = boto3.client("s3", region_name="us-west-2")
            client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
            yield client, f"http://{host}:{port}"
        finally:
            server.stop()


def _archiving(pair: PgPair, target: ArchiveTarget) -> None:
    """As a deployment sets it up: the standby archives every segment it receives, main closes a
    segment at least every second (archive_timeout), and the standby's next restartpoint (where
    a base backup taken on it begins) comes after archiving started."""
    main_db, dr = pair
    dr.append_config({"archive_mode": "always", "archive_command": archive_command(target)})
    dr.restart()
    dr.wait_streaming()
    main_db.alter_system("archive_timeout", 1)
    main_db.sql("CHECKPOINT")
    dr.wait_replayed(main_db.value("SELECT pg_current_wal_lsn()::text"))
    dr.sql("CHECKPOINT")


def _wait_archived(s3: Any, target: ArchiveTarget, lsn: str, timeout: float = 90.0) -> str:
    wanted = segment_of(lsn, 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = newest_segment(s3, target)
        if seen is not None and seen.name >= wanted:
            return seen.name
        time.sleep(0.5)
    raise AssertionError(f"segment {wanted} (WAL {lsn}) not archived within {timeout:g} s")


def _restored_cluster(base: Path, like: PgCluster, port: int) -> PgCluster:
    return PgCluster(name="pitr-cold", base_dir=base, port=port, roles=like.roles, app_db=like.app_db)


def test_a_point_in_time_restore_holds_the_rows_written_after_the_base_backup(
    s3_server: tuple[Any, str], pg_pair_factory: Any, pg_base_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    s3, endpoint = s3_server
    target = ArchiveTarget(BUCKET, PREFIX, SERVER, endpoint)
    pair = pg_pair_factory()
    main_db, dr = pair
    _archiving(pair, target)
    main_db.sql("CREATE TABLE orders (id int PRIMARY KEY)", dbname=main_db.app_db)
    main_db.sql("INSERT INTO orders SELECT generate_series(1, 1000)", dbname=main_db.app_db)
    main_db.sql('CREATE SCHEMA "Odd"; CREATE TABLE "Odd"."Mixed Case" (x int)', dbname=main_db.app_db)
    main_db.sql('INSERT INTO "Odd"."Mixed Case" VALUES (1), (2)', dbname=main_db.app_db)
    dr.wait_replayed(main_db.value("SELECT pg_current_wal_lsn()::text"))

    su = dr.roles.superuser
    made = take_base_backup(
        s3,
        target,
        host=dr.host,
        port=dr.port,
        user=su.username,
        env={"PGPASSWORD": su.password},
        figures_db=main_db.app_db,
    )
    assert made.status == "DONE" and made.end_xlog
    assert newest_backup(s3, target) == made
    # the figures sit beside the backup, counted on the standby after it: exact, user tables only
    figures = read_figures(s3, target, made.backup_id)
    assert figures is not None and figures.database == main_db.app_db
    assert figures.tables == {"public.orders": 1000, "Odd.Mixed Case": 2}
    assert figures.counted_lsn and parse_lsn(figures.counted_lsn) >= parse_lsn(made.end_xlog)
    assert not figures.truncated and not figures.skipped
    # the figures of a backup that no longer exists go with the timer's retention pass; barman's
    # own retention (the real barman-cloud-backup-delete) neither breaks nor deletes the live ones
    stale = BackupFigures(backup_id="20200101T000000", database="x", counted_at=0.0)
    s3.put_object(
        Bucket=BUCKET, Key=target.figures_key(stale.backup_id), Body=stale.model_dump_json().encode()
    )
    apply_retention(target, 14, env={"PGPASSWORD": su.password}, s3=s3)
    assert newest_backup(s3, target) == made
    assert read_figures(s3, target, made.backup_id) == figures
    assert read_figures(s3, target, stale.backup_id) is None

    main_db.sql("INSERT INTO orders SELECT generate_series(1001, 1500)", dbname=main_db.app_db)
    after = main_db.value("SELECT pg_current_wal_lsn()::text")
    archived = _wait_archived(s3, target, after)

    cold = _restored_cluster(pg_base_dir, main_db, free_port())
    start = (
        f"runuser -u postgres -- {cold.bin('pg_ctl')} -D {cold.data_dir} -l {cold.log_path} -w -t 120 start"
    )
    try:
        # as cold_site/bootstrap.sh runs it: its stdout must be the RestoreLine and nothing else
        code = main(
            [
                "restore", "--bucket", BUCKET, "--prefix", PREFIX, "--server", SERVER,
                "--endpoint-url", endpoint, "--pgdata", str(cold.data_dir), "--start-command", start,
                "--dsn", cold.dsn(), "--set", f"port={cold.port}", "--set", "listen_addresses=127.0.0.1",
                "--timeout-seconds", "300",
            ],
            s3_client=s3,
        )  # fmt: skip
        out, err = capfd.readouterr()  # the file descriptors: a child's stdout counts too
        assert code == 0, err
        assert cold.value("SELECT count(*) FROM orders", dbname=cold.app_db) == 1500
        assert cold.value("SELECT pg_is_in_recovery()") is False
        # the restored server took a timeline of its own, and archives nowhere
        assert cold.value("SHOW archive_mode") == "off"
    finally:
        cold.destroy()
    line = RestoreLine.model_validate_json(out)
    assert "restoring base backup" in err and "server started" in err
    assert line.method == "barman-cloud" and line.backup_id == made.backup_id
    assert line.restored_lsn is not None and parse_lsn(line.restored_lsn) >= parse_lsn(after)
    assert line.wal_segment is not None and line.wal_segment >= archived
    assert line.wal_archived_at is not None and line.backup_age_seconds >= 0
    assert made.backup_id in line.reason and line.restored_lsn in line.reason
    # the restored database counted the recorded tables after replay: the 500 later rows are there
    assert line.figures_key == target.figures_key(made.backup_id)
    assert line.restored_rows == {"public.orders": 1500, "Odd.Mixed Case": 2}
    assert line.rows_unavailable == {} and line.rows_error is None


def test_status_names_the_newest_backup_and_segment_and_an_empty_archive_restores_nothing(
    s3_server: tuple[Any, str], pg_base_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3, endpoint = s3_server
    target = ArchiveTarget(BUCKET, PREFIX, SERVER, endpoint)
    base = f"{target.root}base/20261201T000000/backup.info"
    s3.put_object(Bucket=BUCKET, Key=base, Body=b"status=FAILED\nend_xlog=0/3000000\n")
    s3.put_object(
        Bucket=BUCKET, Key=f"{target.root}wals/0000000100000000/000000010000000000000004.gz", Body=b"x"
    )
    s3.put_object(
        Bucket=BUCKET, Key=f"{target.root}wals/0000000100000000/000000010000000000000003.gz", Body=b"x"
    )
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{target.root}wals/0000000100000000/000000010000000000000003.00000028.backup.gz",
        Body=b"x",
    )
    assert main(["status", "--bucket", BUCKET, "--prefix", PREFIX, "--server", SERVER], s3_client=s3) == 0
    status = capsys.readouterr().out
    assert '"backup_id": null' in status and '"newest_segment": "000000010000000000000004"' in status

    pgdata = pg_base_dir / "never-restored"
    with pytest.raises(ArchiveError, match="no complete base backup"):
        restore(s3, target, pgdata=pgdata, start_command="false", wait_promoted=lambda _left: True)
    assert not pgdata.exists()

    s3.put_object(Bucket=BUCKET, Key=base.replace("T000000", "T010000"), Body=b"status=DONE\n")
    busy = pg_base_dir / "busy-data"
    busy.mkdir()
    (busy / "PG_VERSION").write_text("15\n")
    try:
        with pytest.raises(ArchiveError, match="not empty"):
            restore(s3, target, pgdata=busy, start_command="false", wait_promoted=lambda _left: True)
        assert (busy / "PG_VERSION").read_text() == "15\n"
    finally:
        shutil.rmtree(busy)


def test_segment_names_follow_postgres_naming() -> None:
    assert segment_of("0/3000148", 1) == "000000010000000000000003"
    assert segment_of("1/FF000000", 2) == "0000000200000001000000FF"
    with pytest.raises(ArchiveError, match="server name"):
        ArchiveTarget(BUCKET, PREFIX, "bad name", None)


def test_row_counts_are_bounded_and_a_missing_table_is_said(pg_primary: PgCluster) -> None:
    db = pg_primary.app_db
    pg_primary.sql(
        "DROP TABLE IF EXISTS fig_a, fig_b, fig_c; CREATE TABLE fig_a (x int); CREATE TABLE fig_b (x int); "
        "CREATE TABLE fig_c (x int); INSERT INTO fig_b VALUES (1), (2), (3)",
        dbname=db,
    )
    try:
        with pg_primary.connect(dbname=db) as conn:
            listed = count_tables(conn)
            assert listed.tables["public.fig_b"] == 3 and listed.lsn
            few = count_tables(conn, max_tables=1)
            assert few.truncated and len(few.tables) == 1
            named = count_tables(conn, ["public.fig_b", "public.gone"])
            ticks = iter([0.0, 0.5, 5.0])  # the budget is spent after the first table
            budget = count_tables(
                conn, ["public.fig_a", "public.fig_b"], budget_seconds=1, clock=lambda: next(ticks)
            )
        assert named.tables == {"public.fig_b": 3}
        assert "does not exist" in named.skipped["public.gone"]
        assert budget.tables == {"public.fig_a": 0}
        assert budget.skipped == {"public.fig_b": "not counted: the counting budget of 1 s was spent"}
    finally:
        pg_primary.sql("DROP TABLE IF EXISTS fig_a, fig_b, fig_c", dbname=db)


def test_orphan_figures_are_deleted_and_live_ones_kept(s3_server: tuple[Any, str]) -> None:
    s3, endpoint = s3_server
    target = ArchiveTarget(BUCKET, PREFIX, SERVER, endpoint)
    s3.put_object(Bucket=BUCKET, Key=f"{target.root}base/20261201T000000/backup.info", Body=b"status=DONE\n")
    for backup_id in ("20261201T000000", "20261101T000000"):
        figures = BackupFigures(backup_id=backup_id, database="app", counted_at=1.0, tables={"public.t": 1})
        s3.put_object(
            Bucket=BUCKET, Key=target.figures_key(backup_id), Body=figures.model_dump_json().encode()
        )
    assert delete_orphan_figures(s3, target) == [target.figures_key("20261101T000000")]
    assert read_figures(s3, target, "20261201T000000") is not None
    s3.put_object(Bucket=BUCKET, Key=target.figures_key("20261201T000000"), Body=b"{not json")
    with pytest.raises(ArchiveError, match="malformed"):
        read_figures(s3, target, "20261201T000000")
