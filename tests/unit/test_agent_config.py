"""`drctl agent`: its config and the secret files it names are checked before anything listens;
every problem is one `FILE: field: reason` line and exit 2, never a secret."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum_dr.agent.config import load_agent_config
from quorum_dr.cli import main
from tests.conftest import ROOT

KEY = "agent-unit-key-0ddba11-never-shown"


def secret(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 8443},
        "signing_key_file": secret(tmp_path / "signing.key", KEY),
        "state_dir": str(tmp_path / "state"),
        "database": {
            "data_dir": str(tmp_path / "data"),
            "application_roles": ["app"],
            "run_as": "postgres",
        },
        "replication_credentials_file": secret(
            tmp_path / "replication.json", json.dumps({"username": "replicator", "password": "s3cr3t-pw"})
        ),
    }
    data.update(changes)
    return data


def run(
    tmp_path: Path, data: dict[str, Any], capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[int, str]:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    code = main(["agent", "--config", str(path), *flags])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_example_config_validates() -> None:
    config = load_agent_config(ROOT / "config" / "agent.example.yaml")
    assert config.database.application_roles == ["booking_app"]
    assert config.log_file == config.state_dir / "postgresql.log"


def test_check_reads_the_config_and_its_files_and_says_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run(tmp_path, config(tmp_path), capsys, "--check")
    assert (code, output.strip()) == (
        0,
        f"OK: the agent would listen on 127.0.0.1:8443 for the cluster in {tmp_path / 'data'}",
    )


def test_a_bad_config_names_each_field_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config(tmp_path, state_dir="relative/state", listen={"port": 70000}, surprise=1)
    data["database"]["application_roles"] = ["app", "postgres"]

    code, output = run(tmp_path, data, capsys)

    path = tmp_path / "agent.yaml"
    assert code == 2
    assert output.splitlines() == [
        f"{path}: listen.port: Input should be less than or equal to 65535",
        f"{path}: state_dir: 'relative/state' is not an absolute path (the agent runs as a service)",
        f"{path}: database: application_roles names the superuser 'postgres': a freeze would lock the "
        "agent out",
        f"{path}: surprise: unknown field",
    ]


def test_a_key_file_others_may_read_is_refused_without_showing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config(tmp_path, signing_key_file=secret(tmp_path / "open.key", KEY, 0o644))
    data["replication_credentials_file"] = secret(tmp_path / "bad.json", '{"username": "replicator"}')

    code, output = run(tmp_path, data, capsys)

    path = tmp_path / "agent.yaml"
    assert code == 2
    assert output.splitlines() == [
        f"{path}: signing_key_file: {tmp_path / 'open.key'} may be read by other users (mode 0644): "
        "chmod 600 it",
        f"{path}: replication_credentials_file: {tmp_path / 'bad.json'} is not JSON "
        '{"username": ..., "password": ...} with text values',
    ]
    assert KEY not in output


def test_a_state_file_that_is_not_json_stops_the_agent_before_it_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "operations.json").write_text("{not json")

    code, output = run(tmp_path, config(tmp_path), capsys)

    assert code == 2
    assert output.strip() == (
        f"{tmp_path / 'agent.yaml'}: state_dir: {tmp_path / 'state' / 'operations.json'} is not JSON: "
        "move it away to start with no operation ids"
    )


def test_a_log_file_inside_the_data_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config(tmp_path)
    data["database"]["log_file"] = str(tmp_path / "data" / "agent.log")

    code, output = run(tmp_path, data, capsys)

    assert code == 2
    assert "database: log_file is inside data_dir: pg_rewind replaces the data directory's files" in output


def test_the_operation_log_keeps_the_newest_answers_across_a_reload(tmp_path: Path) -> None:
    from quorum_dr.agent.server import OperationLog

    log = OperationLog(tmp_path / "operations.json", limit=2)
    for key in ("c-first", "b-second", "a-third"):  # the file is sorted by key: newest first there
        log.put(key, {"operation": "stop"}, {"ok": True, "reason": key})
    reloaded = OperationLog(tmp_path / "operations.json", limit=2)
    reloaded.put("d-fourth", {"operation": "stop"}, {"ok": True, "reason": "d-fourth"})

    kept = json.loads((tmp_path / "operations.json").read_text())
    assert sorted(kept) == ["a-third", "d-fourth"]
    assert reloaded.get("a-third") == kept["a-third"] and reloaded.get("b-second") is None
    assert oct((tmp_path / "operations.json").stat().st_mode & 0o777) == "0o600"
