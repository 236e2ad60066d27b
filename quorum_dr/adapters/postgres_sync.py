"""The database sync check over psycopg2: digest each site's database, wait for the target's replay,
and judge (`quorum_dr/domain/sync_check.py` decides; this module only reads).

One site's digest (`digest_side`) is read over one ordinary connection, in one READ ONLY REPEATABLE
READ transaction, so every figure is of one snapshot (a hot standby allows REPEATABLE READ):

- the WAL position: `pg_current_wal_lsn()` on a primary, `pg_last_wal_replay_lsn()` on a standby,
  read by the transaction's first statement, which takes the snapshot;
- the timeline: on a primary the timeline of its current WAL file (`pg_walfile_name`); on a standby
  the WAL receiver's `received_tli`, else (no receiver, or a role without pg_read_all_stats) the
  timeline of its last restartpoint (`pg_control_checkpoint()`), which lags a timeline switch until
  the next restartpoint; `timeline_source` says which was used;
- the timeline history: the replication protocol's TIMELINE_HISTORY is not available over a normal
  connection, so the history file itself is read, `pg_read_binary_file('pg_wal/<TLI>.history')`
  (a standby fetches the history files of the timelines it follows; pg_basebackup and pg_rewind copy
  them). That needs a superuser, a member of pg_read_server_files, or EXECUTE on
  pg_read_binary_file. Where it is refused or the file is missing, the history is unknown and
  the verdict says the check could not show the sites share it: `pg_control_checkpoint()`'s
  `prev_timeline_id` alone names a parent but not where it ended, which cannot tell two promotions
  of the same timeline apart;
- per table (the configured `database.sync_check.tables`, else every ordinary logged table of
  `schema`): `pg_table_size` and the row count, and, under `max_table_bytes`, an ordered hash:
  SHA-256 over the SHA-256 of each row's text (`ROW(t.*)::text`), rows in primary-key order (each
  collatable key column in the "C" collation, so two hosts with different libc collations agree),
  or by the row text in "C" order when the table has no primary key. The server hashes each row; the
  client reads 32 bytes a row through a cursor, a batch at a time, so a big table is never held in
  memory. The session fixes every setting a row's text depends on (TimeZone, DateStyle,
  IntervalStyle, extra_float_digits, bytea_output, lc_monetary, search_path). An unlogged table is
  neither counted nor hashed: its rows are not replicated and a standby cannot read them.

Every statement runs under a `statement_timeout` of the time left of `timeout_seconds`, and the
connection under `connect_timeout` and `tcp_user_timeout`. Errors are one line with the site and
address, never a password (`SyncCheckError`).

`run_sync_check` is the whole check, given the active site and the target: read the active site's
position (its final position: writes must be frozen), wait until the target replayed it (bounded),
digest both sites at once, read the active site's position again, judge. When the active site's
position moved, the check runs again (`attempts`, default 2): WAL that is not a write moves an idle
primary too (the standby snapshot the background writer logs every 15 s after activity, a
checkpoint, a hint-bit full-page image when data checksums are on, which the check's own reads can
cause); a site that moves on every attempt is "inconclusive: the active site took writes".
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from quorum_dr.config import Database, SyncCheck
from quorum_dr.domain.results import parse_lsn
from quorum_dr.domain.sync_check import (
    SideDigest,
    SyncEvidence,
    TableDigest,
    TimelineSwitch,
    judge_sync,
    parse_timeline_history,
)
from quorum_dr.ports import SecretSource
from quorum_dr.probes.postgres import DeadlineExceeded, PgEndpoint, bounded_session, classify, query_bounded

APPLICATION_NAME = "quorum-dr-sync-check"
# The pre-read before each attempt (_settle): its own name, and it never waits long for a lock.
SETTLE_APPLICATION_NAME = "quorum-dr-sync-settle"
SETTLE_LOCK_TIMEOUT = "100ms"
FETCH_ROWS = 5000  # row hashes (32 bytes each) per FETCH
HISTORY_MAX_BYTES = 1 << 20
POLL_INTERVAL_SECONDS = 0.05
DEFAULT_ATTEMPTS = 2
# Everything a row's text depends on, the same on both sites.
ROW_TEXT_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO,YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "search_path": "pg_catalog",
}

# On a primary, one committed transaction with an id: its commit record is flushed, and with it
# every WAL record before it, ending on a record boundary. Without it the position read next may
# end inside a record still in the WAL buffers (a read sets hint bits, and with wal_log_hints or
# checksums their page images are WAL that no commit flushes): a standby can never replay up to
# such a position, and the wait for it runs out. On a standby the CASE calls nothing. The commit is
# asynchronous (nothing else was written): flush_wal waits for the WAL writer (FLUSH_END_SQL, FLUSHED_SQL).
FLUSH_SQL = "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.txid_current() END"
FLUSH_END_SQL = (
    "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL "
    "ELSE pg_catalog.pg_current_wal_insert_lsn()::text END"
)
FLUSHED_SQL = "SELECT pg_catalog.pg_current_wal_flush_lsn() >= '{}'::pg_lsn"

POSITION_SQL = """
SELECT pg_catalog.pg_is_in_recovery(),
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()::text
            ELSE pg_catalog.pg_current_wal_lsn()::text END,
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
            ELSE pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()) END,
       (SELECT r.received_tli FROM pg_catalog.pg_stat_wal_receiver r LIMIT 1),
       (SELECT c.timeline_id FROM pg_catalog.pg_control_checkpoint() c)
