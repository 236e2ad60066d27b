"""The site agent's operations on the LOCAL PostgreSQL cluster, each answered with a reason sentence.

`LocalPostgres` knows where the cluster is (data directory, server binaries, host or socket
directory and port, the superuser to connect as) and which application roles a freeze takes
LOGIN from. Server tools (`pg_ctl`, `pg_controldata`, `pg_rewind`) run as the OS user that owns
the cluster: directly when the agent already is that user, through `runuser -u USER --` when it
runs as root.

- `status`: role, timeline, LSNs, lag, upstream, streaming, frozen; when stopped, pg_controldata's
  cluster state and latest checkpoint (after a clean stop, the final position).
- `freeze` / `unfreeze`: on a running primary, the application roles lose (regain) LOGIN and their
  sessions are ended; a check query proves it.
- `stop` (`pg_ctl stop -m fast`: the WAL senders ship everything up to the shutdown checkpoint),
  `start`.
- `follow PRIMARY`: check the primary first (IDENTIFY_SYSTEM with the replication credentials: it
  answers, and it is the same cluster), then `primary_conninfo` in postgresql.auto.conf +
  standby.signal, (re)start, and wait, bounded, until it streams the primary's timeline (a
  standby whose history diverged never does: it needs a rewind).
- `rewind PRIMARY`: stop cleanly, `pg_rewind --source-server` against the new primary (the
  cluster's own configuration files are kept: pg_rewind would copy the source's), then follow.
  pg_rewind needs `wal_log_hints = on` or data checksums on this cluster.
- `rebuild PRIMARY`: when a rewind cannot work: stop cleanly, move the data directory aside (it
  is kept, renamed `<data_dir>.before-rebuild-<UTC time>`, never deleted), `pg_basebackup -R -X
  stream` from the primary into a new one with the replication credentials, put the cluster's
  own configuration files back, then follow. A base backup that fails puts the old directory
  back in place. The data directory's parent must be writable by the agent and the data
  directory must not be a mount point (checked first: refused, nothing changed).
- `promote`: `pg_promote(wait => true)` on a standby, then the application roles get LOGIN back
  (the old primary's freeze replicated to it: the promoted database is the application's
  primary now). Already a primary: nothing to do, said so, and a frozen primary stays frozen
  (promote never unfences the old primary by mistake; `unfreeze` does that on purpose).

Wrong-state requests change nothing and come back as `Outcome(wrong_state=True)` (HTTP 409):
freeze / unfreeze of anything but a running primary; follow or rewind of a running primary that
is not frozen (it serves writes), or towards a primary that does not answer or is another
cluster; rewind of a cluster without wal_log_hints or data checksums; rebuild of a running
primary that is not frozen; promote of a stopped cluster. A follow or rewind that cannot make the
cluster a standby that way says so with `rebuild_needed` (the primary is another cluster, the
cluster has neither wal_log_hints nor data checksums, pg_rewind failed, the WAL it needs is gone
from the primary). Passwords (the superuser's, the replication and rewind credentials) are never
part of a reason: tool output is scrubbed.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql

from quorum_dr.agent.contract import DatabaseRole, SiteStatus, Upstream

APPLICATION_NAME = "quorum-dr-agent"
CONFIG_FILES = ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf")
CLEAN_STATES = ("shut down", "shut down in recovery")
POLL_SECONDS = 0.2
TERMINATE_WAIT_MS = 500
_CONNINFO_LINE = re.compile(r"^\s*primary_conninfo\s*=", re.IGNORECASE)
_LOG_PROBLEM = re.compile(r"\b(FATAL|PANIC|ERROR):")
_DIVERGED = re.compile(r"servers diverged at WAL location \S+ on timeline \d+")
_WAL_GONE = re.compile(r"requested WAL segment \S+ has already been removed")


class LocalPostgresError(RuntimeError):
    """The local cluster cannot be looked at (its data directory is unreadable, a tool is
    missing); the message says why."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    statement: float = 10.0
    stop: int = 60
    start: int = 60
    follow: float = 60.0
    rewind: float = 600.0
    rebuild: float = 3600.0
    promote: int = 60


@dataclass(frozen=True)
class LocalCluster:
    """Where the local cluster is and how the agent reaches it."""

    data_dir: Path
    bin_dir: Path
    host: str  # a socket directory or an address
    port: int
    superuser: str
    application_roles: tuple[str, ...]
    log_file: Path  # pg_ctl's server log (outside the data directory: pg_rewind replaces its files)
    superuser_password: str | None = field(default=None, repr=False)
    run_as: str | None = None  # the OS user of the server tools when the agent runs as root
    standby_name: str | None = None  # application_name this cluster gives its primary as a standby


@dataclass(frozen=True)
class Outcome:
    """What one operation did: ok, the sentence, the status after it; `wrong_state` when it was
    refused for the state it found (nothing changed); `rebuild_needed` when only a fresh base
    backup can make this cluster a standby of the primary asked for."""

    ok: bool
    reason: str
    status: SiteStatus
    wrong_state: bool = False
    rebuild_needed: bool = False


