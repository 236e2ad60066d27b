"""`drctl rehearse cold-site` against the real rehearsal ASL in moto (the fixture of
test_rehearsal_state_machine.py): progress, the summary, the exit codes; bad input starts nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from quorum_dr.cli import main
from quorum_dr.cli.rehearse_cmd import STATE_MACHINE_ENV
from tests.integration import test_rehearsal_state_machine as machine
from tests.integration.test_rehearsal_state_machine import HOME, World, ready

world = machine.world  # the same fixture: the rehearsal's ASL, handler and adapters on moto


def drctl(world: World, tmp_path: Path, *extra: str, monkeypatch: pytest.MonkeyPatch) -> int:
    config = tmp_path / "watchdog.json"
    config.write_text(json.dumps(world.config.model_dump(mode="json", by_alias=True, exclude_none=True)))
    monkeypatch.setenv(STATE_MACHINE_ENV, world.harness.machine_arn)
    # the command polls every 2 s; the harness's execution is quick
    return main(["rehearse", "cold-site", "--config", str(config), *extra])


def executions(world: World) -> list[Any]:
    sfn = boto3.client("stepfunctions", region_name=HOME)
    return list(sfn.list_executions(stateMachineArn=world.harness.machine_arn)["executions"])


def test_a_passing_rehearsal_prints_progress_and_its_summary_and_exits_0(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert drctl(world, tmp_path, "--service", "booking", monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert "launching the cold site; waiting for its bootstrap" in out and "terminating the cold site" in out
    assert "PASSED in" in out and "public.orders: 1000 recorded, 1500 restored" in out
    assert "terminated i-" in out


def test_a_failing_rehearsal_exits_1_and_json_prints_the_result(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.answer = ready({"public.orders": 10})
    assert drctl(world, tmp_path, "--service", "booking", "--json", monkeypatch=monkeypatch) == 1
    captured = capsys.readouterr()
    # the handlers run in this process here, and their metrics (EMF lines) go to stdout too: the
    # result is the indented document printed last
    lines = captured.out.splitlines()
    start = len(lines) - 1 - lines[::-1].index("{")
    result = json.loads("\n".join(lines[start:]))
    assert result["outcome"] == "FAILED" and result["reason"].startswith(
        "table public.orders has 10 rows restored"
    )
    assert result["terminated"].startswith("terminated i-")
    assert "comparing the restored row counts" in captured.err  # progress on stderr with --json


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--service", "Bad Name"], "--service: 'Bad Name' is not a service name"),
        (["--service", "nope"], "--service: no service named 'nope'"),
        (["--service", "booking", "--wait-timeout", "0"], "--wait-timeout: must be a positive number"),
    ],
)
def test_bad_input_exits_2_and_starts_nothing(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    said: str,
) -> None:
    assert drctl(world, tmp_path, *flags, monkeypatch=monkeypatch) == 2
    assert said in capsys.readouterr().err
    assert executions(world) == [] and world.instances() == []


def test_a_dry_run_says_what_it_would_launch_and_starts_nothing(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert drctl(world, tmp_path, "--service", "booking", "--dry-run", monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert (
        out.startswith("dry run: would launch one cold site of booking in us-west-2")
        and "nothing started" in out
    )
    assert executions(world) == [] and world.instances() == []
