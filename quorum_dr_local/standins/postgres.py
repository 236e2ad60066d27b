"""Real local PostgreSQL 15 clusters for tests and the drill: a primary and streaming standbys.

`make_primary` runs `initdb`, starts the server and creates the roles every part of quorum-dr
uses (a superuser with a password, a replication user, a monitor user, an application user that
owns the application database). `make_standby` copies a primary with `pg_basebackup -R -X stream`
and starts it streaming. As root the server binaries run as `postgres` through
`runuser -u postgres --` (data directories are owned by `postgres`, mode 0700); otherwise they run
as the current user.

Each server is our child process (through `runuser`), started in its own session so a Ctrl-C in
the terminal does not reach it; it is stopped by the PID it wrote into `postmaster.pid`, and a
stopped or crashed cluster tears down without error. Nothing here listens beyond 127.0.0.1 unless
the caller names extra addresses (a network-namespace address in the drill).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import psycopg2
from psycopg2 import sql

DEFAULT_BIN_DIR = Path(os.environ.get("QUORUM_DR_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVICE_USER = "postgres"
SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
MONITOR_USER = "quorum_monitor"
APP_USER = "app"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class SandboxError(RuntimeError):
    """A sandbox cluster could not be created, started or stopped; the message says why."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def as_secret(self) -> dict[str, str]:
        """The JSON shape of a database secret: what probes and the promoter read."""
        return {"username": self.username, "password": self.password}


@dataclass(frozen=True)
class Roles:
    superuser: Credentials
    replication: Credentials
    monitor: Credentials
    app: Credentials

    @classmethod
    def generate(cls) -> Roles:
        def new(user: str) -> Credentials:
            return Credentials(user, secrets.token_urlsafe(18))

        return cls(new(SUPERUSER), new(REPLICATION_USER), new(MONITOR_USER), new(APP_USER))


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _as_root() -> bool:
    return os.geteuid() == 0


def _server_prefix() -> list[str]:
    return ["runuser", "-u", SERVICE_USER, "--"] if _as_root() else []