@dataclass(frozen=True)
class _Tool:
    returncode: int
    output: str  # stdout and stderr on one line, scrubbed of every password the agent knows
    stdout: str = ""  # as printed


class LocalPostgres:
    def __init__(
        self,
        cluster: LocalCluster,
        *,
        replication: Credentials | None = None,
        rewind: Credentials | None = None,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        self.cluster = cluster
        self.replication = replication
        self.rewind_credentials = rewind or replication
        self.timeouts = timeouts

    # -- server tools -------------------------------------------------------------------------

    def _prefix(self) -> list[str]:
        run_as = self.cluster.run_as
        if os.geteuid() == 0 and run_as and run_as != "root":
            return ["runuser", "-u", run_as, "--"]
        return []

    def _scrub(self, text: str) -> str:
        for secret in (
            self.cluster.superuser_password,
            self.replication.password if self.replication else None,
            self.rewind_credentials.password if self.rewind_credentials else None,
        ):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _tool(
        self, name: str, *args: str, timeout: float, password: str | None = None, log: bool = False
    ) -> _Tool:
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        env.pop("PGPASSWORD", None)
        if password is not None:
            env["PGPASSWORD"] = password
        command = [*self._prefix(), str(self.cluster.bin_dir / name), *args]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return _Tool(124, f"{name} did not finish within {timeout:g} s")
        except OSError as exc:
            raise LocalPostgresError(f"cannot run {name}: {exc.strerror or exc}") from None
        output = self._scrub(" ".join(f"{done.stdout}\n{done.stderr}".split()))
        if log and done.returncode != 0:
            output = f"{output} {self._log_problem()}".strip()
        return _Tool(done.returncode, output, done.stdout)

    def _log_problem(self) -> str:
        """The last FATAL / PANIC / ERROR line of the server log, to say why it did not come up."""
        try:
            with open(self.cluster.log_file, "rb") as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - 64 * 1024))
                lines = handle.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        problems = [line for line in lines if _LOG_PROBLEM.search(line)]
        return f"(server log: {self._scrub(problems[-1].strip())[:400]})" if problems else ""

    # -- the files of the data directory ---------------------------------------------------------

    def _owner(self) -> tuple[int, int]:
        info = os.stat(self.cluster.data_dir)
        return info.st_uid, info.st_gid

    def _write_owned(self, path: Path, data: bytes, mode: int = 0o600) -> None:
        """Write a file of the data directory atomically, owned like the data directory."""
        uid, gid = self._owner()
        temporary = path.with_name(f".{path.name}.quorum-dr-agent.tmp")
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if os.geteuid() == 0:
            os.chown(temporary, uid, gid)
        os.chmod(temporary, mode)
        os.replace(temporary, path)

    def _prepare_log_file(self) -> None:
        """pg_ctl appends to the log as the server's user: create it for that user when root."""
        log = self.cluster.log_file
        if not log.exists():
            log.parent.mkdir(parents=True, exist_ok=True)
            log.touch(mode=0o600)
            if os.geteuid() == 0:
                uid, gid = self._owner()
                os.chown(log, uid, gid)

    def _configure_standby(self, upstream: Upstream, credentials: Credentials) -> None:
        """primary_conninfo (with the replication credentials) in postgresql.auto.conf, where it
        replaces any earlier one, and standby.signal."""
        params: dict[str, Any] = {
            "host": upstream.host,
            "port": upstream.port,
            "user": credentials.username,
            "password": credentials.password,
            "connect_timeout": 5,
        }
        if self.cluster.standby_name:
            params["application_name"] = self.cluster.standby_name
        conninfo = psycopg2.extensions.make_dsn(**params)
        value = conninfo.replace("\\", "\\\\").replace("'", "''")
        auto = self.cluster.data_dir / "postgresql.auto.conf"
        try:
            lines = auto.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = [
                "# Do not edit this file manually!",
                "# It will be overwritten by the ALTER SYSTEM command.",
            ]
        kept = [line for line in lines if not _CONNINFO_LINE.match(line)]
        kept.append(f"primary_conninfo = '{value}'")
        self._write_owned(auto, ("\n".join(kept) + "\n").encode("utf-8"))
        signal = self.cluster.data_dir / "standby.signal"
        if not signal.exists():
            self._write_owned(signal, b"")

    def _save_config_files(self) -> dict[str, bytes]:
        saved = {}
        for name in CONFIG_FILES:
            path = self.cluster.data_dir / name
            if path.is_file():
                saved[name] = path.read_bytes()
        return saved

    def _restore_config_files(self, saved: dict[str, bytes]) -> None:
        for name, data in saved.items():
            self._write_owned(self.cluster.data_dir / name, data)

    # -- connecting -------------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Any]:
        statement_ms = int(self.timeouts.statement * 1000)
        conn = psycopg2.connect(
            host=self.cluster.host,
            port=self.cluster.port,
            dbname="postgres",
            user=self.cluster.superuser,
            password=self.cluster.superuser_password or "",
            connect_timeout=max(2, int(self.timeouts.connect)),
            application_name=APPLICATION_NAME,
            options=f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms}",
        )
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                # what the agent changes must hold here whatever a synchronous standby does
                cur.execute("SET synchronous_commit = local")
                yield cur
        finally:
            conn.close()

    def _error(self, exc: BaseException) -> str:
        return self._scrub(" ".join(str(exc).split()) or type(exc).__name__)[:400]

    # -- status -----------------------------------------------------------------------------------

    def running(self) -> bool:
        result = self._tool("pg_ctl", "status", "-D", str(self.cluster.data_dir), timeout=15)
        if result.returncode == 0:
            return True
        if result.returncode == 3:
            return False
        raise LocalPostgresError(f"pg_ctl status failed on {self.cluster.data_dir}: {result.output[:300]}")

    def status(self) -> SiteStatus:
        """The cluster as it is now. Raises LocalPostgresError only when it cannot be looked at."""
        if not self.running():
            return self._stopped_status()
        try:
            with self._session() as cur:
                return self._running_status(cur)
        except psycopg2.Error as exc:
            # It runs but does not answer: its role is what it was started as, and it is not
            # counted as frozen (unknown is not frozen).
            standby = (self.cluster.data_dir / "standby.signal").exists()
            return SiteStatus(
                role=DatabaseRole.STANDBY if standby else DatabaseRole.PRIMARY,
                running=True,
                reason=f"running but not answering queries ({self._error(exc)}); started as a "
                f"{'standby (standby.signal present)' if standby else 'primary (no standby.signal)'}",
            )

    def _controldata(self) -> dict[str, str]:
        result = self._tool("pg_controldata", "-D", str(self.cluster.data_dir), timeout=15)
        if result.returncode != 0:
            raise LocalPostgresError(
                f"pg_controldata failed on {self.cluster.data_dir}: {result.output[:300]}"
            )
        fields: dict[str, str] = {}
        for line in result.stdout.splitlines():
            name, _, value = line.partition(":")
            if value:
                fields[name.strip()] = value.strip()
        return fields

    def _stopped_status(self) -> SiteStatus:
        fields = self._controldata()
        state = fields.get("Database cluster state", "unknown")
        checkpoint = fields.get("Latest checkpoint location")
        timeline_text = fields.get("Latest checkpoint's TimeLineID", "")
        timeline = int(timeline_text) if timeline_text.isdigit() and int(timeline_text) > 0 else None
        clean = state in CLEAN_STATES
        standby = (self.cluster.data_dir / "standby.signal").exists()
        starts_as = "it starts as a standby (standby.signal present)" if standby else "it starts as a primary"
        if clean:
            where = (
                f"its final position is the shutdown checkpoint {checkpoint} on timeline {timeline}"
                if state == "shut down"
                else f"its latest restart point is {checkpoint} on timeline {timeline}"
            )
            reason = f"stopped cleanly (cluster state '{state}'): {where}; {starts_as}"
        else:
            reason = (
                f"stopped but not cleanly (cluster state '{state}', latest checkpoint {checkpoint} on "
                f"timeline {timeline}): crash recovery runs at the next start; {starts_as}"
            )
        return SiteStatus(
            role=DatabaseRole.STOPPED,
            running=False,
            timeline=timeline,
            checkpoint_lsn=checkpoint if checkpoint and "/" in checkpoint else None,
            shutdown_clean=clean,
            reason=reason,
        )

    def _running_status(self, cur: Any) -> SiteStatus:
        roles = list(self.cluster.application_roles)
        cur.execute(
            "SELECT pg_is_in_recovery(), "
            "(SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)), "
            "(SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s) AND rolcanlogin)",
            (roles, roles),
        )
        in_recovery, existing, may_login = cur.fetchone()
        frozen = bool(roles) and existing == len(roles) and may_login == 0
        if existing < len(roles):
            frozen_text = f"{len(roles) - existing} of the application roles {', '.join(roles)} do not exist"
        elif frozen:
            frozen_text = f"frozen: application role(s) {', '.join(roles)} may not log in"
        else:
            frozen_text = f"application role(s) {', '.join(roles)} may log in"
        if not in_recovery:
            cur.execute(
                "SELECT pg_current_wal_lsn()::text, "
                "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
            )
            lsn, timeline = cur.fetchone()
            writes = "takes no writes from the application" if frozen else "accepts writes"
            return SiteStatus(
                role=DatabaseRole.PRIMARY,
                running=True,
                timeline=timeline,
                current_lsn=lsn,
                frozen=frozen,
                reason=f"primary on timeline {timeline} at WAL {lsn}, {writes} ({frozen_text})",
            )
        cur.execute(
            # Right after a start the receive LSN is where streaming begins, below what was already
            # replayed from pg_wal: what the standby has is the greater of the two.
            "SELECT greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text, "
            "pg_last_wal_replay_lsn()::text, "
            "pg_wal_lsn_diff(greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), "
            "pg_last_wal_replay_lsn())::bigint, "
            "(SELECT timeline_id FROM pg_control_checkpoint()), "
            "current_setting('primary_conninfo'), "
            "(SELECT status FROM pg_stat_wal_receiver), (SELECT received_tli FROM pg_stat_wal_receiver)"
        )
        receive, replay, lag, checkpoint_tli, conninfo, receiver, received_tli = cur.fetchone()
        following = _upstream_of(conninfo)
        streaming = receiver == "streaming"
        timeline = received_tli or checkpoint_tli
        if streaming:
            stream_text = f"streaming from {following}"
        elif following:
            stream_text = f"not streaming (WAL receiver {receiver or 'not running'}; upstream {following})"
        else:
            stream_text = "not streaming (no primary_conninfo)"
        behind = f" ({lag} bytes received and not yet replayed)" if lag is not None else ""
        return SiteStatus(
            role=DatabaseRole.STANDBY,
            running=True,
            timeline=timeline,
            receive_lsn=receive,
            replay_lsn=replay,
            lag_bytes=lag,
            following=following,
            streaming=streaming,
            frozen=frozen,
            reason=f"standby on timeline {timeline}, {stream_text}, replayed up to {replay}{behind}",
        )

    # -- operations -------------------------------------------------------------------------------

    def freeze(self) -> Outcome:
        before = self.status()
        refusal = self._needs_running_primary(before, "freeze")
        if refusal:
            return refusal
        roles = list(self.cluster.application_roles)
        try:
            with self._session() as cur:
                cur.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)", (roles,))
                could_login = dict(cur.fetchall())
                missing = [role for role in roles if role not in could_login]
                if missing:
                    return Outcome(
                        False,
                        f"not frozen, nothing changed: there is no role {', '.join(missing)} (the agent's "
                        "application_roles must name the application's login roles)",
                        before,
                        wrong_state=True,
                    )
                for role in roles:  # NOLOGIN before ending sessions: an ended session cannot come back
                    if could_login[role]:
                        cur.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
                ended, remaining = self._end_sessions(cur, roles)
        except psycopg2.Error as exc:
            return Outcome(False, f"freeze failed: {self._error(exc)}", self.status())
        after = self.status()
        changed = [role for role in roles if could_login[role]]
        logins = f"LOGIN taken from {', '.join(changed)}" if changed else "LOGIN was already taken"
        if not after.frozen or remaining:
            return Outcome(
                False,
                f"not frozen: {logins}, {ended} session(s) ended, {remaining} remain; {after.reason}",
                after,
            )
        return Outcome(
            True,
            f"frozen: application role(s) {', '.join(roles)} may not log in ({logins}), {ended} session(s) "
            f"ended and none remain (checked); {after.reason}",
            after,
        )

    def _end_sessions(self, cur: Any, roles: list[str]) -> tuple[int, int]:
        deadline = time.monotonic() + self.timeouts.statement
        ended = 0
        while True:
            cur.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, %s)) FROM pg_stat_activity "
                "WHERE usename = ANY(%s) AND pid <> pg_backend_pid()",
                (TERMINATE_WAIT_MS, roles),
            )
            ended += cur.fetchone()[0]
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = ANY(%s) AND pid <> pg_backend_pid()",
                (roles,),
            )
            remaining = int(cur.fetchone()[0])
            if remaining == 0 or time.monotonic() >= deadline:
                return ended, remaining
            time.sleep(POLL_SECONDS)

    def unfreeze(self) -> Outcome:
        before = self.status()
        refusal = self._needs_running_primary(before, "unfreeze")
        if refusal:
            return refusal
        try:
            with self._session() as cur:
                restored = self._give_login_back(cur)
        except psycopg2.Error as exc:
            return Outcome(False, f"unfreeze failed: {self._error(exc)}", self.status())
        after = self.status()
        roles = ", ".join(self.cluster.application_roles)
        if after.frozen:
            return Outcome(False, f"still frozen after giving LOGIN back to {roles}: {after.reason}", after)
        given = f"LOGIN given back to {', '.join(restored)}" if restored else "no role was without LOGIN"
        return Outcome(
            True, f"unfrozen: application role(s) {roles} may log in ({given}); {after.reason}", after
        )

    def _give_login_back(self, cur: Any) -> list[str]:
        cur.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) AND NOT rolcanlogin ORDER BY rolname",
            (list(self.cluster.application_roles),),
        )
        blocked = [row[0] for row in cur.fetchall()]
        for role in blocked:
            cur.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))
        return blocked

    def _needs_running_primary(self, status: SiteStatus, what: str) -> Outcome | None:
        done = {"freeze": "frozen", "unfreeze": "unfrozen"}[what]
        if status.role == DatabaseRole.STOPPED:
            return Outcome(
                False,
                f"not {done}, nothing changed: the cluster is stopped (it takes no writes now); the "
                f"application roles' LOGIN can change only while it runs: start it first",
                status,
                wrong_state=True,
            )
        if status.role == DatabaseRole.STANDBY:
            return Outcome(
                False,
                f"not {done}, nothing changed: this is a standby, read-only, whose roles follow its "
                f"primary's catalog; {what} the primary",
                status,
                wrong_state=True,
            )
        return None

    def stop(self) -> Outcome:
        before = self.status()
        if not before.running:
            return Outcome(True, f"already stopped: {before.reason}", before)
        result = self._tool(
            "pg_ctl",
            "stop",
            "-D",
            str(self.cluster.data_dir),
            "-m",
            "fast",
            "-w",
            "-t",
            str(self.timeouts.stop),
            timeout=self.timeouts.stop + 15,
        )
        after = self.status()
        if after.running:
            return Outcome(False, f"pg_ctl stop -m fast failed: {result.output[:400]}; {after.reason}", after)
        if not after.shutdown_clean:
            return Outcome(False, f"stopped, but not cleanly: {after.reason}", after)
        return Outcome(True, f"stopped with pg_ctl stop -m fast: {after.reason}", after)

    def start(self) -> Outcome:
        before = self.status()
        if before.running:
            return Outcome(True, f"already running: {before.reason}", before)
        return self._start("started")

    def _start(self, verb: str) -> Outcome:
        self._prepare_log_file()
        result = self._tool(
            "pg_ctl",
            "start",
            "-D",
            str(self.cluster.data_dir),
            "-l",
            str(self.cluster.log_file),
            "-w",
            "-t",
            str(self.timeouts.start),
            timeout=self.timeouts.start + 15,
            log=True,
        )
        after = self.status()
        if result.returncode != 0 or not after.running:
            return Outcome(False, f"pg_ctl start failed: {result.output[:600]}; {after.reason}", after)
        return Outcome(True, f"{verb}: {after.reason}", after)

    def follow(self, upstream: Upstream) -> Outcome:
        before = self.status()
        refusal = self._serves_writes(before, "follow")
        if refusal:
            return refusal
        if self.replication is None:
            return Outcome(
                False,
                "not following, nothing changed: the agent has no replication credentials "
                "(replication_credentials_file)",
                before,
                wrong_state=True,
            )
        identity = self._identify(upstream, self.replication)
        if isinstance(identity, str):
            return Outcome(
                False,
                f"not following, nothing changed: {identity}",
                before,
                wrong_state=True,
                rebuild_needed="another cluster" in identity,
            )
        timeline = identity
        if (
            before.role == DatabaseRole.STANDBY
            and before.streaming
            and before.following == upstream.address()
            and before.timeline == timeline
        ):
            return Outcome(True, f"already follows {upstream.address()}: {before.reason}", before)
        if before.running:
            stopped = self.stop()
            if not stopped.ok:
                return Outcome(False, f"not following: {stopped.reason}", stopped.status)
        return self._follow_stopped(upstream, self.replication, timeline, "")

    def _identify(self, upstream: Upstream, credentials: Credentials) -> int | str:
        """The upstream's timeline (IDENTIFY_SYSTEM over a replication connection, with the
        credentials the standby will stream with), or why it cannot be followed: unreachable, or
        another cluster (its system identifier is not this one's)."""
        identity = self._identify_system(upstream, credentials)
        if isinstance(identity, str):
            return identity
        system_id, timeline = identity
        other = self._another_cluster(upstream, system_id)
        return other if other is not None else timeline

    def _another_cluster(self, upstream: Upstream, system_id: str) -> str | None:
        mine = self._controldata().get("Database system identifier")
        if system_id == mine:
            return None
        return (
            f"{upstream.address()} is another cluster (system identifier {system_id}, this one {mine}): "
            "it cannot be followed; this cluster needs a fresh base backup of it"
        )

    def _identify_system(self, upstream: Upstream, credentials: Credentials) -> tuple[str, int] | str:
        """The upstream's system identifier and timeline (IDENTIFY_SYSTEM), or why not."""
        try:
            conn = psycopg2.connect(
                host=upstream.host,
                port=upstream.port,
                user=credentials.username,
                password=credentials.password,
                connect_timeout=max(2, int(self.timeouts.connect)),
                application_name=APPLICATION_NAME,
                connection_factory=psycopg2.extras.PhysicalReplicationConnection,
            )
        except psycopg2.Error as exc:
            return f"cannot open a replication connection to {upstream.address()}: {self._error(exc)}"
        try:
            with conn.cursor() as cur:
                cur.execute("IDENTIFY_SYSTEM")
                system_id, timeline = cur.fetchone()[:2]
        except psycopg2.Error as exc:
            return f"IDENTIFY_SYSTEM on {upstream.address()} failed: {self._error(exc)}"
        finally:
            conn.close()
        return str(system_id), int(timeline)

    def _follow_stopped(
        self, upstream: Upstream, credentials: Credentials, timeline: int, done: str
    ) -> Outcome:
        """Configure the stopped cluster as a standby of `upstream`, start it, and wait (bounded)
        until it streams the upstream's timeline: a standby whose history diverged streams the old
        timeline at best, and never that one."""
        try:
            self._configure_standby(upstream, credentials)
        except OSError as exc:
            return Outcome(False, f"{done}could not configure it as a standby: {exc}", self.status())
        started = self._start("started as a standby")
        if not started.ok:
            return Outcome(
                False, f"{done}not following {upstream.address()}: {started.reason}", started.status
            )
        deadline = time.monotonic() + self.timeouts.follow
        status = started.status
        while not (status.role == DatabaseRole.STANDBY and status.streaming and status.timeline == timeline):
            if time.monotonic() >= deadline:
                problem = self._log_problem()
                gone = _WAL_GONE.search(problem)
                needs = (
                    f"the WAL it needs is gone from the primary ({gone.group(0)}): only a fresh base backup "
                    "(rebuild) can make it a standby"
                    if gone
                    else "a history that diverged needs a rewind"
                )
                return Outcome(
                    False,
                    f"{done}started as a standby of {upstream.address()} but not streaming its timeline "
                    f"{timeline} after {self.timeouts.follow:g} s ({needs}): "
                    f"{status.reason} {problem}".strip(),
                    status,
                    rebuild_needed=gone is not None,
                )
            time.sleep(POLL_SECONDS)
            status = self.status()
        return Outcome(True, f"{done}follows {upstream.address()}: {status.reason}", status)

    def _serves_writes(self, status: SiteStatus, what: str) -> Outcome | None:
        if status.role == DatabaseRole.PRIMARY and not status.frozen:
            return Outcome(
                False,
                f"refused to {what}, nothing changed: this is a running primary that serves writes "
                f"({status.reason}); freeze it (or stop it) first",
                status,
                wrong_state=True,
            )
        return None

    def rewind(self, upstream: Upstream) -> Outcome:
        before = self.status()
        refusal = self._serves_writes(before, "rewind")
        if refusal:
            return refusal
        credentials = self.rewind_credentials
        if self.replication is None or credentials is None:
            return Outcome(
                False,
                "not rewound, nothing changed: the agent has no replication credentials "
                "(replication_credentials_file)",
                before,
                wrong_state=True,
            )
        unrewindable = self._cannot_rewind()
        if unrewindable is not None:
            return Outcome(
                False,
                f"not rewound, nothing changed: {unrewindable}",
                before,
                wrong_state=True,
                rebuild_needed=True,
            )
        source_problem = self._source_ready(upstream, credentials)
        identity = self._identify(upstream, self.replication) if source_problem is None else source_problem
        if isinstance(identity, str):
            return Outcome(
                False,
                f"not rewound, nothing changed: {identity}",
                before,
                wrong_state=True,
                rebuild_needed=source_problem is None and "another cluster" in identity,
            )
        if before.running:
            stopped = self.stop()
            if not stopped.ok:
                return Outcome(False, f"not rewound: {stopped.reason}", stopped.status)
        saved = self._save_config_files()
        source = psycopg2.extensions.make_dsn(
            host=upstream.host,
            port=upstream.port,
            user=credentials.username,
            dbname="postgres",
            connect_timeout=5,
            application_name=APPLICATION_NAME,
        )
        try:
            result = self._tool(
                "pg_rewind",
                f"--target-pgdata={self.cluster.data_dir}",
                f"--source-server={source}",
                timeout=self.timeouts.rewind,
                password=credentials.password,
            )
        finally:
            self._restore_config_files(saved)  # pg_rewind copies the source's configuration files
        if result.returncode != 0:
            return Outcome(
                False,
                f"pg_rewind against {upstream.address()} failed: {result.output[:600]}",
                self.status(),
                rebuild_needed=True,
            )
        diverged = _DIVERGED.search(result.output)
        if diverged:
            what = f"rewound against {upstream.address()} ({diverged.group(0)}); "
        elif "no rewind required" in result.output:
            what = f"no rewind was required against {upstream.address()}; "
        else:
            what = f"rewound against {upstream.address()}; "
        return self._follow_stopped(upstream, self.replication, identity, what)

    def _cannot_rewind(self) -> str | None:
        """Why pg_rewind cannot work on this cluster, from its control file (checked before it is
        stopped): it needs wal_log_hints or data checksums, as the server last started with."""
        fields = self._controldata()
        if fields.get("wal_log_hints setting") == "off" and fields.get("Data page checksum version") == "0":
            return (
                "this cluster runs with neither wal_log_hints nor data checksums (pg_controldata), and "
                "pg_rewind needs one of them: it cannot be rewound, only rebuilt from a base backup"
            )
        return None

    def _source_ready(self, upstream: Upstream, credentials: Credentials) -> str | None:
        """None when pg_rewind can trust the source's control file; else why not.

        pg_rewind reads the source's timeline from its control file, which a promotion updates
        only at the next checkpoint: against a source promoted moments ago it would see "the same
        timeline" and rewind nothing. Such a source gets a CHECKPOINT first (the rewind role needs
        pg_checkpoint or superuser for that)."""
        statement_ms = int(self.timeouts.statement * 1000)
        try:
            conn = psycopg2.connect(
                host=upstream.host,
                port=upstream.port,
                dbname="postgres",
                user=credentials.username,
                password=credentials.password,
                connect_timeout=max(2, int(self.timeouts.connect)),
                application_name=APPLICATION_NAME,
                options=f"-c statement_timeout={statement_ms}",
            )
        except psycopg2.Error as exc:
            return f"cannot connect to the source {upstream.address()}: {self._error(exc)}"
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery(), (SELECT timeline_id FROM pg_control_checkpoint())")
                in_recovery, control_timeline = cur.fetchone()
                if in_recovery:
                    return None
                cur.execute(
                    "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
                )
                timeline = cur.fetchone()[0]
                if timeline == control_timeline:
                    return None
                try:
                    cur.execute("CHECKPOINT")
                except psycopg2.errors.InsufficientPrivilege:
                    return (
                        f"the source {upstream.address()} is on timeline {timeline} but its control file "
                        f"still says {control_timeline} (promoted, no checkpoint since) and the rewind role "
                        "may not run CHECKPOINT: grant it pg_checkpoint, or run CHECKPOINT there"
                    )
        except psycopg2.Error as exc:
            return f"cannot read the source {upstream.address()}'s timeline: {self._error(exc)}"
        finally:
            conn.close()
        return None

    def rebuild(self, upstream: Upstream) -> Outcome:
        before = self.status()
        refusal = self._serves_writes(before, "rebuild")
        if refusal:
            return refusal
        credentials = self.replication
        if credentials is None:
            return Outcome(
                False,
                "not rebuilt, nothing changed: the agent has no replication credentials "
                "(replication_credentials_file)",
                before,
                wrong_state=True,
            )
        identity = self._identify_system(upstream, credentials)
        problem = identity if isinstance(identity, str) else self._cannot_move_aside()
        if problem is not None:
            return Outcome(False, f"not rebuilt, nothing changed: {problem}", before, wrong_state=True)
        assert not isinstance(identity, str)
        system_id, timeline = identity
        other = self._another_cluster(upstream, system_id)
        if before.running:
            stopped = self.stop()
            if not stopped.ok:
                return Outcome(False, f"not rebuilt: {stopped.reason}", stopped.status)
        saved = self._save_config_files()
        owner = self._owner()
        kept = _aside(self.cluster.data_dir, "before-rebuild")
        try:
            os.rename(self.cluster.data_dir, kept)
        except OSError as exc:
            return Outcome(
                False,
                f"not rebuilt: cannot move {self.cluster.data_dir} aside to {kept}: {exc.strerror or exc}; "
                "the cluster is stopped, its data directory untouched",
                self.status(),
            )
        result = self._base_backup(upstream, credentials, owner)
        if result is not None:
            return self._put_back(kept, f"pg_basebackup from {upstream.address()} failed: {result}")
        try:
            self._restore_config_files(saved)  # the base backup holds the primary's
        except OSError as exc:
            return Outcome(
                False,
                f"rebuilt from {upstream.address()} but could not put the cluster's own configuration files "
                f"back ({exc}); the old data directory is kept at {kept}",
                self.status(),
            )
        new = f", a new cluster: {other}" if other else ""
        done = (
            f"rebuilt from a fresh base backup of {upstream.address()} (pg_basebackup -R -X stream{new}); "
            f"the old data directory is kept at {kept}; "
        )
        return self._follow_stopped(upstream, credentials, timeline, done)

    def _cannot_move_aside(self) -> str | None:
        """Why the data directory cannot be renamed next to itself, or None."""
        data_dir = self.cluster.data_dir
        if os.path.ismount(data_dir):
            return (
                f"{data_dir} is a mount point: it cannot be moved aside (mount its parent instead, or move "
                "it by hand)"
            )
        if not os.access(data_dir.parent, os.W_OK | os.X_OK):
            return (
                f"the agent may not write {data_dir.parent}, where the old data directory is kept (the "
                "systemd unit's ReadWritePaths must name the parent of the data directory)"
            )
        return None

    def _base_backup(
        self, upstream: Upstream, credentials: Credentials, owner: tuple[int, int]
    ) -> str | None:
        """pg_basebackup into a new, empty data directory owned like the old one; None when it
        worked, else what went wrong."""
        data_dir = self.cluster.data_dir
        try:
            os.mkdir(data_dir, 0o700)
            os.chmod(data_dir, 0o700)
            if os.geteuid() == 0:
                os.chown(data_dir, *owner)
        except OSError as exc:
            return f"cannot create the new data directory {data_dir}: {exc.strerror or exc}"
        params: dict[str, Any] = {
            "host": upstream.host,
            "port": upstream.port,
            "user": credentials.username,
            "connect_timeout": 5,
            "application_name": self.cluster.standby_name or APPLICATION_NAME,
        }
        result = self._tool(
            "pg_basebackup",
            "-D",
            str(data_dir),
            "-d",
            psycopg2.extensions.make_dsn(**params),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-w",
            timeout=self.timeouts.rebuild,
            password=credentials.password,
        )
        return None if result.returncode == 0 else result.output[:600]

    def _put_back(self, kept: Path, failure: str) -> Outcome:
        """A base backup that failed: move what it left aside too, and the old directory back."""
        data_dir = self.cluster.data_dir
        left = ""
        if data_dir.exists():
            try:
                data_dir.rmdir()  # empty: pg_basebackup removed what it wrote
            except OSError:
                partial = _aside(data_dir, "failed-rebuild")
                os.rename(data_dir, partial)
                left = f" (what it wrote is at {partial})"
        try:
            os.rename(kept, data_dir)
        except OSError as exc:
            return Outcome(
                False,
                f"not rebuilt: {failure}{left}; the old data directory could NOT be put back: it is at "
                f"{kept} ({exc.strerror or exc})",
                _stopped_without_data(data_dir),
            )
        return Outcome(
            False,
            f"not rebuilt: {failure}{left}; the old data directory is back in place: {self.status().reason}",
            self.status(),
        )

    def promote(self) -> Outcome:
        before = self.status()
        if before.role == DatabaseRole.STOPPED:
            return Outcome(
                False,
                f"not promoted, nothing changed: the cluster is stopped; start it (as a standby) first; "
                f"{before.reason}",
                before,
                wrong_state=True,
            )
        if before.role == DatabaseRole.PRIMARY:
            return Outcome(True, f"already a primary, nothing to promote: {before.reason}", before)
        promoted = True
        try:
            with self._session() as cur:
                cur.execute(f"SET statement_timeout = '{(self.timeouts.promote + 5) * 1000}ms'")
                try:
                    cur.execute("SELECT pg_promote(true, %s)", (self.timeouts.promote,))
                    finished = bool(cur.fetchone()[0])
                except psycopg2.errors.ObjectNotInPrerequisiteState:
                    promoted, finished = False, True  # promoted by someone else meanwhile
                if not finished:
                    return Outcome(
                        False,
                        f"pg_promote did not finish within {self.timeouts.promote} s",
                        self.status(),
                    )
                restored = self._give_login_back(cur)
        except psycopg2.Error as exc:
            return Outcome(False, f"promote failed: {self._error(exc)}", self.status())
        after = self.status()
        if after.role != DatabaseRole.PRIMARY:
            return Outcome(False, f"still not a primary after pg_promote: {after.reason}", after)
        done = "promoted with pg_promote" if promoted else "already promoted (by another caller)"
        logins = (
            f"; application role(s) {', '.join(restored)} may log in again (the old primary's freeze had "
            "replicated to it)"
            if restored
            else ""
        )
        return Outcome(True, f"{done}: {after.reason}{logins}", after)


