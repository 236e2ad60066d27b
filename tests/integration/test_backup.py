"""Cold-site backups: real pg_dump to (moto) S3, real pg_restore into a fresh cluster."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from quorum_dr.adapters.postgres_backup import (
    BackupError,
    BackupManifest,
    main,
    manifest_hmac,
    restore_latest,
    take_backup,
)
from quorum_dr.domain.results import parse_lsn
from quorum_dr.probes.postgres import PgEndpoint
from quorum_dr_local.standins.postgres import PgCluster, PgPair, make_primary

BUCKET = "booking-backups"
PREFIX = "postgres/"
MANIFEST_KEY = "manifest-key-5b1e-never-log-me"
KEY_SECRET = "quorum-dr/backup-manifest-key"
DAY = 86_400


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-west-2")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        boto3.client("secretsmanager", region_name="us-west-2").create_secret(
            Name=KEY_SECRET, SecretString=MANIFEST_KEY
        )
        yield client


@pytest.fixture
def cold_cluster(pg_base_dir: Path) -> Iterator[PgCluster]:
    with make_primary(pg_base_dir, name="cold") as cluster:
        yield cluster


TRUST: dict[str, Any] = {"manifest_key": MANIFEST_KEY, "max_age_seconds": DAY}


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
    backup = take_backup(
        app_endpoint(source.primary), s3, BUCKET, PREFIX, source="main", manifest_key=MANIFEST_KEY
    )

    pointer = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json")["Body"].read())
    head = s3.head_object(Bucket=BUCKET, Key=backup.key)
    assert pointer["manifest"]["key"] == backup.key and pointer["manifest"]["sha256"] == backup.sha256
    assert head["Metadata"]["source"] == "main" and head["Metadata"]["lsn"] == backup.lsn
    assert backup.lsn is not None and parse_lsn(backup.lsn) > 0
    assert backup.key.startswith(PREFIX) and backup.size_bytes > 0

    restored = restore_latest(s3, BUCKET, PREFIX, app_endpoint(cold_cluster), **TRUST)

    assert rows(cold_cluster) == rows(source.primary)
    assert len(rows(cold_cluster)) == 300
    assert restored.key == backup.key and restored.taken_at == backup.taken_at
    assert restored.backup_age_seconds >= 0
    assert "restored s3://" in restored.reason
    cold_cluster.sql("INSERT INTO bookings VALUES (301, 'after restore')", who="app")  # app owns the tables


def test_latest_points_at_newest_backup_and_restore_is_rerunnable(
    source: PgPair, cold_cluster: PgCluster, s3: Any
) -> None:
    take_backup(app_endpoint(source.primary), s3, BUCKET, PREFIX, manifest_key=MANIFEST_KEY)
    source.primary.sql("INSERT INTO bookings VALUES (1000, 'late booking')", who="app")
    source.standby.wait_replayed(source.primary.value("SELECT pg_current_wal_lsn()::text"))
    newest = take_backup(
        app_endpoint(source.standby), s3, BUCKET, PREFIX, source="dr", manifest_key=MANIFEST_KEY
    )

    restore_latest(s3, BUCKET, PREFIX, app_endpoint(cold_cluster), **TRUST)
    again = restore_latest(s3, BUCKET, PREFIX, app_endpoint(cold_cluster), **TRUST)

    assert again.key == newest.key and again.source == "dr"
    assert len(rows(cold_cluster)) == 301
    assert (1000, "late booking") in rows(cold_cluster)


def test_restore_without_backup_says_so(cold_cluster: PgCluster, s3: Any) -> None:
    with pytest.raises(BackupError, match="no usable backup pointer"):
        restore_latest(s3, BUCKET, "empty/", app_endpoint(cold_cluster), **TRUST)


def test_backup_of_unreachable_database_fails_without_password(s3: Any) -> None:
    dead = PgEndpoint("127.0.0.1", 1, "app", "app", "pw-never-shown-77", "disable")

    with pytest.raises(BackupError) as info:
        take_backup(dead, s3, BUCKET, PREFIX, manifest_key=MANIFEST_KEY)

    assert "pw-never-shown-77" not in str(info.value)


def test_command_line_backup_and_restore(
    source: PgPair, cold_cluster: PgCluster, s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    source_dsn = source.primary.dsn("app")
    cold = cold_cluster.conn_params("app")
    monkeypatch.setenv("PGPASSWORD", cold.pop("password"))
    cold_dsn = " ".join(f"{k}={v}" for k, v in cold.items())

    common = ["--bucket", BUCKET, "--prefix", PREFIX, "--manifest-key-secret", KEY_SECRET]
    common += ["--secrets-region", "us-west-2"]
    assert main(["backup", *common, "--dsn", source_dsn], s3_client=s3) == 0
    backup_out = json.loads(capsys.readouterr().out)
    restore = ["restore", *common, "--dsn", cold_dsn, "--max-age-seconds", "3600"]
    assert main(restore, s3_client=s3) == 0
    restore_out = json.loads(capsys.readouterr().out)

    assert backup_out["ok"] is True and restore_out["ok"] is True
    assert restore_out["key"] == backup_out["key"]
    assert "backup_age_seconds" in restore_out
    assert source.primary.roles.app.password not in json.dumps(backup_out)
    assert rows(cold_cluster) == rows(source.primary)


# ---------------------------------------------------------------------------------------------
# A pointer or a dump someone else wrote: refused with a sentence, never a traceback
# ---------------------------------------------------------------------------------------------


def _put_pointer(s3: Any, value: Any) -> None:
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json", Body=body)


def _signed(manifest: dict[str, Any], key: str = MANIFEST_KEY) -> dict[str, Any]:
    model = BackupManifest.model_validate(manifest)
    return {"manifest": model.model_dump(mode="json"), "hmac_sha256": manifest_hmac(key, model)}


def _planted_dump(s3: Any, content: bytes = b"PGDMP not really") -> dict[str, Any]:
    key = f"{PREFIX}planted.dump"
    s3.put_object(Bucket=BUCKET, Key=key, Body=content)
    return {
        "key": key,
        "taken_at": time.time() - 60,
        "source": "main",
        "lsn": "0/1",
        "dbname": "app",
        "size_bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def _unsigned_without_sha(s3: Any) -> Any:
    manifest = _planted_dump(s3)
    manifest.pop("sha256")
    return manifest  # the old pointer shape, which restored anyway


def _cases(s3: Any) -> dict[str, tuple[Any, str]]:
    planted = _planted_dump(s3)
    return {
        "old-pointer-without-sha256": (_unsigned_without_sha(s3), "is not a signed manifest"),
        "pointer-without-key": ({"sha256": "0" * 64}, "is not a signed manifest"),
        "a-list": ([1, 2, 3], "is not a signed manifest"),
        "not-json": (b"\xff\xfe{", "is not JSON"),
        "unsigned": ({"manifest": planted, "hmac_sha256": "0" * 64}, "not signed with the manifest key"),
        "other-key": (_signed(planted, key="attacker-key"), "not signed with the manifest key"),
        "non-ascii-hmac": (
            {"manifest": planted, "hmac_sha256": "é" * 64},
            "not signed with the manifest key",
        ),
        "manifest-without-sha256": (
            {"manifest": {k: v for k, v in planted.items() if k != "sha256"}, "hmac_sha256": "0" * 64},
            "incomplete or malformed (sha256)",
        ),
        "missing-dump": (_signed({**planted, "key": f"{PREFIX}gone.dump"}), "cannot be downloaded"),
        "outside-the-prefix": (_signed({**planted, "key": "elsewhere/x.dump"}), "which is not a dump under"),
        "changed-dump": (_signed({**planted, "sha256": "1" * 64}), "does not match its manifest"),
        "too-old": (_signed({**planted, "taken_at": time.time() - 2 * DAY}), "over the maximum of 86400 s"),
    }


CASE_NAMES = [
    "old-pointer-without-sha256",
    "pointer-without-key",
    "a-list",
    "not-json",
    "unsigned",
    "other-key",
    "non-ascii-hmac",
    "manifest-without-sha256",
    "missing-dump",
    "outside-the-prefix",
    "changed-dump",
    "too-old",
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_a_pointer_that_cannot_be_trusted_is_refused_with_a_sentence(
    s3: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    pointer, said = _cases(s3)[case]
    _put_pointer(s3, pointer)
    target = PgEndpoint("127.0.0.1", 1, "app", "app", "pw", "disable")  # never reached
    with pytest.raises(BackupError, match=re.escape(said)):
        restore_latest(s3, BUCKET, PREFIX, target, **TRUST)
    argv = ["restore", "--bucket", BUCKET, "--prefix", PREFIX, "--dsn", "host=127.0.0.1 port=1 dbname=app"]
    argv += [
        "--manifest-key-secret",
        KEY_SECRET,
        "--secrets-region",
        "us-west-2",
        "--max-age-seconds",
        str(DAY),
    ]
    assert main(argv, s3_client=s3) == 1
    answer = json.loads(capsys.readouterr().err)
    assert answer["ok"] is False and said in answer["reason"] and MANIFEST_KEY not in answer["reason"]


def test_an_unreadable_manifest_key_is_named(s3: Any, capsys: Any) -> None:
    argv = ["restore", "--bucket", BUCKET, "--prefix", PREFIX, "--dsn", "host=127.0.0.1 port=1 dbname=app"]
    argv += ["--manifest-key-secret", "no/such", "--secrets-region", "us-west-2", "--max-age-seconds", "60"]
    assert main(argv, s3_client=s3) == 1
    reason = json.loads(capsys.readouterr().err)["reason"]
    assert reason.startswith("cannot read the backup manifest key 'no/such' from Secrets Manager")