"""

# The relation's size counts every partition of a partitioned table.
TABLES_SQL = """
SELECT n.nspname, c.relname, c.oid, c.relpersistence,
       CASE WHEN c.relkind = 'p'
            THEN (SELECT COALESCE(sum(pg_catalog.pg_table_size(p.relid)), 0)::bigint
                    FROM pg_catalog.pg_partition_tree(c.oid) p)
            ELSE pg_catalog.pg_table_size(c.oid) END
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE {where}
 ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"
"""
SCHEMA_TABLES = (
    "n.nspname = %(schema)s AND c.relkind = 'r' AND c.relpersistence = 'p' AND NOT c.relispartition"
)
NAMED_TABLES = "(n.nspname || '.' || c.relname) = ANY(%(names)s) AND c.relkind IN ('r', 'p')"

PRIMARY_KEY_SQL = """
SELECT a.attname, a.attcollation <> 0
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
 WHERE i.indrelid = %s AND i.indisprimary
 ORDER BY pg_catalog.array_position(i.indkey::int2[], a.attnum)
"""


class SyncCheckError(Exception):
    """A site's database could not be read for the sync check; the message is one line naming the
    site and its address, never a password."""


Site = Literal["main", "dr"]


@dataclass(frozen=True)
class SyncSite:
    """A site's name and where its database is (with the credentials, which are never printed)."""

    site: str
    endpoint: PgEndpoint


def sync_sites(database: Database, secrets: SecretSource, active: Site) -> tuple[SyncSite, SyncSite]:
    """(active, target) from the config: main and dr, the target being the other one. Each site's
    secret is read here (`credentials_secret`, JSON with username and password)."""

    def site(name: Site) -> SyncSite:
        cfg = database.main if name == "main" else database.dr
        secret = secrets.get_json(cfg.credentials_secret)
        return SyncSite(name, PgEndpoint.from_secret(cfg.host, cfg.port, cfg.dbname, secret))

    target: Site = "dr" if active == "main" else "main"
    return site(active), site(target)


