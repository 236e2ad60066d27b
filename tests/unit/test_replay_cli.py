"""`drctl replay --results FILE`: every recorded shape read back to the same results, bad input as one
line and exit 2 (a table of cases), the text and `--json` answers, and `--compare`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quorum_dr.cli import main as drctl
from quorum_dr.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from quorum_dr.domain.results import ProbeResult
from quorum_dr.replay.recording import RecordingError, VoteEvent, read_recording
from tests.recorded_rounds import (
    T0,
    example_config,
    main_down_from,
    recorded,
    standby_losing_main_at,
    write_config,
)

FAULT = T0 + 600


@pytest.fixture(scope="module")
def results() -> list[ProbeResult]:
    return recorded(40, main_up=main_down_from(FAULT), standby=standby_losing_main_at(FAULT))


def _lines(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _item(result: ProbeResult) -> dict[str, Any]:
    """A results-table item as boto3's resource API returns it (see DynamoDbResultStore._item)."""
    return {"pk": result.service, "sk": f"{result.received_at:017.6f}#x", "result": result.model_dump_json()}


def _typed(result: ProbeResult) -> dict[str, Any]:
    """The same item in DynamoDB's typed JSON (`aws dynamodb scan`, an export to S3)."""
    return {"pk": {"S": result.service}, "result": {"S": result.model_dump_json()}}


def _drill_events(results: list[ProbeResult]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"t": T0 - 1, "kind": "run_started", "data": {"scenario": "x"}}]
    rounds: dict[tuple[str, str, str], list[ProbeResult]] = {}
    for r in results:
        rounds.setdefault((r.region, r.round_id, r.site), []).append(r)
    for (region, round_id, site), found in rounds.items():
        if site != "_control":
            control = rounds.get((region, round_id, "_control"), [])
            event = VoteEvent.of_round(found, control)
            events.append({"t": found[0].received_at, "kind": "vote", "data": event.model_dump(mode="json")})
    events.append({"t": T0, "kind": "attempt", "data": {"ok": True}})
    return events


