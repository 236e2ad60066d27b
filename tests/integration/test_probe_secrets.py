"""A secret planted in a check URL (user-info and query) never reaches what a probe round stores,
publishes, logs or prints: the real HTTP check against a local server, the fake stores and bus."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.cli.probe_cmd import print_round
from quorum_dr.config import parse_config
from quorum_dr.probes.event import RoundRequest
from quorum_dr.probes.service import ProbeService
from tests.conftest import ROOT
from tests.fakes import Clock, Endpoints, FakeBus, FakeResults

PASSWORD = "Sup3rS3cret"
TOKEN = "abc123"


class _Down(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = b'{"status": "broken"}'
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def down_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Down)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(5)


def _config(url: str) -> Any:
    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["probe"]["control_target"] = {
        "checks": [{"name": "control", "type": "tcp", "host": "c.test", "port": 1}]
    }
    data["probe"]["down_after_rounds"] = 1
    checks = data["services"][0]["sites"]["main"]["checks"]
    for check in checks:
        if check["type"] == "http":
            check.update({"url": url, "timeout_seconds": 2})
            check.pop("host_header", None)
    return parse_config(data)


def test_a_planted_secret_is_in_no_result_event_log_or_output(
    down_server: int, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://ops:{PASSWORD}@127.0.0.1:{down_server}/health?token={TOKEN}&site=main"
    caplog.set_level(logging.DEBUG)
    results, bus, fake = FakeResults(Clock()), FakeBus(), Endpoints()
    service = ProbeService(
        _config(url),
        region="eu-west-2",
        results=results,
        events=bus,
        secrets=StaticSecrets({}),
        clock=Clock(),
        runners={"tcp": fake.run, "postgres": fake.run},  # the HTTP check is the real one
    )
    outcome = service.run(
        RoundRequest(kind="on-demand", round_id="r-1", services=["booking"], sites=["main"])
    )
    printed = io.StringIO()
    print_round(outcome.report, printed)

    # the check really ran with the credentials and the query, and failed
    assert _Down.seen and _Down.seen[-1][0] == f"/health?token={TOKEN}&site=main"
    assert _Down.seen[-1][1] is not None  # basic auth from the URL's user-info
    http_results = [r for r in results.items if r.check_type == "http"]
    assert http_results and all(r.vote.value == "down" for r in http_results)
    assert any("http://***@127.0.0.1" in r.detail and "token=***&site=***" in r.detail for r in http_results)
    assert any(kind == "ProbeFailed" for kind, _ in bus.events), bus.events

    stored = json.dumps([r.model_dump(mode="json") for r in results.items])
    events = json.dumps(bus.events, default=str)
    outputs = capsys.readouterr()
    for where, text in {
        "stored results": stored,
        "events": events,
        "log records": caplog.text,
        "stdout/stderr": outputs.out + outputs.err,
        "drctl probe output": printed.getvalue(),
        "round report": json.dumps(outcome.as_dict(), default=str),
    }.items():
        assert PASSWORD not in text, where
        assert TOKEN not in text, where
