"""The PostgreSQL check: role and WAL positions of one database, within a hard time bound.

One statement reads everything (role, current LSN on a primary; receive and replay LSNs, replay
lag in bytes and seconds, WAL receiver state on a standby). Lag is computed by PostgreSQL
(`pg_wal_lsn_diff`), never from LSN text in Python.

The time bound is real: the connection is made and the statement run in psycopg2's asynchronous
mode, waiting on the socket with the remaining time, so neither a server that accepts and never
answers nor a statement stuck behind a lock can hold the check beyond `timeout` (libpq's own
`connect_timeout` rounds up to 2 s; the server-side `statement_timeout` is set too). Only a host
name lookup is outside the bound: libpq resolves names synchronously.

Figures, as the domain reads them:
- `replay_lag_bytes` is received-but-not-replayed WAL, clamped at 0 (after a WAL receiver restart
  the receive position can restart behind replay). None when the standby has received nothing.
- `replay_lag_seconds` is PostgreSQL's `now() - pg_last_xact_replay_timestamp()`, unchanged: it
  grows while the primary is idle even when the standby is fully caught up, and it is None until a
  transaction replays. The domain decides what it means together with the byte figure (bytes 0
  means replay has applied everything received).
- `last_msg_age_seconds` is how long ago the standby's WAL receiver last heard from main (data or
  keepalive), computed by the standby on its own clock. An idle main writes no WAL, but the
  receiver pings it when it has heard nothing for half of `wal_receiver_timeout` and main's WAL
  sender answers at once, so this age stays below about half that timeout while main is alive.
  `latest_end_lsn` is main's WAL end as its sender last reported it.
- On a primary: `synchronous_commit`, `synchronous_standby_names` and every `pg_stat_replication`
  row (application name, state, sync_state), to tell whether a standby is synchronous.
The WAL receiver and replication details are shown only to roles with pg_read_all_stats (e.g.
pg_monitor); without it they read as None, which the decisions take as "unknown", never as "fine".
"""

from __future__ import annotations

import re
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from quorum_dr.config import PostgresCheck
from quorum_dr.domain.results import DbRole, DbStatus, FailureClass, ReplicationPeer
from quorum_dr.probes.outcome import CheckOutcome

STATUS_SQL = """
SELECT pg_catalog.pg_is_in_recovery(),
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
            ELSE pg_catalog.pg_current_wal_lsn()::text END,
       pg_catalog.pg_last_wal_receive_lsn()::text,
       pg_catalog.pg_last_wal_replay_lsn()::text,
       GREATEST(0, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(),
                                              pg_catalog.pg_last_wal_replay_lsn()))::bigint,
       EXTRACT(EPOCH FROM pg_catalog.now() - pg_catalog.pg_last_xact_replay_timestamp())::float8,
       EXTRACT(EPOCH FROM pg_catalog.pg_last_xact_replay_timestamp())::float8,
       w.status,
       EXTRACT(EPOCH FROM w.last_msg_receipt_time)::float8,
       EXTRACT(EPOCH FROM pg_catalog.clock_timestamp() - w.last_msg_receipt_time)::float8,
       w.latest_end_lsn::text,
       EXTRACT(EPOCH FROM w.latest_end_time)::float8,
       w.conninfo,
       pg_catalog.current_setting('cluster_name'),
       (SELECT s.setting::float8 / 1000 FROM pg_catalog.pg_settings s
         WHERE s.name = 'wal_receiver_timeout'),
       pg_catalog.current_setting('synchronous_commit'),
       pg_catalog.current_setting('synchronous_standby_names'),
       (SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
                 'application_name', r.application_name, 'state', r.state,
                 'sync_state', r.sync_state, 'flush_lsn', r.flush_lsn::text)
                 ORDER BY r.application_name)
          FROM pg_catalog.pg_stat_replication r)
  FROM (SELECT 1) AS one
  LEFT JOIN (SELECT * FROM pg_catalog.pg_stat_wal_receiver LIMIT 1) AS w ON true
"""

_CONNINFO_NAME = re.compile(r"(?:^|\s)(fallback_application_name|application_name)=(\S+)")