SHAPES: dict[str, Callable[[Path, list[ProbeResult]], Path]] = {
    "probe results": lambda p, rs: _lines(p, [r.model_dump(mode="json") for r in rs]),
    "results-table items": lambda p, rs: _lines(p, [_item(r) for r in rs]),
    "typed items": lambda p, rs: _lines(p, [_typed(r) for r in rs]),
    "an export to S3": lambda p, rs: _lines(p, [{"Item": _typed(r)} for r in rs]),
    "a scan": lambda p, rs: (p.write_text(json.dumps({"Items": [_typed(r) for r in rs]}, indent=2)), p)[1],
    "a drill's events": lambda p, rs: _lines(p, _drill_events(rs)),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_recorded_shape_reads_back_the_same_results(
    shape: str, tmp_path: Path, results: list[ProbeResult]
) -> None:
    recording = read_recording(SHAPES[shape](tmp_path / "recorded.jsonl", results))
    key = lambda r: (r.region, r.round_id, r.site, r.check)  # noqa: E731
    assert sorted(recording.results, key=key) == sorted(results, key=key)
    assert recording.origin == (T0 - 1 if shape == "a drill's events" else None)


def test_a_drill_vote_event_says_the_vote_the_drill_always_said(results: list[ProbeResult]) -> None:
    main = [r for r in results if r.site == "main" and r.round_id == f"sched-{int(FAULT)}-eu-west-2"]
    assert VoteEvent.of_round(main).vote == "down" and VoteEvent.of_round(main).round == "scheduled"
    up = [r for r in results if r.site == "main" and r.round_id == f"sched-{int(T0)}-eu-west-2"]
    assert VoteEvent.of_round(up).vote == "up"
    abstaining = [r.model_copy(update={"abstaining": True, "round_id": "auto-1-r1"}) for r in main]
    assert (VoteEvent.of_round(abstaining).vote, VoteEvent.of_round(abstaining).round) == (
        "abstain",
        "on-demand",
    )


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path, results: list[ProbeResult]) -> dict[str, Path]:
    return {
        "config": write_config(tmp_path / "watchdog.yaml", example_config()),
        "quorum3": write_config(tmp_path / "quorum3.yaml", example_config(quorum=3)),
        "results": SHAPES["probe results"](tmp_path / "results.jsonl", results),
        "events": SHAPES["a drill's events"](tmp_path / "events.jsonl", results),
        "dir": tmp_path,
    }


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = drctl(["replay", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_prints_each_moment_and_the_failover_decision(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["--config", str(files["config"]), "--results", str(files["results"])], capsys)
    assert (code, err) == (EXIT_OK, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"replay of booking with {files['config']}: 720 results in 120 rounds (probe")
    # times in seconds since the first recorded result (received at T0 + 0.5)
    assert "2026-12-03 04:03:57.50Z (+637.00 s)  main DOWN (was UNKNOWN): main is DOWN: 2 of 3 regions" in out
    assert "(+637.00 s)  WOULD FAIL OVER: would fail over to dr at 2026-12-03 04:03:57.50Z (mode auto" in out
    assert lines[-3].startswith("summary: ") and "1 executions took the lock (scenario hot 1)" in lines[-3]
    assert lines[-2].startswith("how: results that were not recorded cannot be probed again")
    assert lines[-1].startswith("replay cannot know: the gates")


def test_replay_of_a_drills_events_counts_from_the_drills_start(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["--config", str(files["config"]), "--results", str(files["events"])], capsys)
    assert code == EXIT_OK
    assert "(a drill's events in " in out and "(+638.50 s)  WOULD FAIL OVER" in out


def test_replay_json_is_a_list_of_moments(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        ["--config", str(files["config"]), "--results", str(files["results"]), "--json"], capsys
    )
    assert code == EXIT_OK
    moments = json.loads(out)
    assert isinstance(moments, list) and all({"at", "kind", "reason"} <= set(m) for m in moments)
    assert [m["at"] for m in moments] == sorted(m["at"] for m in moments)
    (decision,) = [m for m in moments if m["kind"] == "would_fail_over"]
    assert decision == {
        "at": FAULT + 37.5,
        "kind": "would_fail_over",
        "execution": "replay-1",
        "target": "dr",
        "reason": decision["reason"],
    }
    rounds = [m for m in moments if m["kind"] == "confirmation_round"]
    assert rounds[-1]["verdicts"] == {"main": "DOWN", "dr": "UP"} and rounds[-1]["step"] == "OutageConfirmed"
    assert set(rounds[-1]["judged_on"]) == {"eu-west-2", "us-east-1", "us-west-2"}


def test_compare_prints_where_two_configs_differ(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--config",
        str(files["config"]),
        "--results",
        str(files["results"]),
        "--compare",
        str(files["quorum3"]),
    ]
    code, out, _ = _run(argv, capsys)
    assert code == EXIT_OK
    assert "B = " in out and "quorum 3 of 3" in out
    assert (
        "main DOWN: A at 2026-12-03 04:03:57.50Z (+637.00 s), B at 2026-12-03 04:04:04.50Z (+644.00 s)" in out
    )
    assert "(7.00 s later); A: main is DOWN: 2 of 3 regions" in out

    code, out, _ = _run([*argv, "--json"], capsys)
    document = json.loads(out)
    assert code == EXIT_OK and set(document) == {"a", "b", "differences"}
    down = next(d for d in document["differences"] if d["what"] == "main DOWN")
    assert (down["a"]["at"], down["b"]["at"]) == (FAULT + 37.5, FAULT + 44.5)


def test_since_and_until_cut_a_recording_to_their_window(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before_the_fault = ["--since", "2026-12-03T03:53:20Z", "--until", str(FAULT - 1)]
    code, out, _ = _run(
        ["--config", str(files["config"]), "--results", str(files["results"]), *before_the_fault], capsys
    )
    assert code == EXIT_OK
    assert "WOULD FAIL OVER" not in out and "ProbeFailed of main from" not in out
    assert "360 results in 60 rounds" in out.splitlines()[0]


# -- bad input: one line, exit 2 ------------------------------------------------------------------


def _bad_json(files: dict[str, Path]) -> Path:
    """Three good lines, a blank one, then one that is not JSON: line 5."""
    good = files["results"].read_text(encoding="utf-8").splitlines()[:3]
    path = files["dir"] / "c.jsonl"
    path.write_text("\n".join([*good, "", "{not json"]) + "\n", encoding="utf-8")
    return path


BAD_INPUT: list[tuple[str, Callable[[dict[str, Path]], list[str]], str]] = [
    ("missing file", lambda f: ["--results", str(f["dir"] / "nope.jsonl")], "nope.jsonl: no such file"),
    (
        "not a probe result",
        lambda f: ["--results", str(_lines(f["dir"] / "b.jsonl", [{"a": 1}]))],
        "b.jsonl line 1: not a probe result: service: Field required",
    ),
    (
        "bad JSON line",
        lambda f: ["--results", str(_bad_json(f))],
        "c.jsonl line 5: not JSON (Expecting property",
    ),
    (
        "empty file",
        lambda f: ["--results", str(_lines(f["dir"] / "e.jsonl", []))],
        "e.jsonl: the file is empty",
    ),
    (
        "vote events without results",
        lambda f: [
            "--results",
            str(
                _lines(
                    f["dir"] / "old.jsonl",
                    [
                        {
                            "t": 1,
                            "kind": "vote",
                            "data": {
                                "region": "eu-west-2",
                                "site": "main",
                                "vote": "up",
                                "round": "scheduled",
                            },
                        }
                    ],
                )
            ),
        ],
        "its 1 vote events carry no results (a drill recorded before `drctl replay` existed)",
    ),
    (
        "no received_at",
        lambda f: [
            "--results",
            str(_lines(f["dir"] / "r.jsonl", [{**_result_json(f), "received_at": None}])),
        ],
        "1 of 1 results have no received_at",
    ),
    (
        "no results in range",
        lambda f: [
            "--results",
            str(f["results"]),
            "--since",
            "2030-01-01T00:00:00Z",
            "--until",
            "2030-01-02T00:00:00",
        ],
        "no results of booking in the probe results in",
    ),
    (
        "unknown service",
        lambda f: ["--results", str(f["results"]), "--service", "payments"],
        "--service: no service named 'payments'",
    ),
    (
        "not a service name",
        lambda f: ["--results", str(f["results"]), "--service", "Bad Name!"],
        "is not a service name",
    ),
    (
        "T not a time",
        lambda f: ["--results", str(f["results"]), "--since", "yesterday"],
        "--since: 'yesterday' is not a time",
    ),
    (
        "T not finite",
        lambda f: ["--results", str(f["results"]), "--until", "nan"],
        "--until: 'nan' is not a time",
    ),
    (
        "since after until",
        lambda f: [
            "--results",
            str(f["results"]),
            "--since",
            "2026-12-03T05:00:00Z",
            "--until",
            "2026-12-03T04:00:00Z",
        ],
        "--since (2026-12-03 05:00:00.00Z) is after --until (2026-12-03 04:00:00.00Z)",
    ),
    (
        "table without a window",
        lambda f: ["--table", "quorum-dr-results"],
        "--table needs --since and --until",
    ),
    (
        "region without table",
        lambda f: ["--results", str(f["results"]), "--region", "eu-west-2"],
        "--region goes with --table",
    ),
    (
        "bad compare config",
        lambda f: ["--results", str(f["results"]), "--compare", str(f["dir"] / "none.yaml")],
        "--compare: ",
    ),
    (
        "results from other regions only",
        lambda f: [
            "--results",
            str(_lines(f["dir"] / "o.jsonl", [{**_result_json(f), "region": "ap-south-1"}])),
        ],
        "no recorded result of booking from the config's probe regions",
    ),
]


def _result_json(files: dict[str, Path]) -> dict[str, Any]:
    return json.loads(files["results"].read_text(encoding="utf-8").splitlines()[0])


@pytest.mark.parametrize(("name", "argv", "fragment"), BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(
    name: str,
    argv: Callable[[dict[str, Path]], list[str]],
    fragment: str,
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(["--config", str(files["config"]), *argv(files)], capsys)
    assert code == EXIT_BAD_INPUT, err
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("drctl replay: ") and fragment in err, err
    assert "Traceback" not in err


def test_a_bad_line_is_named_by_its_number(tmp_path: Path, results: list[ProbeResult]) -> None:
    lines = [r.model_dump_json() for r in results[:3]] + ["", "{not json"]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(RecordingError, match=r"bad.jsonl line 5: not JSON \(Expecting property name"):
        read_recording(path)


def test_control_characters_in_a_file_name_do_not_reach_the_terminal(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        ["--config", str(files["config"]), "--results", str(files["dir"] / "x\x1b[2Jy.jsonl")], capsys
    )
    assert code == EXIT_BAD_INPUT and "\x1b" not in err and "x[2Jy.jsonl: no such file" in err


def test_results_and_table_together_are_refused_by_the_parser(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        drctl(["replay", "--results", str(files["results"]), "--table", "t"])
    assert caught.value.code == EXIT_BAD_INPUT
    assert "not allowed with argument" in capsys.readouterr().err
