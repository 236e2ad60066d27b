"""Physical base backups and continuous WAL archiving with barman's cloud commands, and the cold
site's point-in-time restore from them.

Why barman-cloud and not our own uploader or pgBackRest: `barman-cloud-*` are a well-kept,
PostgreSQL-community tool (EDB's Barman), packaged in Debian (`barman-cli-cloud`), that talk to
any S3 endpoint (so moto's server stands in for S3 in tests and in the drill), take a base backup
from a streaming standby (as the case study does: backups on the DR site), and need no repository
server. pgBackRest would need its own repository configuration on every host and, for a standby
backup, SSH or its TLS server to reach the primary.

What runs where:
- the DR standby archives every WAL segment it receives (`archive_mode = always`, `archive_command`
  from `archive_command()`); main's `archive_timeout` forces a segment switch at least that often,
  so the archive is never more than about `archive_timeout` behind main;
- a timer on the DR host takes a base backup (`python -m quorum_dr.adapters.wal_archive backup`,
  `deploy/systemd/quorum-dr-base-backup.{service,timer}`);
- the cold site's bootstrap restores the newest base backup and replays the archived WAL to its
  end (`python -m quorum_dr.adapters.wal_archive restore`): its loss is bounded by the archive
  delay, not by the age of a daily dump. Its stdout is a `RestoreLine` (the bootstrap's contract,
  `domain/cold_report.py`), naming the backup, the WAL position and the segment restored up to.

The listing (newest backup, newest archived segment) reads S3 directly with boto3, so the
readiness function can check backup and archive age without barman installed. Barman's layout:
`<prefix>/<server>/base/<backup_id>/backup.info` and `<prefix>/<server>/wals/<24 hex>/<segment>[.gz]`.

Trust: a restore takes the newest base backup under the prefix. Whoever can write that prefix can
make the cold site restore their backup, so only the DR host's role may write it (README,
"Backups"); the restore checks what barman's metadata says (status DONE, same system as the other
backups) and refuses anything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quorum_dr.config import ColdSite
from quorum_dr.domain.backup_figures import COUNT_TIMEOUT_MS, FIGURES_FOLDER, MAX_TABLES, BackupFigures
from quorum_dr.domain.cold_report import RestoreLine, RestoreReceipt

SEGMENT = re.compile(r"^[0-9A-F]{24}$")
COMPRESSED = (".gz", ".bz2", ".snappy", ".zst", ".lz4", ".xz")
RESTORE_TIMEOUT_S = 1800.0
# Counting the recorded tables after a restore delays the ready report (a failover's too): bounded.
RESTORE_COUNT_BUDGET_S = 120.0
BACKUP_TIMEOUT_S = 3600.0
PROGRESS_EVERY_S = 10.0
MAX_INFO_BYTES = 64 * 1024


class ArchiveError(RuntimeError):
    """A backup, listing or restore failed; the message says where, why and what to do."""


@dataclass(frozen=True)
class ArchiveTarget:
    """Where barman keeps one server's backups and WAL: s3://bucket/prefix/server/."""

    bucket: str
    prefix: str
    server: str
    endpoint_url: str | None = None
    kms_key_arn: str | None = None  # uploads ask for SSE-KMS; the bucket's default key encrypts

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", self.server):
            raise ArchiveError(
                f"the barman server name {self.server!r} must be letters, digits, '_', '.', '-'"
            )
        if ".." in self.prefix.split("/"):
            raise ArchiveError(f"the backup prefix {self.prefix!r} must not contain '..'")

    @classmethod
    def of(cls, cold: ColdSite) -> ArchiveTarget:
        """The archive a cold site with `wal_archive` restores from: its backup bucket and prefix."""
        archive = cold.wal_archive
        if archive is None:
            raise ArchiveError("the cold site has no wal_archive configured")
        return cls(
            cold.backup_bucket, cold.backup_prefix, archive.server, archive.endpoint_url, archive.kms_key_arn
        )

    @property
    def url(self) -> str:
        prefix = self.prefix.strip("/")
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    @property
    def root(self) -> str:
        """The S3 key prefix of this server: `<prefix>/<server>/`."""
        prefix = self.prefix.strip("/")
        return f"{prefix}/{self.server}/" if prefix else f"{self.server}/"

    def cloud_args(self) -> list[str]:
        return [
            "--cloud-provider",
            "aws-s3",
            *(["--endpoint-url", self.endpoint_url] if self.endpoint_url else []),
        ]

    def upload_args(self) -> list[str]:
        """The arguments of a command that writes to the archive: `--encryption aws:kms` when a key
        is configured (so a bucket policy that refuses unencrypted uploads lets them in). barman-cloud
        3.4 cannot name the key: S3 uses the bucket's default key, which readiness checks."""
        return [*self.cloud_args(), *(["--encryption", "aws:kms"] if self.kms_key_arn else [])]

    def describe(self) -> str:
        return f"{self.url}/{self.server}"

    def figures_key(self, backup_id: str) -> str:
        """Where the row counts recorded with `backup_id` are kept: beside barman's `base/` and
        `wals/`, never inside them, so barman's catalog and retention do not see them."""
        return f"{self.root}{FIGURES_FOLDER}{backup_id}.json"