def _receiver_name(conninfo: str | None, cluster_name: str | None) -> str | None:
    """The application name main sees for this standby's WAL receiver: the conninfo's
    `application_name`, else the walreceiver's fallback (cluster_name, else "walreceiver")."""
    if not conninfo:
        return None
    found = {m.group(1): m.group(2) for m in _CONNINFO_NAME.finditer(conninfo)}
    return (
        found.get("application_name")
        or found.get("fallback_application_name")
        or cluster_name
        or "walreceiver"
    )


class DeadlineExceeded(Exception):
    """The time bound ran out; `during` says whether connecting or querying."""

    def __init__(self, during: str) -> None:
        self.during = during
        super().__init__(f"no answer within the time bound while {during}")


@dataclass(frozen=True)
class PgEndpoint:
    """Where a database is and who to be there. The password never appears in repr or logs."""

    host: str
    port: int = 5432
    dbname: str = "postgres"
    username: str = ""
    password: str = field(default="", repr=False)
    sslmode: str = "prefer"

    @classmethod
    def from_dsn(cls, dsn: str) -> PgEndpoint:
        params = psycopg2.extensions.parse_dsn(dsn)
        return cls(
            host=params.get("host", "127.0.0.1"),
            port=int(params.get("port", 5432)),
            dbname=params.get("dbname", "postgres"),
            username=params.get("user", ""),
            password=params.get("password", ""),
            sslmode=params.get("sslmode", "prefer"),
        )

    @classmethod
    def from_secret(
        cls, host: str, port: int, dbname: str, secret: dict[str, Any], sslmode: str = "prefer"
    ) -> PgEndpoint:
        return cls(host, port, dbname, str(secret["username"]), str(secret["password"]), sslmode)

    def describe(self) -> str:
        return f"{self.host}:{self.port}/{self.dbname}"

    def libpq_params(self) -> dict[str, Any]:
        """Connection parameters without the password (give it through PGPASSWORD)."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.username,
            "sslmode": self.sslmode,
        }

    def connect_kwargs(self, timeout: float, application_name: str = "quorum-dr") -> dict[str, Any]:
        statement_ms = max(1, int(timeout * 1000))
        return {
            **self.libpq_params(),
            "password": self.password,
            "connect_timeout": max(2, int(timeout + 0.999)),
            "application_name": application_name,
            "options": f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms}",
        }

    def scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text


def _wait(conn: Any, deadline: float, during: str) -> None:
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(during)
        fd = conn.fileno()
        if state == psycopg2.extensions.POLL_READ:
            select.select([fd], [], [], remaining)
        elif state == psycopg2.extensions.POLL_WRITE:
            select.select([], [fd], [], remaining)
        else:  # pragma: no cover - psycopg2 documents no other state
            raise psycopg2.OperationalError(f"unexpected poll state {state}")


@contextmanager
def bounded_session(
    endpoint: PgEndpoint, timeout: float
) -> Iterator[Callable[[str], tuple[Any, ...] | None]]:
    """One connection (autocommit) for several statements, all within `timeout` seconds from now:
    yields `run(query)`, which returns the statement's first row. A caller with several statements
    to run pays for one connection, not one each.

    Raises DeadlineExceeded, or psycopg2 errors as PostgreSQL / libpq reported them.
    """
    deadline = time.monotonic() + timeout
    conn = psycopg2.connect(**endpoint.connect_kwargs(timeout), async_=1)
    try:
        _wait(conn, deadline, "connecting")
        cur = conn.cursor()

        def run(query: str) -> tuple[Any, ...] | None:
            cur.execute(query)
            _wait(conn, deadline, "querying")
            return cur.fetchone()

        yield run
    finally:
        conn.close()


def query_bounded(endpoint: PgEndpoint, query: str, timeout: float) -> tuple[Any, ...] | None:
    """Connect and run one statement within `timeout` seconds; return its first row.

    Raises DeadlineExceeded, or psycopg2 errors as PostgreSQL / libpq reported them.
    """
    with bounded_session(endpoint, timeout) as run:
        return run(query)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def status_from_row(row: tuple[Any, ...]) -> DbStatus:
    """Turn a STATUS_SQL row into a DbStatus (shared by the probe and the promoter)."""
    (
        in_recovery, current, receive, replay, lag_bytes, lag_seconds, replayed_at, receiver,
        heard_at, heard_age, end_lsn, end_at, conninfo, cluster_name, receiver_timeout,
        synchronous_commit, sync_names, peers,
    ) = row  # fmt: skip
    if not in_recovery:
        return DbStatus(
            role=DbRole.PRIMARY,
            current_lsn=current,
            synchronous_commit=synchronous_commit,
            synchronous_standby_names=sync_names,
            standbys=tuple(
                ReplicationPeer.model_validate(p) for p in peers or () if p.get("application_name")
            ),
        )
    return DbStatus(
        role=DbRole.STANDBY,
        receive_lsn=receive,
        replay_lsn=replay,
        replay_lag_bytes=None if lag_bytes is None else int(lag_bytes),
        replay_lag_seconds=_float(lag_seconds),
        last_replay_at=_float(replayed_at),
        streaming=receiver == "streaming",
        last_msg_receipt_at=_float(heard_at),
        last_msg_age_seconds=None if heard_age is None else max(0.0, float(heard_age)),
        latest_end_lsn=end_lsn,
        latest_end_at=_float(end_at),
        application_name=_receiver_name(conninfo, cluster_name),
        wal_receiver_timeout_seconds=_float(receiver_timeout),
    )


def describe_status(status: DbStatus) -> str:
    if status.role == DbRole.PRIMARY:
        sync = [p.application_name for p in status.standbys if p.sync_state in ("sync", "quorum")]
        synchronous = f", synchronous standby {', '.join(sync)}" if sync else ""
        return f"primary at WAL {status.current_lsn}{synchronous}"
    lag = "unknown" if status.replay_lag_bytes is None else f"{status.replay_lag_bytes} bytes"
    seconds = (
        ""
        if status.replay_lag_seconds is None
        else f", last replayed transaction {status.replay_lag_seconds:.1f} s ago"
    )
    heard = (
        ""
        if status.last_msg_age_seconds is None
        else f", last heard from main {status.last_msg_age_seconds:.1f} s ago"
    )
    return (
        f"standby {'streaming' if status.streaming else 'NOT streaming'}, received {status.receive_lsn}, "
        f"replayed {status.replay_lsn}, replay lag {lag}{seconds}{heard}"
    )


def classify(exc: BaseException) -> FailureClass:
    """The failure class of an error raised by `query_bounded`."""
    if isinstance(exc, DeadlineExceeded):
        return FailureClass.CONNECT_TIMEOUT if exc.during == "connecting" else FailureClass.TIMEOUT
    if isinstance(exc, psycopg2.errors.QueryCanceled | psycopg2.errors.LockNotAvailable):
        return FailureClass.TIMEOUT
    message = str(exc).lower()
    if "could not translate host name" in message or "name or service not known" in message:
        return FailureClass.DNS
    if "connection refused" in message:
        return FailureClass.CONNECT_REFUSED
    if "timeout expired" in message or "no route to host" in message or "network is unreachable" in message:
        return FailureClass.CONNECT_TIMEOUT
    if "ssl" in message or "certificate" in message:
        return FailureClass.TLS
    return FailureClass.DB_ERROR


def check_postgres(check: PostgresCheck, *, credentials: dict[str, Any], timeout: float) -> CheckOutcome:
    """Vote up when the status statement answers; report the role and WAL figures it read."""
    endpoint = PgEndpoint.from_secret(check.host, check.port, check.dbname, credentials, check.sslmode)
    started = time.monotonic()
    try:
        row = query_bounded(endpoint, STATUS_SQL, timeout)
    except (DeadlineExceeded, psycopg2.Error) as exc:
        latency = (time.monotonic() - started) * 1000
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return CheckOutcome.down(classify(exc), latency, endpoint.scrub(f"{endpoint.describe()}: {detail}"))
    latency = (time.monotonic() - started) * 1000
    if row is None:  # pragma: no cover - the statement always returns one row
        return CheckOutcome.down(FailureClass.DB_ERROR, latency, f"{endpoint.describe()}: no row")
    status = status_from_row(row)
    return CheckOutcome.up(latency, f"{endpoint.describe()}: {describe_status(status)}", status)
