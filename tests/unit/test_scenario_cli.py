"""`drctl drill`: scenario validation up front, before anything is built."""

from __future__ import annotations

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
