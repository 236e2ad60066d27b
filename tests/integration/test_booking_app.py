"""The demo booking app against a real PostgreSQL 15 primary and a streaming standby."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from quorum_dr_local.standins.booking_app import BookingApp

PG_BIN = Path("/usr/lib/postgresql/15/bin")
pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None or os.geteuid() != 0,
    reason="needs PostgreSQL 15 binaries and root (to run them as postgres)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*argv: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=60)


@dataclass
class Pg:
    """A throw-away cluster for this test module only (the drill uses quorum_dr_local.standins.postgres)."""

    datadir: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=postgres user=postgres connect_timeout=2"

    def start(self) -> None:
        _as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-w",
            "-t",
            "30",
            "-l",
            str(self.datadir / "log"),
            "start",
            "-o",
            f"-p {self.port} -k {self.datadir}",
        )

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[Pg, Pg]]:
    root = Path(tempfile.mkdtemp(prefix="qdr-booking-"))
    shutil.chown(root, "postgres")
    primary = Pg(root / "main", _free_port())
    standby = Pg(root / "dr", _free_port())
    try:
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(primary.datadir), "-A", "trust", "-U", "postgres")
        primary.start()
        _as_postgres(
            str(PG_BIN / "pg_basebackup"),
            "-D",
            str(standby.datadir),
            "-R",
            "-X",
            "stream",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
        )
        standby.start()
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)


def call(url: str, order: dict[str, object] | None = None) -> tuple[int, dict[str, str], dict[str, object]]:
    data = json.dumps(order).encode() if order is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if order is not None else "GET")
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_primary_site_reports_health_and_commits_orders(clusters: tuple[Pg, Pg]):
    primary, _ = clusters
    with BookingApp("main", primary.dsn) as app:
        status, headers, body = call(f"{app.url}/health")
        assert (status, headers["X-Site"]) == (200, "main")
        assert body == {"status": "ok", "site": "main", "db": "primary"}

        order_id = str(uuid.uuid4())
        status, headers, body = call(f"{app.url}/orders", {"order_id": order_id, "amount": 12.5})
        assert (status, body, headers["X-Site"]) == (201, {"order_id": order_id, "site": "main"}, "main")
        # a retry of the same order is idempotent
        assert call(f"{app.url}/orders", {"order_id": order_id, "amount": 12.5})[0] == 200
        _, _, ids = call(f"{app.url}/orders/ids")
        assert order_id in ids["order_ids"]  # type: ignore[operator]
        _, _, count = call(f"{app.url}/orders/count")
        assert count["count"] == len(ids["order_ids"])  # type: ignore[arg-type]


def test_bad_order_is_rejected_with_400(clusters: tuple[Pg, Pg]):
    primary, _ = clusters
    with BookingApp("main", primary.dsn) as app:
        status, _, body = call(f"{app.url}/orders", {"order_id": "not-a-uuid", "amount": 1})
        assert status == 400 and "order_id" in str(body["error"])
        assert call(f"{app.url}/orders", {"order_id": str(uuid.uuid4()), "amount": -3})[0] == 400


def test_standby_site_is_healthy_but_refuses_orders_until_promoted(clusters: tuple[Pg, Pg]):
    primary, standby = clusters
    with BookingApp("main", primary.dsn) as main_app, BookingApp("dr", standby.dsn) as dr_app:
        committed = str(uuid.uuid4())
        assert call(f"{main_app.url}/orders", {"order_id": committed, "amount": 3})[0] == 201

        status, headers, body = call(f"{dr_app.url}/health")
        assert (status, headers["X-Site"], body["db"]) == (200, "dr", "standby")
        status, _, body = call(f"{dr_app.url}/health?writable=1")
        assert status == 503 and "standby" in str(body["reason"])

        status, headers, body = call(f"{dr_app.url}/orders", {"order_id": str(uuid.uuid4()), "amount": 1})
        assert (status, headers["X-Site"]) == (503, "dr")
        assert "refuses writes" in str(body["error"])

        # the committed order replicated to the standby
        deadline = time.monotonic() + 10
        while committed not in call(f"{dr_app.url}/orders/ids")[2]["order_ids"]:  # type: ignore[operator]
            assert time.monotonic() < deadline, "order did not replicate within 10 s"
            time.sleep(0.1)


def test_unreachable_database_gives_503_with_the_reason():
    dead = f"host=127.0.0.1 port={_free_port()} dbname=postgres user=postgres connect_timeout=1"
    with BookingApp("main", dead) as app:
        status, headers, body = call(f"{app.url}/health")
        assert (status, headers["X-Site"], body["status"]) == (503, "main", "down")
        assert "unreachable" in str(body["reason"])
        status, _, body = call(f"{app.url}/orders", {"order_id": str(uuid.uuid4()), "amount": 1})
        assert status == 503 and "unreachable" in str(body["error"])


def test_runs_as_a_process(clusters: tuple[Pg, Pg]):
    primary, _ = clusters
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quorum_dr_local.standins.booking_app",
            "--site",
            "main",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dsn",
            primary.dsn,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "booking app for site main" in process.stdout.readline()
        status, headers, body = call(f"http://127.0.0.1:{port}/health")
        assert (status, headers["X-Site"], body["db"]) == (200, "main", "primary")
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_traffic_client_records_every_attempt_and_the_committed_orders(
    clusters: tuple[Pg, Pg], tmp_path: Path
):
    from quorum_dr_local.standins.traffic import TrafficClient, read_attempts

    primary, _ = clusters
    with BookingApp("main", primary.dsn) as app:
        client = TrafficClient(
            "127.0.0.1",
            app.port,
            "app.example.com",
            rate_per_second=20,
            duration_seconds=1.0,
            jsonl_path=tmp_path / "attempts.jsonl",
        )
        client.run()  # stops by itself
        attempts = client.attempts
        assert 1 <= len(attempts) <= 21
        assert all(a.ok and a.status == 201 and a.site == "main" for a in attempts)
        _, _, ids = call(f"{app.url}/orders/ids")
        assert set(client.committed_order_ids()) <= set(ids["order_ids"])  # type: ignore[arg-type]
        assert read_attempts(tmp_path / "attempts.jsonl") == attempts
        assert sum(n for _, _, n in client.success_series()) == len(attempts)


def test_traffic_client_counts_failures_when_nothing_listens(tmp_path: Path):
    from quorum_dr_local.standins.traffic import TrafficClient

    client = TrafficClient(
        "127.0.0.1", _free_port(), "app.example.com", rate_per_second=10, duration_seconds=0.35
    )
    client.start()
    client.join(timeout=10)
    assert not client.running
    attempts = client.attempts
    assert attempts and not any(a.ok for a in attempts)
    assert attempts[0].error == "connection refused" and attempts[0].status is None
    assert client.committed_order_ids() == []
    assert all(ratio == 0.0 for _, ratio, _ in client.success_series())
