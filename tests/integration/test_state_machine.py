"""The real failover ASL executed by moto's Step Functions engine, with the real handlers over
fake ports (and the real DynamoDB state store on moto). Named mock-config cases drive single
branches; the other tests run every step for real."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.tables import create_table
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr.failover import wiring
from quorum_dr.failover.operator import answer_request, reset
from quorum_dr.failover.ports import Ports
from quorum_dr.ports import FenceReceipt
from quorum_dr_local.sfn_harness import SfnHarness
from tests.conftest import ROOT
from tests.fakes import (
    FakeEdge,
    FakeHooks,
    FakeLauncher,
    FakeNotifier,
    FakeProbes,
    FakePromoter,
    FakeResults,
    FakeVerifier,
    cold_bootstrap_report,
    make_config,
)

REGION = "eu-west-2"
TABLE = "quorum-dr-state"
MOCK_CONFIG = json.loads((ROOT / "tests" / "integration" / "failover_mock_config.json").read_text())
AUTO_EVENT = {
    "source": "quorum-dr",
    "detail-type": "ProbeFailed",
    "detail": {"service": "booking", "site": "main", "region": "eu-west-2", "round_id": "r0", "results": []},
}


def manual(**fields: Any) -> dict[str, Any]:
    return {
        "service": "booking",
        "to": "dr",
        "reason": "London is on fire",
        "requested_by": "alice",
        **fields,
    }


def bootstrap_reports_ready(token: str | None) -> None:
    """What the cold instance's bootstrap does when the site is up: answer the task token."""
    sfn = boto3.client("stepfunctions", region_name=REGION)

    def send() -> None:
        for _ in range(250):  # bounded
            try:
                sfn.send_task_success(
                    taskToken=token,
                    output=cold_bootstrap_report(420).model_dump_json(),
                )
                return
            except Exception:  # noqa: BLE001 - the token may not be registered yet
                time.sleep(0.02)

    threading.Thread(target=send, daemon=True).start()


@dataclass
class World:
    harness: SfnHarness
    store: DynamoStateStore
    promoter: FakePromoter
    edge: FakeEdge
    notifier: FakeNotifier
    hooks: FakeHooks
    launcher: FakeLauncher
    probes: FakeProbes
    ports: Ports
    extra: dict[str, Any] = field(default_factory=dict)

    def configure(self, **failover: Any) -> None:
        self.ports.config = make_config(**failover)

    def incident(self, incident_id: str) -> IncidentRecord:
        record = self.store.get_incident("booking", incident_id)
        assert record is not None, f"no incident record {incident_id}"
        return record

    def reasons(self, incident_id: str) -> list[str]:
        return [e.reason for e in self.incident(incident_id).timeline]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
        store = DynamoStateStore(TABLE, resource=boto3.resource("dynamodb", region_name=REGION))
        results = FakeResults()
        probes = FakeProbes(results, time.time, {"main": "down", "dr": "up", "cold": "up"})
        promoter, edge, notifier, hooks, launcher = (
            FakePromoter(),
            FakeEdge(),
            FakeNotifier(),
            FakeHooks(),
            FakeLauncher(),
        )
        verifier = FakeVerifier(edge)
        launcher.on_launch = bootstrap_reports_ready
        ports = Ports(
            config=make_config(),
            store=store,
            results=lambda: results,
            probes=lambda: probes,
            promoter=lambda s: promoter,
            edge=lambda s: edge,
            hooks=lambda s: hooks,
            launcher=lambda s: launcher,
            verifier=lambda: verifier,
            notifier=lambda: notifier,
        )
        wiring.use(ports)
        with SfnHarness(state_table=TABLE, region=REGION, mock_config=MOCK_CONFIG) as harness:
            yield World(harness, store, promoter, edge, notifier, hooks, launcher, probes, ports)
        wiring.use(None)


