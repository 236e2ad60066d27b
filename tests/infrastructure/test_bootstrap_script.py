"""cold_site/bootstrap.sh run for real, with stand-ins for the restore module and the aws CLI and a
real local health endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from quorum_dr.domain.cold_report import ColdBootstrapReport, RestoreLine
from stacks.cold_site import BOOTSTRAP

RESTORE_LINE = RestoreLine(
    bucket="booking-backups-example",
    key="postgres/20261126T030000Z-main.dump",
    source="main",
    taken_at=1_795_000_000.0,
    lsn="0/3000060",
    restored_at=1_795_005_400.0,
    backup_age_seconds=5400,
    target="booking on /var/run/postgresql",
    reason="restored s3://booking-backups-example/postgres/20261126T030000Z-main.dump",
)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _tools(tmp_path: Path, restore_ok: bool) -> dict[str, str]:
    calls = tmp_path / "calls.jsonl"
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/bash\n"
        'if [ "$1" = -m ] && [ "$2" = quorum_dr.adapters.postgres_backup ]; then\n'
        f"  printf '%s\\n' \"$*\" >> {tmp_path}/restore-args\n"
        + (
            f"  echo '{RESTORE_LINE.model_dump_json()}'\n"
            if restore_ok
            else "  echo 'no backup found' >&2; exit 3\n"
        )
        + "  exit 0\nfi\n"
        f'exec {sys.executable} "$@"\n'
    )
    aws = tmp_path / "aws"
    aws.write_text(
        "#!/bin/bash\n"
        f"{sys.executable} -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \"$@\" >> {calls}\n"
    )
    for tool in (python, aws):
        tool.chmod(0o755)
    return {
        "QDR_PYTHON": str(python),
        "QDR_AWS": str(aws),
        "QDR_LOG": str(tmp_path / "bootstrap.log"),
        "QDR_READY_FILE": str(tmp_path / "ready"),
        "QDR_START_COMMAND": f"touch {tmp_path}/app-started",
        "QDR_SERVICE": "booking",
        "QDR_STATES_REGION": "eu-west-2",
        "QDR_BACKUP_BUCKET": "booking-backups-example",
        "QDR_BACKUP_PREFIX": "postgres/",
        "QDR_DSN": "host=/var/run/postgresql dbname=booking user=postgres",
        "QDR_TASK_TOKEN": "TOKEN-abc123",
        "QDR_READY_TIMEOUT": "10",
        "QDR_REPORT_ATTEMPTS": "1",
    }


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BOOTSTRAP)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


def test_restores_starts_and_reports_ready_with_the_task_token(tmp_path: Path, health_url: str) -> None:
    env = _tools(tmp_path, restore_ok=True) | {"QDR_HEALTH_URL": health_url}
    run = _run(env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "restore-args").read_text().split() == [
        "-m", "quorum_dr.adapters.postgres_backup", "restore",
        "--bucket", "booking-backups-example", "--prefix", "postgres/",
        "--dsn", "host=/var/run/postgresql", "dbname=booking", "user=postgres",
    ]  # fmt: skip
    assert (tmp_path / "app-started").exists() and (tmp_path / "ready").exists()
    (call,) = _calls(tmp_path)
    assert call[:4] == ["stepfunctions", "send-task-success", "--region", "eu-west-2"]
    assert call[call.index("--task-token") + 1] == "TOKEN-abc123"
    report = ColdBootstrapReport.model_validate_json(call[call.index("--task-output") + 1])
    assert report.service == "booking" and report.restore == RESTORE_LINE
    assert report.backup_age_seconds == 5400


def test_a_failed_restore_reports_failure_and_never_starts_the_app(tmp_path: Path, health_url: str) -> None:
    env = _tools(tmp_path, restore_ok=False) | {"QDR_HEALTH_URL": health_url}
    run = _run(env)
    assert run.returncode == 3
    assert not (tmp_path / "app-started").exists()
    (call,) = _calls(tmp_path)
    assert call[1] == "send-task-failure"
    assert call[call.index("--error") + 1] == "ColdSiteBootstrapFailed"
    assert "step 'restore'" in call[call.index("--cause") + 1]


def test_without_a_token_it_leaves_the_decision_to_the_health_check(tmp_path: Path, health_url: str) -> None:
    env = _tools(tmp_path, restore_ok=True) | {"QDR_HEALTH_URL": health_url, "QDR_TASK_TOKEN": ""}
    run = _run(env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (tmp_path / "calls.jsonl").exists()
    assert "no task token: not reporting (success)" in (tmp_path / "bootstrap.log").read_text()