def _upstream_of(conninfo: str | None) -> str | None:
    """host:port of a primary_conninfo, never its password."""
    if not conninfo:
        return None
    try:
        params = psycopg2.extensions.parse_dsn(conninfo)
    except psycopg2.ProgrammingError:
        return "(unreadable primary_conninfo)"
    return f"{params.get('host') or params.get('hostaddr') or 'localhost'}:{params.get('port') or 5432}"


def _aside(data_dir: Path, why: str) -> Path:
    """A free name next to the data directory: `<name>.<why>-<UTC time>`."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = data_dir.with_name(f"{data_dir.name}.{why}-{stamp}")
    number = 1
    while path.exists():
        number += 1
        path = data_dir.with_name(f"{data_dir.name}.{why}-{stamp}-{number}")
    return path


def _stopped_without_data(data_dir: Path) -> SiteStatus:
    return SiteStatus(
        role=DatabaseRole.STOPPED,
        running=False,
        reason=f"stopped, and there is no data directory at {data_dir}",
    )


def os_user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def tools_missing(
    bin_dir: Path, tools: Sequence[str] = ("pg_ctl", "pg_controldata", "pg_rewind", "pg_basebackup")
) -> list[str]:
    return [tool for tool in tools if shutil.which(tool, path=str(bin_dir)) is None]
