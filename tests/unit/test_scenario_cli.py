"""`drctl drill`: scenario validation up front; until the orchestrator is merged it says so plainly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from quorum_dr.cli import main


def test_a_bad_scenario_file_exits_2_with_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ndescription: d\nexpectations: {failovr: true}\n")
    assert main(["drill", str(path)]) == 2
    assert "expectations.failovr: unknown field" in capsys.readouterr().err


def test_list_names_the_shipped_scenarios(capsys: pytest.CaptureFixture[str]):
    assert main(["drill", "--list"]) == 0
    out = capsys.readouterr().out
    assert "main-outage" in out and "old-primary-returns" in out


@pytest.mark.skipif(
    importlib.util.find_spec("quorum_dr.drill.orchestrator") is not None, reason="the orchestrator is wired"
)
def test_without_the_orchestrator_nothing_is_faked(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["drill", "main-outage", "--report", str(tmp_path / "r")]) == 3
    assert "not wired" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
