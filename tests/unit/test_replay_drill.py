"""`drctl replay` reproduces, from a drill's events.jsonl, the quorum's DOWN the drill's report shows.

The fixture is a `main-outage` run as the drill writes it: its rounds at the times of a real run
(2 s interval, main stopped 10 s in; the recorded execution's on-demand rounds 12.2 s and 15.3 s in),
stored in a results table and turned into `vote` events by the drill's own `ResultWatcher`, plus the
execution's two `quorum` events as the `ExecutionWatcher` records them (round 1 UNKNOWN at 12.90 s,
round 2 DOWN at 16.13 s). The report (`compute_figures`) reads "quorum said DOWN" from those; replay
reads only the votes' results and must come to DOWN on the same confirmation round. Its time is the
receive time of the last recorded answer that round waited for; the drill's execution read the
verdict a moment later (when its invocations returned), so replay's time is at most one probe
interval before the report's, never after it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quorum_dr.cli import main as drctl
from quorum_dr.config import WatchdogConfig, parse_config
from quorum_dr.domain.results import ProbeResult
from quorum_dr_local.drill.config import replay_config_json
from quorum_dr_local.drill.observe import ResultWatcher
from quorum_dr_local.drill.report import compute_figures
from quorum_dr_local.drill.timeline import EventLog, read_events
from tests.fakes import FakeResults
from tests.recorded_rounds import SERVICE, example_config, lost_main, round_results, streaming

START = 1_796_269_843.0  # run_started
FAULT = 10.0  # main's site stopped (seconds after the start)
EXECUTION = "auto-1796269854-35c908ae"
INTERVAL = 2.0
# (region, seconds after the start each round was received, its id's kind) of a real main-outage run
SCHEDULED = {
    "eu-west-2": [0.12, 2.12, 4.08, 6.14, 8.14, 10.14, 12.29, 14.09, 16.23, 18.39, 20.15],
    "us-east-1": [-0.76, 1.13, 3.13, 5.14, 7.14, 9.12, 11.36, 13.14, 15.36, 17.28, 19.27, 21.46],
    "us-west-2": [0.13, 2.12, 4.12, 6.14, 8.15, 11.22, 13.09, 15.08, 17.28, 19.27, 21.38],
}
ON_DEMAND = {"eu-west-2": [12.21, 15.26], "us-east-1": [12.19, 15.29], "us-west-2": [12.25, 15.28]}
QUORUM_EVENTS = [
    (12.90, "UNKNOWN", "round 1: main is UNKNOWN: only 1 region votes DOWN (eu-west-2); quorum is 2"),
    (16.13, "DOWN", "round 2: main is DOWN: 3 of 3 regions (eu-west-2, us-east-1, us-west-2) saw 3 "
     "consecutive failing rounds; quorum is 2"),
]  # fmt: skip


def _rounds() -> list[list[ProbeResult]]:
    lost = lost_main(START + FAULT)
    rounds = []
    for region, times in SCHEDULED.items():
        for k, t in enumerate(times):
            rounds.append((t, region, f"sched-{int(START + t)}-{k}"))
    for region, times in ON_DEMAND.items():
        for n, t in enumerate(times, start=1):
            rounds.append((t, region, f"{EXECUTION}-r{n}"))
    built = []
    for t, region, round_id in sorted(rounds):
        at = START + t
        standby = streaming(at) if t < FAULT else lost(at)
        built.append(
            round_results(
                region, at - 0.1, main_up=t < FAULT, standby=standby, round_id=round_id, received=at
            )
        )
    return built


@pytest.fixture
def drill_events(tmp_path: Path) -> Path:
    """events.jsonl as the drill writes it: the ResultWatcher polls the table after every round."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.record("run_started", at=START, scenario="main-outage", regions=list(SCHEDULED), quorum=2)
    table = FakeResults()
    watcher = ResultWatcher(table, SERVICE, log, since=START - 5)  # type: ignore[arg-type]
    quorum = list(QUORUM_EVENTS)
    fault_recorded = False
    for results in _rounds():
        at = results[0].received_at or 0.0
        if not fault_recorded and at >= START + FAULT:
            log.record("fault", at=START + FAULT, fault="site_down", phase="start", site="main")
            fault_recorded = True
        while quorum and START + quorum[0][0] <= at:
            t, verdict, reason = quorum.pop(0)
            log.record(
                "quorum", at=START + t, site="main", verdict=verdict, reason=reason, execution=EXECUTION
            )
        table.put_results(results)
        watcher.poll()
    log.record("run_finished", at=START + 22)
    log.close()
    return path


