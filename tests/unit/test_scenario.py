"""Scenario files: the shipped ones load with the issue's expectations; bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quorum_dr_local.drill.scenario import (
    FailoverCommand,
    FaultKind,
    PartitionParams,
    ReplicationCutParams,
    ResetCommand,
    ScenarioError,
    load_scenario,
    parse_scenario,
    shipped_scenarios,
)

SHIPPED = {
    "main-outage",
    "planned-switchover",
    "failback",
    "switchover-refused",
    "switchover-rollback",
    "partition-one-region",
    "flapping",
    "dual-outage",
    "cold-rehearsal",
    "replica-lag",
    "cloudflare-429",
    "manual-failover-dry-run",
    "old-primary-returns",
    "sync-main-outage",
    "async-data-loss",
    "dark-region-main-outage",
    "flap-then-die",
    "idle-primary-partition",
    "clock-skew",
    "shadow-main-outage",
    "stale-backup",
}


def minimal(**extra: object) -> dict[str, object]:
    return {"name": "x", "description": "d", "expectations": {}, **extra}


def test_the_shipped_scenarios_are_there_and_valid():
    assert set(shipped_scenarios()) == SHIPPED
    for name in SHIPPED:
        scenario = load_scenario(name)
        assert scenario.name == name
        assert scenario.probe.interval_seconds == 2 and scenario.probe.confirmation_rounds == 2


def test_shipped_expectations_match_the_issue():
    main = load_scenario("main-outage").expectations
    assert (main.failover, main.target, main.rto_seconds_max, main.promotions, main.edge_writes) == (
        True,
        "dr",
        10,
        1,
        1,
    )
    assert main.loss_receipt_nonzero_when_lost is True
    sync = load_scenario("sync-main-outage")
    assert sync.replication == "sync" and sync.expectations.orders_lost_zero is True
    rehearsal = load_scenario("cold-rehearsal")
    assert rehearsal.expectations.rehearsal == "PASSED" and rehearsal.cold_restore == "wal_archive"
    assert [c.command for c in rehearsal.operator] == ["rehearse"]
    for name in ("partition-one-region", "flapping", "stale-backup", "cold-rehearsal"):
        e = load_scenario(name).expectations
        assert (e.failover, e.promotions, e.edge_writes) == (False, 0, 0)
        assert "target" in e.checked() and e.target is None
    dual_scenario = load_scenario("dual-outage")
    dual = dual_scenario.expectations
    assert (dual.target, dual.orders_lost_max) == ("cold", 100)
    assert (dual_scenario.cold_restore, dual_scenario.archive_timeout_seconds) == ("wal_archive", 5)
    lag = load_scenario("replica-lag").expectations
    assert (lag.promotions, lag.escalation) == (0, True)
    cf = load_scenario("cloudflare-429")
    assert cf.faults[0].kind == FaultKind.CLOUDFLARE_API and cf.faults[0].params["status"] == 429
    assert cf.expectations.failover is True and cf.expectations.api_errors_min == 1
    old = load_scenario("old-primary-returns").expectations
    assert (old.serving_site, old.split_brain_alert, old.split_brain_alerts_max) == ("dr", True, 3)
    flap, death = load_scenario("flap-then-die").faults
    assert (flap.kind, death.kind, death.params) == (FaultKind.FLAP, FaultKind.SITE_DOWN, {"site": "main"})
    cycle = flap.params["down_seconds"] + flap.params["up_seconds"]
    assert flap.at + flap.params["cycles"] * cycle <= death.at, "main dies after the flaps"
    flapped = load_scenario("flap-then-die").expectations
    assert (flapped.failover, flapped.target, flapped.promotions) == (True, "dr", 1)
    idle = load_scenario("idle-primary-partition")
    pause, *cuts = idle.faults
    assert pause.kind == FaultKind.PAUSE_TRAFFIC and pause.at < min(c.at for c in cuts)
    assert {c.params["region"] for c in cuts if c.kind == FaultKind.PARTITION} == {"eu-west-2", "us-east-1"}
    assert idle.needs_namespaces and (idle.expectations.failover, idle.expectations.promotions) == (False, 0)
    assert "keepalives" in (idle.expectations.watchdog_says_contains or "")
    ahead, behind, death = load_scenario("clock-skew").faults
    assert (ahead.kind, ahead.params["seconds"], behind.params["seconds"]) == (FaultKind.CLOCK_SKEW, 60, -60)
    assert (
        death.kind == FaultKind.SITE_DOWN
        and load_scenario("clock-skew").expectations.false_failovers_max == 0
    )
    shadow = load_scenario("shadow-main-outage")
    assert shadow.failover_mode == "shadow" and (
        shadow.expectations.promotions,
        shadow.expectations.edge_writes,
    ) == (
        0,
        0,
    )
    assert (shadow.expectations.shadow_decisions, shadow.expectations.clients_failing_at_end) == (1, True)
    dry = load_scenario("manual-failover-dry-run")
    assert [(c.command, c.dry_run) for c in dry.failover_commands] == [("failover", True)]
    assert dry.expectations.dry_run_plan is True


def test_async_data_loss_cuts_replication_then_main_and_resets_before_a_lossy_manual_start():
    scenario = load_scenario("async-data-loss")
    assert scenario.replication == "async"
    cut, down = scenario.faults
    assert (cut.kind, cut.at, down.kind, down.at) == (FaultKind.REPLICATION_CUT, 6, FaultKind.SITE_DOWN, 12)
    assert isinstance(cut.typed, ReplicationCutParams) and cut.typed.max_lag_bytes == 65536
    pause, reset, manual = scenario.operator
    assert [c.command for c in scenario.operator] == ["pause", "reset", "failover"]  # as typed
    assert pause.after == "escalation"  # the operator reacts to the page
    assert pause.at == reset.at == manual.at and manual.at > down.at
    assert isinstance(manual, FailoverCommand)
    assert (manual.to, manual.allow_data_loss, manual.dry_run) == ("dr", True, False)
    e = scenario.expectations
    assert (e.failover, e.target, e.promotions, e.edge_writes, e.escalation) == (True, "dr", 1, 1, True)
    assert (e.orders_lost_min, e.loss_receipt_nonzero_when_lost, e.data_loss_allowed) == (1, True, True)


def test_replication_cut_params_have_defaults_and_are_checked():
    fault = parse_scenario(minimal(faults=[{"at": 1, "kind": "replication_cut"}])).faults[0]
    assert fault.typed == ReplicationCutParams(extra_write_bytes=256 * 1024, max_lag_bytes=64 * 1024)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(
            minimal(faults=[{"at": 1, "kind": "replication_cut", "params": {"max_lag_bytes": -1}}])
        )
    assert "replication_cut params.max_lag_bytes" in str(caught.value)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(minimal(faults=[{"at": 1, "kind": "replication_cut", "params": {"site": "dr"}}]))
    assert "params.site" in str(caught.value)


def test_operator_commands_are_checked_by_their_command_and_orders_lost_min_is_not_negative():
    start = {"at": 1, "command": "failover", "to": "dr", "reason": "why not"}
    (command,) = parse_scenario(minimal(operator=[start])).operator
    assert isinstance(command, FailoverCommand) and command.dry_run is False
    (reset,) = parse_scenario(
        minimal(operator=[{"at": 1, "command": "reset", "reason": "clear it"}])
    ).operator
    assert isinstance(reset, ResetCommand)
    for bad, fragment in (
        (
            {**start, "command": "reboot"},
            "operator.0: Input tag 'reboot' found using 'command' does not match",
        ),
        ({"at": 1, "command": "reset", "reason": "ok!", "to": "dr"}, "operator.0.reset.to: unknown field"),
        ({**start, "at": 99}, "operator.0.at (99) must be below duration_seconds"),
    ):
        with pytest.raises(ScenarioError) as caught:
            parse_scenario(minimal(operator=[bad]))
        assert fragment in str(caught.value)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(minimal(expectations={"orders_lost_min": -1}))
    assert "expectations.orders_lost_min" in str(caught.value)


def test_only_network_fault_scenarios_need_namespaces():
    needing = {name for name in SHIPPED if load_scenario(name).needs_namespaces}
    assert needing == {"partition-one-region", "dark-region-main-outage", "idle-primary-partition"}


def test_any_path_works(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(minimal(faults=[{"at": 1, "kind": "site_down"}])))
    scenario = load_scenario(str(path))
    assert scenario.first_fault_at == 1
    assert scenario.faults[0].typed.model_dump()["site"] == "main"


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ScenarioError) as caught:
        load_scenario("main-outrage")
    assert "main-outage" in caught.value.problems[0]


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(str(tmp_path / "nope.yaml"))


def test_unknown_fields_are_forbidden_everywhere():
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(minimal(expectations={"failovr": True}))
    assert caught.value.problems == ["expectations.failovr: unknown field"]
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(
            minimal(faults=[{"at": 1, "kind": "partition", "params": {"region": "r", "sight": "main"}}])
        )
    assert "params.sight: unknown field" in caught.value.problems[0]


def test_fault_params_are_checked_against_the_kind():
    with pytest.raises(ScenarioError, match="params.region: Field required"):
        parse_scenario(minimal(faults=[{"at": 1, "kind": "partition", "params": {}}]))
    with pytest.raises(ScenarioError, match="faults.0.kind"):
        parse_scenario(minimal(faults=[{"at": 1, "kind": "meteor"}]))
    fault = parse_scenario(
        minimal(faults=[{"at": 1, "kind": "partition", "params": {"region": "eu-west-2"}}])
    ).faults[0]
    assert isinstance(fault.typed, PartitionParams) and fault.typed.site == "main"


def test_faults_must_happen_inside_the_duration():
    with pytest.raises(ScenarioError, match="must be below duration_seconds"):
        parse_scenario(minimal(duration_seconds=10, faults=[{"at": 10, "kind": "site_down"}]))


def test_probe_timeout_must_be_below_interval():
    with pytest.raises(ScenarioError, match="timeout_seconds .* must be below interval_seconds"):
        parse_scenario(minimal(probe={"interval_seconds": 1, "timeout_seconds": 1}))


def test_not_a_mapping():
    with pytest.raises(ScenarioError, match="expected a mapping"):
        parse_scenario(["a"])


def test_the_going_home_scenarios_are_run_through_the_operators_commands():
    planned = load_scenario("planned-switchover")
    assert [(c.command, getattr(c, "to", None)) for c in planned.operator] == [
        ("switchover", "dr"),
        ("switchover", "main"),
    ]
    assert planned.uses_site_agents and planned.expectations.switchover_write_outage_seconds_max == 5
    back = load_scenario("failback")
    rejoin, switchover = back.operator
    assert (rejoin.command, rejoin.after, switchover.command, switchover.after) == (
        "rejoin",
        "split_brain_alert",
        "switchover",
        "rejoin",
    )
    e = back.expectations
    assert (e.failover, e.target, e.promotions, e.rejoined, e.switchovers_done, e.serving_site) == (
        True,
        "dr",
        2,
        1,
        1,
        "main",
    )
    refused = load_scenario("switchover-refused").expectations
    assert (refused.switchovers_refused, refused.promotions, refused.edge_writes) == (1, 0, 0)
