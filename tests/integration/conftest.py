"""Integration fixtures: real PostgreSQL 15 clusters, created and removed by the fixtures.

- `pg_primary` (session): one primary with the sandbox roles and the `app` database.
- `pg_pair` (session): a primary and an async streaming standby. Shared: a test may write to it
  but must leave it streaming and replaying (use `pg_pair_factory` for faults and promotion).
- `pg_pair_factory` (function): `make(sync=False)` gives a fresh pair, destroyed after the test
  whatever happened; promotion is destructive, so every promoting test takes its own.
- `pg_base_dir` (session): a directory under /tmp that the `postgres` user can use.
- `moto_state_store` (function): the state table in moto (eu-west-2, `quorum-dr-state`), with
  the example config as the operator's (`QDR_CONFIG`) and no `STATE_TABLE_NAME`: what the
  operator-command tests stand on.

The tests skip, saying why, only when the PostgreSQL 15 server binaries are absent
(`make setup` installs them).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.tables import create_table
from quorum_dr_local.standins.postgres import DEFAULT_BIN_DIR, PgCluster, PgPair, make_primary, make_standby

_PAIRS = itertools.count()
STATE_REGION, STATE_TABLE = "eu-west-2", "quorum-dr-state"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config" / "watchdog.example.yaml"


@pytest.fixture
def moto_state_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStateStore]:
    for key, value in {
        "AWS_DEFAULT_REGION": STATE_REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "QDR_CONFIG": str(EXAMPLE_CONFIG),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("STATE_TABLE_NAME", raising=False)
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name=STATE_REGION), STATE_TABLE)
        yield DynamoStateStore(STATE_TABLE, resource=boto3.resource("dynamodb", region_name=STATE_REGION))


def _require_binaries() -> None:
    missing = [
        tool for tool in ("initdb", "postgres", "pg_basebackup") if not (DEFAULT_BIN_DIR / tool).exists()
    ]
    if missing:
        pytest.skip(
            f"PostgreSQL 15 server binaries missing in {DEFAULT_BIN_DIR} ({', '.join(missing)}): "
            "run `make setup` to install them"
        )


@pytest.fixture(scope="session")
def pg_base_dir() -> Iterator[Path]:
    _require_binaries()
    base = Path(tempfile.mkdtemp(prefix="quorum-dr-pg-", dir="/tmp"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _pair(base: Path, prefix: str, sync: bool) -> PgPair:
    primary = make_primary(base, name=f"{prefix}-main", sync_standby=sync)
    try:
        standby = make_standby(primary, base, name=f"{prefix}-dr")
    except BaseException:
        primary.destroy()
        raise
    try:
        standby.wait_streaming()
    except BaseException:
        standby.destroy()
        primary.destroy()
        raise
    return PgPair(primary, standby)


@pytest.fixture(scope="session")
def pg_primary(pg_base_dir: Path) -> Iterator[PgCluster]:
    with make_primary(pg_base_dir, name="session-primary") as primary:
        yield primary


@pytest.fixture(scope="session")
def pg_pair(pg_base_dir: Path) -> Iterator[PgPair]:
    pair = _pair(pg_base_dir, "session", sync=False)
    try:
        yield pair
    finally:
        pair.standby.destroy()
        pair.primary.destroy()


@pytest.fixture
def pg_pair_factory(pg_base_dir: Path) -> Iterator[Callable[..., PgPair]]:
    made: list[PgPair] = []

    def make(sync: bool = False) -> PgPair:
        pair = _pair(pg_base_dir, f"pair{next(_PAIRS)}", sync)
        made.append(pair)
        return pair

    try:
        yield make
    finally:
        for pair in made:
            pair.standby.destroy()
            pair.primary.destroy()


# ---------------------------------------------------------------------------------------------
# A local HTTP receiver for signed POSTs (hooks, webhooks)
# ---------------------------------------------------------------------------------------------

PostHandler = Callable[[BaseHTTPRequestHandler], None]


@pytest.fixture
def post_receiver() -> Iterator[Callable[[PostHandler], str]]:
    """`post_receiver(handle)` serves POSTs on 127.0.0.1 with `handle(request_handler)` and
    returns `http://127.0.0.1:PORT`; every server it started is stopped at the end of the test."""
    servers: list[ThreadingHTTPServer] = []
    threads: list[threading.Thread] = []

    def start(handle: PostHandler) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        threads.append(thread)
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)