def barman_tool(name: str) -> str:
    """The barman-cloud command `name`: from QDR_BARMAN_BIN_DIR, else PATH, else /usr/bin."""
    where = os.environ.get("QDR_BARMAN_BIN_DIR")
    if where:
        return str(Path(where) / name)
    return shutil.which(name) or f"/usr/bin/{name}"


def archive_command(target: ArchiveTarget) -> str:
    """The standby's `archive_command`: every completed segment, gzipped, to the archive."""
    argv = [
        barman_tool("barman-cloud-wal-archive"),
        *target.upload_args(),
        "--gzip",
        target.url,
        target.server,
    ]
    return shlex.join(argv) + " %p"


def restore_command(target: ArchiveTarget) -> str:
    """The restored server's `restore_command`: fetch segment %f from the archive into %p."""
    argv = [barman_tool("barman-cloud-wal-restore"), *target.cloud_args(), target.url, target.server]
    return shlex.join(argv) + " %f %p"


@dataclass(frozen=True)
class BaseBackup:
    """One base backup as barman's backup.info describes it, with S3's upload time of that file."""

    backup_id: str
    status: str
    systemid: str | None
    timeline: int | None
    begin_wal: str | None
    end_wal: str | None
    end_xlog: str | None
    finished_at: float  # backup.info's LastModified: written last, when the backup is complete
    key: str | None = None  # backup.info's S3 key

    @classmethod
    def parse(cls, backup_id: str, text: str, finished_at: float) -> BaseBackup:
        fields: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip()] = value.strip()
        timeline = fields.get("timeline")
        return cls(
            backup_id=backup_id,
            status=fields.get("status", "UNKNOWN"),
            systemid=fields.get("systemid") or None,
            timeline=int(timeline) if timeline and timeline.isdigit() else None,
            begin_wal=fields.get("begin_wal") or None,
            end_wal=fields.get("end_wal") or None,
            end_xlog=fields.get("end_xlog") or None,
            finished_at=finished_at,
        )


@dataclass(frozen=True)
class WalSegment:
    name: str
    key: str
    archived_at: float


def _epoch(value: Any) -> float:
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


