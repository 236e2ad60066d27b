"""The app builds the right stacks in the right regions, and refuses a bad config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App

from stacks.deployment import SynthError, build, read_config

ROOT = Path(__file__).resolve().parents[2]


def test_one_probe_stack_per_probe_region_and_control_in_home(synth) -> None:
    d = synth.deployment
    assert sorted(d.probes) == sorted(d.config.probe_regions)
    for region, stack in d.probes.items():
        assert stack.region == region
        assert stack.stack_name == f"QuorumDr-Probe-{''.join(p.capitalize() for p in region.split('-'))}"
    assert d.control.region == d.config.home_region == "eu-west-2"
    assert list(d.cold_sites) == ["us-west-2"]
    assert d.cold_sites["us-west-2"].region == "us-west-2"
    # Probe stacks deploy after the control plane, whose table and bus they write to.
    for stack in d.probes.values():
        assert d.control in stack.dependencies


def test_config_path_comes_from_context(tmp_path: Path, example_config_path: Path) -> None:
    copy = tmp_path / "mine.yaml"
    copy.write_text(example_config_path.read_text().replace("quorum: 2", "quorum: 3"))
    path, config = read_config(App(context={"config": str(copy)}))
    assert path == copy and config.quorum == 3


def test_bad_config_fails_synth_with_the_field_errors(tmp_path: Path, example_config_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        example_config_path.read_text()
        .replace("quorum: 2", "quorum: 2\nqourum: 1")
        .replace("timeout_seconds: 5          #", "timeout_seconds: 45         #")
    )
    with pytest.raises(SynthError) as caught:
        build(App(context={"config": str(bad), "skip_bundling": True}))
    message = str(caught.value)
    assert "qourum: unknown field" in message
    assert "probe: timeout_seconds (45) must be below interval_seconds (30)" in message


def test_python_app_py_exits_2_on_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("home_region: mars-1\n")
    run = subprocess.run(
        [sys.executable, "app.py", "-c", f"config={bad}", "-c", "skip_bundling=true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "home_region: 'mars-1' is not an AWS region name" in run.stderr
