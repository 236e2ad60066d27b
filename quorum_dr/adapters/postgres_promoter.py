"""The database promoter over psycopg2: check the DR replica, promote it once, verify, fence main.

Exactly one promotion, whatever the number of callers: `promote` takes a session advisory lock
on the DR database (advisory locks work on a hot standby), then checks `pg_is_in_recovery()`
before calling `pg_promote(true, wait)`. A second caller waits for the lock, finds a primary and
answers "already promoted". A promotion started outside quorum-dr surfaces as
ObjectNotInPrerequisiteState from `pg_promote` and is treated the same way.

After promoting, the promoter proves the database writable by recording the incident in
`quorum_dr_promotions` (a durable record of which incident promoted this database) on a fresh
connection. A promotion that does not end writable raises PromotionError: traffic must never be
switched to it.

Fencing main (`fence_old_primary`) takes LOGIN from the application roles (`database.app_roles`),
terminates their sessions and proves it with a check query; then it reads main's final WAL
position, which the standby must reach before the promotion (`wait_for_position`). Role
attributes live in the shared catalog, so the standby replays the fence: the promotion gives the
application roles LOGIN back on the promoted database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from quorum_dr.config import Database
from quorum_dr.domain.data_loss import reached_position
from quorum_dr.domain.results import DbRole, DbStatus, FailureClass
from quorum_dr.ports import (
    DatabaseUnreachableError,
    FenceReceipt,
    Promoter,
    PromotionError,
    PromotionReceipt,
    ReplicaNotReadyError,
    SecretSource,
    WritableCheck,
)
from quorum_dr.probes.postgres import (
    STATUS_SQL,
    DeadlineExceeded,
    PgEndpoint,
    classify,
    query_bounded,
    status_from_row,
)

PROMOTE_LOCK_KEY = 0x71D0_5E_01  # pg_advisory_lock key: "quorum-dr promote"
RECORD_TABLE = "quorum_dr_promotions"
WRITE_CHECK_TABLE = "quorum_dr_write_checks"
FENCE_HOOK_NOTE = "the fence_main hook, if configured, is the site's own fence"
FENCE_APPLICATION_NAME = "quorum-dr-fence"
UNREACHABLE = (FailureClass.CONNECT_REFUSED, FailureClass.CONNECT_TIMEOUT)  # the only failures that proceed
DEFAULT_APP_ROLES = ("app",)
TERMINATE_WAIT_MS = 500  # pg_terminate_backend(pid, timeout): wait this long for each session to end
TIMEOUT_SECONDS = 5.0  # connect, and every statement of a session (statement_timeout)
PROMOTE_WAIT_SECONDS = 60  # for the end of recovery; the promote session's statements get this + TIMEOUT
PROMOTE_POLL_FIRST_SECONDS = 0.005  # first look after pg_promote's signal; then twice as long each time
FENCE_TIMEOUT_SECONDS = 3.0  # connect and statements on the old primary, and the wait for read-only
POLL_INTERVAL_SECONDS = 0.1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


Endpoint = PgEndpoint | Callable[[], PgEndpoint]


class PostgresPromoter(Promoter):
    """`dr` and `old_primary` may be given as callables: each is resolved (its secret read) on
    first use only, so a step that talks to one database reads only that database's secret."""

    def __init__(
        self,
        dr: Endpoint,
        old_primary: Endpoint | None = None,
        *,
        timeout: float = TIMEOUT_SECONDS,
        promote_wait_s: int = PROMOTE_WAIT_SECONDS,
        poll_interval_s: float = POLL_INTERVAL_SECONDS,
        fence_timeout: float = FENCE_TIMEOUT_SECONDS,
        app_roles: tuple[str, ...] | list[str] = DEFAULT_APP_ROLES,
    ) -> None:
        self._dr = dr
        self._old_primary = old_primary
        self.app_roles = tuple(app_roles)
        self.timeout = timeout
        self.promote_wait_s = promote_wait_s
        self.poll_interval_s = poll_interval_s
        self.fence_timeout = fence_timeout

    @classmethod
    def from_config(cls, database: Database, secrets: SecretSource, **options: Any) -> PostgresPromoter:
        def endpoint(which: str) -> Callable[[], PgEndpoint]:
            cfg = getattr(database, which)
            return lambda: PgEndpoint.from_secret(
                cfg.host, cfg.port, cfg.dbname, secrets.get_json(cfg.credentials_secret)
            )

        # check_replica and promote_database may read only the DR secret, fence_main only main's.
        options.setdefault("app_roles", tuple(database.app_roles))
        return cls(endpoint("dr"), endpoint("main"), **options)

    @property
    def dr(self) -> PgEndpoint:
        if callable(self._dr):
            self._dr = self._dr()
        return self._dr

    @property
    def old_primary(self) -> PgEndpoint | None:
        if callable(self._old_primary):
            self._old_primary = self._old_primary()
        return self._old_primary

    # -- connections ----------------------------------------------------------------------------

    @contextmanager
    def _session(self, endpoint: PgEndpoint, timeout: float, what: str) -> Iterator[Any]:
        try:
            conn = psycopg2.connect(**endpoint.connect_kwargs(timeout, "quorum-dr-promoter"))
        except psycopg2.Error as exc:
            raise DatabaseUnreachableError(
                endpoint.scrub(
                    f"{what} at {endpoint.describe()} not reachable ({classify(exc)}: {_one_line(exc)})"
                )
            ) from None
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.close()

    # -- replica --------------------------------------------------------------------------------

    def replica_status(self, timeout: float | None = None) -> DbStatus:
        try:
            row = query_bounded(self.dr, STATUS_SQL, timeout or self.timeout)
        except (DeadlineExceeded, psycopg2.Error) as exc:
            raise DatabaseUnreachableError(
                self.dr.scrub(
                    f"DR database at {self.dr.describe()} not readable ({classify(exc)}: {_one_line(exc)})"
                )
            ) from None
        assert row is not None
        return status_from_row(row)

    def wait_for_replay(self, timeout_s: float) -> DbStatus:
        """Poll until replay caught up with receive, never beyond `timeout_s`; the last status.

        Returns at once for a primary (nothing to replay). Raises DatabaseUnreachableError only if
        not a single status could be read within the bound.
        """
        return self._poll_dr(lambda status: status.replay_lag_bytes == 0, timeout_s)

    def wait_for_position(self, lsn: str, timeout_s: float) -> DbStatus:
        """Poll until the standby received and replayed `lsn` (main's final position after the
        fence), never beyond `timeout_s`; the last status. Returns at once for a primary (its
        position cannot be compared with main's). DatabaseUnreachableError only if not a single
        status could be read within the bound."""
        return self._poll_dr(lambda status: reached_position(status, lsn), timeout_s)

    def _poll_dr(self, done: Callable[[DbStatus], bool], timeout_s: float) -> DbStatus:
        """Read the DR database's status every poll interval until it is a primary or `done`,
        never beyond `timeout_s`; the last status read (an unreadable status is tried again while
        time remains)."""
        deadline = time.monotonic() + timeout_s
        last: DbStatus | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                last = self.replica_status(timeout=min(self.timeout, remaining))
            except DatabaseUnreachableError:
                pass  # keep the last status read; try again while time remains
            if last is not None and (last.role == DbRole.PRIMARY or done(last)):
                return last
            time.sleep(max(0.0, min(self.poll_interval_s, deadline - time.monotonic())))
        if last is None:
            raise DatabaseUnreachableError(
                f"DR database at {self.dr.describe()}: no status within {timeout_s:g} s"
            )
        return last

    # -- promotion ------------------------------------------------------------------------------

    def promote(self, incident_id: str) -> PromotionReceipt:
        statement_s = self.promote_wait_s + self.timeout
        with self._session(self.dr, self.timeout, "DR database") as conn, conn.cursor() as cur:
            cur.execute("SET statement_timeout = %s", (f"{int(statement_s * 1000)}ms",))
            cur.execute("SET lock_timeout = %s", (f"{int(statement_s * 1000)}ms",))
            try:
                cur.execute("SELECT pg_advisory_lock(%s)", (PROMOTE_LOCK_KEY,))
            except psycopg2.errors.CannotConnectNow as exc:
                raise ReplicaNotReadyError(f"DR database not ready: {_one_line(exc)}") from None
            try:
                promoted = self._promote_locked(cur)
                return self._verify_and_record(conn, incident_id, promoted)
            finally:
                try:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (PROMOTE_LOCK_KEY,))
                except psycopg2.Error:
                    pass  # closing the session releases it anyway

    def _promote_locked(self, cur: Any) -> bool:
        """True when this call promoted; False when it already was a primary."""
        cur.execute("SELECT pg_is_in_recovery()")
        if not cur.fetchone()[0]:
            return False
        # pg_promote(true, n) looks for the end of recovery only every 100 ms; a promotion takes
        # a few ms here, so the wait is ours, with finer steps (issue 14): signal, then ask.
        try:
            cur.execute("SELECT pg_promote(false)")
        except psycopg2.errors.ObjectNotInPrerequisiteState:
            return False  # promoted by someone else between our check and our call
        except psycopg2.Error as exc:
            raise PromotionError(f"pg_promote failed on {self.dr.describe()}: {_one_line(exc)}") from None
        if not cur.fetchone()[0]:
            raise PromotionError(f"pg_promote on {self.dr.describe()} could not signal the promotion")
        deadline = time.monotonic() + self.promote_wait_s
        step = PROMOTE_POLL_FIRST_SECONDS
        while True:
            cur.execute("SELECT pg_is_in_recovery()")
            if not cur.fetchone()[0]:
                return True
            if time.monotonic() >= deadline:
                raise PromotionError(
                    f"pg_promote on {self.dr.describe()} did not finish within {self.promote_wait_s} s"
                )
            time.sleep(max(0.0, min(step, deadline - time.monotonic())))
            step = min(step * 2, POLL_INTERVAL_SECONDS)

    def _verify_and_record(self, conn: Any, incident_id: str, promoted: bool) -> PromotionReceipt:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            if cur.fetchone()[0]:
                raise PromotionError(f"{self.dr.describe()} is still in recovery after pg_promote")
        try:
            with self._session(self.dr, self.timeout, "DR database") as fresh, fresh.cursor() as cur:
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {RECORD_TABLE} "
                    "(incident_id text PRIMARY KEY, promoted_at timestamptz NOT NULL DEFAULT now())"
                )
                if promoted:
                    cur.execute(
                        f"INSERT INTO {RECORD_TABLE} (incident_id) VALUES (%s) ON CONFLICT DO NOTHING",
                        (incident_id,),
                    )
                cur.execute(f"SELECT incident_id FROM {RECORD_TABLE} ORDER BY promoted_at DESC LIMIT 1")
                row = cur.fetchone()
                restored = self._restore_logins(cur)
                cur.execute("SELECT pg_current_wal_lsn()::text")
                lsn = cur.fetchone()[0]
        except (psycopg2.Error, DatabaseUnreachableError) as exc:
            raise PromotionError(
                f"{self.dr.describe()} left recovery but a write failed: {_one_line(exc)}"
            ) from None
        promoted_by = row[0] if row else None
        if promoted:
            reason = (
                f"promoted {self.dr.describe()} for incident {incident_id}; it accepts writes at WAL {lsn}"
            )
        elif promoted_by == incident_id:
            reason = f"already promoted for incident {incident_id}; {self.dr.describe()} accepts writes"
        else:
            by = f"by incident {promoted_by}" if promoted_by else "outside quorum-dr"
            reason = f"already promoted ({by}); {self.dr.describe()} is a primary that accepts writes"
        if restored:
            reason += (
                f"; application role(s) {', '.join(restored)} may log in again (main's fence had "
                "replicated to it)"
            )
        return PromotionReceipt(
            incident_id=incident_id,
            promoted=promoted,
            already=not promoted,
            writable=True,
            lsn=lsn,
            promoted_by=promoted_by,
            at=time.time(),
            reason=reason,
            logins_restored=tuple(restored),
        )

    def _restore_logins(self, cur: Any) -> list[str]:
        """The fence took LOGIN from the application roles on main, and the standby replayed it:
        give it back on the promoted database, which is now the application's primary."""
        cur.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) AND NOT rolcanlogin ORDER BY rolname",
            (list(self.app_roles),),
        )
        blocked = [row[0] for row in cur.fetchall()]
        for role in blocked:
            cur.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))
        return blocked

    def verify_writable(self) -> WritableCheck:
        try:
            with self._session(self.dr, self.timeout, "DR database") as conn, conn.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery()")
                if cur.fetchone()[0]:
                    return WritableCheck(
                        writable=False, reason=f"{self.dr.describe()} is a standby (read-only)"
                    )
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {WRITE_CHECK_TABLE} "
                    "(id int PRIMARY KEY, checked_at timestamptz)"
                )
                cur.execute(
                    f"INSERT INTO {WRITE_CHECK_TABLE} VALUES (1, now()) "
                    "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at "
                    "RETURNING pg_current_wal_lsn()::text"
                )
                lsn = cur.fetchone()[0]
        except DatabaseUnreachableError as exc:
            return WritableCheck(writable=False, reason=str(exc))
        except psycopg2.Error as exc:
            return WritableCheck(
                writable=False, reason=f"a write on {self.dr.describe()} failed: {_one_line(exc)}"
            )
        return WritableCheck(writable=True, reason=f"{self.dr.describe()} committed a write at WAL {lsn}")

    # -- fencing ------------------------------------------------------------------------------

    def fence_old_primary(self, incident_id: str = "") -> FenceReceipt:
        """Fence main's database and prove it (DESIGN invariant 4b); `incident_id` only
        correlates the caller's log lines.

        Unreachable means a refused or timed-out connection, nothing else. On a reachable main
        the application roles lose LOGIN, every session of theirs is terminated (a session can
        undo `default_transaction_read_only`, it cannot log in again), new sessions default to
        read-only for good measure, and a check query proves the roles cannot log in and none of
        their sessions remain. Any failure on the way is a receipt that is not fenced.
        """
        old = self.old_primary
        if old is None:
            return FenceReceipt(
                reachable=True,
                fenced=False,
                reason="no endpoint of main's database was given to the promoter: it cannot be fenced",
            )
        address = old.describe()
        try:
            conn = psycopg2.connect(**old.connect_kwargs(self.fence_timeout, FENCE_APPLICATION_NAME))
        except psycopg2.Error as exc:
            failure = classify(exc)
            detail = old.scrub(f"{failure}: {_one_line(exc)}")
            if failure in UNREACHABLE:
                return FenceReceipt(
                    reachable=False,
                    fenced=False,
                    address=address,
                    failure_class=failure.value,
                    reason=f"main's database at {address} is unreachable ({detail}): it takes no "
                    f"writes from here, nothing to fence; {FENCE_HOOK_NOTE}",
                )
            return FenceReceipt(
                reachable=True,
                fenced=False,
                address=address,
                failure_class=failure.value,
                reason=f"main's database at {address} was neither shown unreachable nor fenced ({detail})",
            )
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                return self._fence(old, cur)
        except psycopg2.Error as exc:
            detail = old.scrub(f"{classify(exc)}: {_one_line(exc)}")
            return FenceReceipt(
                reachable=True,
                fenced=False,
                address=address,
                reason=f"main's database at {address} is reachable but fencing it failed ({detail})",
            )
        finally:
            conn.close()

    def _fence(self, old: PgEndpoint, cur: Any) -> FenceReceipt:
        address, roles = old.describe(), list(self.app_roles)
        # The fence must hold on main whatever a synchronous standby does.
        cur.execute("SET synchronous_commit = local")
        cur.execute("SELECT pg_is_in_recovery(), current_user")
        in_recovery, me = cur.fetchone()
        if in_recovery:
            return FenceReceipt(
                reachable=True,
                fenced=True,
                address=address,
                reason=f"main's database at {address} is a standby: it takes no writes",
            )
        if me in roles:
            return FenceReceipt(
                reachable=True,
                fenced=False,
                address=address,
                reason=f"main's database at {address} is reachable but not fenced: the application role "
                f"{me} is the role quorum-dr connects with (database.app_roles must not name it)",
            )
        cur.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)", (roles,))
        could_login = dict(cur.fetchall())
        missing = [role for role in roles if role not in could_login]
        if missing:
            return FenceReceipt(
                reachable=True,
                fenced=False,
                address=address,
                reason=f"main's database at {address} is reachable but not fenced: it has no role "
                f"{', '.join(missing)} (database.app_roles names the application's roles)",
            )
        for role in roles:  # NOLOGIN before ending sessions: a session ended cannot come back
            if could_login[role]:
                cur.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
        read_only = self._read_only_by_default(old, cur)
        terminated, remaining = self._end_sessions(cur, roles)
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) AND rolcanlogin", (roles,))
        may_login = sorted(row[0] for row in cur.fetchall())
        cur.execute("SELECT pg_current_wal_lsn()::text")
        final_lsn = cur.fetchone()[0]
        listed = ", ".join(roles)
        if may_login or remaining:
            problems = ([f"{', '.join(may_login)} may still log in"] if may_login else []) + (
                [f"{remaining} session(s) of {listed} remain"] if remaining else []
            )
            return FenceReceipt(
                reachable=True,
                fenced=False,
                terminated_sessions=terminated,
                address=address,
                roles=tuple(roles),
                final_lsn=final_lsn,
                reason=f"main's database at {address} is reachable but not fenced: {'; '.join(problems)}",
            )
        changed = [role for role in roles if could_login[role]]
        logins = f"LOGIN taken from {', '.join(changed)}" if changed else f"{listed} already without LOGIN"
        return FenceReceipt(
            reachable=True,
            fenced=True,
            terminated_sessions=terminated,
            address=address,
            roles=tuple(roles),
            final_lsn=final_lsn,
            reason=f"fenced main's database at {address}: application role(s) {listed} may not log in "
            f"({logins}), {terminated} session(s) ended and none of theirs remain, {read_only}; main's "
            f"final WAL position after the fence is {final_lsn}",
        )

    def _read_only_by_default(self, old: PgEndpoint, cur: Any) -> str:
        """For good measure only (a session can undo it): new sessions default to read-only."""
        try:
            cur.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            cur.execute("SELECT pg_reload_conf()")
        except psycopg2.errors.InsufficientPrivilege:
            return "new sessions not read-only by default (ALTER SYSTEM not permitted)"
        if self._wait_read_only(old):
            return "new sessions read-only by default"
        return "read-only default set (reload not yet seen)"

    def _end_sessions(self, cur: Any, roles: list[str]) -> tuple[int, int]:
        """Terminate every client session but quorum-dr's own, and every session of the
        application roles whatever it calls itself; (ended, still there at the deadline)."""
        deadline = time.monotonic() + self.fence_timeout
        ended = 0
        while True:
            cur.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, %s)) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
                "AND (usename = ANY(%s) OR application_name NOT LIKE 'quorum-dr%%')",
                (TERMINATE_WAIT_MS, roles),
            )
            ended += int(cur.fetchone()[0])
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = ANY(%s) AND pid <> pg_backend_pid()",
                (roles,),
            )
            remaining = int(cur.fetchone()[0])
            if remaining == 0 or time.monotonic() >= deadline:
                return ended, remaining
            time.sleep(self.poll_interval_s)

    def _wait_read_only(self, old: PgEndpoint) -> bool:
        deadline = time.monotonic() + self.fence_timeout
        while time.monotonic() < deadline:
            try:
                row = query_bounded(old, "SHOW default_transaction_read_only", self.fence_timeout)
            except (DeadlineExceeded, psycopg2.Error):
                return False
            if row and row[0] == "on":
                return True
            time.sleep(0.05)
        return False