def run(
    world: World, payload: dict[str, Any], name: str, case: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    arn = world.harness.start(payload, name=name, case=case)
    described = world.harness.wait(arn)
    return described, world.harness.states_entered(arn)


# ---------------------------------------------------------------------------------------------
# Named mock-config cases: one branch each
# ---------------------------------------------------------------------------------------------

CASES = [
    ("FalseAlarm", "SUCCEEDED", "FalseAlarm", ["RecordFalseAlarm"], 0),
    ("HotFailover", "SUCCEEDED", "FailedOver", ["PromoteDrDatabase", "SwitchEdgeToDr", "SetActiveSite"], 1),
    ("ColdFailover", "SUCCEEDED", "FailedOver", ["LaunchColdSite", "SwitchEdgeToCold", "VerifyColdSite"], 0),
    ("LagAboveLimit", "FAILED", "NeedsAttention", ["RefusePromotion", "Escalate"], 0),
    ("LagUnknown", "FAILED", "NeedsAttention", ["RefusePromotion", "Escalate"], 0),
    ("PromotionFails", "FAILED", "NeedsAttention", ["PromoteDrDatabase", "Escalate"], 0),
    (
        "SwitchFailsAfterPromotion",
        "FAILED",
        "NeedsAttention",
        ["PromoteDrDatabase", "SwitchEdgeToDr", "Escalate"],
        1,
    ),
    ("TransientThenSwitch", "SUCCEEDED", "FailedOver", ["SwitchEdgeToDr", "VerifyThroughPublicHostname"], 1),
    # The gates are closed, the outage is still confirmed (probes only) and told.
    ("KillSwitch", "SUCCEEDED", "GatesClosed", ["ConfirmOutageRound", "NotifyGatesClosed"], 0),
    ("Cooldown", "SUCCEEDED", "GatesClosed", ["ConfirmOutageRound", "NotifyGatesClosed"], 0),
    ("NoDecision", "SUCCEEDED", "NoDecision", ["WaitBetweenRounds", "StopNoDecision", "AlertNoDecision"], 0),
    ("Veto", "SUCCEEDED", "Vetoed", ["WaitForVeto", "StopVetoed"], 0),
]


@pytest.mark.parametrize(("case", "status", "last", "passes", "promotions"), CASES, ids=[c[0] for c in CASES])
def test_named_case(
    world: World, case: str, status: str, last: str, passes: list[str], promotions: int
) -> None:
    if case == "Veto":
        world.configure(mode="veto")
    described, states = run(world, AUTO_EVENT, name=f"inc-{case}", case=case)
    assert described["status"] == status, described.get("cause")
    assert states[-1] == last
    for state in passes:
        assert state in states
    assert len(world.promoter.promotions) == promotions
    lock = world.store.get_lock("booking")
    if last == "NeedsAttention":
        assert lock is not None and lock["kept"] is True and lock["incident_id"] == f"inc-{case}"
        assert world.store.get_state("booking")["status"] == "NEEDS_ATTENTION"
        assert any(f"inc-{case}" == n[0] and "escalation" in n[1] for n in world.notifier.sent)
    else:
        assert lock is None, f"the lock must be released after {case}"


# ---------------------------------------------------------------------------------------------
# Every step real: the handlers over fake ports
# ---------------------------------------------------------------------------------------------


def test_hot_failover_end_to_end_records_a_complete_incident(world: World) -> None:
    described, states = run(world, AUTO_EVENT, name="inc-hot")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states[-1] == "FailedOver"
    assert world.promoter.promotions == ["inc-hot"]
    assert world.edge.writes == [("inc-hot", "dr")]
    record = world.incident("inc-hot")
    assert record.outcome == "failed_over"
    assert record.rto_seconds >= 0 and record.detection_seconds >= 0
    assert (record.scenario or {})["scenario"] == "hot"
    reasons = " | ".join(world.reasons("inc-hot"))
    for sentence in (
        "main is DOWN",
        "hot failover to dr",
        "the DR standby may be promoted",
        "a test write succeeded",
        "now points at dr",
        "RTO",
    ):
        assert sentence in reasons
    state = world.store.get_state("booking")
    assert state["active_site"] == "dr" and state["status"] == "FAILED_OVER"
    assert state["cooldown_until"] > time.time()
    assert world.store.get_lock("booking") is None
    assert ("before_promote", "inc-hot") in world.hooks.calls


def test_false_alarm_when_the_quorum_sees_main_up(world: World) -> None:
    world.probes.sites["main"] = "up"
    described, states = run(world, AUTO_EVENT, name="inc-fa")
    assert described["status"] == "SUCCEEDED"
    assert "RecordFalseAlarm" in states and "DecideScenario" not in states
    assert world.incident("inc-fa").outcome == "false_alarm"
    assert world.store.get_lock("booking") is None and world.promoter.promotions == []


def test_cold_failover_when_main_and_dr_are_down_with_ready_callback(world: World) -> None:
    world.probes.sites.update(main="down", dr="down")
    described, states = run(world, AUTO_EVENT, name="inc-cold")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert "CheckColdSiteHealth" not in states and "SwitchEdgeToCold" in states
    assert world.launcher.launches == ["inc-cold"] and world.promoter.promotions == []
    record = world.incident("inc-cold")
    assert record.backup_age_seconds == 420 and "RPO 420 s" in record.data_loss_reason
    assert world.store.get_state("booking")["active_site"] == "cold"


def test_invariant_4_no_automatic_promotion_when_lag_above_limit(world: World) -> None:
    world.promoter.lag_bytes = 99_999_999
    described, states = run(world, AUTO_EVENT, name="inc-lag")
    assert described["status"] == "FAILED" and described["error"] == "NeedsAttention"
    assert "RefusePromotion" in states and "PromoteDrDatabase" not in states
    assert world.promoter.promotions == [] and world.edge.writes == []
    assert "no automatic promotion" in " ".join(world.reasons("inc-lag"))


def test_invariant_4_no_automatic_promotion_when_lag_unknown(world: World) -> None:
    world.promoter.known = False
    described, _ = run(world, AUTO_EVENT, name="inc-unknown")
    assert described["status"] == "FAILED"
    assert world.promoter.promotions == []
    assert "status is unknown" in " ".join(world.reasons("inc-unknown"))


def test_invariant_4_no_automatic_promotion_when_the_loss_has_no_known_bound(world: World) -> None:
    """Unknown is not zero: no probe saw main's WAL position and the standby cannot say when it
    last heard from main, so the replica check refuses and the state machine escalates."""
    world.promoter.heard_age = None
    described, states = run(world, AUTO_EVENT, name="inc-unbounded")
    assert described["status"] == "FAILED" and described["error"] == "NeedsAttention"
    assert "RefusePromotion" in states and "PromoteDrDatabase" not in states
    assert world.promoter.promotions == [] and world.edge.writes == []
    assert (
        "no automatic promotion: data loss unknown, no known bound: no probe saw main's WAL position; "
        "the standby's last message from main is unknown" in " ".join(world.reasons("inc-unbounded"))
    )


def test_invariant_4_the_override_of_a_replay_that_did_not_catch_up_is_audited(world: World) -> None:
    """The replica check passes, replay does not catch up within the wait, and only the
    operator's allow_data_loss lets it promote: the record says the override was used."""
    world.promoter.lag_bytes, world.promoter.replay_seconds = 10, 1.0
    described, states = run(world, manual(allow_data_loss=True, skip_confirm=True), name="inc-replay")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    record = world.incident("inc-replay")
    assert record.allow_data_loss_used is True
    assert "promoting anyway: allow_data_loss was given by an operator" in " ".join(
        world.reasons("inc-replay")
    )


def test_invariant_4_manual_start_with_allow_data_loss_proceeds_and_says_so(world: World) -> None:
    world.promoter.lag_bytes = 99_999_999
    described, states = run(world, manual(allow_data_loss=True, skip_confirm=True), name="inc-loss")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert "ConfirmOutageRound" not in states
    assert world.promoter.promotions == ["inc-loss"]
    record = world.incident("inc-loss")
    assert record.allow_data_loss_used is True and record.allow_data_loss is True
    assert "allow_data_loss was given by an operator" in " ".join(world.reasons("inc-loss"))


def test_promotion_failure_escalates_and_keeps_the_lock(world: World) -> None:
    world.promoter.fail = True
    described, states = run(world, AUTO_EVENT, name="inc-pf")
    assert described["status"] == "FAILED" and "SwitchEdgeToDr" not in states
    assert world.edge.writes == []
    assert world.store.get_lock("booking")["kept"] is True


def test_invariant_6_edge_switch_fails_after_promotion_escalates_and_never_promotes_again(
    world: World,
) -> None:
    world.edge.fail = True
    described, _ = run(world, AUTO_EVENT, name="inc-sw")
    assert described["status"] == "FAILED"
    assert world.promoter.promotions == ["inc-sw"]
    record = world.incident("inc-sw")
    assert record.status == "NEEDS_ATTENTION"
    assert "promoted but traffic is NOT switched" in " ".join(world.reasons("inc-sw"))
    # A second trigger: the kept lock stops it before any action.
    world.edge.fail = False
    described, states = run(world, AUTO_EVENT, name="inc-sw-2")
    assert described["status"] == "SUCCEEDED" and states[-1] == "AlreadyHandling"
    assert world.promoter.promotions == ["inc-sw"] and world.edge.writes == []


def test_invariant_7_a_promoted_then_escalated_run_holds_the_cooldown_after_a_reset(world: World) -> None:
    """The promotion itself starts the cooldown and counts in the daily cap, once per incident:
    an operator's reset clears the lock and NEEDS_ATTENTION, and the next automatic trigger (to
    cold, say, if DR looks down now) is refused instead of failing over a second time."""
    world.edge.fail = True
    described, _ = run(world, AUTO_EVENT, name="inc-esc")
    assert described["status"] == "FAILED" and world.promoter.promotions == ["inc-esc"]
    state = world.store.get_state("booking")
    assert state["active_site"] == "main" and state["cooldown_until"] > time.time() + 3000
    assert (state["failovers_today"], state["counted_incident"]) == (1, "inc-esc")
    assert any("the promotion of booking counted" in r for r in world.reasons("inc-esc"))

    reset(
        world.store,
        "booking",
        reason="edge fixed by hand",
        by="ops",
        now=time.time(),
        sfn=world.harness.sfn,
        state_machine_arn=world.harness.machine_arn,
    )
    world.edge.fail = False
    world.probes.sites.update({"dr": "down"})
    described, states = run(world, AUTO_EVENT, name="inc-after-reset")
    assert described["status"] == "SUCCEEDED" and states[-1] == "GatesClosed"
    assert world.promoter.promotions == ["inc-esc"] and world.launcher.launches == []
    assert any("in cooldown until" in r for r in world.reasons("inc-after-reset"))


def test_invariant_7_a_completed_failover_is_counted_once(world: World) -> None:
    described, _ = run(world, AUTO_EVENT, name="inc-once")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    state = world.store.get_state("booking")
    assert (state["failovers_today"], state["counted_incident"]) == (1, "inc-once")


def test_invariant_6_never_switch_to_a_database_not_verified_writable(world: World) -> None:
    world.promoter.writable = False
    described, states = run(world, AUTO_EVENT, name="inc-nw")
    assert described["status"] == "FAILED"
    assert "SwitchEdgeToDr" not in states and world.edge.writes == []


def test_concurrent_execution_ends_as_already_handling(world: World) -> None:
    assert world.store.acquire_lock(
        "booking", "inc-first", holder="inc-first", now=time.time(), expires_at=time.time() + 600
    )
    described, states = run(world, AUTO_EVENT, name="inc-second")
    assert described["status"] == "SUCCEEDED" and states[-1] == "AlreadyHandling"
    output = json.loads(described["output"])
    assert output["holder"]["reason"].startswith("already handling incident inc-first")
    assert world.store.get_lock("booking")["incident_id"] == "inc-first"


def test_invariant_5_two_concurrent_starts_give_one_promotion_and_one_switch(world: World) -> None:
    arns = [world.harness.start(manual(skip_confirm=True), name=f"inc-c{i}") for i in range(2)]
    outcomes = [world.harness.wait(arn) for arn in arns]
    assert all(o["status"] == "SUCCEEDED" for o in outcomes)
    assert len(world.promoter.promotions) == 1 and len(world.edge.writes) == 1
    ends = sorted(world.harness.states_entered(arn)[-1] for arn in arns)
    assert ends == ["AlreadyHandling", "FailedOver"]


def test_invariant_7_no_second_automatic_failover_inside_the_cooldown(world: World) -> None:
    described, _ = run(world, AUTO_EVENT, name="inc-one")
    assert described["status"] == "SUCCEEDED"
    world.store.put_state(
        {**world.store.get_state("booking"), "active_site": "main"},
        expected_version=world.store.get_state("booking")["version"],
    )
    described, states = run(world, AUTO_EVENT, name="inc-two")
    assert states[-1] == "GatesClosed"
    assert "cooldown" in world.incident("inc-two").timeline[0].reason
    assert len(world.promoter.promotions) == 1


def test_a_trigger_for_main_after_the_failover_to_dr_ends_before_the_lock(world: World) -> None:
    """After a failover the probes keep reporting dead main; those triggers take no lock (an
    operator's rejoin or switchover may hold it) and write no incident record."""
    described, _ = run(world, AUTO_EVENT, name="inc-away")
    assert described["status"] == "SUCCEEDED" and world.store.get_state("booking")["active_site"] == "dr"
    assert world.store.acquire_lock(
        "booking", "switchover-home", holder="switchover-home", now=time.time(), expires_at=time.time() + 600
    )
    described, states = run(world, AUTO_EVENT, name="inc-stale")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states[-1] == "NotTheActiveSite" and "AcquireIncidentLock" not in states
    output = json.loads(described["output"])
    assert output["incident"]["trigger_applies"] is False
    assert "main is not the active site of booking (dr serves)" in output["incident"]["reason"]
    assert world.store.get_lock("booking")["incident_id"] == "switchover-home"
    assert world.store.get_incident("booking", "inc-stale") is None
    assert world.promoter.promotions == ["inc-away"] and len(world.edge.writes) == 1


def test_a_manual_start_is_judged_by_the_gates_not_stopped_before_the_lock(world: World) -> None:
    described, _ = run(world, AUTO_EVENT, name="inc-there")
    assert described["status"] == "SUCCEEDED"
    described, states = run(world, manual(skip_confirm=True), name="inc-manual-again")
    assert described["status"] == "SUCCEEDED" and "AcquireIncidentLock" in states
    assert states[-1] == "GatesClosed"
    assert "dr is already the active site" in world.reasons("inc-manual-again")[0]


def test_kill_switch_stops_automatic_but_not_manual_starts(world: World) -> None:
    state = world.store.get_state("booking")
    world.store.put_state({**state, "automation_enabled": False}, expected_version=state.get("version", 0))
    _, states = run(world, AUTO_EVENT, name="inc-ks")
    assert states[-1] == "GatesClosed" and world.promoter.promotions == []
    assert "kill switch" in world.reasons("inc-ks")[0]
    described, states = run(world, manual(skip_confirm=True), name="inc-ks-manual")
    assert described["status"] == "SUCCEEDED" and states[-1] == "FailedOver"


def test_veto_by_an_operator_aborts(world: World) -> None:
    world.configure(mode="veto", veto_seconds=30)
    arn = world.harness.start(AUTO_EVENT, name="inc-veto")
    for _ in range(500):
        record = world.store.get_incident("booking", "inc-veto")
        if record is not None and record.task_token:
            break
        time.sleep(0.02)
    answer_request(
        world.store,
        world.harness.sfn,
        service="booking",
        incident_id="inc-veto",
        decision="veto",
        by="bob",
        now=time.time(),
    )
    described = world.harness.wait(arn)
    assert world.harness.states_entered(arn)[-1] == "Vetoed"
    assert described["status"] == "SUCCEEDED" and world.promoter.promotions == []


def test_approval_timeout_aborts(world: World) -> None:
    world.configure(mode="approve", approval_timeout_seconds=1)
    _, states = run(world, AUTO_EVENT, name="inc-appr")
    assert states[-1] == "ApprovalTimedOut" and world.promoter.promotions == []
    record = world.incident("inc-appr")
    assert record.outcome == "approval_timeout"
    assert (record.task_token, record.awaiting) == (None, None)  # a token is a credential


def test_a_veto_window_that_passes_leaves_no_task_token_behind(world: World) -> None:
    world.configure(mode="veto", veto_seconds=1)
    described, states = run(world, AUTO_EVENT, name="inc-veto-passed")
    assert described["status"] == "SUCCEEDED" and states[-1] == "FailedOver", described.get("cause")
    assert "WaitForVeto" in states
    record = world.incident("inc-veto-passed")
    assert (record.task_token, record.awaiting) == (None, None)


def test_dry_run_runs_every_check_and_has_no_side_effects(world: World) -> None:
    before = world.store.get_state("booking")
    described, states = run(world, manual(dry_run=True), name="inc-dry")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    for state in (
        "CheckGates",
        "ConfirmOutageRound",
        "CheckDrReplica",
        "PromoteDrDatabase",
        "SwitchEdgeToDr",
    ):
        assert state in states
    assert "AcquireIncidentLock" not in states
    assert world.promoter.promotions == [] and world.promoter.fenced == []
    assert world.edge.writes == [] and world.notifier.sent == [] and world.hooks.calls == []
    assert world.store.get_state("booking") == before and world.store.get_lock("booking") is None
    reasons = " | ".join(world.reasons("inc-dry"))
    assert (
        "dry run: would run the before_promote hook, promote the DR database" in reasons
        and "would point app.example.com at dr" in reasons
    )


def no_side_effects(world: World, before: dict[str, Any]) -> dict[str, Any] | None:
    """Nothing changed; answers the shadow lock as it is left."""
    assert world.promoter.promotions == [] and world.promoter.fenced == [] and world.hooks.calls == []
    assert world.edge.writes == [] and world.launcher.launches == []
    assert world.store.get_state("booking") == before and world.store.get_lock("booking") is None
    return world.store._get("booking", "SHADOW_LOCK")  # noqa: SLF001 - the ASL's own item


def test_shadow_mode_decides_for_real_tells_what_auto_would_do_and_changes_nothing(world: World) -> None:
    world.configure(mode="shadow")
    before = world.store.get_state("booking")
    described, states = run(world, AUTO_EVENT, name="inc-shadow")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    for state in (
        "AcquireShadowLock",
        "CheckGates",
        "ConfirmOutageRound",
        "DecideScenario",
        "CheckDrReplica",
    ):
        assert state in states
    assert "AcquireIncidentLock" not in states and states[-1] == "FailedOver"
    held = no_side_effects(world, before)
    # held for the cooldown auto would start (3600 s): the same outage gives no second decision
    assert held is not None and held["holder"] == "inc-shadow"
    assert held["lock_expires_at"] > time.time() + 3000
    record = world.incident("inc-shadow")
    assert record.shadow and record.outcome == "shadow" and record.status == "CLOSED"
    # the one notice: what auto would have done, when and why (quorum, scenario, replica check)
    assert [(n[0], n[1]) for n in world.notifier.sent] == [
        ("inc-shadow", "[quorum-dr] booking: shadow decision (inc-shadow)")
    ]
    told = world.notifier.sent[0][2]
    assert told.startswith("shadow: auto would have failed over booking to dr at ")
    assert (
        "main is DOWN" in told and "the DR standby may be promoted" in told and "Nothing was changed" in told
    )


def test_shadow_mode_gives_one_decision_when_every_region_triggers(world: World) -> None:
    """Every region reports the outage, at once and later (a slow region, a retrigger): one shadow
    decision, as auto gives one failover; the others end at AlreadyShadowing."""
    world.configure(mode="shadow")
    arns = [world.harness.start(AUTO_EVENT, name=f"inc-sh{i}") for i in range(3)]
    ends = [world.harness.states_entered(world.harness.wait(arn)["executionArn"])[-1] for arn in arns]
    _, states = run(world, AUTO_EVENT, name="inc-sh-late")
    ends.append(states[-1])
    assert sorted(ends) == ["AlreadyShadowing"] * 3 + ["FailedOver"], ends
    decisions = [n for n in world.notifier.sent if "shadow decision" in n[1]]
    assert len(decisions) == 1
    assert world.promoter.promotions == [] and world.edge.writes == []


def test_a_shadow_execution_never_blocks_a_real_start(world: World) -> None:
    world.configure(mode="shadow")
    assert world.store.acquire_lock(  # what a running shadow execution holds: its own item
        "booking", "inc-shadowing", holder="inc-shadowing", now=time.time(), expires_at=time.time() + 600
    )
    world.store._table.put_item(  # noqa: SLF001 - move it to the shadow lock's key
        Item={**world.store._table.get_item(Key={"pk": "booking", "sk": "LOCK"})["Item"], "sk": "SHADOW_LOCK"}
    )
    world.store._table.delete_item(Key={"pk": "booking", "sk": "LOCK"})  # noqa: SLF001
    described, states = run(world, manual(skip_confirm=True), name="inc-real")
    assert described["status"] == "SUCCEEDED" and states[-1] == "FailedOver"
    assert world.promoter.promotions == ["inc-real"] and len(world.edge.writes) == 1
    _, states = run(world, AUTO_EVENT, name="inc-shadow-late")
    assert states[-1] == "NotTheActiveSite"


def test_shadow_mode_tells_an_escalation_auto_would_have_made_and_changes_nothing(world: World) -> None:
    world.configure(mode="shadow")
    world.promoter.lag_bytes = 10**9
    before = world.store.get_state("booking")
    described, states = run(world, AUTO_EVENT, name="inc-shadow-lag")
    assert described["status"] == "FAILED" and "RefusePromotion" in states
    assert no_side_effects(world, before) is None, "an escalated shadow run releases its lock"
    assert [n[1] for n in world.notifier.sent] == ["[quorum-dr] booking: shadow decision (inc-shadow-lag)"]
    assert world.notifier.sent[0][2].startswith("shadow: auto would have escalated booking")
    assert world.incident("inc-shadow-lag").status == "CLOSED"


def test_shadow_mode_is_for_automatic_triggers_a_manual_start_acts(world: World) -> None:
    world.configure(mode="shadow")
    described, states = run(world, manual(skip_confirm=True), name="inc-manual-in-shadow")
    assert described["status"] == "SUCCEEDED" and "AcquireIncidentLock" in states
    assert world.promoter.promotions == ["inc-manual-in-shadow"]


def test_invariant_9_bad_input_is_rejected_before_any_side_effect(world: World) -> None:
    described, states = run(world, manual(to="moon"), name="inc-bad")
    assert described["status"] == "FAILED" and described["error"] == "InputRejected"
    assert "to: Input should be 'dr' or 'cold'" in described["cause"]
    assert states == ["ValidateInput", "InputRejected"]
    assert world.store.get_lock("booking") is None and world.store.get_incident("booking", "inc-bad") is None
    assert [name for name, _ in world.harness.invocations] == ["validate_input"]


def test_a_failed_required_fence_hook_escalates_before_any_promotion(world: World) -> None:
    from quorum_dr.failover.errors import HookFailed

    def fence_fails(hook: str, *, incident_id: str, payload: Any) -> dict[str, Any]:
        world.hooks.calls.append((hook, incident_id))
        if hook == "fence_main":
            raise HookFailed("fence_main hook (required) at https://hooks.example.com/fence failed: HTTP 500")
        return {"hook": hook}

    world.hooks.run = fence_fails  # type: ignore[method-assign]
    described, states = run(world, AUTO_EVENT, name="inc-hook")
    assert described["status"] == "FAILED" and "Escalate" in states
    assert "PromoteDrDatabase" not in states and world.promoter.promotions == []
    assert "fence_main hook (required)" in " ".join(world.reasons("inc-hook"))


def test_drctl_approve_lets_a_waiting_failover_proceed(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    from quorum_dr.cli import main as drctl

    world.configure(mode="approve", approval_timeout_seconds=60)
    arn = world.harness.start(AUTO_EVENT, name="inc-approve")
    for _ in range(500):  # bounded: until the approval request carries its task token
        record = world.store.get_incident("booking", "inc-approve")
        if record is not None and record.task_token:
            break
        time.sleep(0.02)

    code = drctl(["approve", "inc-approve", "--service", "booking", "--table", TABLE])

    assert code == 0
    assert "answered approve to incident inc-approve" in capsys.readouterr().out
    described = world.harness.wait(arn)
    assert described["status"] == "SUCCEEDED" and world.harness.states_entered(arn)[-1] == "FailedOver"
    assert world.promoter.promotions == ["inc-approve"]
    record = world.incident("inc-approve")
    assert record.task_token is None
    assert any(e.step == "operator_approve" for e in record.timeline)


def test_drctl_approve_of_an_incident_that_waits_for_nothing_is_refused(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    from quorum_dr.cli import main as drctl

    described, _ = run(world, AUTO_EVENT, name="inc-done")
    assert described["status"] == "SUCCEEDED"
    assert drctl(["approve", "inc-done", "--service", "booking", "--table", TABLE]) == 2
    assert "is not waiting for an approval or a veto" in capsys.readouterr().err
    assert drctl(["approve", "inc-nope", "--service", "booking", "--table", TABLE]) == 2
    assert "no incident inc-nope for service booking" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Invariant 10: re-confirm after every wait; no outcome is silent
# ---------------------------------------------------------------------------------------------


def subjects(world: World, incident_id: str) -> list[str]:
    return [subject for sent_for, subject, _ in world.notifier.sent if sent_for == incident_id]


def messages(world: World, incident_id: str) -> str:
    return " | ".join(message for sent_for, _, message in world.notifier.sent if sent_for == incident_id)


def when_notified(world: World, kind: str, change: Any) -> None:
    """Run `change()` right after the notification of `kind` is sent (e.g. during the veto window)."""
    send = world.notifier.notify

    def notify(subject: str, message: str, *, incident_id: str, detail: Any) -> dict[str, Any]:
        answer = send(subject, message, incident_id=incident_id, detail=detail)
        if detail.get("kind") == kind:
            change()
        return answer

    world.notifier.notify = notify  # type: ignore[method-assign]


def without_cold_site(world: World) -> None:
    config = world.ports.config
    service = config.services[0].model_copy(update={"cold_site": None})
    world.ports.config = config.model_copy(update={"services": [service]})


def wait_for_token(world: World, incident_id: str) -> None:
    for _ in range(500):  # bounded: until the request carries its task token
        record = world.store.get_incident("booking", incident_id)
        if record is not None and record.task_token:
            return
        time.sleep(0.02)
    raise AssertionError(f"{incident_id} never asked for an answer")


def test_invariant_10_main_back_up_during_the_veto_window_calls_the_failover_off(world: World) -> None:
    """Old code: after the veto window it went straight to MarkFailingOver with the old quorum
    and promoted a database whose primary was back."""
    world.configure(mode="veto", veto_seconds=1)
    when_notified(world, "veto_window", lambda: world.probes.sites.update(main="up"))
    described, states = run(world, AUTO_EVENT, name="inc-veto-back")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states[-3:] == ["CallOffFailover", "NotifyCalledOff", "FalseAlarm"]
    assert "ReconfirmOutage" in states and "MarkFailingOver" not in states
    assert world.promoter.promotions == [] and world.edge.writes == []
    record = world.incident("inc-veto-back")
    assert record.outcome == "false_alarm" and world.store.get_lock("booking") is None
    said = (
        "re-confirmation after the veto window (round 2): the hot failover no longer holds, main is UP again"
    )
    assert said in " | ".join(world.reasons("inc-veto-back"))
    assert any("called off" in subject for subject in subjects(world, "inc-veto-back"))
    assert said in messages(world, "inc-veto-back")
    assert world.store.get_state("booking").get("status") in (None, "HEALTHY")


def test_invariant_10_dr_down_by_the_time_of_the_approval_calls_the_failover_off(world: World) -> None:
    """Approved after the wait, but DR is DOWN now: the hot failover decided before no longer
    follows (both DOWN calls for the cold site, which needs a decision of its own)."""
    world.configure(mode="approve", approval_timeout_seconds=60)
    arn = world.harness.start(AUTO_EVENT, name="inc-appr-dr")
    wait_for_token(world, "inc-appr-dr")
    world.probes.sites.update(dr="down")
    answer_request(
        world.store,
        world.harness.sfn,
        service="booking",
        incident_id="inc-appr-dr",
        decision="approve",
        by="carol",
        now=time.time(),
    )
    described = world.harness.wait(arn)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    states = world.harness.states_entered(arn)
    assert states[-1] == "FalseAlarm" and "MarkFailingOver" not in states
    assert world.promoter.promotions == [] and world.launcher.launches == []
    assert (
        "re-confirmation after the approval (round 2): the hot failover no longer holds, the verdicts now "
        "call for a cold failover, not the hot one" in " | ".join(world.reasons("inc-appr-dr"))
    )
    assert world.store.get_lock("booking") is None


def test_invariant_10_a_failover_that_still_holds_after_the_veto_window_proceeds(world: World) -> None:
    world.configure(mode="veto", veto_seconds=1)
    described, states = run(world, AUTO_EVENT, name="inc-veto-holds")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states[-1] == "FailedOver"
    assert states.index("ReconfirmOutage") < states.index("MarkFailingOver")
    assert world.promoter.promotions == ["inc-veto-holds"]
    assert "after the veto window (round 2): the hot failover still holds: hot failover to dr" in " | ".join(
        world.reasons("inc-veto-holds")
    )


def test_invariant_10_a_veto_window_that_reaches_nobody_escalates_instead_of_passing_to_auto(
    world: World,
) -> None:
    """Old code: the notify step returned "NOT delivered" as an answer, the window timed out,
    and the failover went ahead as if in auto mode."""
    world.configure(mode="veto", veto_seconds=1)
    world.notifier.deliver = False
    described, states = run(world, AUTO_EVENT, name="inc-veto-nobody")
    assert described["status"] == "FAILED" and described["error"] == "NeedsAttention"
    assert states[states.index("WaitForVeto") + 1] == "Escalate"
    assert world.promoter.promotions == [] and world.edge.writes == []
    reasons = " | ".join(world.reasons("inc-veto-nobody"))
    assert "the veto window of incident inc-veto-nobody reached no operator" in reasons
    assert "NotificationNotDelivered" in reasons
    assert world.store.get_state("booking")["status"] == "NEEDS_ATTENTION"


def test_invariant_10_both_sites_down_and_no_cold_site_is_told(world: World) -> None:
    """Old code: StopNoAction ended the incident without telling anyone."""
    without_cold_site(world)
    world.probes.sites.update(main="down", dr="down")
    described, states = run(world, AUTO_EVENT, name="inc-none")
    assert described["status"] == "SUCCEEDED"
    assert states[-3:] == ["StopNoAction", "NotifyNoAction", "NoAction"]
    assert subjects(world, "inc-none") == ["[quorum-dr] booking: no action (inc-none)"]
    assert "main and dr are both DOWN and no cold site is configured; an operator must act" in messages(
        world, "inc-none"
    )


def test_invariant_10_main_down_while_dr_is_unknown_keeps_confirming(world: World) -> None:
    """Old code: the first round with main DOWN went to DecideScenario, which ended the incident
    as "dr is not confirmed UP" although the round budget allowed another look."""
    world.probes.sites.update(main="down", dr="silent")

    def dr_answers(round_index: int) -> None:
        if round_index == 1:
            world.probes.sites["dr"] = "up"

    world.probes.before_round = dr_answers
    described, states = run(world, AUTO_EVENT, name="inc-dr-late")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states.count("ConfirmOutageRound") == 2 and "WaitBetweenRounds" in states
    assert states[-1] == "FailedOver" and world.promoter.promotions == ["inc-dr-late"]


def test_invariant_10_dr_still_unknown_when_the_rounds_run_out_is_told(world: World) -> None:
    world.probes.sites.update(main="down", dr="silent")
    described, states = run(world, AUTO_EVENT, name="inc-dr-never")
    assert described["status"] == "SUCCEEDED"
    assert states.count("ConfirmOutageRound") == 2  # the budget (max_rounds 2), no more
    assert states[-2:] == ["NotifyNoAction", "NoAction"]
    assert "main is DOWN but dr is not confirmed UP" in messages(world, "inc-dr-never")


def test_invariant_10_a_confirmed_outage_behind_closed_gates_is_told_a_false_alarm_is_not(
    world: World,
) -> None:
    """Old code: a kill switch (or cooldown, or daily cap) ended the incident silently, main
    dead or not. Now the outage is confirmed with probes (no side effect) and, if real, told."""
    state = world.store.get_state("booking")
    world.store.put_state({**state, "automation_enabled": False}, expected_version=state.get("version", 0))
    described, states = run(world, AUTO_EVENT, name="inc-gated")
    assert described["status"] == "SUCCEEDED" and states[-1] == "GatesClosed"
    assert "DecideScenario" not in states and world.promoter.promotions == []
    assert subjects(world, "inc-gated") == ["[quorum-dr] booking: gates closed (inc-gated)"]
    told = messages(world, "inc-gated")
    assert "automation is disabled for booking (kill switch)" in told
    assert "The outage is confirmed (round 1: main is DOWN" in told and "an operator must act" in told
    assert world.incident("inc-gated").outcome == "refused" and world.store.get_lock("booking") is None

    world.probes.sites["main"] = "up"
    described, states = run(world, AUTO_EVENT, name="inc-gated-fa")
    assert states[-1] == "FalseAlarm" and subjects(world, "inc-gated-fa") == []


def test_invariant_10_no_decision_is_told_with_its_reason(world: World) -> None:
    world.probes.sites.update(main="silent")
    described, states = run(world, AUTO_EVENT, name="inc-undecided")
    assert states[-2:] == ["AlertNoDecision", "NoDecision"]
    assert subjects(world, "inc-undecided") == ["[quorum-dr] booking: no decision (inc-undecided)"]
    assert "round 2: main is UNKNOWN" in messages(world, "inc-undecided")


def test_invariant_10_an_escalation_that_fails_to_record_is_still_told(world: World) -> None:
    """Old code: Escalate's Catch wrote $.escalation_error while NotifyEscalation read
    $.escalation: a States.Runtime error, the operators never heard of it."""
    described, states = run(world, AUTO_EVENT, name="inc-esc-fails", case="EscalateFails")
    assert described["status"] == "FAILED" and described["error"] == "NeedsAttention", described
    assert states[-6:] == [
        "Escalate",
        "EscalateFailedDryRun",
        "KeepLockDirectly",
        "MarkNeedsAttentionDirectly",
        "NotifyEscalation",
        "NeedsAttention",
    ]
    # The two writes Escalate could not make, made directly: NEEDS_ATTENTION, and the lock kept.
    assert world.store.get_state("booking")["status"] == "NEEDS_ATTENTION"
    lock = world.store.get_lock("booking")
    assert lock is not None and lock["kept"] is True and lock["holder"] == "inc-esc-fails"
    told = messages(world, "inc-esc-fails")
    assert "booking needs attention after incident inc-esc-fails" in told
    assert "Recording the escalation ALSO failed (StateTableUnavailable" in told


def test_invariant_6_promoted_but_not_switched_is_said_from_the_incident_record(world: World) -> None:
    """The promotion happened, then its test write failed: no $.promotion reaches Escalate.
    Old code: the escalation did not say the DR database is promoted."""
    world.promoter.writable = False
    described, _ = run(world, AUTO_EVENT, name="inc-half")
    assert described["status"] == "FAILED" and world.promoter.promotions == ["inc-half"]
    assert "The DR database is promoted but traffic is NOT switched." in " | ".join(world.reasons("inc-half"))
    assert "promoted but traffic is NOT switched" in messages(world, "inc-half")


# ---------------------------------------------------------------------------------------------
# Verification tolerates propagation, within verify.window_seconds
# ---------------------------------------------------------------------------------------------


def with_verify_window(world: World, seconds: float) -> None:
    from quorum_dr.config import Verify

    world.ports.config = world.ports.config.model_copy(update={"verify": Verify(window_seconds=seconds)})


def test_verification_retries_while_the_switch_propagates(world: World) -> None:
    """The edge answers from main for the first two looks after the switch. Old code: one GET,
    NotVerified, escalation of a failover that worked."""
    with_verify_window(world, 10)
    verifier = world.ports.verifier()
    look = verifier.verify

    def propagating(**kwargs: Any) -> dict[str, Any]:
        answer = look(**kwargs)
        if len(verifier.checks) <= 2:
            return {"verified": False, "reason": "3 of 3 regions saw the main marker (expected dr)"}
        return answer

    verifier.verify = propagating  # type: ignore[method-assign]
    described, states = run(world, AUTO_EVENT, name="inc-propagate")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states[-1] == "FailedOver" and len(verifier.checks) == 3
    assert "(attempt 3, after" in " | ".join(world.reasons("inc-propagate"))


def test_verification_that_never_succeeds_escalates_and_the_active_site_says_where_traffic_goes(
    world: World,
) -> None:
    with_verify_window(world, 1.5)
    verifier = world.ports.verifier()
    verifier.verify = lambda **kwargs: {  # type: ignore[method-assign]
        "verified": False,
        "reason": "1 of 3 regions saw the dr marker (quorum 2)",
    }
    described, states = run(world, AUTO_EVENT, name="inc-unverified")
    assert described["status"] == "FAILED" and "NotVerified" in states
    assert world.edge.writes == [("inc-unverified", "dr")]
    reasons = " | ".join(world.reasons("inc-unverified"))
    assert "not verified within the 1.5 s window (" in reasons
    state = world.store.get_state("booking")
    assert state["status"] == "NEEDS_ATTENTION" and state["active_site"] == "dr"
    assert "Traffic is switched to dr; the active site says so." in reasons


def test_a_raw_start_reusing_an_escalated_incidents_id_is_refused_with_a_sentence(world: World) -> None:
    world.edge.fail = True
    described, _ = run(world, AUTO_EVENT, name="inc-esc")
    assert described["status"] == "FAILED" and world.store.get_lock("booking")["kept"] is True
    world.edge.fail = False

    # `aws stepfunctions start-execution --name anything --input '{..., "incident_id": "inc-esc"}'`
    described, states = run(world, manual(incident_id="inc-esc", skip_confirm=True), name="raw-start")

    assert described["status"] == "FAILED" and described["error"] == "InputRejected"
    assert "incident inc-esc of booking already exists (status NEEDS_ATTENTION)" in described["cause"]
    assert "an operator must run drctl reset" in described["cause"]
    assert "AcquireIncidentLock" not in states
    assert world.promoter.promotions == ["inc-esc"] and world.edge.writes == []
    assert world.store.get_lock("booking")["holder"] == "inc-esc"


def test_the_lock_holder_is_the_execution_name_not_the_callers_incident_id(world: World) -> None:
    # A kept lock whose incident left no record (validate_input cannot see it): the lock's own
    # condition must stop a start that names the same incident id from another execution.
    assert world.store.acquire_lock(
        "booking", "inc-kept", holder="exec-kept", now=time.time(), expires_at=time.time() + 600
    )
    assert world.store.keep_lock("booking", "inc-kept", holder="exec-kept")

    described, states = run(world, manual(incident_id="inc-kept", skip_confirm=True), name="exec-other")

    assert described["status"] == "SUCCEEDED" and states[-1] == "AlreadyHandling", described.get("cause")
    reason = json.loads(described["output"])["holder"]["reason"]
    assert reason.startswith("already handling incident inc-kept for booking (execution exec-kept)")
    assert world.promoter.promotions == [] and world.edge.writes == []
    lock = world.store.get_lock("booking")
    assert (lock["holder"], lock["kept"]) == ("exec-kept", True)


def test_a_lost_lock_is_reported_when_the_escalation_cannot_keep_it(world: World) -> None:
    # The execution's lock was taken over (it expired, a forced reset, ...): its escalation must
    # not write over the new holder's lock, and says so.
    from quorum_dr.failover import incident as incident_state

    real_escalate = incident_state.escalate

    def escalate_after_takeover(ports: wiring.Ports, incident: Any, error: Any, progress: Any) -> Any:
        world.store._table.put_item(  # another execution's lock, as after an expiry
            Item={
                "pk": "booking",
                "sk": "LOCK",
                "incident_id": "inc-next",
                "holder": "inc-next",
                "kept": False,
                "lock_expires_at": int(time.time()) + 600,
            }
        )
        return real_escalate(ports, incident, error, progress)

    world.edge.fail = True
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(incident_state, "escalate", escalate_after_takeover)
        described, _ = run(world, AUTO_EVENT, name="inc-lost")

    assert described["status"] == "FAILED"
    lock = world.store.get_lock("booking")
    assert (lock["holder"], lock["kept"]) == ("inc-next", False), "another execution's lock is untouched"
    assert "The lock could NOT be kept: execution inc-next (incident inc-next) holds it, not inc-lost" in (
        " ".join(world.reasons("inc-lost"))
    )


# ---------------------------------------------------------------------------------------------
# Invariant 4b: the fence holds or blocks; and the loss receipt after the fence (main's final
# position)
# ---------------------------------------------------------------------------------------------

MAIN_DB = "main-db:5432/booking"


def fenced_main(final_lsn: str = "0/5000100") -> FenceReceipt:
    return FenceReceipt(
        reachable=True,
        fenced=True,
        terminated_sessions=2,
        address=MAIN_DB,
        roles=("app",),
        final_lsn=final_lsn,
        reason=f"fenced main's database at {MAIN_DB}: application role(s) app may not log in; main's "
        f"final WAL position after the fence is {final_lsn}",
    )


def test_invariant_4b_a_reachable_main_that_is_not_fenced_escalates_before_any_promotion(
    world: World,
) -> None:
    world.promoter.fence = FenceReceipt(
        reachable=True,
        fenced=False,
        address=MAIN_DB,
        reason=f"main's database at {MAIN_DB} is reachable but fencing it failed (db_error: permission "
        "denied to alter role)",
    )
    described, states = run(world, AUTO_EVENT, name="inc-unfenced")
    assert described["status"] == "FAILED" and described["error"] == "NeedsAttention"
    assert states[states.index("FenceMain") + 1] == "Escalate"
    assert "PromoteDrDatabase" not in states and world.promoter.promotions == [] and world.edge.writes == []
    assert ("fence_main", "inc-unfenced") not in world.hooks.calls
    reasons = " | ".join(world.reasons("inc-unfenced"))
    assert f"no promotion: main's database at {MAIN_DB} is reachable but fencing it failed" in reasons
    assert "FenceFailed" in reasons and world.incident("inc-unfenced").status == "NEEDS_ATTENTION"


def test_invariant_4b_a_fence_that_crashes_escalates_before_any_promotion(world: World) -> None:
    world.promoter.fence = RuntimeError("the fence function ran out of memory")
    described, states = run(world, AUTO_EVENT, name="inc-fence-crash")
    assert described["status"] == "FAILED" and "Escalate" in states
    assert "PromoteDrDatabase" not in states and world.promoter.promotions == []
    assert "the fence function ran out of memory" in " ".join(world.reasons("inc-fence-crash"))


def test_invariant_4b_an_unreachable_main_proceeds_with_its_evidence_in_the_timeline(world: World) -> None:
    described, states = run(world, AUTO_EVENT, name="inc-unreachable")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert world.promoter.promotions == ["inc-unreachable"]
    assert world.promoter.waited_for == []  # no final position to wait for
    record = world.incident("inc-unreachable")
    fence = record.fence
    assert fence["unreachable"] is True and fence["fenced"] is False
    assert fence["evidence"]["failure_class"] == "connect_refused" and fence["evidence"]["address"] == MAIN_DB
    reasons = " | ".join(world.reasons("inc-unreachable"))
    assert f"main's database at {MAIN_DB} is unreachable (connect_refused" in reasons
    assert "no final position of main to wait for: main's database was unreachable at the fence" in reasons


def test_invariant_4_the_loss_receipt_is_taken_after_the_fence_at_mains_final_position(world: World) -> None:
    world.promoter.fence = fenced_main("0/5000100")
    described, states = run(world, AUTO_EVENT, name="inc-final")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    order = [states.index(s) for s in ("FenceMain", "WaitForFinalPosition", "PromoteDrDatabase")]
    assert order == sorted(order)
    assert world.promoter.waited_for == ["0/5000100"]
    record = world.incident("inc-final")
    assert record.data_loss["evidence"] == "final_position" and record.data_loss["loss_bytes"] == 0
    assert record.data_loss_reason.startswith(
        "no data lost: main's final position after the fence, 0/5000100, reached by the standby"
    )


def test_invariant_4_a_standby_short_of_mains_final_position_escalates(world: World) -> None:
    world.promoter.fence = fenced_main("0/5000100")
    world.promoter.final_reached = False  # the standby stays at 0/5000000
    described, states = run(world, AUTO_EVENT, name="inc-short")
    assert described["status"] == "FAILED" and "RefuseFinalPosition" in states
    assert "PromoteDrDatabase" not in states and world.promoter.promotions == []
    reasons = " | ".join(world.reasons("inc-short"))
    assert (
        "no automatic promotion: main's final position after the fence, 0/5000100, not reached by the "
        "standby within 30 s: the standby received only up to 0/5000000: 256 bytes of WAL lost" in reasons
    )


def test_invariant_4_short_of_mains_final_position_allow_data_loss_proceeds_audited(world: World) -> None:
    world.promoter.fence = fenced_main("0/5000100")
    world.promoter.final_reached = False
    described, _ = run(world, manual(allow_data_loss=True, skip_confirm=True), name="inc-short-ok")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    record = world.incident("inc-short-ok")
    assert record.allow_data_loss_used is True and record.data_loss["loss_bytes"] == 256
    assert world.promoter.promotions == ["inc-short-ok"]
    assert "256 bytes of WAL lost; promoting anyway: allow_data_loss was given by an operator" in " ".join(
        world.reasons("inc-short-ok")
    )