@dataclass(frozen=True)
class ReplayWait:
    """How `wait_replayed` ended: whether the target replayed the position, and what it last said."""

    reached: bool
    role: Literal["primary", "standby"]
    position: str
    reason: str


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _failure(site: SyncSite, exc: BaseException, doing: str) -> SyncCheckError:
    endpoint = site.endpoint
    return SyncCheckError(
        endpoint.scrub(
            f"{site.site}'s database at {endpoint.describe()}: {doing} failed "
            f"({classify(exc)}: {_one_line(exc)})"
        )
    )


def _position_row(row: tuple[Any, ...] | None) -> tuple[Literal["primary", "standby"], str]:
    assert row is not None
    in_recovery, position = row[0], row[1]
    return ("standby" if in_recovery else "primary"), str(position)


def _settle(site: SyncSite, settings: SyncCheck, timeout: float) -> None:
    """Read every table to compare once, before the digest: a read sets the hint bits of rows
    committed since the last one and prunes pages, and with wal_log_hints or checksums that
    writes WAL. Done here, before the flush and the digest's snapshot, the digest's own reads
    write none, so the position does not move under it (else: "inconclusive", every time).
    Best effort: a table locked by someone else is passed over at once (the digest will wait for
    it, and a move it causes is what the check reports)."""
    deadline = time.monotonic() + timeout
    try:
        with _snapshot(site, timeout, SETTLE_APPLICATION_NAME) as conn, conn.cursor() as raw:
            cur = _Bounded(raw, deadline)
            if cur.run("SELECT pg_catalog.pg_is_in_recovery()").fetchone()[0]:
                return  # a standby's reads write no WAL
            cur.run("SELECT pg_catalog.set_config('enable_indexonlyscan', 'off', true)")
            cur.run("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (SETTLE_LOCK_TIMEOUT,))
            try:
                found = _tables(cur, settings)  # a table's size needs its lock too
            except psycopg2.errors.LockNotAvailable:
                return
            for schema, relname, _, persistence, size in found:
                if persistence == "p" and size <= settings.max_table_bytes:
                    raw.execute("SAVEPOINT settle")
                    try:
                        cur.run(
                            sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, relname))
                        )
                    except psycopg2.errors.LockNotAvailable:
                        raw.execute("ROLLBACK TO SAVEPOINT settle")
                    else:
                        raw.execute("RELEASE SAVEPOINT settle")
    except (DeadlineExceeded, psycopg2.Error) as exc:
        raise _failure(site, exc, "reading the tables once before the digest") from None


def flush_wal(site: SyncSite, timeout: float, *, poll_interval: float = POLL_INTERVAL_SECONDS) -> None:
    """On a primary, flush its WAL to a record boundary (FLUSH_SQL), so that the position read next
    is one a standby can replay exactly; nothing on a standby. It writes one commit record: call it
    before reading the position to wait for, never between two reads that must agree.

    That commit is asynchronous (its transaction wrote nothing else, so PostgreSQL does not wait for
    its flush): the WAL writer flushes it within `wal_writer_delay`. So the end of the record is read
    at once and the flush position polled until it is there, within `timeout`."""
    deadline = time.monotonic() + timeout
    try:
        # one connection (autocommit: each statement its own transaction) for all of it
        with bounded_session(site.endpoint, timeout) as run:
            run(FLUSH_SQL)
            (end,) = run(FLUSH_END_SQL) or (None,)
            if end is None:
                return  # a standby
            parse_lsn(end)  # the server's own text: checked before it goes into the query
            while True:
                (flushed,) = run(FLUSHED_SQL.format(end)) or (False,)
                if flushed:
                    return
                if time.monotonic() + poll_interval > deadline:
                    raise DeadlineExceeded(f"waiting for the WAL writer to flush up to {end}")
                time.sleep(poll_interval)
    except (DeadlineExceeded, psycopg2.Error) as exc:
        raise _failure(site, exc, "flushing the WAL written so far") from None


