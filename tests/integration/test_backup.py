"""Cold-site backups: real pg_dump to (moto) S3, real pg_restore into a fresh cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from quorum_dr.adapters.postgres_backup import BackupError, main, restore_latest, take_backup
from quorum_dr.domain.results import parse_lsn
from quorum_dr.probes.postgres import PgEndpoint
from quorum_dr_local.standins.postgres import PgCluster, PgPair, make_primary

BUCKET = "booking-backups"
PREFIX = "postgres/"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-west-2")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        yield client


@pytest.fixture
def cold_cluster(pg_base_dir: Path) -> Iterator[PgCluster]:
    with make_primary(pg_base_dir, name="cold") as cluster:
        yield cluster


def app_endpoint(cluster: PgCluster) -> PgEndpoint:
    creds = cluster.roles.app
    return PgEndpoint(cluster.host, cluster.port, cluster.app_db, creds.username, creds.password, "disable")


def rows(cluster: PgCluster) -> list[tuple]:
    return cluster.sql("SELECT id, item FROM bookings ORDER BY id", who="app")


@pytest.fixture
def source(pg_pair_factory) -> PgPair:  # type: ignore[no-untyped-def]
    pair: PgPair = pg_pair_factory()
    pair.primary.sql("CREATE TABLE bookings (id int PRIMARY KEY, item text NOT NULL)", who="app")
    pair.primary.sql("INSERT INTO bookings SELECT n, 'room ' || n FROM generate_series(1, 300) n", who="app")
    return pair


def test_backup_then_restore_into_fresh_cluster_gives_same_rows(
    source: PgPair, cold_cluster: PgCluster, s3: Any
) -> None:
    backup = take_backup(app_endpoint(source.primary), s3, BUCKET, PREFIX, source="main")

    pointer = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json")["Body"].read())
    head = s3.head_object(Bucket=BUCKET, Key=backup.key)
    assert pointer["key"] == backup.key and pointer["sha256"] == backup.sha256
    assert head["Metadata"]["source"] == "main" and head["Metadata"]["lsn"] == backup.lsn
    assert backup.lsn is not None and parse_lsn(backup.lsn) > 0
    assert backup.key.startswith(PREFIX) and backup.size_bytes > 0

    restored = restore_latest(s3, BUCKET, PREFIX, app_endpoint(cold_cluster))

    assert rows(cold_cluster) == rows(source.primary)
    assert len(rows(cold_cluster)) == 300
    assert restored.key == backup.key and restored.taken_at == backup.taken_at
    assert restored.backup_age_seconds >= 0
    assert "restored s3://" in restored.reason
    cold_cluster.sql("INSERT INTO bookings VALUES (301, 'after restore')", who="app")  # app owns the tables


def test_latest_points_at_newest_backup_and_restore_is_rerunnable(
    source: PgPair, cold_cluster: PgCluster, s3: Any
) -> None:
    take_backup(app_endpoint(source.primary), s3, BUCKET, PREFIX)
    source.primary.sql("INSERT INTO bookings VALUES (1000, 'late booking')", who="app")
    source.standby.wait_replayed(source.primary.value("SELECT pg_current_wal_lsn()::text"))
    newest = take_backup(app_endpoint(source.standby), s3, BUCKET, PREFIX, source="dr")

    restore_latest(s3, BUCKET, PREFIX, app_endpoint(cold_cluster))
    again = restore_latest(s3, BUCKET, PREFIX, app_endpoint(cold_cluster))

    assert again.key == newest.key and again.source == "dr"
    assert len(rows(cold_cluster)) == 301
    assert (1000, "late booking") in rows(cold_cluster)


def test_restore_without_backup_says_so(cold_cluster: PgCluster, s3: Any) -> None:
    with pytest.raises(BackupError, match="no usable backup pointer"):
        restore_latest(s3, BUCKET, "empty/", app_endpoint(cold_cluster))


def test_backup_of_unreachable_database_fails_without_password(s3: Any) -> None:
    dead = PgEndpoint("127.0.0.1", 1, "app", "app", "pw-never-shown-77", "disable")

    with pytest.raises(BackupError) as info:
        take_backup(dead, s3, BUCKET, PREFIX)

    assert "pw-never-shown-77" not in str(info.value)


def test_command_line_backup_and_restore(
    source: PgPair, cold_cluster: PgCluster, s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    source_dsn = source.primary.dsn("app")
    cold = cold_cluster.conn_params("app")
    monkeypatch.setenv("PGPASSWORD", cold.pop("password"))
    cold_dsn = " ".join(f"{k}={v}" for k, v in cold.items())

    assert main(["backup", "--bucket", BUCKET, "--prefix", PREFIX, "--dsn", source_dsn], s3_client=s3) == 0
    backup_out = json.loads(capsys.readouterr().out)
    assert main(["restore", "--bucket", BUCKET, "--prefix", PREFIX, "--dsn", cold_dsn], s3_client=s3) == 0
    restore_out = json.loads(capsys.readouterr().out)

    assert backup_out["ok"] is True and restore_out["ok"] is True
    assert restore_out["key"] == backup_out["key"]
    assert "backup_age_seconds" in restore_out
    assert source.primary.roles.app.password not in json.dumps(backup_out)
    assert rows(cold_cluster) == rows(source.primary)
