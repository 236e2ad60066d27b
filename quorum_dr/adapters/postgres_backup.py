"""The cold site's database: logical backups to S3 and the restore of the latest one.

`take_backup` runs the real `pg_dump -Fc` against the main (or DR) database and uploads the
dump to S3 with its metadata (taken_at, source, lsn), then rewrites the `latest.json` pointer
next to it. `restore_latest` follows the pointer, checks the dump's SHA-256 and runs the real
`pg_restore` into a target database in one transaction. Its receipt carries the backup's age,
the cold path's RPO figure.

The pointer is a signed manifest: `{"manifest": {key, taken_at, source, lsn, dbname, size_bytes,
sha256}, "hmac_sha256": <hex>}`, the HMAC-SHA256 of the manifest's canonical JSON (sorted keys, no
spaces) with a key kept in Secrets Manager (`cold_site.backup_manifest.key_secret`). Whoever can
write the backup prefix but not read that secret cannot make the cold site restore their dump: the
restore refuses a pointer whose HMAC does not verify, a manifest without a SHA-256, a key outside
the prefix, a dump that does not match its SHA-256 or size, and a backup older than the maximum
age (`cold_site.backup_manifest.max_age_seconds`). Every refusal is a BackupError whose sentence
says what is wrong and what to do; the bootstrap sends it as the cause of SendTaskFailure.

Passwords reach pg_dump / pg_restore through PGPASSWORD, never on a command line.

The cold-site bootstrap calls this module as a command:

    python -m quorum_dr.adapters.postgres_backup backup  --bucket B --prefix P --dsn DSN
        --manifest-key-secret NAME [--secrets-region R] [--source main]
    python -m quorum_dr.adapters.postgres_backup restore --bucket B --prefix P --dsn DSN
        --manifest-key-secret NAME [--secrets-region R] --max-age-seconds N [--role OWNER]

(the DSN may omit the password: PGPASSWORD in the environment works as with any libpq tool;
the S3 client is boto3's default, so AWS_ENDPOINT_URL and the usual credential chain apply.)
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quorum_dr.domain.cold_report import RestoreLine, RestoreReceipt
from quorum_dr.probes.postgres import PgEndpoint, query_bounded

LATEST = "latest.json"
LSN_SQL = (
    "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn() "
    "ELSE pg_catalog.pg_current_wal_lsn() END::text"
)
DUMP_TIMEOUT_S = 600.0
MAX_POINTER_BYTES = 64 * 1024


class BackupError(RuntimeError):
    """A backup or restore failed; the message says where and why."""


class BackupManifest(BaseModel):
    """What `latest.json` says about the newest backup (signed, see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    key: str = Field(min_length=1, max_length=1024)
    taken_at: float
    source: str = Field(max_length=64)
    lsn: str | None = Field(default=None, max_length=32)
    dbname: str = Field(max_length=63)
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    def canonical(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()


def manifest_hmac(key: str | bytes, manifest: BackupManifest) -> str:
    secret = key.encode("utf-8") if isinstance(key, str) else key
    if not secret:
        raise BackupError("the backup manifest key is empty")
    return hmac.new(secret, manifest.canonical(), hashlib.sha256).hexdigest()


def read_manifest_key(secret_name: str, region: str | None = None, client: Any = None) -> str:
    """The manifest HMAC key from Secrets Manager; a failure names the secret, never a value."""
    if client is None:
        import boto3

        client = boto3.client("secretsmanager", region_name=region)
    try:
        value = client.get_secret_value(SecretId=secret_name).get("SecretString") or ""
    except Exception as exc:  # noqa: BLE001 - no access, no such secret, no network: all say the same
        raise BackupError(
            f"cannot read the backup manifest key {secret_name!r} from Secrets Manager "
            f"({type(exc).__name__}): check the secret exists and the instance role may read it"
        ) from None
    if not value:
        raise BackupError(f"the backup manifest key {secret_name!r} is empty")
    return str(value)


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
    manifest_key: str | bytes,
    timeout: float = DUMP_TIMEOUT_S,
) -> BackupReceipt:
    """pg_dump -Fc the database, upload it with its metadata, then point `latest.json` at it
    (a manifest signed with `manifest_key`)."""
    if not manifest_key:
        raise BackupError("the backup manifest key is empty")
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
    manifest = BackupManifest(
        key=key,
        taken_at=taken_at,
        source=source,
        lsn=lsn,
        dbname=endpoint.dbname,
        size_bytes=size,
        sha256=sha256,
    )
    pointer = {
        "manifest": manifest.model_dump(mode="json"),
        "hmac_sha256": manifest_hmac(manifest_key, manifest),
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


def _read_pointer(s3_client: Any, bucket: str, prefix: str, manifest_key: str | bytes) -> BackupManifest:
    where = f"s3://{bucket}/{prefix}{LATEST}"
    try:
        raw = s3_client.get_object(Bucket=bucket, Key=f"{prefix}{LATEST}")["Body"].read(MAX_POINTER_BYTES + 1)
    except Exception as exc:  # noqa: BLE001 - missing pointer, no access: both say the same
        raise BackupError(
            f"no usable backup pointer at {where} ({type(exc).__name__}): has the backup job run, "
            "and may the instance role read the prefix?"
        ) from None
    if len(raw) > MAX_POINTER_BYTES:
        raise BackupError(f"the backup pointer {where} is over {MAX_POINTER_BYTES} bytes: not a pointer")
    try:
        pointer = json.loads(raw)
    except ValueError:
        raise BackupError(f"the backup pointer {where} is not JSON") from None
    if not isinstance(pointer, dict) or set(pointer) != {"manifest", "hmac_sha256"}:
        raise BackupError(
            f"the backup pointer {where} is not a signed manifest (an object with 'manifest' and "
            "'hmac_sha256'): rerun the backup job with this version, which signs it"
        )
    try:
        manifest = BackupManifest.model_validate(pointer["manifest"])
    except ValidationError as exc:
        fields = ", ".join(sorted({".".join(str(p) for p in e["loc"]) or "manifest" for e in exc.errors()}))
        raise BackupError(f"the backup manifest in {where} is incomplete or malformed ({fields})") from None
    sent = pointer["hmac_sha256"]
    expected = manifest_hmac(manifest_key, manifest)
    if not isinstance(sent, str) or not sent.isascii() or not hmac.compare_digest(sent, expected):
        raise BackupError(
            f"the backup manifest in {where} is not signed with the manifest key: "
            "written by someone else, or with another key; not restored"
        )
    return manifest


def restore_latest(
    s3_client: Any,
    bucket: str,
    prefix: str,
    target: PgEndpoint | str,
    *,
    manifest_key: str | bytes,
    max_age_seconds: float,
    role: str | None = None,
    timeout: float = DUMP_TIMEOUT_S,
    now: float | None = None,
) -> RestoreReceipt:
    """Restore the backup `latest.json` points at into `target` (an existing database), once its
    manifest verifies, its dump matches the manifest and it is at most `max_age_seconds` old.

    `--clean --if-exists --single-transaction`: a re-run replaces what an earlier run restored,
    and a failed restore leaves nothing half done. `role` makes the restored objects owned by that
    role (the application's user), whoever connects.
    """
    if (
        not isinstance(max_age_seconds, int | float)
        or not math.isfinite(max_age_seconds)
        or max_age_seconds <= 0
    ):
        raise BackupError(
            f"the maximum backup age must be a positive number of seconds, not {max_age_seconds!r}"
        )
    endpoint = _endpoint(target)
    prefix = _prefix(prefix)
    manifest = _read_pointer(s3_client, bucket, prefix, manifest_key)
    key = manifest.key
    if not key.startswith(prefix) or ".." in key.split("/") or key == f"{prefix}{LATEST}":
        raise BackupError(
            f"the backup manifest names {key!r}, which is not a dump under s3://{bucket}/{prefix}"
        )
    age = (time.time() if now is None else now) - manifest.taken_at
    if not math.isfinite(age) or age > max_age_seconds:
        raise BackupError(
            f"the latest backup s3://{bucket}/{key} is {age:.0f} s old, over the maximum of "
            f"{max_age_seconds:g} s: the backup job has stopped; restore by hand if losing that "
            "much is acceptable"
        )
    with tempfile.TemporaryDirectory(prefix="quorum-dr-restore-") as tmp:
        dump = Path(tmp) / "db.dump"
        try:
            s3_client.download_file(bucket, key, str(dump))
        except Exception as exc:  # noqa: BLE001 - missing object, no access
            raise BackupError(
                f"the backup s3://{bucket}/{key} named by the manifest cannot be downloaded "
                f"({type(exc).__name__})"
            ) from None
        size = dump.stat().st_size
        if size != manifest.size_bytes or _sha256(dump) != manifest.sha256:
            raise BackupError(
                f"s3://{bucket}/{key} does not match its manifest ({size} bytes, SHA-256 differs or "
                f"size differs from {manifest.size_bytes}): changed after the backup; not restored"
            )
        args = [pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--clean", "--if-exists"]
        args += ["--single-transaction", "--exit-on-error", *(["--role", role] if role else []), str(dump)]
        _run_tool(args, endpoint, timeout)
    restored_at = time.time()
    age = max(0.0, restored_at - manifest.taken_at)
    return RestoreReceipt(
        bucket=bucket,
        key=key,
        source=manifest.source,
        taken_at=manifest.taken_at,
        lsn=manifest.lsn,
        restored_at=restored_at,
        backup_age_seconds=age,
        target=endpoint.describe(),
        reason=f"restored s3://{bucket}/{key} (taken {age:.0f} s earlier at WAL {manifest.lsn}) "
        f"into {endpoint.describe()}",
    )


def main(argv: list[str] | None = None, s3_client: Any = None, secrets_client: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quorum_dr.adapters.postgres_backup")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("backup", "restore"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--bucket", required=True)
        cmd.add_argument("--prefix", default="backups/")
        cmd.add_argument(
            "--dsn", required=True, help="libpq connection string; PGPASSWORD may hold the password"
        )
        cmd.add_argument(
            "--manifest-key-secret", required=True, help="Secrets Manager name of the manifest HMAC key"
        )
        cmd.add_argument("--secrets-region", default=None, help="region of that secret")
    sub.choices["backup"].add_argument("--source", default="main")
    sub.choices["restore"].add_argument("--role", default=None, help="owner of the restored objects")
    sub.choices["restore"].add_argument(
        "--max-age-seconds", required=True, type=float, help="refuse a backup older than this"
    )
    args = parser.parse_args(argv)
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    try:
        key = read_manifest_key(args.manifest_key_secret, args.secrets_region, secrets_client)
        receipt: BaseModel
        if args.command == "backup":
            receipt = take_backup(
                args.dsn, s3_client, args.bucket, args.prefix, source=args.source, manifest_key=key
            )
        else:
            receipt = restore_latest(
                s3_client,
                args.bucket,
                args.prefix,
                args.dsn,
                role=args.role,
                manifest_key=key,
                max_age_seconds=args.max_age_seconds,
            )
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