def _pages(s3: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return list(s3.get_paginator("list_objects_v2").paginate(**kwargs))


def list_backups(s3: Any, target: ArchiveTarget) -> list[BaseBackup]:
    """Every base backup under the target, oldest first (by the time its backup.info was written)."""
    base = f"{target.root}base/"
    backups = []
    try:
        for page in _pages(s3, Bucket=target.bucket, Prefix=base):
            for item in page.get("Contents", []):
                key = item["Key"]
                rest = key[len(base) :]
                backup_id, _, leaf = rest.partition("/")
                if leaf != "backup.info" or item.get("Size", 0) > MAX_INFO_BYTES:
                    continue
                body = s3.get_object(Bucket=target.bucket, Key=key)["Body"].read(MAX_INFO_BYTES)
                text = body.decode("utf-8", errors="replace")
                parsed = BaseBackup.parse(backup_id, text, _epoch(item["LastModified"]))
                backups.append(dataclasses.replace(parsed, key=key))
    except ArchiveError:
        raise
    except Exception as exc:  # noqa: BLE001 - no bucket, no access, endpoint down
        raise ArchiveError(f"cannot list the base backups in {target.describe()}: {_why(exc)}") from None
    return sorted(backups, key=lambda b: (b.finished_at, b.backup_id))


def newest_backup(s3: Any, target: ArchiveTarget) -> BaseBackup | None:
    done = [b for b in list_backups(s3, target) if b.status == "DONE"]
    return done[-1] if done else None


def newest_segment(s3: Any, target: ArchiveTarget) -> WalSegment | None:
    """The newest archived WAL segment: barman files them under one folder per 4 GiB of WAL
    (the segment name's first 16 hex digits), so only the greatest folder is listed."""
    wals = f"{target.root}wals/"
    try:
        folders = sorted(
            p["Prefix"]
            for page in _pages(s3, Bucket=target.bucket, Prefix=wals, Delimiter="/")
            for p in page.get("CommonPrefixes", [])
        )
        for folder in reversed(folders):
            found = []
            for page in _pages(s3, Bucket=target.bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    name = item["Key"].rsplit("/", 1)[-1]
                    for suffix in COMPRESSED:
                        name = name.removesuffix(suffix)
                    if SEGMENT.match(name):
                        found.append(WalSegment(name, item["Key"], _epoch(item["LastModified"])))
            if found:
                return max(found, key=lambda s: (s.name, s.archived_at))
    except Exception as exc:  # noqa: BLE001
        raise ArchiveError(f"cannot list the WAL archive in {target.describe()}: {_why(exc)}") from None
    return None


@dataclass(frozen=True)
class StoredEncryption:
    """How S3 stores one object: its server-side encryption and, for SSE-KMS, the key's ARN."""

    key: str
    algorithm: str | None
    kms_key_id: str | None


def stored_encryption(s3: Any, target: ArchiveTarget, key: str) -> StoredEncryption:
    """HeadObject of `key` (no decryption needed): what the readiness check compares with the
    configured key."""
    try:
        head = s3.head_object(Bucket=target.bucket, Key=key)
    except Exception as exc:  # noqa: BLE001
        raise ArchiveError(f"cannot read how s3://{target.bucket}/{key} is stored: {_why(exc)}") from None
    return StoredEncryption(key, head.get("ServerSideEncryption"), head.get("SSEKMSKeyId"))


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


Runner = Callable[..., subprocess.CompletedProcess[str]]


def _run(
    argv: Sequence[str], *, run_as: str | None, env: Mapping[str, str], timeout: float, what: str
) -> str:
    prefix = ["runuser", "-u", run_as, "--"] if run_as and os.geteuid() == 0 else []
    try:
        done = subprocess.run(
            [*prefix, *argv], env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise ArchiveError(
            f"{what}: {argv[0]} is not installed (Debian: apt-get install barman-cli-cloud)"
        ) from None
    except subprocess.TimeoutExpired:
        raise ArchiveError(f"{what} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).split())[-600:]
        raise ArchiveError(f"{what} failed (exit {done.returncode}): {tail or 'no message'}")
    return done.stdout


# ---------------------------------------------------------------------------------------------
# Figures: exact row counts recorded with a backup, and counted again after a restore
# ---------------------------------------------------------------------------------------------

USER_TABLES = """
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY n.nspname, c.relname
LIMIT %s
"""
POSITION = (
    "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn() "
    "ELSE pg_catalog.pg_current_wal_lsn() END::text"
)


@dataclass(frozen=True)
class TableCounts:
    tables: dict[str, int]
    skipped: dict[str, str]
    truncated: bool
    lsn: str | None


def count_tables(
    conn: Any,
    tables: Sequence[str] | None = None,
    *,
    max_tables: int = MAX_TABLES,
    statement_timeout_ms: int = COUNT_TIMEOUT_MS,
    budget_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TableCounts:
    """Exact `count(*)` of `tables` (`schema.table`), or of the first `max_tables` user tables, in one
    REPEATABLE READ snapshot (a standby allows it), each under `statement_timeout_ms`, all of them
    within `budget_seconds` when given. A table that is missing, whose count times out or that the
    budget leaves out is in `skipped` with the reason; the others still count."""
    from psycopg2 import sql

    deadline = None if budget_seconds is None else clock() + budget_seconds

    counts: dict[str, int] = {}
    skipped: dict[str, str] = {}
    conn.autocommit = False
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_catalog.set_config('statement_timeout', %s, true)", (f"{statement_timeout_ms}ms",)
            )
            cur.execute(POSITION)
            row = cur.fetchone()
            lsn = str(row[0]) if row and row[0] is not None else None
            if tables is None:
                cur.execute(USER_TABLES, (max_tables + 1,))
                found = [(str(schema), str(name)) for schema, name in cur.fetchall()]
                truncated = len(found) > max_tables
                pairs = found[:max_tables]
            else:
                truncated = False
                pairs = [tuple(t.split(".", 1)) for t in tables[:max_tables]]  # type: ignore[misc]
            for schema, name in pairs:
                label = f"{schema}.{name}"
                if deadline is not None:
                    left_ms = int((deadline - clock()) * 1000)
                    if left_ms <= 0:
                        skipped[label] = f"not counted: the counting budget of {budget_seconds:g} s was spent"
                        continue
                    cur.execute(
                        "SELECT pg_catalog.set_config('statement_timeout', %s, true)",
                        (f"{min(statement_timeout_ms, left_ms)}ms",),
                    )
                cur.execute("SAVEPOINT qdr_count")
                try:
                    cur.execute(
                        sql.SQL("SELECT count(*) FROM {}.{}").format(
                            sql.Identifier(schema), sql.Identifier(name)
                        )
                    )
                    counted = cur.fetchone()
                    counts[label] = int(counted[0]) if counted else 0
                    cur.execute("RELEASE SAVEPOINT qdr_count")
                except Exception as exc:  # noqa: BLE001 - psycopg2.Error: missing table, timeout
                    cur.execute("ROLLBACK TO SAVEPOINT qdr_count")
                    skipped[label] = _why(exc).splitlines()[0][:200]
    finally:
        conn.rollback()
    return TableCounts(counts, skipped, truncated, lsn)


def _connect(params: Mapping[str, Any]) -> Any:
    import psycopg2

    return psycopg2.connect(**{k: v for k, v in params.items() if v is not None}, connect_timeout=10)


def record_figures(s3: Any, target: ArchiveTarget, figures: BackupFigures) -> str:
    key = target.figures_key(figures.backup_id)
    # as barman's uploads: SSE-KMS asked for when the archive has a key (the bucket's default key)
    encryption = {"ServerSideEncryption": "aws:kms"} if target.kms_key_arn else {}
    s3.put_object(
        Bucket=target.bucket,
        Key=key,
        Body=figures.model_dump_json().encode(),
        ContentType="application/json",
        **encryption,
    )
    return key


def read_figures(s3: Any, target: ArchiveTarget, backup_id: str) -> BackupFigures | None:
    """The figures recorded with `backup_id`; None when none were recorded."""
    key = target.figures_key(backup_id)
    try:
        body = s3.get_object(Bucket=target.bucket, Key=key)["Body"].read(4 * 1024 * 1024)
    except Exception as exc:  # noqa: BLE001
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404"):
            return None
        raise ArchiveError(f"cannot read the figures s3://{target.bucket}/{key}: {_why(exc)}") from None
    try:
        return BackupFigures.model_validate_json(body)
    except ValueError as exc:
        raise ArchiveError(f"the figures s3://{target.bucket}/{key} are malformed: {_why(exc)}") from None


def take_figures(
    s3: Any,
    target: ArchiveTarget,
    backup: BaseBackup,
    conn_params: Mapping[str, Any],
    *,
    max_tables: int = MAX_TABLES,
    statement_timeout_ms: int = COUNT_TIMEOUT_MS,
    now: Callable[[], float] = time.time,
) -> BackupFigures:
    """Count the backed-up database's user tables (just after its backup) and store the figures
    beside the backup."""
    try:
        conn = _connect(conn_params)
    except Exception as exc:  # noqa: BLE001
        raise ArchiveError(
            f"base backup {backup.backup_id} is complete, but its row counts could not be taken: "
            f"cannot connect to {conn_params.get('dbname')}: {_why(exc)}"
        ) from None
    try:
        counted = count_tables(conn, max_tables=max_tables, statement_timeout_ms=statement_timeout_ms)
    finally:
        conn.close()
    figures = BackupFigures(
        backup_id=backup.backup_id,
        database=str(conn_params["dbname"]),
        counted_at=now(),
        counted_lsn=counted.lsn,
        tables=counted.tables,
        skipped=counted.skipped,
        truncated=counted.truncated,
    )
    record_figures(s3, target, figures)
    return figures


def take_base_backup(
    s3: Any,
    target: ArchiveTarget,
    *,
    host: str,
    port: int,
    user: str,
    dbname: str = "postgres",
    run_as: str | None = "postgres",
    timeout: float = BACKUP_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    figures_db: str | None = None,
) -> BaseBackup:
    """`barman-cloud-backup` of the server at host:port (run on its host: barman reads the data
    directory), gzipped, then the new backup as the listing sees it. With `figures_db`, the exact
    row counts of that database's user tables are recorded beside it (`take_figures`), as the
    restore rehearsal's reference; their failure is an `ArchiveError` saying the backup is complete.

    On a standby the backup starts at its last restartpoint and ends once the segment holding its
    end is archived, so it needs main's `archive_timeout` to close that segment.
    """
    before = {b.backup_id for b in list_backups(s3, target)}
    argv = [barman_tool("barman-cloud-backup"), *target.upload_args(), "--gzip", "--immediate-checkpoint"]
    argv += ["-h", host, "-p", str(port), "-U", user, "-d", dbname, target.url, target.server]
    _run(argv, run_as=run_as, env={**os.environ, **(env or {})}, timeout=timeout, what="barman-cloud-backup")
    new = [b for b in list_backups(s3, target) if b.backup_id not in before]
    if not new or new[-1].status != "DONE":
        state = new[-1].status if new else "no new backup.info"
        raise ArchiveError(f"barman-cloud-backup exited 0 but {target.describe()} shows {state}")
    if figures_db:
        password = (env or {}).get("PGPASSWORD") or os.environ.get("PGPASSWORD")
        params = {"host": host, "port": port, "user": user, "dbname": figures_db, "password": password}
        take_figures(s3, target, new[-1], params)
    return new[-1]


def apply_retention(
    target: ArchiveTarget,
    days: int,
    *,
    run_as: str | None = "postgres",
    timeout: float = BACKUP_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    s3: Any = None,
) -> None:
    """`barman-cloud-backup-delete --retention-policy 'RECOVERY WINDOW OF N DAYS'`: the base
    backups no longer needed to restore any point of the last `days` days, and the WAL only they
    needed, are deleted; the newest backup is always kept. With `s3`, the figures of backups that
    are gone are deleted too."""
    if not isinstance(days, int) or days < 1:
        raise ArchiveError(f"the retention must be a whole number of days above 0, not {days!r}")
    argv = [barman_tool("barman-cloud-backup-delete"), *target.cloud_args()]
    argv += ["--retention-policy", f"RECOVERY WINDOW OF {days} DAYS", target.url, target.server]
    _run(
        argv,
        run_as=run_as,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        what="barman-cloud-backup-delete",
    )
    if s3 is not None:
        delete_orphan_figures(s3, target)


def delete_orphan_figures(s3: Any, target: ArchiveTarget) -> list[str]:
    """Delete the figures of backups no longer in the archive; the keys deleted."""
    kept = {b.backup_id for b in list_backups(s3, target)}
    folder = f"{target.root}{FIGURES_FOLDER}"
    orphans = [
        item["Key"]
        for page in _pages(s3, Bucket=target.bucket, Prefix=folder)
        for item in page.get("Contents", [])
        if item["Key"][len(folder) :].removesuffix(".json") not in kept
    ]
    for key in orphans:
        s3.delete_object(Bucket=target.bucket, Key=key)
    return orphans


def segment_of(lsn: str, timeline: int, segment_bytes: int = 16 * 1024 * 1024) -> str:
    """The WAL file name holding `lsn` on `timeline` (16 MiB segments by default)."""
    high, _, low = lsn.partition("/")
    position = (int(high, 16) << 32) | int(low, 16)
    number = position // segment_bytes
    per_id = 0x100000000 // segment_bytes
    return f"{timeline:08X}{number // per_id:08X}{number % per_id:08X}"


def switchpoint(pgdata: Path) -> tuple[int, str] | None:
    """The newest timeline's history file after a promotion: (new timeline, LSN where the
    restored one ended), i.e. the position the restore replayed up to."""
    histories = sorted((pgdata / "pg_wal").glob("*.history"))
    if not histories:
        return None
    newest = histories[-1]
    lines = [line.split() for line in newest.read_text(errors="replace").splitlines() if line.strip()]
    if not lines or len(lines[-1]) < 2:
        return None
    return int(newest.stem, 16), lines[-1][1]


def restore(
    s3: Any,
    target: ArchiveTarget,
    *,
    pgdata: Path,
    start_command: str,
    wait_promoted: Callable[[float], bool],
    settings: Mapping[str, str] | None = None,
    run_as: str | None = "postgres",
    timeout: float = RESTORE_TIMEOUT_S,
    move_aside: bool = False,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    now: Callable[[], float] = time.time,
    rows_dsn: str | None = None,
) -> RestoreReceipt:
    """The newest base backup into `pgdata`, then every archived segment replayed to the end of
    the archive, then promoted: what the cold site serves from.

    `settings` go into postgresql.auto.conf (say the port); replication and archiving are turned off
    (the restored server must not stream from, or archive into, the dead DR's place) and the
    archive's `restore_command` set. `start_command` starts the server (systemd on the AMI);
    `wait_promoted(seconds_left)` answers whether it has left recovery. With `rows_dsn` (a libpq
    string of the restored server), the tables of the figures recorded with the backup are counted
    in it once replay ended (`restored_rows`), for the restore rehearsal to compare.
    """
    started = now()
    backup = newest_backup(s3, target)
    if backup is None:
        raise ArchiveError(
            f"no complete base backup in {target.describe()}: the backup timer on the DR host has never "
            "finished one (journalctl -u quorum-dr-base-backup); nothing to restore"
        )
    newest = newest_segment(s3, target)
    if pgdata.exists() and any(pgdata.iterdir()):
        if not move_aside:
            raise ArchiveError(f"{pgdata} is not empty: refusing to restore over a data directory")
        aside = pgdata.with_name(f"{pgdata.name}.before-restore-{int(started)}")
        pgdata.rename(aside)
        progress(f"moved the existing data directory aside to {aside}")
    progress(f"restoring base backup {backup.backup_id} from {target.describe()}")
    argv = [barman_tool("barman-cloud-restore"), *target.cloud_args(), target.url, target.server]
    _run(
        [*argv, backup.backup_id, str(pgdata)],
        run_as=run_as,
        env=os.environ,
        timeout=timeout,
        what="barman-cloud-restore",
    )
    conf = {
        **dict(settings or {}),
        "primary_conninfo": "",
        "primary_slot_name": "",
        "archive_mode": "off",
        "restore_command": restore_command(target),
        "recovery_target_timeline": "latest",
    }
    with (pgdata / "postgresql.auto.conf").open("a", encoding="utf-8") as auto:
        auto.write("\n# quorum-dr cold-site restore: replay the archive to its end, then promote\n")
        for key, value in conf.items():
            auto.write(f"{key} = '{str(value).replace(chr(39), chr(39) * 2)}'\n")
    (pgdata / "standby.signal").unlink(missing_ok=True)
    (pgdata / "recovery.signal").write_text("")
    if run_as and os.geteuid() == 0:
        shutil.chown(pgdata / "recovery.signal", run_as, run_as)
    newest_text = f"up to {newest.name}" if newest else "(no archived segment listed)"
    progress(f"starting PostgreSQL to replay archived WAL {newest_text}")
    # its output (pg_ctl's "server started") is progress, never this command's stdout: that is the
    # RestoreLine the bootstrap reports
    started_server = subprocess.run(
        ["bash", "-c", start_command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    said = " ".join(started_server.stdout.split())[-300:]
    if started_server.returncode != 0:
        raise ArchiveError(
            f"the start command failed (exit {started_server.returncode}): {said or 'no output'}"
        )
    if said:
        progress(f"start command: {said}")
    deadline = started + timeout
    last = now()
    while not wait_promoted(max(0.0, deadline - now())):
        if now() >= deadline:
            raise ArchiveError(
                f"the restored server did not finish replaying the archive within {timeout:g} s; "
                "it keeps replaying: see its log"
            )
        if now() - last >= PROGRESS_EVERY_S:
            last = now()
            progress(f"still replaying archived WAL ({last - started:.0f} s so far)")
        time.sleep(0.5)
    done_at = now()
    point = switchpoint(pgdata)
    lsn = point[1] if point else None
    data_time = newest.archived_at if newest else backup.finished_at
    age = max(0.0, done_at - data_time)
    upto = f"WAL {lsn}" if lsn else "the end of the archive"
    seg = (
        f" (newest archived segment {newest.name}, archived {done_at - newest.archived_at:.0f} s earlier)"
        if newest
        else ""
    )
    rows = _restored_rows(s3, target, backup.backup_id, rows_dsn, progress) if rows_dsn else {}
    return RestoreReceipt(
        **rows,
        bucket=target.bucket,
        key=f"{target.root}base/{backup.backup_id}/",
        source="dr standby (barman-cloud base backup)",
        taken_at=backup.finished_at,
        lsn=backup.end_xlog,
        restored_at=done_at,
        backup_age_seconds=age,
        target=str(pgdata),
        reason=f"restored base backup {backup.backup_id} and replayed archived WAL up to {upto}{seg} "
        f"into {pgdata} in {done_at - started:.0f} s; data as of {age:.0f} s before the restore ended",
        method="barman-cloud",
        backup_id=backup.backup_id,
        restored_lsn=lsn,
        wal_segment=newest.name if newest else None,
        wal_archived_at=newest.archived_at if newest else None,
    )


def _restored_rows(
    s3: Any, target: ArchiveTarget, backup_id: str, dsn: str, progress: Callable[[str], None]
) -> dict[str, Any]:
    """The RestoreReceipt's row fields: the recorded tables counted in the restored database."""
    try:
        figures = read_figures(s3, target, backup_id)
    except ArchiveError as exc:
        return {"rows_error": str(exc)}
    if figures is None:
        progress(f"no figures were recorded with base backup {backup_id}: no row counts to compare")
        return {}
    key = target.figures_key(backup_id)
    try:
        import psycopg2

        conn = psycopg2.connect(dsn, dbname=figures.database, connect_timeout=10)
    except Exception as exc:  # noqa: BLE001
        return {
            "figures_key": key,
            "rows_error": f"cannot connect to the restored {figures.database}: {_why(exc)}",
        }
    try:
        counted = count_tables(conn, sorted(figures.tables), budget_seconds=RESTORE_COUNT_BUDGET_S)
    except Exception as exc:  # noqa: BLE001
        return {"figures_key": key, "rows_error": f"counting the restored rows failed: {_why(exc)}"}
    finally:
        conn.close()
    progress(
        f"counted {len(counted.tables)} of the {len(figures.tables)} recorded tables in {figures.database}"
    )
    return {"figures_key": key, "restored_rows": counted.tables, "rows_unavailable": counted.skipped}


def _promoted_via(dsn: str) -> Callable[[float], bool]:
    def promoted(left: float) -> bool:
        import psycopg2

        try:
            conn = psycopg2.connect(dsn, connect_timeout=max(1, min(5, int(left) or 1)))
        except psycopg2.Error:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_catalog.pg_is_in_recovery()")
                row = cur.fetchone()
                return row is not None and row[0] is False
        except psycopg2.Error:
            return False
        finally:
            conn.close()

    return promoted


def main(argv: list[str] | None = None, s3_client: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quorum_dr.adapters.wal_archive")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("backup", "restore", "status"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--bucket", required=True)
        cmd.add_argument("--prefix", default="")
        cmd.add_argument("--server", required=True, help="barman's server name (a folder under the prefix)")
        cmd.add_argument("--endpoint-url", default=None, help="an S3-compatible endpoint (tests, the drill)")
    backup = sub.choices["backup"]
    backup.add_argument("--host", default="/var/run/postgresql")
    backup.add_argument("--port", type=int, default=5432)
    backup.add_argument("--user", default="postgres")
    backup.add_argument("--run-as", default="postgres", help="the data directory's owner (when run as root)")
    backup.add_argument(
        "--kms-key-arn",
        default=None,
        help="the key the bucket encrypts with (cold_site.wal_archive.kms_key_arn): upload with SSE-KMS",
    )
    backup.add_argument(
        "--figures-db",
        default=None,
        help="record the exact row counts of this database's user tables beside the backup",
    )
    backup.add_argument(
        "--retention-days",
        type=int,
        default=None,
        help="then delete what a recovery window of N days no longer needs",
    )
    rest = sub.choices["restore"]
    rest.add_argument("--pgdata", required=True, type=Path)
    rest.add_argument("--start-command", required=True, help="starts PostgreSQL on the restored data")
    rest.add_argument("--dsn", required=True, help="libpq string to ask whether recovery ended")
    rest.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="postgresql.auto.conf")
    rest.add_argument("--run-as", default="postgres")
    rest.add_argument("--timeout-seconds", type=float, default=RESTORE_TIMEOUT_S)
    rest.add_argument("--move-aside", action="store_true", help="move a non-empty data directory aside")
    args = parser.parse_args(argv)
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3", endpoint_url=args.endpoint_url)
    try:
        target = ArchiveTarget(
            args.bucket, args.prefix, args.server, args.endpoint_url, getattr(args, "kms_key_arn", None)
        )
        if args.command == "backup":
            made = take_base_backup(
                s3_client,
                target,
                host=args.host,
                port=args.port,
                user=args.user,
                run_as=args.run_as or None,
                figures_db=args.figures_db,
            )
            if args.retention_days is not None:
                apply_retention(target, args.retention_days, run_as=args.run_as or None, s3=s3_client)
            print(
                json.dumps(
                    {
                        "ok": True,
                        "backup_id": made.backup_id,
                        "end_xlog": made.end_xlog,
                        "finished_at": made.finished_at,
                        "archive": target.describe(),
                        "figures": target.figures_key(made.backup_id) if args.figures_db else None,
                    }
                )
            )
        elif args.command == "status":
            latest, segment = newest_backup(s3_client, target), newest_segment(s3_client, target)
            print(json.dumps({
                "ok": True,
                "archive": target.describe(),
                "backup_id": latest.backup_id if latest else None,
                "backup_finished_at": latest.finished_at if latest else None,
                "newest_segment": segment.name if segment else None,
                "segment_archived_at": segment.archived_at if segment else None,
            }))  # fmt: skip
        else:
            settings = {}
            for item in args.set:
                key, sep, value = item.partition("=")
                if not sep or not re.fullmatch(r"[a-z_]+", key):
                    raise ArchiveError(f"--set takes NAME=VALUE with a setting name, not {item!r}")
                settings[key] = value
            receipt = restore(
                s3_client,
                target,
                pgdata=args.pgdata,
                start_command=args.start_command,
                wait_promoted=_promoted_via(args.dsn),
                settings=settings,
                run_as=args.run_as or None,
                timeout=args.timeout_seconds,
                move_aside=args.move_aside,
                rows_dsn=args.dsn,
            )
            print(RestoreLine(**receipt.model_dump()).model_dump_json())
    except (ArchiveError, subprocess.CalledProcessError, OSError) as exc:
        print(json.dumps({"ok": False, "reason": str(exc)}), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
