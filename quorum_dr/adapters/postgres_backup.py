"""The cold site's database: logical backups to S3 and the restore of the latest one.

`take_backup` runs the real `pg_dump -Fc` against the main (or DR) database and uploads the
dump to S3 with its metadata (taken_at, source, lsn), then rewrites the `latest.json` pointer
next to it. `restore_latest` follows the pointer, checks the dump's SHA-256 and runs the real
`pg_restore` into a target database in one transaction. Its receipt carries the backup's age,
the cold path's RPO figure.

Passwords reach pg_dump / pg_restore through PGPASSWORD, never on a command line.

The cold-site bootstrap calls this module as a command:

    python -m quorum_dr.adapters.postgres_backup backup  --bucket B --prefix P --dsn DSN [--source main]
    python -m quorum_dr.adapters.postgres_backup restore --bucket B --prefix P --dsn DSN [--role OWNER]

(the DSN may omit the password: PGPASSWORD in the environment works as with any libpq tool;
the S3 client is boto3's default, so AWS_ENDPOINT_URL and the usual credential chain apply.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from quorum_dr.domain.cold_report import RestoreLine, RestoreReceipt
from quorum_dr.probes.postgres import PgEndpoint, query_bounded

LATEST = "latest.json"
LSN_SQL = (
    "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn() "
    "ELSE pg_catalog.pg_current_wal_lsn() END::text"
)
DUMP_TIMEOUT_S = 600.0


class BackupError(RuntimeError):
    """A backup or restore failed; the message says where and why."""


class BackupReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    key: str
    source: str
    dbname: str
    taken_at: float
    lsn: str | None
    size_bytes: int
    sha256: str
    reason: str


def pg_tool(name: str) -> str:
    """The PostgreSQL client binary: $QUORUM_DR_PG_BIN, the PostgreSQL 15 directory, or PATH."""
    for directory in (os.environ.get("QUORUM_DR_PG_BIN"), "/usr/lib/postgresql/15/bin"):
        if directory and (Path(directory) / name).exists():
            return str(Path(directory) / name)
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found (set QUORUM_DR_PG_BIN or install the PostgreSQL 15 client)")
    return found


def _endpoint(target: PgEndpoint | str) -> PgEndpoint:
    endpoint = PgEndpoint.from_dsn(target) if isinstance(target, str) else target
    if not endpoint.password and os.environ.get("PGPASSWORD"):
        endpoint = PgEndpoint(
            endpoint.host,
            endpoint.port,
            endpoint.dbname,
            endpoint.username,
            os.environ["PGPASSWORD"],
            endpoint.sslmode,
        )
    return endpoint


def _run_tool(args: list[str], endpoint: PgEndpoint, timeout: float) -> None:
    import psycopg2.extensions

    dsn = psycopg2.extensions.make_dsn(**endpoint.libpq_params())
    env = {**os.environ, "PGPASSWORD": endpoint.password, "PGCONNECT_TIMEOUT": "10"}
    try:
        out = subprocess.run(
            [args[0], "-d", dsn, *args[1:]], env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise BackupError(
            f"{Path(args[0]).name} on {endpoint.describe()} took more than {timeout:g} s"
        ) from None
    if out.returncode != 0:
        error = endpoint.scrub(" ".join(out.stderr.split())[-600:])
        raise BackupError(f"{Path(args[0]).name} on {endpoint.describe()} failed: {error}")


def _prefix(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def take_backup(
    target: PgEndpoint | str,
    s3_client: Any,
    bucket: str,
    prefix: str,
    *,
    source: str = "main",
    timeout: float = DUMP_TIMEOUT_S,
) -> BackupReceipt:
    """pg_dump -Fc the database, upload it with its metadata, then point `latest.json` at it."""
    endpoint = _endpoint(target)
    prefix = _prefix(prefix)
    try:
        row = query_bounded(endpoint, LSN_SQL, 10.0)
    except Exception as exc:  # noqa: BLE001 - any failure to read the position is reported
        raise BackupError(
            endpoint.scrub(f"cannot read the WAL position of {endpoint.describe()}: {exc}")
        ) from None
    lsn = row[0] if row else None
    taken_at = time.time()
    stamp = datetime.fromtimestamp(taken_at, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    key = f"{prefix}{endpoint.dbname}-{stamp}.dump"
    with tempfile.TemporaryDirectory(prefix="quorum-dr-backup-") as tmp:
        dump = Path(tmp) / "db.dump"
        _run_tool([pg_tool("pg_dump"), "-Fc", "-f", str(dump)], endpoint, timeout)
        size = dump.stat().st_size
        sha256 = _sha256(dump)
        metadata = {
            "taken_at": f"{taken_at:.6f}",
            "source": source,
            "lsn": lsn or "",
            "dbname": endpoint.dbname,
        }
        s3_client.upload_file(str(dump), bucket, key, ExtraArgs={"Metadata": metadata})
    pointer = {
        "key": key,
        "taken_at": taken_at,
        "source": source,
        "lsn": lsn,
        "dbname": endpoint.dbname,
        "size_bytes": size,
        "sha256": sha256,
    }
    s3_client.put_object(
        Bucket=bucket,
        Key=f"{prefix}{LATEST}",
        Body=json.dumps(pointer).encode(),
        ContentType="application/json",
        Metadata={"taken_at": f"{taken_at:.6f}", "source": source, "lsn": lsn or ""},
    )
    return BackupReceipt(
        bucket=bucket,
        key=key,
        source=source,
        dbname=endpoint.dbname,
        taken_at=taken_at,
        lsn=lsn,
        size_bytes=size,
        sha256=sha256,
        reason=f"backed up {source} database {endpoint.dbname} at WAL {lsn} "
        f"to s3://{bucket}/{key} ({size} bytes)",
    )


def restore_latest(
    s3_client: Any,
    bucket: str,
    prefix: str,
    target: PgEndpoint | str,
    *,
    role: str | None = None,
    timeout: float = DUMP_TIMEOUT_S,
) -> RestoreReceipt:
    """Restore the backup `latest.json` points at into `target` (an existing database).

    `--clean --if-exists --single-transaction`: a re-run replaces what an earlier run restored,
    and a failed restore leaves nothing half done. `role` makes the restored objects owned by that
    role (the application's user), whoever connects.
    """
    endpoint = _endpoint(target)
    prefix = _prefix(prefix)
    try:
        pointer = json.loads(s3_client.get_object(Bucket=bucket, Key=f"{prefix}{LATEST}")["Body"].read())
    except Exception as exc:  # noqa: BLE001 - missing pointer, no access, bad JSON: all say the same
        raise BackupError(f"no usable backup pointer at s3://{bucket}/{prefix}{LATEST}: {exc}") from None
    key = pointer["key"]
    with tempfile.TemporaryDirectory(prefix="quorum-dr-restore-") as tmp:
        dump = Path(tmp) / "db.dump"
        s3_client.download_file(bucket, key, str(dump))
        if pointer.get("sha256") and _sha256(dump) != pointer["sha256"]:
            raise BackupError(f"s3://{bucket}/{key} does not match the SHA-256 in its pointer")
        args = [pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--clean", "--if-exists"]
        args += ["--single-transaction", "--exit-on-error", *(["--role", role] if role else []), str(dump)]
        _run_tool(args, endpoint, timeout)
    restored_at = time.time()
    taken_at = float(pointer["taken_at"])
    age = max(0.0, restored_at - taken_at)
    return RestoreReceipt(
        bucket=bucket,
        key=key,
        source=str(pointer.get("source", "")),
        taken_at=taken_at,
        lsn=pointer.get("lsn"),
        restored_at=restored_at,
        backup_age_seconds=age,
        target=endpoint.describe(),
        reason=f"restored s3://{bucket}/{key} (taken {age:.0f} s earlier at WAL {pointer.get('lsn')}) "
        f"into {endpoint.describe()}",
    )


def main(argv: list[str] | None = None, s3_client: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quorum_dr.adapters.postgres_backup")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("backup", "restore"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--bucket", required=True)
        cmd.add_argument("--prefix", default="backups/")
        cmd.add_argument(
            "--dsn", required=True, help="libpq connection string; PGPASSWORD may hold the password"
        )
    sub.choices["backup"].add_argument("--source", default="main")
    sub.choices["restore"].add_argument("--role", default=None, help="owner of the restored objects")
    args = parser.parse_args(argv)
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    try:
        receipt: BaseModel
        if args.command == "backup":
            receipt = take_backup(args.dsn, s3_client, args.bucket, args.prefix, source=args.source)
        else:
            receipt = restore_latest(s3_client, args.bucket, args.prefix, args.dsn, role=args.role)
    except BackupError as exc:
        print(json.dumps({"ok": False, "reason": str(exc)}), file=sys.stderr)
        return 1
    if isinstance(receipt, RestoreReceipt):  # the line cold_site/bootstrap.sh puts in its report
        print(RestoreLine(**receipt.model_dump()).model_dump_json())
    else:
        print(json.dumps({"ok": True, **receipt.model_dump()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
