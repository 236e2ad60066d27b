"""A scenario's faults expanded into timed sandbox actions, and played against a recording target."""

from __future__ import annotations

import threading
from typing import Any

from quorum_dr_local.drill.scenario import load_scenario, parse_scenario
from quorum_dr_local.drill.schedule import plan, play
from quorum_dr_local.drill.timeline import EventLog


class RecordingTarget:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        return lambda **kwargs: self.calls.append((method, kwargs))


def test_flapping_expands_into_down_and_up_cycles():
    actions = plan(load_scenario("flapping"))
    assert [a.method for a in actions] == ["stop_site", "start_site"] * 4
    assert [a.at for a in actions] == [8, 9.5, 12.5, 14, 17, 18.5, 21.5, 23]
    assert actions[0].truth == {"main": False} and actions[1].truth == {"main": True}


def test_partition_is_cut_then_healed():
    actions = plan(load_scenario("partition-one-region"))
    assert [(a.at, a.method, a.args) for a in actions] == [
        (8, "partition", {"region": "eu-west-2", "site": "main"}),
        (28, "heal", {"region": "eu-west-2", "site": "main"}),
    ]
    assert all(a.truth == {} for a in actions)  # main stays up


def test_dual_outage_and_old_primary_and_api_errors():
    dual = plan(load_scenario("dual-outage"))
    assert [(a.method, a.args["site"]) for a in dual] == [("stop_site", "main"), ("stop_site", "dr")]
    old = plan(load_scenario("old-primary-returns"))
    assert [a.method for a in old] == ["stop_site", "arm_old_primary_return"]
    cf = plan(load_scenario("cloudflare-429"))
    assert cf[0].method == "inject_api_errors" and cf[0].args == {
        "status": 429,
        "count": 2,
        "retry_after_seconds": 1,
    }


def test_replication_cut_is_one_action_before_main_goes_down():
    actions = plan(load_scenario("async-data-loss"))
    assert [(a.at, a.method, a.args, a.truth) for a in actions] == [
        (6, "cut_replication", {"extra_write_bytes": 262144, "max_lag_bytes": 65536}, {}),
        (12, "stop_site", {"site": "main", "parts": "all"}, {"main": False}),
    ]


def test_play_calls_the_target_in_order_and_records_faults_and_truth():
    scenario = parse_scenario(
        {
            "name": "quick",
            "description": "d",
            "expectations": {},
            "faults": [
                {"at": 0.02, "kind": "site_down", "params": {"site": "main", "restore_after_seconds": 0.01}},
                {"at": 0.0, "kind": "clock_skew", "params": {"region": "us-east-1", "seconds": -30}},
            ],
        }
    )
    target, log = RecordingTarget(), EventLog()
    assert play(plan(scenario), target, log, threading.Event()) == 3
    assert [c[0] for c in target.calls] == ["skew_clock", "stop_site", "start_site"]
    kinds = [(e.kind, e.data.get("phase") or e.data.get("up")) for e in log.events]
    assert kinds == [
        ("fault", "start"),
        ("fault", "start"),
        ("site_truth", False),
        ("fault", "end"),
        ("site_truth", True),
    ]


def test_play_stops_when_told():
    stop = threading.Event()
    stop.set()
    target = RecordingTarget()
    assert play(plan(load_scenario("main-outage")), target, EventLog(), stop) == 0
    assert target.calls == []