def settle_position(site: SyncSite, settings: SyncCheck, timeout: float | None = None) -> str:
    """Read the site's tables once (`_settle`), flush its WAL (`flush_wal`) and return its position:
    one a standby can replay exactly, and the one a digest taken next finds when nothing wrote."""
    timeout = settings.timeout_seconds if timeout is None else timeout
    _settle(site, settings, timeout)
    flush_wal(site, timeout)
    return read_position(site, timeout)[1]


def read_position(site: SyncSite, timeout: float) -> tuple[Literal["primary", "standby"], str]:
    """(role, WAL position): written on a primary, replayed on a standby; SyncCheckError otherwise."""
    try:
        return _position_row(query_bounded(site.endpoint, POSITION_SQL, timeout))
    except (DeadlineExceeded, psycopg2.Error) as exc:
        raise _failure(site, exc, "reading the WAL position") from None


def wait_replayed(
    target: SyncSite, position: str, timeout: float, *, poll_interval: float = POLL_INTERVAL_SECONDS
) -> ReplayWait:
    """Poll the target until it replayed `position`, never beyond `timeout` seconds. A primary replays
    nothing: the answer is at once. A target that cannot be read at the first try is a SyncCheckError
    at once (waiting does not make a refused connection replay); once read, a failed poll is tried
    again while time remains."""
    wanted = parse_lsn(position)
    deadline = time.monotonic() + timeout
    last: tuple[Literal["primary", "standby"], str] | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            last = _position_row(query_bounded(target.endpoint, POSITION_SQL, remaining))
        except (DeadlineExceeded, psycopg2.Error) as exc:
            if last is None:
                raise _failure(target, exc, "reading the replayed position") from None
            # read once already: a failed poll is tried again after the interval, while time remains
        else:
            role, replayed = last
            if role == "primary":
                return ReplayWait(
                    False, role, replayed, f"{target.site}'s database is a primary: it replays nothing"
                )
            if parse_lsn(replayed) >= wanted:
                return ReplayWait(True, role, replayed, f"{target.site} replayed {position} ({replayed})")
        time.sleep(max(0.0, min(poll_interval, deadline - time.monotonic())))
    if last is None:
        raise _failure(target, DeadlineExceeded("querying"), f"waiting {timeout:g} s for replay")
    return ReplayWait(
        False,
        last[0],
        last[1],
        f"{target.site} replayed only {last[1]} of {position} within {timeout:g} s",
    )


# ---------------------------------------------------------------------------------------------
# One site's digest
# ---------------------------------------------------------------------------------------------


