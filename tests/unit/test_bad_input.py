"""Hostile input and operator mistakes (issue 11): nothing crashes, every failure is one line and a
documented exit code (`quorum_dr.cli.exit_codes`).

Each table below is a list of cases; add a row to add a case:

- FILE_CASES: (name, file contents from the example's text, error fragment): both loaders, the
  watchdog config (`drctl config validate`) and a drill scenario (`drctl drill FILE`), exit 2.
- SPECIAL_FILES: things that are not regular files; both loaders, exit 2, no hang.
- CONFIG_VALUES / SCENARIO_VALUES: (dotted path, value, error fragment) set in the example config or
  in the main-outage scenario; exit 2 and the line names the field.
- OPERATOR_CASES: (name, argv, exit code, error fragment) for failover / approve / veto / status /
  reset; input that is refused before any AWS call (the fakes record calls: there must be none).
- AWS_CASES: (name, argv, which fake fails, the botocore error, fragment): exit 3, one line.
- SECRETS_FILES: (name, contents, fragment) for `drctl probe --secrets-file`, exit 2.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import os
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from quorum_dr.cli import build_parser, main
from quorum_dr.cli.exit_codes import EXIT_AWS, EXIT_BAD_INPUT, EXIT_OK, EXIT_OUTPUT_CLOSED, EXIT_REFUSED
from quorum_dr.config_types import MAX_REASON_CHARS
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr.failover.operator import OperatorError, reset
from quorum_dr.failover.request import FailoverRequest, parse_manual

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "watchdog.example.yaml"
SCENARIO = ROOT / "scenarios" / "main-outage.yaml"
ARN = "arn:aws:states:eu-west-2:123456789012:stateMachine:quorum-dr-failover"
CALLER = "arn:aws:sts::123456789012:assumed-role/Operator/alice"


def _invisible(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cf")]


# ---------------------------------------------------------------------------------------------
# Files: both loaders
# ---------------------------------------------------------------------------------------------


def _first_key_line(text: str) -> str:
    """The file's first top-level `key: value` line: given again, it is a duplicate key."""
    return next(line for line in text.splitlines() if line[:1].isalpha() and ": " in line) + "\n"


# 9 ** 9 strings once expanded; a loader or a check that expands aliases never finishes.
_ALIAS_BOMB = "\nbomb:\n  a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


FILE_CASES: list[tuple[str, Callable[[str], bytes], str]] = [
    ("utf-16", lambda text: text.encode("utf-16"), "not UTF-8 text (it looks like UTF-16)"),
    ("binary", lambda _: bytes(range(256)) * 4, "not UTF-8 text: byte 0x80 at offset 128"),
    ("sequences nested 500 deep", lambda _: b"[" * 500 + b"]" * 500, "nested deeper than 64 levels"),
    (
        "mappings nested 500 deep",
        lambda _: "".join("  " * i + f"k{i}:\n" for i in range(500)).encode() + b"  " * 500 + b"x\n",
        "nested deeper than 64 levels",
    ),
    ("an integer of 5000 digits", lambda _: b"quorum: " + b"9" * 5000 + b"\n", "an integer of 5000 digits"),
    ("over 1 MiB", lambda text: (text + "#" * (1024 * 1024)).encode(), "the limit is 1 MiB"),
    ("5 MB of YAML", lambda _: b"a:\n" + b'  - {k: 1, v: "xxxxxxxxxxxxxxxxxxxxxxxx"}\n' * 120_000, "1 MiB"),
    ("a duplicate key", lambda text: (text + "\n" + _first_key_line(text)).encode(), "found duplicate key"),
    ("a NUL byte", lambda _: b"quorum: 2\x00\n", "not valid YAML"),
    ("an impossible timestamp", lambda _: b"a: !!timestamp 2024-13-45\n", "cannot build a timestamp"),
    ("an empty !!int", lambda _: b"!!int\n", "cannot build a int from ''"),
    ("an impossible bool", lambda _: b"a: !!bool maybe\n", "cannot build a bool from 'maybe'"),
    ("not YAML", lambda _: b"quorum: [unclosed\n", "not valid YAML: line 2, column 1"),
    ("empty", lambda _: b"", "(top level): expected a mapping of fields"),
    ("a list", lambda _: b"[1, 2]\n", "(top level): expected a mapping of fields"),
    ("an alias bomb", lambda text: (text + _ALIAS_BOMB).encode(), "more than 20000 values"),
    (
        "30,000 values",
        lambda text: (text + "\nx: [" + "1," * 30_000 + "1]\n").encode(),
        "more than 20000 values",
    ),
]

