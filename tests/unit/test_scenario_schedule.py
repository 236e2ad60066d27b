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


def test_a_quiet_hour_pauses_the_clients_before_two_regions_lose_main():
    actions = plan(load_scenario("idle-primary-partition"))
    assert [(a.at, a.method, a.args.get("region")) for a in actions] == [
        (4, "pause_traffic", None),
        (24, "partition", "eu-west-2"),
        (24, "partition", "us-east-1"),
        (48, "heal", "eu-west-2"),
        (48, "heal", "us-east-1"),
    ]
    assert all(a.truth == {} for a in actions)  # main stays up throughout
    resumed = parse_scenario(
        {
            "name": "q",
            "description": "d",
            "expectations": {},
            "faults": [{"at": 1, "kind": "pause_traffic", "params": {"resume_after_seconds": 5}}],
        }
    )
    assert [(a.at, a.method, a.phase) for a in plan(resumed)] == [
        (1, "pause_traffic", "start"),
        (6, "resume_traffic", "end"),
    ]


def test_a_fault_is_timed_when_it_began_not_when_the_slow_kill_returned():
    now = [100.0]

    class SlowTarget:
        def stop_site(self, site: str, parts: str) -> None:
            now[0] += 0.5  # killing a site under load takes a while

    log = EventLog(clock=lambda: now[0])
    scenario = parse_scenario(minimal_fault({"at": 0, "kind": "site_down", "params": {"site": "main"}}))
    assert play(plan(scenario), SlowTarget(), log, threading.Event()) == 1  # type: ignore[arg-type]
    fault, truth = log.events
    assert (fault.kind, fault.t, truth.kind, truth.t) == ("fault", 100.0, "site_truth", 100.5)


def minimal_fault(fault: dict[str, Any]) -> dict[str, Any]:
    return {"name": "q", "description": "d", "expectations": {}, "faults": [fault]}


def test_a_fault_during_a_state_is_not_timed_and_is_played_from_zero_when_triggered():
    from quorum_dr_local.drill.schedule import triggered

    scenario = load_scenario("switchover-rollback")
    (cut,) = scenario.faults
    assert cut.during_state == "FreezeActive"
    assert plan(scenario) == []  # the orchestrator plays it when the state is entered
    (action,) = triggered(cut)
    assert (action.at, action.method, action.args["extra_write_bytes"]) == (0, "cut_replication", 0)
    timed = parse_scenario(
        minimal_fault({"at": 3, "kind": "site_down", "params": {"restore_after_seconds": 4}})
    )
    assert [a.at for a in triggered(timed.faults[0])] == [0, 4]


def test_during_state_names_a_state():
    import pytest

    from quorum_dr_local.drill.scenario import ScenarioError

    with pytest.raises(ScenarioError) as caught:
        parse_scenario(minimal_fault({"at": 1, "kind": "site_down", "during_state": "x; rm"}))
    assert "faults.0.during_state" in str(caught.value)