def prepare_base_dir(base_dir: Path) -> Path:
    """Create `base_dir` and, as root, hand it to `postgres`, who must be able to reach it."""
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    if _as_root():
        shutil.chown(base_dir, SERVICE_USER, SERVICE_USER)
        probe = subprocess.run([*_server_prefix(), "test", "-w", str(base_dir)], capture_output=True)
        if probe.returncode != 0:
            raise SandboxError(
                f"user {SERVICE_USER!r} cannot write {base_dir}: a parent directory is not "
                "traversable; use a base directory under /tmp"
            )
    return base_dir


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie is dead too, whoever fails to reap it
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _parent(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("PPid:"):
                if int(line.split()[1]) == pid:
                    found.append(int(status.parent.name))
                break
    return found


@dataclass
class PgCluster:
    """One PostgreSQL data directory and the server running on it."""

    name: str
    base_dir: Path
    port: int
    roles: Roles
    app_db: str = "app"
    bin_dir: Path = DEFAULT_BIN_DIR
    listen_addresses: tuple[str, ...] = ("127.0.0.1",)
    command_prefix: tuple[str, ...] = ()
    """Prepended to the server command, e.g. ("ip", "netns", "exec", "ns-main") in the drill."""
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    primary_conninfo: str | None = field(default=None, repr=False)

    # -- where things are -------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.base_dir / self.name

    @property
    def log_path(self) -> Path:
        return self.base_dir / f"{self.name}.log"

    @property
    def host(self) -> str:
        """The address clients use: the first listen address (127.0.0.1 for a wildcard)."""
        first = self.listen_addresses[0] if self.listen_addresses else "127.0.0.1"
        return "127.0.0.1" if first in ("*", "0.0.0.0") else first

    def bin(self, tool: str) -> str:
        return str(self.bin_dir / tool)

    def pid(self) -> int | None:
        """The postmaster's PID as it wrote it into postmaster.pid, or None when not running."""
        try:
            text = (self.data_dir / "postmaster.pid").read_text()
        except (FileNotFoundError, PermissionError):
            return None
        first = text.split("\n", 1)[0].strip()
        if not first.isdigit():
            return None
        pid = int(first)
        return None if _process_gone(pid) else pid

    def is_running(self) -> bool:
        return self.pid() is not None

    # -- connecting ---------------------------------------------------------------------------

    def conn_params(self, who: str = "superuser", dbname: str | None = None) -> dict[str, Any]:
        creds: Credentials = getattr(self.roles, who)
        return {
            "host": self.host,
            "port": self.port,
            "dbname": dbname or (self.app_db if who == "app" else "postgres"),
            "user": creds.username,
            "password": creds.password,
        }

    def dsn(self, who: str = "superuser", dbname: str | None = None) -> str:
        """A libpq connection string (with the password: keep it out of logs)."""
        return psycopg2.extensions.make_dsn(**self.conn_params(who, dbname))

    @contextmanager
    def connect(self, who: str = "superuser", dbname: str | None = None) -> Iterator[Any]:
        conn = psycopg2.connect(**self.conn_params(who, dbname), connect_timeout=3)
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.close()

    def sql(self, query: str | sql.Composable, args: Sequence[Any] | None = None, **how: str) -> list[tuple]:
        """Run one statement in autocommit; return its rows ([] when it returns none)."""
        with self.connect(**how) as conn, conn.cursor() as cur:
            cur.execute(query, args)
            return list(cur.fetchall()) if cur.description else []

    def value(self, query: str, args: Sequence[Any] | None = None, **how: str) -> Any:
        rows = self.sql(query, args, **how)
        return rows[0][0] if rows else None

    def psql(self, query: str, who: str = "superuser", dbname: str | None = None) -> str:
        """Run `query` through the real psql binary; return its unaligned output."""
        params = self.conn_params(who, dbname)
        env = {**os.environ, "PGPASSWORD": params.pop("password"), "PGCONNECT_TIMEOUT": "3"}
        out = subprocess.run(
            [
                self.bin("psql"),
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                psycopg2.extensions.make_dsn(**params),
                "-c",
                query,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise SandboxError(f"psql on {self.name}: {out.stderr.strip()}")
        return out.stdout.strip()

    # -- life cycle -----------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        if self.is_running():
            return
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._process = subprocess.Popen(
                [*self.command_prefix, *_server_prefix(), self.bin("postgres"), "-D", str(self.data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SandboxError(f"{self.name} exited at start: {self.log_tail()}")
            # A crashed server leaves a postmaster.pid saying "ready": trust only our own child's.
            pid = self.pid()
            if pid is not None and self._started_by_us(pid) and self._status_line() in ("ready", "standby"):
                return
            time.sleep(0.05)
        self.stop()
        raise SandboxError(f"{self.name} not ready within {timeout:g} s: {self.log_tail()}")

    def stop(self, mode: str = "fast", timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the server (fast shutdown, then immediate, then SIGKILL); no error if not running."""
        first = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        for sig, wait in ((first, timeout), (signal.SIGQUIT, timeout / 2), (signal.SIGKILL, timeout / 2)):
            pid = self.pid()
            if pid is None:
                break
            self._signal(pid, sig)
            if self._wait_gone(pid, wait):
                break
        self._reap()

    def crash(self) -> None:
        """kill -9 the postmaster and every process of its session: a site losing power."""
        pid = self.pid()
        if pid is not None:
            # Backends are their own process groups: kill them with the postmaster, not after it.
            for child in [*_children(pid), pid]:
                self._signal(child, signal.SIGKILL)
            self._wait_gone(pid, STOP_TIMEOUT_S)
        self._reap()

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop the server if it runs and remove its data directory and log."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _started_by_us(self, pid: int) -> bool:
        if self._process is None:
            return False
        for _ in range(4):  # the postmaster, runuser, and any wrapper of command_prefix
            if pid == self._process.pid:
                return True
            parent = _parent(pid)
            if parent is None:
                return False
            pid = parent
        return False

    def _status_line(self) -> str | None:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        return lines[7].strip() if len(lines) > 7 else None

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _process_gone(pid):
                return True
            time.sleep(0.02)
        return _process_gone(pid)

    def _reap(self) -> None:
        if self._process is not None:
            try:
                self._process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT_S)
            self._process = None

    # -- configuration and replication faults ------------------------------------------------------

    def append_config(self, settings: dict[str, Any], file: str = "postgresql.auto.conf") -> None:
        """Append settings to a config file of the data directory (later lines win)."""
        lines = [f"{key} = {_conf_value(value)}" for key, value in settings.items()]
        with open(self.data_dir / file, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")

    def alter_system(self, setting: str, value: Any | None) -> None:
        """ALTER SYSTEM SET (or RESET when value is None) and reload."""
        if value is None:
            self.sql(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(setting)))
        else:
            self.sql(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(setting), sql.Literal(value)))
        self.sql("SELECT pg_reload_conf()")

    def in_recovery(self) -> bool:
        return bool(self.value("SELECT pg_is_in_recovery()"))

    def pause_replay(self) -> None:
        """Standby: stop applying received WAL (receive goes on): replay lag grows with writes."""
        self.sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_resume()")

    def cut_streaming(self, primary: PgCluster | None = None) -> None:
        """Standby: point the WAL receiver at a closed port and drop the primary's walsender."""
        dead = f"host=127.0.0.1 port={free_port()} user={REPLICATION_USER} connect_timeout=1"
        self.alter_system("primary_conninfo", dead)
        if primary is not None and primary.is_running():
            primary.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'walsender'"
            )

    def restore_streaming(self) -> None:
        if self.primary_conninfo is None:
            raise SandboxError(f"{self.name} is not a standby made by make_standby")
        self.alter_system("primary_conninfo", self.primary_conninfo)

    def wait_until(self, query: str, timeout: float = 10.0, **how: str) -> Any:
        """Poll `query` until it returns a true first value; return it (SandboxError on timeout)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.value(query, **how)
            except psycopg2.Error as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.05)
        raise SandboxError(f"{self.name}: {query!r} still {last!r} after {timeout:g} s")

    def wait_streaming(self, timeout: float = 10.0) -> None:
        self.wait_until("SELECT status = 'streaming' FROM pg_stat_wal_receiver", timeout)

    def wait_replayed(self, lsn: str, timeout: float = 10.0) -> None:
        """Standby: wait until replay reached `lsn` (a primary's pg_current_wal_lsn())."""
        self.wait_until(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn", timeout)


class PgPair(NamedTuple):
    """A primary and its streaming standby."""

    primary: PgCluster
    standby: PgCluster


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _server_settings(port: int, listen: Sequence[str], fsync: bool) -> dict[str, Any]:
    return {
        "port": port,
        "listen_addresses": ",".join(listen),
        "unix_socket_directories": "",
        "max_connections": 40,
        "shared_buffers": "16MB",
        "wal_level": "replica",
        "max_wal_senders": 8,
        "max_replication_slots": 8,
        "wal_keep_size": "128MB",
        "hot_standby": True,
        "hot_standby_feedback": True,
        "wal_receiver_status_interval": "1s",
        "wal_retrieve_retry_interval": "500ms",
        "wal_sender_timeout": "5s",
        "wal_receiver_timeout": "5s",
        "fsync": fsync,
        "synchronous_commit": "on",
        "full_page_writes": True,
        "wal_log_hints": True,  # pg_rewind needs it (or data checksums): the site agent rewinds
        "logging_collector": False,
        "log_min_messages": "warning",
        "log_connections": False,
        "password_encryption": "scram-sha-256",
    }


_HBA = """\
# quorum-dr sandbox: passwords everywhere, no trust.
host all         all        127.0.0.1/32 scram-sha-256
host replication {repl}  127.0.0.1/32 scram-sha-256
host all         all        0.0.0.0/0    scram-sha-256
host replication {repl}  0.0.0.0/0    scram-sha-256
"""


def _run_as_service(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> None:
    out = subprocess.run(
        [*_server_prefix(), *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if out.returncode != 0:
        raise SandboxError(f"{Path(cmd[0]).name} failed: {(out.stderr or out.stdout).strip()[-800:]}")


def make_primary(
    base_dir: Path,
    port: int | None = None,
    *,
    sync_standby: bool = False,
    name: str = "main",
    app_db: str = "app",
    listen_addresses: Sequence[str] = ("127.0.0.1",),
    fsync: bool = False,
    bin_dir: Path = DEFAULT_BIN_DIR,
    command_prefix: Sequence[str] = (),
) -> PgCluster:
    """initdb, start, and create the roles and the application database.

    `sync_standby=True` sets `synchronous_standby_names = '*'` once the roles exist, so every
    commit afterwards waits for a standby to confirm it (make the standby next).
    """
    base_dir = prepare_base_dir(base_dir)
    cluster = PgCluster(
        name=name,
        base_dir=base_dir,
        port=port or free_port(),
        roles=Roles.generate(),
        app_db=app_db,
        bin_dir=Path(bin_dir),
        listen_addresses=tuple(listen_addresses),
        command_prefix=tuple(command_prefix),
    )
    if cluster.data_dir.exists():
        raise SandboxError(f"{cluster.data_dir} already exists")
    pwfile = base_dir / f".{name}.pw"
    pwfile.write_text(cluster.roles.superuser.password + "\n")
    try:
        if _as_root():
            shutil.chown(pwfile, SERVICE_USER, SERVICE_USER)
        os.chmod(pwfile, 0o600)
        initdb = [
            cluster.bin("initdb"),
            "-D",
            str(cluster.data_dir),
            "-U",
            SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale",
            "C",
        ]
        _run_as_service([*initdb, *([] if fsync else ["--no-sync"])])
    finally:
        pwfile.unlink(missing_ok=True)
    try:
        (cluster.data_dir / "pg_hba.conf").write_text(_HBA.format(repl=REPLICATION_USER))
        cluster.append_config(
            _server_settings(cluster.port, cluster.listen_addresses, fsync), "postgresql.conf"
        )
        cluster.start()
        _create_roles(cluster)
        if sync_standby:
            cluster.alter_system("synchronous_standby_names", "*")
    except BaseException:
        cluster.destroy()
        raise
    return cluster


def _create_roles(cluster: PgCluster) -> None:
    r = cluster.roles

    def create(creds: Credentials, attributes: str) -> None:
        cluster.sql(
            sql.SQL("CREATE ROLE {} WITH LOGIN " + attributes + " PASSWORD {}").format(
                sql.Identifier(creds.username), sql.Literal(creds.password)
            )
        )

    create(r.replication, "REPLICATION")
    create(r.monitor, "")
    create(r.app, "")
    cluster.sql(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(r.monitor.username)))
    cluster.sql(
        sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(cluster.app_db), sql.Identifier(r.app.username)
        )
    )


def make_standby(
    primary: PgCluster,
    base_dir: Path | None = None,
    port: int | None = None,
    *,
    name: str = "dr",
    listen_addresses: Sequence[str] = ("127.0.0.1",),
    primary_host: str | None = None,
    command_prefix: Sequence[str] = (),
) -> PgCluster:
    """`pg_basebackup -R -X stream` from `primary`, start it, and return once it streams (and,
    for a primary with synchronous_standby_names, once the primary counts it as synchronous).

    The standby keeps the primary's roles. Its `synchronous_standby_names` is emptied so that,
    once promoted, it never waits for a standby it does not have.
    """
    base_dir = prepare_base_dir(base_dir or primary.base_dir)
    standby = PgCluster(
        name=name,
        base_dir=base_dir,
        port=port or free_port(),
        roles=primary.roles,
        app_db=primary.app_db,
        bin_dir=primary.bin_dir,
        listen_addresses=tuple(listen_addresses),
        command_prefix=tuple(command_prefix),
    )
    if standby.data_dir.exists():
        raise SandboxError(f"{standby.data_dir} already exists")
    repl = primary.roles.replication
    host = primary_host or primary.host
    try:
        _run_as_service(
            [
                primary.bin("pg_basebackup"),
                "-h",
                host,
                "-p",
                str(primary.port),
                "-U",
                repl.username,
                "-D",
                str(standby.data_dir),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
                "-w",
            ],
            env={"PGPASSWORD": repl.password, "PGCONNECT_TIMEOUT": "5"},
        )
        standby.primary_conninfo = psycopg2.extensions.make_dsn(
            host=host,
            port=primary.port,
            user=repl.username,
            password=repl.password,
            application_name=name,
            connect_timeout=2,
        )
        settings = _server_settings(standby.port, standby.listen_addresses, fsync=False)
        standby.append_config(
            {
                "port": standby.port,
                "listen_addresses": settings["listen_addresses"],
                "synchronous_standby_names": "",
                "primary_conninfo": standby.primary_conninfo,
            }
        )
        standby.start()
        standby.wait_streaming()
        if primary.value("SHOW synchronous_standby_names"):
            # A sync primary counts the standby as synchronous once it has caught up.
            primary.wait_until(
                f"SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = '{name}'"
            )
    except BaseException:
        standby.destroy()
        raise
    return standby


@contextmanager
def primary_and_standby(
    base_dir: Path, *, sync_standby: bool = False, app_db: str = "app"
) -> Iterator[tuple[PgCluster, PgCluster]]:
    """A streaming pair, both removed on exit whatever happens."""
    primary = make_primary(base_dir, sync_standby=sync_standby, app_db=app_db)
    try:
        standby = make_standby(primary, base_dir)
        try:
            standby.wait_streaming()
            yield primary, standby
        finally:
            standby.destroy()
    finally:
        primary.destroy()