def test_replay_of_a_drills_events_says_down_on_the_round_the_drills_report_does(
    drill_events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = compute_figures(read_events(drill_events))
    assert (report.fault_at, report.first_failed_probe_at, report.quorum_at) == (10.0, 10.14, 16.13)

    # the drill's watchdog config, as drill_config builds it for main-outage's timings
    config = example_config(
        interval_seconds=INTERVAL,
        timeout_seconds=1,
        freshness_seconds=10,
        down_after_rounds=3,
        confirmation={"max_rounds": 3, "wait_seconds": 2},
    )
    path = tmp_path / "watchdog.json"  # as the drill leaves it beside events.jsonl
    path.write_text(json.dumps(replay_config_json(config)), encoding="utf-8")
    assert drctl(["replay", "--config", str(path), "--results", str(drill_events), "--json"]) == 0
    moments = json.loads(capsys.readouterr().out)

    down = [m for m in moments if m["kind"] == "confirmation_round" and m["verdicts"]["main"] == "DOWN"]
    first_down = down[0]
    said = next(reason for _, verdict, reason in QUORUM_EVENTS if verdict == "DOWN")
    assert said.startswith(f"round {first_down['round']}: main is DOWN")  # the same confirmation round
    seconds = first_down["at"] - START
    assert report.quorum_at is not None
    assert report.quorum_at - INTERVAL <= seconds <= report.quorum_at, seconds
    assert first_down["reason"].startswith(f"round {first_down['round']}: main is DOWN: ")
    # answered by the drill's own on-demand rounds where they came in time
    assert f"{EXECUTION}-r2" in first_down["judged_on"].values()
    (decision,) = [m for m in moments if m["kind"] == "would_fail_over"]
    assert decision["at"] == first_down["at"] and decision["target"] == "dr"

    # and the round before said what the drill's first round said: not yet
    before = [m for m in moments if m["kind"] == "confirmation_round" and m["round"] < first_down["round"]]
    assert [m["verdicts"]["main"] for m in before] == ["UNKNOWN"]


def test_the_drills_vote_events_still_say_what_the_report_timeline_and_progress_read(
    drill_events: Path,
) -> None:
    votes = [e for e in read_events(drill_events) if e.kind == "vote"]
    assert votes and all({"region", "site", "vote", "round", "results"} <= set(e.data) for e in votes)
    main = [e for e in votes if e.data["site"] == "main"]
    assert [e.data["vote"] for e in main if e.t < START + FAULT] == ["up"] * len(
        [e for e in main if e.t < START + FAULT]
    )
    assert {e.data["round"] for e in main} == {"scheduled", "on-demand"}
    # each carries its site's results of the round and the region's self-check
    assert {r["site"] for r in main[0].data["results"]} == {"main", "_control"}


def test_the_config_the_drill_leaves_for_replay_keeps_the_settings_and_no_secret_of_a_url() -> None:
    data = example_config().model_dump(mode="json")
    for service in data["services"]:
        for site in service["sites"].values():
            for check in (site or {}).get("checks", []):
                if check["type"] == "http":
                    check["url"] = check["url"].replace("https://", "https://ops:Pl4nted@") + "?token=t0ken"
    planted = WatchdogConfig.model_validate(data)
    kept = replay_config_json(planted)
    text = json.dumps(kept)
    assert (
        "Pl4nted" not in text and "t0ken" not in text and "https://***@203.0.113.10/health?token=***" in text
    )
    again = parse_config(kept, "watchdog.json")
    assert (again.probe, again.quorum, again.confirmation) == (
        planted.probe,
        planted.quorum,
        planted.confirmation,
    )
