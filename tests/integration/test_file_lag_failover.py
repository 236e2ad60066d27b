"""The file lag at promotion, end to end: the real failover ASL on moto's Step Functions with the
real handlers (fake database and edge ports, the real DynamoDB state store on moto), and the real
HTTP marker reader against a loopback server that serves the marker as DR would. The receipt
carries the lag into the incident record and `drctl history`; an unreachable marker is recorded
with its reason and the failover still goes through."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from quorum_dr.adapters.file_sync import DEADLINE_GRACE_SECONDS, HttpMarkerReader, read_marker
from quorum_dr.config import FileSync, WatchdogConfig, parse_config
from quorum_dr.domain.history import detail, row
from tests.fakes import make_config
from tests.integration.test_state_machine import AUTO_EVENT, World, run
from tests.integration.test_state_machine import world as world  # noqa: F401 - the fixture, shared

pytestmark = pytest.mark.integration

TOKEN = "s3cr3t-marker"


class MarkerServer(ThreadingHTTPServer):
    marker = b""


class _Marker(BaseHTTPRequestHandler):
    server: MarkerServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = self.server.marker
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dr_marker() -> Iterator[MarkerServer]:
    server = MarkerServer(("127.0.0.1", 0), _Marker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_file_sync(url: str) -> WatchdogConfig:
    data = make_config().model_dump(mode="json", by_alias=True, exclude_none=True)
    data["services"][0]["file_sync"] = {"url": url, "max_lag_seconds": 300, "timeout_seconds": 2}
    return parse_config(data)


def test_a_hot_failover_records_the_file_lag_dr_serves(world: World, dr_marker: MarkerServer) -> None:
    port = dr_marker.server_address[1]
    world.ports.config = with_file_sync(f"http://127.0.0.1:{port}/.sync-marker?token={TOKEN}")
    world.ports.markers = HttpMarkerReader
    written_at = round(time.time() - 42, 3)  # main's timer wrote it 42 s ago; DR serves the copy
    dr_marker.marker = f"{written_at:.3f} 2027-01-15T07:59:18Z main-host\n".encode()

    described, states = run(world, AUTO_EVENT, name="inc-file-lag")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states[-1] == "FailedOver" and world.promoter.promotions == ["inc-file-lag"]
    record = world.incident("inc-file-lag")
    lag = record.file_lag or {}
    assert lag.get("marker_written_at") == written_at
    assert lag["lag_seconds"] >= 42.0 and lag["over_limit"] is False
    assert lag["url"] == f"http://127.0.0.1:{port}/.sync-marker?token=***"
    assert lag["reason"].startswith(f"file lag at promotion {lag['lag_seconds']:g} s: the newest file-sync")
    assert record.data_loss and record.data_loss_reason, "the database's receipt is still there"
    (closing,) = [e.reason for e in record.timeline if e.step == "recorded"]  # it carries both
    assert closing.endswith(f"{record.data_loss_reason}; {lag['reason']}")
    assert row(record)["file_lag"] == f"{lag['lag_seconds']:.1f} s"
    assert f"  file lag  {lag['reason']}" in detail(record)
    assert TOKEN not in record.model_dump_json()


def test_an_unreachable_marker_is_recorded_with_its_reason_and_the_failover_goes_on(world: World) -> None:
    port = closed_port()
    world.ports.config = with_file_sync(f"http://127.0.0.1:{port}/.sync-marker?token={TOKEN}")
    world.ports.markers = HttpMarkerReader

    described, states = run(world, AUTO_EVENT, name="inc-no-marker")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert "CheckDrReplica" in states and states[-1] == "FailedOver"
    assert world.promoter.promotions == ["inc-no-marker"]
    record = world.incident("inc-no-marker")
    lag = record.file_lag or {}
    assert lag.get("lag_seconds") is None
    assert lag["reason"].startswith(
        f"file lag unknown: cannot read the file-sync marker at http://127.0.0.1:{port}/.sync-marker"
        "?token=***: ConnectionError: "
    ), lag["reason"]
    assert row(record)["file_lag"] == "unknown"
    assert TOKEN not in record.model_dump_json()


class _Trickle(BaseHTTPRequestHandler):
    """Answers one header byte a half second: no socket read ever waits for the timeout."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(40):
            try:
                self.wfile.write(b"X")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.5)

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_that_trickles_its_answer_is_abandoned_at_the_deadline() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sync = FileSync.model_validate(
            {"url": f"http://127.0.0.1:{server.server_address[1]}/.sync-marker", "timeout_seconds": 1}
        )
        facts = read_marker(sync)
    finally:
        server.shutdown()
        server.server_close()

    assert facts.written_at is None
    assert facts.error == f"no whole answer within {1 + DEADLINE_GRACE_SECONDS:g} s: abandoned"
