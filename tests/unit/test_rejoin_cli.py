"""`drctl rejoin`'s input: every bad flag or config is one line and exit 2 before any call (the
fakes standing in for STS and the state table record none); the alert topic's ARN; the
confirmation on a terminal. The rejoin itself: test_rejoin_service.py and
tests/integration/test_rejoin.py."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum_dr.cli import build_parser, main
from quorum_dr.cli.exit_codes import EXIT_BAD_INPUT, EXIT_REFUSED
from quorum_dr.cli.rejoin_cmd import alert_topic, run_rejoin
from quorum_dr.config import load_config
from tests.conftest import ROOT

EXAMPLE = ROOT / "config" / "watchdog.example.yaml"
CALLER = "arn:aws:sts::123456789012:assumed-role/Operator/alice"


class Recording:
    """Any call is recorded; `get_caller_identity` answers like STS."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return {"Arn": CALLER, "Account": "123456789012"}

        return call


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """The example config with site agents on main and dr, changed by `edit(data)`."""
    monkeypatch.setenv("STATE_TABLE_NAME", "quorum-dr-state")
    monkeypatch.delenv("ALERT_TOPIC_ARN", raising=False)
    monkeypatch.delenv("QDR_CONFIG", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: no confirmation asked

    def write(edit: Callable[[dict[str, Any]], None] = lambda data: None) -> Path:
        data = yaml.safe_load(EXAMPLE.read_text())
        sites = data["services"][0]["sites"]
        for site, host in (("main", "10.0.1.5"), ("dr", "10.0.2.7")):
            sites[site]["agent"] = {
                "url": f"https://{host}:8443",
                "signing_secret": f"quorum-dr/{site}-agent",
            }
        edit(data)
        path = tmp_path / "watchdog.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


def run(argv: list[str]) -> tuple[int, Recording, Recording]:
    sts, store = Recording(), Recording()
    args = build_parser().parse_args(argv)
    return run_rejoin(args, sts=sts, store=store), sts, store


def no_database(data: dict[str, Any]) -> None:
    del data["services"][0]["database"]


def no_main_agent(data: dict[str, Any]) -> None:
    del data["services"][0]["sites"]["main"]["agent"]


REJOIN = ["rejoin", "--service", "booking", "--site", "main", "--yes"]
CASES: list[tuple[str, list[str], Callable[[dict[str, Any]], None] | None, str]] = [
    ("a malformed service", ["--service", "Bad Name!"], None, "--service: 'Bad Name!' is not a service name"),
    ("an unknown service", ["--service", "nope"], None, "--service: no service named 'nope' in "),
    ("no database section", [], no_database, "--service: booking has no database section in the config"),
    ("no agent on the site", [], no_main_agent, "--site main: booking has no site agent on main (sites.main"),
    ("a zero timeout", ["--timeout", "0"], None, "--timeout: 0 s; give more than 0 and at most 86400"),
    ("a timeout too long", ["--timeout", "86401"], None, "--timeout: 86401 s; give more than 0 and at most"),
    ("a timeout that is not a number", ["--timeout", "soon"], None, "--timeout: 'soon' is not a number"),
    ("a timeout that is not finite", ["--timeout", "nan"], None, "--timeout: nan s; give more than 0"),
    ("no state table", ["--table", ""], None, "no state table: give --table or set STATE_TABLE_NAME"),
    ("a bad topic ARN", ["--topic-arn", "arn:aws:sqs:eu-west-2:1:q"], None, "--topic-arn: 'arn:aws:sqs:"),
    ("a missing config", ["--config", "/nonexistent.yaml"], None, "--config: /nonexistent.yaml"),
]


@pytest.mark.parametrize(("name", "extra", "edit", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2_before_any_call(
    name: str,
    extra: list[str],
    edit: Callable[[dict[str, Any]], None] | None,
    fragment: str,
    config_file: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [*REJOIN, "--config", str(config_file(edit or (lambda data: None))), *extra]

    code, sts, store = run(argv)

    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert sts.calls == [] and store.calls == []


def test_the_site_is_main_or_dr_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["rejoin", "--service", "booking", "--site", "cold"])
    assert caught.value.code == EXIT_BAD_INPUT
    assert "argument --site: invalid choice: 'cold' (choose from" in capsys.readouterr().err


def test_the_alert_topic_is_given_or_the_control_stacks_topic_of_the_callers_account() -> None:
    config = load_config(EXAMPLE)
    asked: list[str] = []

    def account() -> str:
        asked.append("sts")
        return "123456789012"

    given = "arn:aws:sns:eu-west-2:210987654321:ops-alerts"
    assert alert_topic(config, given, account) == given and asked == []
    assert alert_topic(config, None, account) == "arn:aws:sns:eu-west-2:123456789012:quorum-dr-alerts"
    gov = config.model_copy(update={"home_region": "us-gov-west-1"})
    assert alert_topic(gov, None, account).startswith("arn:aws-us-gov:sns:us-gov-west-1:123456789012:")


def test_on_a_terminal_the_operator_types_the_service_name_or_nothing_is_done(
    config_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("yes\n"))
    argv = ["rejoin", "--service", "booking", "--site", "main", "--config", str(config_file())]

    code, sts, store = run(argv)

    assert code == EXIT_REFUSED
    err = capsys.readouterr().err
    assert f"Rejoin main of booking as {CALLER} (local user " in err
    assert "what it wrote after the failover is discarded by pg_rewind" in err
    assert "not confirmed: nothing was done" in err
    assert store.calls == [] and "get_caller_identity" in sts.calls
