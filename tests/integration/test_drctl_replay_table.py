"""`drctl replay --table` against the results table in moto: the results of the service between
--since and --until, written by the real results store, replayed; a table that is not there, or
AWS out of reach, is one line and exit 3.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.tables import create_table
from quorum_dr.cli import main as drctl
from quorum_dr.cli.exit_codes import EXIT_AWS, EXIT_OK
from quorum_dr.domain.results import ProbeResult
from quorum_dr.replay.moments import utc
from tests.fakes import Clock
from tests.integration.conftest import STATE_REGION
from tests.recorded_rounds import (
    T0,
    example_config,
    main_down_from,
    recorded,
    standby_losing_main_at,
    write_config,
)

REGION, TABLE = STATE_REGION, "quorum-dr-results"
FAULT = T0 + 600


@pytest.fixture
def table(moto_state_store: DynamoStateStore) -> DynamoDbResultStore:
    """Beside the state table in moto, the results table with 40 rounds per region of an outage of
    main, and another service's results, each round written by the store at its receive time."""
    create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
    clock = Clock()
    store = DynamoDbResultStore.from_name(TABLE, ttl_seconds=86400, clock=clock, region=REGION)
    outage = recorded(40, main_up=main_down_from(FAULT), standby=standby_losing_main_at(FAULT))
    other = [r.model_copy(update={"service": "payments"}) for r in outage[:30]]
    rounds: dict[tuple[str, str, str], list[ProbeResult]] = {}
    for result in outage + other:
        rounds.setdefault((result.service, result.region, result.round_id), []).append(result)
    for results in rounds.values():
        clock.now = results[0].received_at or 0.0
        store.put_results(results)
    return store


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = drctl(["replay", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _config(tmp_path: Path) -> str:
    return str(write_config(tmp_path / "watchdog.yaml", example_config()))


def test_replay_reads_the_services_results_between_since_and_until(
    table: DynamoDbResultStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    window = ["--since", "2026-12-03T03:53:20Z", "--until", str(FAULT + 300), "--region", REGION]
    code, out, err = _run(["--config", _config(tmp_path), "--table", TABLE, *window], capsys)
    assert (code, err) == (EXIT_OK, ""), err
    first = out.splitlines()[0]
    # rounds received from T0 + 0.5 to FAULT + 300: 30 a region (the last at FAULT + 284.5)
    assert (
        f"540 results in 90 rounds (results table {TABLE}) from {utc(T0 + 0.5)} to {utc(FAULT + 284.5)}"
        in first
    )
    assert f"{utc(FAULT + 37.5)} (+637.00 s)  WOULD FAIL OVER: would fail over to dr" in out


def test_replay_of_the_table_answers_json(
    table: DynamoDbResultStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    window = ["--since", str(FAULT - 120), "--until", "2026-12-03T04:10:00Z"]
    code, out, _ = _run(["--config", _config(tmp_path), "--table", TABLE, *window, "--json"], capsys)
    assert code == EXIT_OK
    moments = json.loads(out)
    assert [m["target"] for m in moments if m["kind"] == "would_fail_over"] == ["dr"]
    assert all(FAULT - 120 <= m["at"] for m in moments)


def test_a_window_with_no_results_is_bad_input(
    table: DynamoDbResultStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    window = ["--since", "2027-01-01T00:00:00Z", "--until", "2027-01-02T00:00:00Z"]
    code, out, err = _run(["--config", _config(tmp_path), "--table", TABLE, *window], capsys)
    assert code == 2 and out == ""
    assert err.strip() == (
        f"drctl replay: no results of booking in the results table {TABLE} between "
        "2027-01-01 00:00:00.00Z and 2027-01-02 00:00:00.00Z"
    )


def test_a_table_that_is_not_there_is_one_line_and_exit_3(
    table: DynamoDbResultStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    window = ["--since", str(T0), "--until", str(FAULT)]
    code, out, err = _run(["--config", _config(tmp_path), "--table", "no-such-table", *window], capsys)
    assert code == EXIT_AWS and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("drctl replay: cannot read the results table: ResourceNotFoundException")


def test_aws_out_of_reach_is_one_line_and_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")  # nothing listens there
    window = ["--since", str(T0), "--until", str(FAULT)]
    code, out, err = _run(["--config", _config(tmp_path), "--table", TABLE, *window], capsys)
    assert code == EXIT_AWS and out == ""
    assert err.startswith("drctl replay: cannot read the results table: AWS is unreachable")
    assert len(err.strip().splitlines()) == 1