LOADERS = {
    "config": lambda path: ["config", "validate", str(path)],
    "scenario": lambda path: ["drill", str(path)],
}


def _check_one_failure(code: int, err: str, path: Path, fragment: str) -> None:
    assert code == EXIT_BAD_INPUT
    lines = err.strip().splitlines()
    assert lines and all(line.startswith(f"{path}: ") for line in lines), err
    assert fragment.lower() in err.lower(), err
    assert "Traceback" not in err


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(("name", "contents", "fragment"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_a_bad_file_is_one_line_and_exit_2(
    loader: str,
    name: str,
    contents: Callable[[str], bytes],
    fragment: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "input.yaml"
    path.write_bytes(contents(EXAMPLE.read_text() if loader == "config" else SCENARIO.read_text()))
    code = main(LOADERS[loader](path))
    err = capsys.readouterr().err
    _check_one_failure(code, err, path, fragment)
    if "(top level)" not in fragment:
        assert len(err.strip().splitlines()) == 1, err


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    return path


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / "folder.yaml"
    path.mkdir()
    return path


SPECIAL_FILES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("/dev/zero", lambda _: Path("/dev/zero"), "cannot read: a character device, not a regular file"),
    ("a FIFO", _fifo, "cannot read: a FIFO, not a regular file"),
    ("a directory", _directory, "cannot read: a directory, not a regular file"),
    ("missing", lambda tmp: tmp / "nope.yaml", "no such"),
]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(("name", "make", "fragment"), SPECIAL_FILES, ids=[c[0] for c in SPECIAL_FILES])
def test_a_file_that_is_not_a_regular_file_is_refused_without_reading(
    loader: str,
    name: str,
    make: Callable[[Path], Path],
    fragment: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = make(tmp_path)
    code = main(LOADERS[loader](path))
    err = capsys.readouterr().err
    _check_one_failure(code, err, path, fragment)
    assert len(err.strip().splitlines()) == 1


def test_the_probe_command_refuses_a_fifo_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _fifo(tmp_path)
    code = main(["probe", "--config", str(path), "--once"])
    _check_one_failure(code, capsys.readouterr().err, path, "a FIFO, not a regular file")


# ---------------------------------------------------------------------------------------------
# Values: accepted before, harmful later
# ---------------------------------------------------------------------------------------------


def _set(data: Any, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data[int(part)] if isinstance(data, list) else data[part]
    if isinstance(data, list):
        data[int(last)] = value
    else:
        data[last] = value


SVC = "services.0"
CONFIG_VALUES: list[tuple[str, Any, str]] = [
    ("probe.freshness_seconds", float("inf"), "probe.freshness_seconds: Input should be a finite number"),
    ("probe.interval_seconds", 1e308, "probe.interval_seconds: Input should be less than or equal to 86400"),
    ("probe.timeout_seconds", float("nan"), "probe.timeout_seconds: Input should be a finite number"),
    (
        f"{SVC}.hooks.fence_main.timeout_seconds",
        float("inf"),
        "hooks.fence_main.timeout_seconds: Input should",
    ),
    (f"{SVC}.hooks.fence_main.timeout_seconds", 1e308, "less than or equal to 900"),
    ("notifications.webhooks.0.timeout_seconds", 3600, "less than or equal to 900"),
    (f"{SVC}.database.max_lag_seconds", float("nan"), "database.max_lag_seconds: Input should be a finite"),
    (f"{SVC}.failover.veto_seconds", 10**30, "failover.veto_seconds: Input should be less than or equal"),
    (f"{SVC}.failover.lock_ttl_seconds", 10**30, "failover.lock_ttl_seconds: Input should be less than"),
    (f"{SVC}.failover.cooldown_seconds", 10**30, "failover.cooldown_seconds: Input should be less than"),
    (f"{SVC}.failover.approval_timeout_seconds", 10**9, "approval_timeout_seconds: Input should be less"),
    (f"{SVC}.cold_site.ready_timeout_seconds", 10**9, "ready_timeout_seconds: Input should be less"),
    ("confirmation.wait_seconds", 10**9, "confirmation.wait_seconds: Input should be less than"),
    ("probe.result_ttl_seconds", 10**12, "probe.result_ttl_seconds: Input should be less than"),
    (f"{SVC}.edge.records.0.ttl", -5, "-5 is not a Cloudflare ttl: 1 (automatic) or 60 to 86400"),
    (f"{SVC}.edge.records.0.ttl", 30, "30 is not a Cloudflare ttl"),
    ("quorum", True, "quorum: Input should be a valid integer"),
    ("probe.result_ttl_seconds", "3600", "probe.result_ttl_seconds: Input should be a valid integer"),
    ("probe.interval_seconds", "30", "probe.interval_seconds: Input should be a valid number"),
    (f"{SVC}.sites.main.checks.1.port", 443.0, "port: Input should be a valid integer"),
    (f"{SVC}.sites.main.checks.0.verify_tls", "yes", "verify_tls: Input should be a valid boolean"),
    (
        f"{SVC}.public_health_path",
        "@evil.example/x",
        "public_health_path: '@evil.example/x' is not a URL path",
    ),
    (f"{SVC}.public_health_path", "//evil.example/x", "is not a URL path"),
    (f"{SVC}.public_health_path", "health", "is not a URL path"),
    (
        f"{SVC}.sites.main.label",
        "London\x1b[2J\x1b[31m",
        "label: contains a control or invisible character (U+001B)",
    ),
    (
        f"{SVC}.sites.dr.label",
        "US \u202eEast",
        "sites.dr.label: contains a control or invisible character (U+202E)",
    ),
    (f"{SVC}.sites.main.marker", "main\n", "marker: contains a control or invisible character (U+000A)"),
    (f"{SVC}.sites.main.checks.0.expect_headers", {"X-Site": "main\x07"}, "contains a control"),
    (f"{SVC}.public_hostname", "x" * 5000, "is 5000 characters long; at most 4096"),
    (f"{SVC}.database.sync_check.tables", ["orders"], "sync_check.tables: 'orders' is not schema-qualified"),
    (f"{SVC}.database.sync_check.tables", [], "sync_check.tables: List should have at least 1 item"),
    (
        f"{SVC}.database.sync_check.tables",
        ["public.orders; DROP TABLE orders"],
        "'orders; DROP TABLE orders' is not a table name",
    ),
    (f"{SVC}.database.sync_check.tables", ['"Public".orders'], "'\"Public\"' is not a schema name"),
    (f"{SVC}.database.sync_check.tables", ["public." + "t" * 64], "is not a table name"),
    (
        f"{SVC}.database.sync_check.tables",
        ["public.orders", "public.orders"],
        "sync_check.tables: duplicate table name 'public.orders'",
    ),
    (f"{SVC}.database.sync_check.tables", "public.orders", "sync_check.tables: Input should be a valid list"),
    (f"{SVC}.database.sync_check.schema", "app-data", "sync_check.schema: 'app-data' is not a schema name"),
    (f"{SVC}.database.sync_check.max_table_bytes", -1, "max_table_bytes: Input should be greater than or"),
    (f"{SVC}.database.sync_check.max_table_bytes", 10**15, "max_table_bytes: Input should be less than or"),
    (f"{SVC}.database.sync_check.max_table_bytes", "64MB", "max_table_bytes: Input should be a valid int"),
    (f"{SVC}.database.sync_check.timeout_seconds", 0, "sync_check.timeout_seconds: Input should be greater"),
    (f"{SVC}.database.sync_check.timeout_seconds", 3600, "timeout_seconds: Input should be less than or"),
    (f"{SVC}.database.sync_check.timeout_seconds", float("inf"), "timeout_seconds: Input should be a finite"),
    (f"{SVC}.database.sync_check.app_schema", "public", "sync_check.app_schema: unknown field"),
]


@pytest.mark.parametrize(
    ("dotted", "value", "fragment"), CONFIG_VALUES, ids=[f"{c[0]}={c[1]!r:.20}" for c in CONFIG_VALUES]
)
def test_a_harmful_config_value_is_refused(
    dotted: str, value: Any, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    _set(data, dotted, value)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    code = main(["config", "validate", str(path)])
    _check_one_failure(code, capsys.readouterr().err, path, fragment)


SCENARIO_VALUES: list[tuple[str, Any, str]] = [
    ("faults.0.at", float("nan"), "faults.0.at: Input should be a finite number"),
    ("duration_seconds", float("inf"), "duration_seconds: Input should be a finite number"),
    ("duration_seconds", "40", "duration_seconds: Input should be a valid number"),
    ("probe.confirmation_rounds", True, "probe.confirmation_rounds: Input should be a valid integer"),
    ("expectations.failover", "true", "expectations.failover: Input should be a valid boolean"),
    ("expectations.promotions", 10**30, "expectations.promotions: Input should be less than or equal"),
    ("settle_seconds", 1e308, "settle_seconds: Input should be less than or equal to 600"),
    ("description", "fine\u202eenif", "description: contains a control or invisible character (U+202E)"),
    ("faults.0.params", {"site": "main", "restore_after_seconds": float("inf")}, "finite number"),
    (
        "faults.0",
        {"at": 1, "kind": "clock_skew", "params": {"region": "eu-west-2", "seconds": 1e308}},
        "params.seconds: Input should be less than or equal to 86400",
    ),
    (
        "operator",
        [{"at": 5, "command": "failover", "to": "dr", "reason": "drill \x1b]0;owned\x07"}],
        "operator.0.failover.reason: contains a control or invisible character (U+001B)",
    ),
    ("operator", [{"at": 5, "command": "reset", "reason": "r" * 501}], "at most 500 characters"),
]


@pytest.mark.parametrize(
    ("dotted", "value", "fragment"), SCENARIO_VALUES, ids=[c[0] for c in SCENARIO_VALUES]
)
def test_a_harmful_scenario_value_is_refused(
    dotted: str, value: Any, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(SCENARIO.read_text())
    _set(data, dotted, value)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    code = main(["drill", str(path)])
    _check_one_failure(code, capsys.readouterr().err, path, fragment)


def test_the_example_and_every_shipped_scenario_still_load(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate", str(EXAMPLE)]) == EXIT_OK
    from quorum_dr_local.drill.scenario import load_scenario, shipped_scenarios

    assert [load_scenario(name).name for name in shipped_scenarios()] == shipped_scenarios()


def test_a_multi_line_scenario_description_is_still_prose() -> None:
    from quorum_dr_local.drill.scenario import load_scenario

    assert "\n" in load_scenario("main-outage").description


def test_a_merge_key_may_be_overridden_but_not_a_key_given_twice(tmp_path: Path) -> None:
    from quorum_dr.config_file import FileRefused, read_yaml

    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  x: 3\n")
    assert read_yaml(path)["use"] == {"x": 3, "y": 2}
    path.write_text("use:\n  x: 1\n  y: 2\n  x: 3\n")
    with pytest.raises(FileRefused, match=r"line 4, column 3: .*found duplicate key 'x'"):
        read_yaml(path)


# ---------------------------------------------------------------------------------------------
# Operator commands
# ---------------------------------------------------------------------------------------------


class Recording:
    """A stand-in for a boto3 client or the state store: answers from `answers`, records every
    call, and raises `error` (a real botocore exception) on every call when given one."""

    def __init__(self, error: Exception | None = None, **answers: Any) -> None:
        self.error, self.answers = error, answers
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if self.error is not None:
                raise self.error
            answer = self.answers.get(name)
            return answer(*args, **kwargs) if callable(answer) else answer

        return call


def _fakes(**errors: Exception) -> dict[str, Recording]:
    return {
        "sts": Recording(errors.get("sts"), get_caller_identity={"Arn": CALLER}),
        "sfn": Recording(
            errors.get("sfn"),
            start_execution=lambda **kw: {
                "executionArn": f"{ARN}:{kw['name']}".replace("stateMachine", "execution")
            },
        ),
        "store": Recording(
            errors.get("store"),
            get_incident=IncidentRecord(service="booking", incident_id="inc-1", task_token="token-1"),
            get_state={"service": "booking", "active_site": "main", "status": "HEALTHY", "version": 1},
            get_lock=None,
            list_incidents=[],
            clear_lock=None,
        ),
    }


def _run(argv: list[str], fakes: dict[str, Recording]) -> int:
    """The command as `drctl` runs it, with the fakes in place of AWS."""
    args = build_parser().parse_args(argv)
    accepted = inspect.signature(args.func).parameters
    return int(args.func(args, **{k: v for k, v in fakes.items() if k in accepted}))


@pytest.fixture(autouse=True)
def _operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDR_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("STATE_MACHINE_ARN", ARN)
    monkeypatch.setenv("STATE_TABLE_NAME", "quorum-dr-state")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: no confirmation asked


FAILOVER = ["failover", "--to", "dr", "--reason", "London is down", "--service", "booking"]
OPERATOR_CASES: list[tuple[str, list[str], int, str]] = [
    *[
        (f"{verb}: a malformed service", argv, EXIT_BAD_INPUT, "--service: 'Bad Name!' is not a service name")
        for verb, argv in [
            ("failover", ["failover", "--to", "dr", "--reason", "r", "--service", "Bad Name!"]),
            ("switchover", ["switchover", "--to", "main", "--service", "Bad Name!"]),
            ("status", ["status", "--service", "Bad Name!"]),
            ("reset", ["reset", "--service", "Bad Name!", "--reason", "checked"]),
            ("approve", ["approve", "inc-1", "--service", "Bad Name!"]),
            ("veto", ["veto", "inc-1", "--service", "Bad Name!"]),
            ("pause", ["pause", "--service", "Bad Name!", "--reason", "maintenance"]),
            ("resume", ["resume", "--service", "Bad Name!", "--reason", "done"]),
            ("sync-check", ["sync-check", "--service", "Bad Name!"]),
        ]
    ],
    *[
        (f"{verb}: an unknown service", argv, EXIT_BAD_INPUT, "--service: no service named 'no-such-service'")
        for verb, argv in [
            ("failover", ["failover", "--to", "dr", "--reason", "r", "--service", "no-such-service"]),
            ("switchover", ["switchover", "--to", "main", "--service", "no-such-service"]),
            ("status", ["status", "--service", "no-such-service"]),
            ("reset", ["reset", "--service", "no-such-service", "--reason", "checked"]),
            ("approve", ["approve", "inc-1", "--service", "no-such-service"]),
            ("veto", ["veto", "inc-1", "--service", "no-such-service"]),
            ("pause", ["pause", "--service", "no-such-service", "--reason", "maintenance"]),
            ("sync-check", ["sync-check", "--service", "no-such-service"]),
        ]
    ],
    (
        "a blank pause reason",
        ["pause", "--service", "booking", "--reason", "\x1b \u202e"],
        EXIT_BAD_INPUT,
        "blank",
    ),
    (
        "a reason too long",
        [*FAILOVER[:3], "--reason", "r" * 501, *FAILOVER[5:]],
        EXIT_BAD_INPUT,
        "at most 500",
    ),
    (
        "a blank reason",
        [*FAILOVER[:3], "--reason", "\x1b \u202e\x07", *FAILOVER[5:]],
        EXIT_BAD_INPUT,
        "blank",
    ),
    (
        "a reset reason too long",
        ["reset", "--service", "booking", "--reason", "r" * 501],
        EXIT_BAD_INPUT,
        "500",
    ),
    (
        "a bad incident id",
        ["approve", "inc 1; rm", "--service", "booking"],
        EXIT_BAD_INPUT,
        "not an incident id",
    ),
    (
        "a bad --incident-id",
        [*FAILOVER, "--incident-id", "a/b"],
        EXIT_BAD_INPUT,
        "incident_id: String should",
    ),
    (
        "a missing config",
        [*FAILOVER, "--config", "/nonexistent.yaml"],
        EXIT_BAD_INPUT,
        "--config: /nonexistent",
    ),
    (
        "a FIFO as config",
        ["status", "--service", "booking", "--config", "/dev/zero"],
        EXIT_BAD_INPUT,
        "device",
    ),
    ("no state machine", [*FAILOVER, "--state-machine-arn", ""], EXIT_BAD_INPUT, "no state machine"),
    (
        "sync-check: which site is active is unknown",
        ["sync-check", "--service", "booking", "--table", ""],
        EXIT_BAD_INPUT,
        "which site is active? give --active main|dr, or --table",
    ),
    (
        "sync-check: a bad incident id",
        ["sync-check", "--service", "booking", "--incident", "inc 1; rm -rf"],
        EXIT_BAD_INPUT,
        "--incident: 'inc 1; rm -rf' is not an incident id",
    ),
    (
        "sync-check: an incident without the state table",
        ["sync-check", "--service", "booking", "--active", "main", "--table", "", "--incident", "inc-1"],
        EXIT_BAD_INPUT,
        "--incident: the record is in the state table",
    ),
    (
        "sync-check: a missing secrets file",
        ["sync-check", "--service", "booking", "--secrets-file", "/nonexistent.json"],
        EXIT_BAD_INPUT,
        "--secrets-file: /nonexistent.json",
    ),
    (
        "switchover: a service without site agents",
        ["switchover", "--to", "dr", "--service", "booking"],
        EXIT_BAD_INPUT,
        "--service: booking has no site agent on main and dr (sites.main.agent, sites.dr.agent)",
    ),
]


@pytest.mark.parametrize(
    ("name", "argv", "code", "fragment"), OPERATOR_CASES, ids=[c[0] for c in OPERATOR_CASES]
)
def test_bad_operator_input_is_refused_before_aws(
    name: str, argv: list[str], code: int, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fakes = _fakes()
    assert _run(argv, fakes) == code
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert all(fake.calls == [] for fake in fakes.values()), {k: f.calls for k, f in fakes.items()}


def test_to_takes_only_dr_or_cold(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*FAILOVER[:1], "--to", "London", *FAILOVER[3:]])
    assert caught.value.code == EXIT_BAD_INPUT
    assert "argument --to: invalid choice: 'London' (choose from" in capsys.readouterr().err


def test_the_config_defaults_to_the_one_cdk_json_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("QDR_CONFIG")
    monkeypatch.chdir(ROOT)  # cdk.json names config/watchdog.example.yaml
    assert _run(["status", "--service", "no-such-service"], _fakes()) == EXIT_BAD_INPUT
    assert "no service named 'no-such-service' in config/watchdog.example.yaml" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # no cdk.json, no QDR_CONFIG, no --config
    assert _run(["status", "--service", "booking"], _fakes()) == EXIT_BAD_INPUT
    assert "no config: give --config FILE or set QDR_CONFIG" in capsys.readouterr().err


def _client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (from AWS)"}}, operation)


AWS_CASES: list[tuple[str, list[str], str, Exception, str]] = [
    (
        "sync-check: no table",
        ["sync-check", "--service", "booking"],
        "store",
        _client_error("ResourceNotFoundException", "GetItem"),
        "the table (or resource) does not exist: check --table",
    ),
    ("failover: no credentials", FAILOVER, "sts", NoCredentialsError(), "no AWS credentials found"),
    (
        "failover: no network",
        FAILOVER,
        "sfn",
        EndpointConnectionError(endpoint_url="https://states.eu-west-2.amazonaws.com/"),
        "AWS is unreachable",
    ),
    (
        "failover: no state machine",
        FAILOVER,
        "sfn",
        _client_error("StateMachineDoesNotExist", "StartExecution"),
        "the state machine does not exist: check --state-machine-arn",
    ),
    (
        "failover: the incident id is taken",
        [*FAILOVER, "--incident-id", "inc-42"],
        "sfn",
        _client_error("ExecutionAlreadyExists", "StartExecution"),
        "give another --incident-id",
    ),
    (
        "status: no credentials",
        ["status", "--service", "booking"],
        "store",
        NoCredentialsError(),
        "credentials",
    ),
    (
        "status: no table",
        ["status", "--service", "booking"],
        "store",
        _client_error("ResourceNotFoundException", "GetItem"),
        "check --table",
    ),
    (
        "reset: no network",
        ["reset", "--service", "booking", "--reason", "checked by hand"],
        "store",
        EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-2.amazonaws.com/"),
        "cannot reset the service: AWS is unreachable",
    ),
    (
        "approve: too late",
        ["approve", "inc-1", "--service", "booking"],
        "sfn",
        _client_error("TaskTimedOut", "SendTaskSuccess"),
        "the waiting step no longer takes an answer",
    ),
    (
        "veto: expired credentials",
        ["veto", "inc-1", "--service", "booking"],
        "sts",
        _client_error("ExpiredToken", "GetCallerIdentity"),
        "the credentials have expired",
    ),
]


@pytest.mark.parametrize(
    ("name", "argv", "failing", "error", "fragment"), AWS_CASES, ids=[c[0] for c in AWS_CASES]
)
def test_an_aws_error_is_one_line_and_exit_3(
    name: str,
    argv: list[str],
    failing: str,
    error: Exception,
    fragment: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(argv, _fakes(**{failing: error})) == EXIT_AWS
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("cannot ") and "Traceback" not in err


def test_real_boto3_without_credentials_is_one_line_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-2")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # boto3's default session caches the credentials an earlier test resolved: start without it,
    # as a fresh drctl process does (else the call goes on to the network)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    assert main(["status", "--service", "booking"]) == EXIT_AWS
    assert main(FAILOVER) == EXIT_AWS
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "cannot read the service's state: no AWS credentials found: set AWS_PROFILE or log in "
        "(aws sso login)",
        "cannot start the failover execution: no AWS credentials found: set AWS_PROFILE or log in "
        "(aws sso login)",
    ]


def test_requested_by_is_the_callers_arn_with_the_local_user_beside_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("USER", "ceo")
    monkeypatch.setenv("LOGNAME", "ceo")
    fakes = _fakes()
    assert _run([*FAILOVER, "--incident-id", "inc-7"], fakes) == EXIT_OK
    assert fakes["sts"].calls == ["get_caller_identity"] and fakes["sfn"].calls == ["start_execution"]
    assert capsys.readouterr().out.startswith("started incident inc-7: ")


def test_the_started_execution_carries_the_identity_and_the_cleaned_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER", "ceo")
    monkeypatch.setenv("LOGNAME", "ceo")
    started: list[dict[str, Any]] = []
    fakes = _fakes()

    def start_execution(**call: Any) -> dict[str, str]:
        started.append(call)
        return {"executionArn": "x"}

    fakes["sfn"].answers["start_execution"] = start_execution
    reason = "London \x1b[31mis\x1b[0m down\u202e\r\nreally"
    assert _run([*FAILOVER[:3], "--reason", reason, *FAILOVER[5:]], fakes) == EXIT_OK
    request = json.loads(started[0]["input"])
    assert request["requested_by"] == f"{CALLER} (local user ceo)"
    assert request["reason"] == "London [31mis[0m down  really"
    assert not _invisible(request["reason"])


@pytest.mark.parametrize(
    ("answer", "code", "started"),
    [("booking\n", EXIT_OK, True), ("y\n", EXIT_REFUSED, False), ("", EXIT_REFUSED, False)],
)
def test_failover_on_a_terminal_asks_for_the_service_name(
    answer: str, code: int, started: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal(answer))
    fakes = _fakes()
    assert _run(FAILOVER, fakes) == code
    assert (fakes["sfn"].calls == ["start_execution"]) is started
    err = capsys.readouterr().err
    assert f"Fail over booking to dr as {CALLER}" in err
    if not started:
        assert "not confirmed: no execution was started" in err
    # --yes: no question asked, even on a terminal
    monkeypatch.setattr(sys, "stdin", Terminal(""))
    fakes = _fakes()
    assert _run([*FAILOVER, "--yes"], fakes) == EXIT_OK and fakes["sfn"].calls == ["start_execution"]


def test_reset_on_a_terminal_asks_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("no\n"))
    fakes = _fakes()
    assert _run(["reset", "--service", "booking", "--reason", "checked"], fakes) == EXIT_REFUSED
    assert "clear_lock" not in fakes["store"].calls
    assert "not confirmed: nothing was reset" in capsys.readouterr().err


def test_reset_stores_the_reason_without_control_characters() -> None:
    stored: list[dict[str, Any]] = []
    store = _fakes()["store"]
    store.answers["put_state"] = lambda state, **_: stored.append(state)
    sentence = reset(store, "booking", reason="done\x1b\u202e by hand\n", by="alice", now=1.0)  # type: ignore[arg-type]
    assert "(done by hand)" in sentence and not _invisible(sentence)
    with pytest.raises(OperatorError, match="at most 500"):
        reset(store, "booking", reason="r" * 501, by="alice", now=1.0)  # type: ignore[arg-type]


def test_failover_request_cleans_and_bounds_its_text() -> None:
    good = {"service": "booking", "to": "dr", "reason": "x\x1b[1m\u202ey", "requested_by": "alice\x00"}
    request = parse_manual(good)
    assert (request.reason, request.requested_by) == ("x[1my", "alice")
    assert FailoverRequest.model_fields["reason"].metadata[-1].max_length == MAX_REASON_CHARS
    with pytest.raises(Exception, match="reason: String should have at most 500 characters"):
        parse_manual({**good, "reason": "r" * 501})


# ---------------------------------------------------------------------------------------------
# The command line itself
# ---------------------------------------------------------------------------------------------


def test_a_closed_output_pipe_is_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `drctl ... | head` after head exited
    closed = io.TextIOWrapper(io.FileIO(write_end, "w"), write_through=False)
    monkeypatch.setattr(sys, "stdout", closed)
    try:
        assert main(["config", "validate", str(EXAMPLE)]) == EXIT_OUTPUT_CLOSED
        closed.write("what is left goes to /dev/null\n")
        closed.flush()  # no BrokenPipeError any more: stdout's descriptor now points at /dev/null
    finally:
        closed.close()


def test_version_and_every_sub_command_has_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("drctl (quorum-dr) ")
    parser = build_parser()
    commands: dict[str, argparse.ArgumentParser] = next(
        a for a in parser._actions if a.dest == "command"
    ).choices  # type: ignore[assignment]
    assert set(commands) >= {
        "config",
        "drill",
        "probe",
        "failover",
        "approve",
        "veto",
        "status",
        "reset",
        "switchover",
    }
    for name, sub in commands.items():
        assert sub.description, f"drctl {name} has no description"
    dry_run = next(a for a in commands["failover"]._actions if a.dest == "dry_run")
    assert "still starts a real execution" in (dry_run.help or "")
    assert "130 interrupted" in (parser.epilog or "")


SECRETS_FILES: list[tuple[str, bytes | None, str]] = [
    ("missing", None, "cannot read: No such file or directory"),
    ("bad JSON", b'{"quorum-dr/db": ', "not valid JSON: Expecting value at line 1"),
    ("a list", b'["quorum-dr/db"]', "expected a JSON object mapping secret names to values, got list"),
    ("nested 100000 deep", b"[" * 100_000, "not valid JSON"),
    ("binary", b"\xff\xfe{}", "not UTF-8 text"),
]


@pytest.mark.parametrize(("name", "contents", "fragment"), SECRETS_FILES, ids=[c[0] for c in SECRETS_FILES])
def test_a_bad_secrets_file_is_one_line_and_exit_2(
    name: str, contents: bytes | None, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "secrets.json"
    if contents is not None:
        path.write_bytes(contents)
    code = main(["probe", "--config", str(EXAMPLE), "--once", "--secrets-file", str(path)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err.strip() == err.strip().splitlines()[0] and err.startswith(f"--secrets-file: {path}: "), err
    assert fragment in err, err
