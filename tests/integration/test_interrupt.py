"""Ctrl-C is an operator's ordinary action, not a crash: `drctl` stops, says how far it got, and
exits 130 (`quorum_dr.cli.exit_codes`) without a traceback. Run as a real process, interrupted by
a real SIGINT, as a terminal would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum_dr.cli import main
from quorum_dr.cli.exit_codes import EXIT_INTERRUPTED
from tests.conftest import ROOT

REFUSED = "127.0.0.1:1"  # nothing listens on port 1 of loopback: every check fails at once


def _local_config(path: Path) -> Path:
    """The example config with every target on loopback (refused), a round every 30 s."""
    data: Any = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["probe"].update({"interval_seconds": 30, "timeout_seconds": 1})
    data["probe"]["control_target"] = {
        "checks": [{"name": "control", "type": "tcp", "host": "127.0.0.1", "port": 1}]
    }
    for service in data["services"]:
        for site in service["sites"].values():
            for check in site["checks"]:
                if check["type"] == "http":
                    check["url"] = f"http://{REFUSED}/health"
                    check.pop("host_header", None)
                else:
                    check.update({"host": "127.0.0.1", "port": 1})
    path.write_text(yaml.safe_dump(data))
    return path


def _sigint_as_a_terminal_sends_it() -> None:
    """In the child, before exec: SIGINT back to its default. A shell that starts the test run in
    the background without job control makes it ignored, and Python then never raises
    KeyboardInterrupt: Ctrl-C could not be tested at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_drctl_probe_exits_130_with_the_rounds_done_and_no_traceback(tmp_path: Path) -> None:
    config = _local_config(tmp_path / "watchdog.yaml")
    process = subprocess.Popen(
        [sys.executable, "-m", "quorum_dr.cli", "probe", "--config", str(config), "--rounds", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_sigint_as_a_terminal_sends_it,
    )
    try:
        assert process.stdout is not None
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # bounded: until the first round has been printed
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("verdicts "):
                break
        assert any(line.startswith("round ") for line in seen), "".join(seen)
        time.sleep(1.0)  # the first round is printed; the process sleeps out its 30 s interval
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    assert process.returncode == EXIT_INTERRUPTED, err
    assert "interrupted after 1 complete round(s)" in out
    assert "connection to 127.0.0.1:1 refused" in "".join(seen)  # the round ran for real
    assert "Traceback" not in err + out


def test_ctrl_c_in_any_command_exits_130_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever command is running when Ctrl-C arrives (here `config validate`), the same answer."""
    from quorum_dr.cli import config_cmd

    def interrupted(*_: object, **__: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(config_cmd, "load_config", interrupted)
    assert main(["config", "validate", str(ROOT / "config" / "watchdog.example.yaml")]) == EXIT_INTERRUPTED
    captured = capsys.readouterr()
    assert captured.err.strip() == "interrupted" and "Traceback" not in captured.err