class _Bounded:
    """A cursor whose every statement runs under a statement_timeout of the time left."""

    def __init__(self, cur: Any, deadline: float) -> None:
        self.cur = cur
        self.deadline = deadline

    def run(self, query: str | sql.Composable, args: Any = None) -> Any:
        remaining_ms = int((self.deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise DeadlineExceeded("querying")
        # the timeout and the statement in one round trip (the cursor holds the last one's rows):
        # a digest is dozens of statements, and on a busy host each round trip is what costs
        limit = sql.SQL("SELECT pg_catalog.set_config('statement_timeout', {}, true); ").format(
            sql.Literal(f"{remaining_ms}ms")
        )
        self.cur.execute(limit + (sql.SQL(query) if isinstance(query, str) else query), args)
        return self.cur


@contextmanager
def _snapshot(site: SyncSite, timeout: float, application_name: str = APPLICATION_NAME) -> Iterator[Any]:
    """A READ ONLY REPEATABLE READ transaction on the site's database, rolled back at the end."""
    endpoint = site.endpoint
    kwargs = endpoint.connect_kwargs(timeout, application_name)
    kwargs["options"] += "".join(f" -c {name}={value}" for name, value in ROW_TEXT_SETTINGS.items())
    kwargs["tcp_user_timeout"] = max(1000, int(timeout * 1000))
    conn = psycopg2.connect(**kwargs)
    try:
        conn.set_session(
            isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ,
            readonly=True,
            autocommit=False,
        )
        yield conn
    finally:
        try:
            conn.rollback()
        except psycopg2.Error:
            pass  # closing ends the transaction anyway
        conn.close()


def digest_side(
    site: SyncSite,
    settings: SyncCheck,
    *,
    timeout: float | None = None,
    clock: Callable[[], float] = time.time,
) -> SideDigest:
    """The site's database at one snapshot: position, timeline, history and table digests. The
    side another one must catch up with is settled first (`settle_position`)."""
    timeout = settings.timeout_seconds if timeout is None else timeout
    started, taken_at = time.monotonic(), clock()
    deadline = started + timeout
    doing = "connecting"
    try:
        with _snapshot(site, timeout) as conn, conn.cursor() as raw:
            cur = _Bounded(raw, deadline)
            doing = "reading the position"
            role, position, walfile, received_tli, checkpoint_tli = cur.run(POSITION_SQL).fetchone()
            if walfile:
                timeline, source = int(walfile[:8], 16), "the current WAL file"
            elif received_tli:
                timeline, source = int(received_tli), "the WAL receiver"
            else:
                timeline, source = int(checkpoint_tli), "the last restartpoint (no WAL receiver seen)"
            doing = "reading the timeline history"
            history, note = _history(cur, timeline)
            doing = "listing the tables"
            found = _tables(cur, settings)
            tables = []
            for table in found:
                doing = f"reading table {table[0]}.{table[1]}"
                tables.append(_table(cur, table, settings.max_table_bytes))
            doing = "reading the position again"
            _, after = _position_row(cur.run(POSITION_SQL).fetchone())
    except (DeadlineExceeded, psycopg2.Error) as exc:
        raise _failure(site, exc, doing) from None
    listed = {f"{schema}.{name}" for schema, name, *_ in found}
    return SideDigest(
        site=site.site,
        address=site.endpoint.describe(),
        role="standby" if role else "primary",
        position=str(position),
        position_after=after,
        timeline=timeline,
        timeline_source=source,
        timeline_history=history,
        history_note=note,
        tables=tables,
        absent=[name for name in settings.tables or [] if name not in listed],
        taken_at=taken_at,
        seconds=round(time.monotonic() - started, 6),
    )


def _history(cur: _Bounded, timeline: int) -> tuple[list[TimelineSwitch] | None, str]:
    if timeline == 1:
        return [], "timeline 1 has no history file"
    path = f"pg_wal/{timeline:08X}.history"
    cur.run("SAVEPOINT qdr_history")
    try:
        row = cur.run(
            "SELECT pg_catalog.pg_read_binary_file(%s, 0, %s, true)", (path, HISTORY_MAX_BYTES)
        ).fetchone()
    except psycopg2.errors.InsufficientPrivilege as exc:
        cur.cur.execute("ROLLBACK TO SAVEPOINT qdr_history")  # no set_config in a failed transaction
        return None, (
            f"reading {path} was refused ({_one_line(exc)}); the role needs pg_read_server_files or "
            "EXECUTE on pg_read_binary_file"
        )
    cur.run("RELEASE SAVEPOINT qdr_history")
    if row is None or row[0] is None:
        return None, f"{path} is missing"
    try:
        return parse_timeline_history(bytes(row[0]).decode("utf-8", "replace")), f"history read from {path}"
    except ValueError as exc:
        return None, f"{path} is not a timeline history: {exc}"


def _tables(cur: _Bounded, settings: SyncCheck) -> list[tuple[str, str, int, str, int]]:
    """(schema, table, oid, relpersistence, bytes) of the tables to compare, in name order."""
    args: dict[str, Any]
    if settings.tables is None:
        where, args = SCHEMA_TABLES, {"schema": settings.app_schema}
    else:
        where, args = NAMED_TABLES, {"names": list(settings.tables)}
    rows = cur.run(TABLES_SQL.format(where=where), args).fetchall()
    return [
        (str(schema), str(name), int(oid), str(kept), int(size)) for schema, name, oid, kept, size in rows
    ]


def _table(cur: _Bounded, found: tuple[str, str, int, str, int], limit: int) -> TableDigest:
    schema, relname, oid, persistence, size = found
    name = f"{schema}.{relname}"
    relation = sql.Identifier(schema, relname)
    if persistence != "p":
        return TableDigest(
            name=name,
            rows=None,
            bytes=size,
            skipped="unlogged: its rows are not replicated and a standby cannot read them",
        )
    if size > limit:
        rows = int(cur.run(sql.SQL("SELECT count(*) FROM {}").format(relation)).fetchone()[0])
        return TableDigest(
            name=name,
            rows=rows,
            bytes=size,
            skipped=f"pg_table_size {_size(size)} is over max_table_bytes {_size(limit)}",
        )
    keys = cur.run(PRIMARY_KEY_SQL, (oid,)).fetchall()
    if keys:
        order = sql.SQL(", ").join(
            sql.SQL('{} COLLATE "C"' if collatable else "{}").format(sql.Identifier("qdr_row", column))
            for column, collatable in keys
        )
        ordered_by = f"primary key ({', '.join(column for column, _ in keys)})"
    else:
        order = sql.SQL('ROW(qdr_row.*)::text COLLATE "C"')
        ordered_by = "row text (no primary key)"
    cur.run(
        sql.SQL(
            "DECLARE qdr_rows NO SCROLL CURSOR FOR SELECT pg_catalog.sha256(pg_catalog.textsend("
            "ROW(qdr_row.*)::text)) FROM {} AS qdr_row ORDER BY {}"
        ).format(relation, order)
    )
    digest, rows = hashlib.sha256(), 0
    while True:
        batch = cur.run(f"FETCH FORWARD {FETCH_ROWS} FROM qdr_rows").fetchall()
        for (row_hash,) in batch:
            digest.update(bytes(row_hash))
        rows += len(batch)
        if len(batch) < FETCH_ROWS:
            break
    cur.run("CLOSE qdr_rows")
    return TableDigest(name=name, rows=rows, bytes=size, digest=digest.hexdigest(), ordered_by=ordered_by)


def _size(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


# ---------------------------------------------------------------------------------------------
# The whole check
# ---------------------------------------------------------------------------------------------


def run_sync_check(
    service: str,
    active: SyncSite,
    target: SyncSite,
    settings: SyncCheck,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    clock: Callable[[], float] = time.time,
) -> SyncEvidence:
    """Read the active site's final position, wait (bounded) until the target replayed it, digest
    both at once, read the active site's position again, and judge. A moved active site is checked
    again, `attempts` times in all. SyncCheckError when a database cannot be read."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    checked_at, started = clock(), time.monotonic()
    timeout = settings.timeout_seconds
    attempt = 0
    while True:
        attempt += 1
        # Before each final position: the active site's reads of rows committed since the last read
        # write hint-bit WAL (wal_log_hints, checksums); done here, the digest's reads write none, and
        # the flush ends that WAL on a record boundary the target can replay up to.
        final = settle_position(active, settings, timeout)
        wait_replayed(target, final, timeout)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sync-digest") as pool:
            on_active = pool.submit(digest_side, active, settings, clock=clock)
            on_target = pool.submit(digest_side, target, settings, clock=clock)
            active_digest, target_digest = on_active.result(), on_target.result()
        _, after = read_position(active, timeout)
        active_digest = active_digest.model_copy(update={"position_after": after})
        verdict = judge_sync(active_digest, target_digest, final_position=final)
        if verdict.code != "active_moved" or attempt >= attempts:
            return SyncEvidence(
                service=service,
                active=active_digest,
                target=target_digest,
                final_position=final,
                verdict=verdict,
                attempts=attempt,
                checked_at=checked_at,
                seconds=round(time.monotonic() - started, 6),
            )
