"""The real planned-switchover ASL executed by moto's Step Functions engine, with the real handlers
over fake ports (two sites' databases behind fake site agents built from the agent contract, the
sync check, the edge) and the real DynamoDB state store on moto. Named mock-config cases drive
one branch each; the other tests run every step for real."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.tables import create_table
from quorum_dr.agent.contract import DatabaseRole, Operation
from quorum_dr.cli.switchover_cmd import run_switchover
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr.domain.state import ServiceState
from quorum_dr.failover import wiring
from quorum_dr.failover.ports import Ports
from quorum_dr.ports import SiteAgentError
from quorum_dr_local.sfn_harness import SfnHarness
from tests.conftest import ROOT
from tests.fakes import (
    FakeDatabases,
    FakeEdge,
    FakeNotifier,
    FakeProbes,
    FakeResults,
    FakeSync,
    FakeVerifier,
    SteppingClock,
    switchover_config,
)

REGION = "eu-west-2"
TABLE = "quorum-dr-state"
MOCK_CONFIG = json.loads((ROOT / "tests" / "integration" / "switchover_mock_config.json").read_text())
SUCCESS_STATES = [
    "ValidateSwitchover",
    "CheckPreconditions",
    "PlanAllows",
    "CheckDatabases",
    "DatabasesAllow",
    "CheckEdge",
    "EdgeAllows",
    "IsDryRun",
    "AcquireSwitchoverLock",
    "FreezeActive",
    "SyncCheck",
    "InSync",
    "StopActive",
    "StoppedCleanly",
    "WaitForFinalPosition",
    "FinalPositionReached",
    "StartCooldown",
    "PromoteTarget",
    "TargetWritable",
    "SwitchEdge",
    "VerifySwitch",
    "Verified",
    "FollowNewPrimary",
    "SetActiveSite",
    "ReleaseLock",
    "NotifySwitchedOver",
    "SwitchedOver",
]


def request(**fields: Any) -> dict[str, Any]:
    return {
        "service": "booking",
        "to": "dr",
        "reason": "maintenance on London",
        "requested_by": "alice",
        **fields,
    }


@dataclass
class World:
    harness: SfnHarness
    store: DynamoStateStore
    databases: FakeDatabases
    sync: FakeSync
    edge: FakeEdge
    notifier: FakeNotifier
    probes: FakeProbes
    ports: Ports

    def run(
        self, payload: dict[str, Any], name: str, case: str | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        arn = self.harness.start(payload, name=name, case=case)
        described = self.harness.wait(arn)
        return described, self.harness.states_entered(arn)

    def state(self) -> dict[str, Any]:
        """The service's state item with its defaults (an item never written is main, HEALTHY)."""
        return ServiceState.model_validate(self.store.get_state("booking")).model_dump(mode="json")

    def incident(self, incident_id: str) -> IncidentRecord:
        record = self.store.get_incident("booking", incident_id)
        assert record is not None, f"no incident record {incident_id}"
        return record

    def reasons(self, incident_id: str) -> str:
        return " | ".join(e.reason for e in self.incident(incident_id).timeline)

    def acted(self) -> list[tuple[str, str]]:
        """The agent operations that changed something, in order: (site, operation)."""
        return [(site, operation) for site, operation, _ in self.databases.operations]

    def sent(self, incident_id: str) -> list[tuple[str, str]]:
        return [(subject, message) for i, subject, message in self.notifier.sent if i == incident_id]

    def probe_round(self) -> None:
        """A round from every region: the quorum's recent results."""
        self.probes.run_round(
            service="booking",
            round_id=f"r{time.monotonic_ns()}",
            incident_id="",
            sites=["main", "dr", "cold"],
        )


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
        store = DynamoStateStore(TABLE, resource=boto3.resource("dynamodb", region_name=REGION))
        clock = SteppingClock()
        results = FakeResults()
        probes = FakeProbes(results, clock, {"main": "up", "dr": "up", "cold": "up"})
        databases = FakeDatabases()
        sync, edge, notifier = FakeSync(databases), FakeEdge(), FakeNotifier()
        verifier = FakeVerifier(edge)
        ports = Ports(
            config=switchover_config(),
            store=store,
            results=lambda: results,
            probes=lambda: probes,
            edge=lambda s: edge,
            verifier=lambda: verifier,
            notifier=lambda: notifier,
            site_agent=lambda s, site: databases.agent(site),
            sync=lambda s: sync,
            clock=clock,
            sleep=clock.sleep,
        )
        wiring.use(ports)
        with SfnHarness(
            state_table=TABLE,
            region=REGION,
            machine_name="Switchover",
            definition_name="switchover",
            mock_config=MOCK_CONFIG,
        ) as harness:
            world = World(harness, store, databases, sync, edge, notifier, probes, ports)
            world.probe_round()
            yield world
        wiring.use(None)


# ---------------------------------------------------------------------------------------------
# Named mock-config cases: one branch each through moto's engine
# ---------------------------------------------------------------------------------------------

FREEZE_STOP = [("main", "freeze"), ("main", "stop")]
ROLL_BACK = [("main", "start"), ("main", "unfreeze")]
SWITCHED = [*FREEZE_STOP, ("dr", "promote"), ("dr", "unfreeze"), ("main", "follow")]
# case, dry run, status, last state, states that must be entered, agent operations, lock, active site
CASES = [
    (
        "SwitchedOver",
        False,
        "SUCCEEDED",
        "SwitchedOver",
        ["VerifySwitch", "SetActiveSite"],
        SWITCHED,
        None,
        "dr",
    ),
    (
        "RefusedLagging",
        False,
        "SUCCEEDED",
        "Refused",
        ["RefusedByDatabases", "NotifyRefusal"],
        [],
        None,
        "main",
    ),
    (
        "RefusedTargetDown",
        False,
        "SUCCEEDED",
        "Refused",
        ["RefusedByPlan", "RecordRefusal"],
        [],
        None,
        "main",
    ),
    (
        "LockTakenMeanwhile",
        False,
        "SUCCEEDED",
        "Refused",
        ["DescribeLockHolder", "LockHeld"],
        [],
        "held",
        "main",
    ),
    (
        "RollBackNotReceived",
        False,
        "FAILED",
        "RolledBack",
        ["FinalPositionNotReached", "RollBack", "RecordRollBack", "NotifyRollBack"],
        [*FREEZE_STOP, *ROLL_BACK],
        None,
        "main",
    ),
    (
        "RollBackSyncMismatch",
        False,
        "FAILED",
        "RolledBack",
        ["NotInSync", "RollBack", "RecordRollBack"],
        [("main", "freeze"), ("main", "unfreeze")],  # checked before the stop: nothing to restart
        None,
        "main",
    ),
    (
        "EscalateAfterPromotionFails",
        False,
        "FAILED",
        "NeedsAttention",
        ["StartCooldown", "PromoteTarget", "Escalate", "NotifyEscalation"],
        FREEZE_STOP,
        "kept",
        "main",
    ),
    (
        "EscalateSwitchFails",
        False,
        "FAILED",
        "NeedsAttention",
        ["PromoteTarget", "SwitchEdge", "Escalate"],
        [*FREEZE_STOP, ("dr", "promote"), ("dr", "unfreeze")],
        "kept",
        "main",
    ),
    (
        "FollowFailsSwitchStands",
        False,
        "SUCCEEDED",
        "SwitchedOver",
        ["FollowNewPrimary", "SetActiveSite", "NotifySwitchedOver"],
        [*FREEZE_STOP, ("dr", "promote"), ("dr", "unfreeze")],
        None,
        "dr",
    ),
    (
        "DryRun",
        True,
        "SUCCEEDED",
        "SwitchedOver",
        ["FreezeActive", "PromoteTarget", "SwitchEdge"],
        [],
        None,
        "main",
    ),
]


@pytest.mark.parametrize(
    ("case", "dry_run", "status", "last", "passes", "acted", "lock", "active"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_named_case(
    world: World,
    case: str,
    dry_run: bool,
    status: str,
    last: str,
    passes: list[str],
    acted: list[tuple[str, str]],
    lock: str | None,
    active: str,
) -> None:
    name = f"sw-{case}"
    if case == "LockTakenMeanwhile":  # a failover took the lock after the preconditions were checked
        assert world.store.acquire_lock("booking", "inc-fo", holder="inc-fo", now=time.time(), expires_at=2e9)
    described, states = world.run(request(dry_run=dry_run), name=name, case=case)
    assert described["status"] == status, described.get("cause")
    assert states[-1] == last
    for state in passes:
        assert state in states, f"{state} not entered: {states}"
    assert world.acted() == acted
    held = world.store.get_lock("booking")
    if lock is None:
        assert held is None, f"the lock must be released after {case}"
    elif lock == "held":
        assert held is not None and held["incident_id"] == "inc-fo", "the failover's lock is untouched"
    else:
        assert held is not None and held["kept"] is True and held["incident_id"] == name
        assert world.state()["status"] == "NEEDS_ATTENTION"
        assert any("switchover escalation" in subject for subject, _ in world.sent(name))
    assert world.state()["active_site"] == active
    record = world.incident(name)
    if last == "Refused":
        assert (
            record.outcome == "refused"
            and "AcquireSwitchoverLock" not in states
            or case == "LockTakenMeanwhile"
        )
        assert "FreezeActive" not in states
        assert [s for s, _ in world.sent(name)] == [f"[quorum-dr] booking: switchover refused ({name})"]
    if last == "RolledBack":
        assert record.outcome == "rolled_back" and "PromoteTarget" not in states
        assert "rolled back, nothing lost" in described["cause"]
        main = world.databases.sites["main"]
        assert main.running and main.role is DatabaseRole.PRIMARY and not main.frozen


def test_the_lock_taken_meanwhile_is_named_in_the_refusal(world: World) -> None:
    assert world.store.acquire_lock("booking", "inc-fo", holder="inc-fo", now=time.time(), expires_at=2e9)
    described, _ = world.run(request(), name="sw-lock", case="LockTakenMeanwhile")
    assert described["status"] == "SUCCEEDED"
    assert "incident inc-fo holds the lock" in world.reasons("sw-lock")


def test_a_failed_follow_is_told_with_the_rejoin_to_run_and_the_switch_stands(world: World) -> None:
    described, _ = world.run(request(), name="sw-follow", case="FollowFailsSwitchStands")
    assert described["status"] == "SUCCEEDED"
    ((_, message),) = [m for m in world.sent("sw-follow") if "switched over" in m[0]]
    assert "main did NOT start as a standby" in message
    assert "run drctl rejoin --service booking --site main" in message
    assert world.edge.site == "dr" and world.state()["status"] == "HEALTHY"


# ---------------------------------------------------------------------------------------------
# Every step real: success, refusal, roll back (and the ends around them)
# ---------------------------------------------------------------------------------------------


def test_a_switchover_to_dr_freezes_stops_promotes_switches_and_main_follows(world: World) -> None:
    described, states = world.run(request(), name="sw-dr")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states == SUCCESS_STATES
    assert world.acted() == SWITCHED
    assert [op_id for _, _, op_id in world.databases.operations] == [
        "sw-dr.freeze.main",
        "sw-dr.stop.main",
        "sw-dr.promote.dr",
        "sw-dr.unfreeze.dr",
        "sw-dr.follow.main",
    ]
    assert sorted(world.sync.digests) == ["dr", "main"], "both sides digested once (at the same time)"
    main, dr = world.databases.sites["main"], world.databases.sites["dr"]
    assert (dr.role, dr.timeline, dr.frozen) == (DatabaseRole.PRIMARY, 2, False)
    assert (main.role, main.running, main.following) == (DatabaseRole.STANDBY, True, "198.51.100.20:5432")
    assert world.edge.writes == [("sw-dr", "dr")]
    state = world.state()
    assert (state["active_site"], state["status"]) == ("dr", "HEALTHY")
    assert state["cooldown_until"] > time.time() + 3000 and state["counted_incident"] == "sw-dr"
    assert world.store.get_lock("booking") is None
    record = world.incident("sw-dr")
    assert (record.kind, record.outcome, record.status) == ("switchover", "switched_over", "CLOSED")
    figures = record.switchover or {}
    assert figures["source"] == "main" and figures["target"] == "dr" and figures["rolled_back"] is False
    assert figures["final_position"] == "0/5000000" and figures["replayed_position"] == "0/5000028"
    assert figures["write_outage_seconds"] is not None and figures["write_outage_seconds"] >= 0
    assert (record.sync_check or {})["verdict"]["in_sync"] is True
    ((subject, message),) = world.sent("sw-dr")
    assert subject == "[quorum-dr] booking: switchover switched over (sw-dr)"
    for sentence in (
        "planned switchover of booking from main to dr done: write outage",
        "main's final position 0/5000000, dr replayed 0/5000028",
        "sync check: in sync: dr replayed main's final position 0/5000000; 2 tables agree",
        "main runs as a standby of dr (198.51.100.20:5432)",
        "automatic failover of booking is off until the service is home: it goes from main to dr only",
    ):
        assert sentence in message, sentence


def test_going_home_switches_back_and_rearms_automatic_failover_after_the_cooldown(world: World) -> None:
    described, _ = world.run(request(), name="sw-out")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    world.databases.write("dr")  # dr took writes while it was the active site
    world.probe_round()
    described, states = world.run(request(to="main", reason="maintenance done"), name="sw-home")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states[-1] == "SwitchedOver"
    main, dr = world.databases.sites["main"], world.databases.sites["dr"]
    assert (main.role, main.timeline) == (DatabaseRole.PRIMARY, 3)
    assert (dr.role, dr.following) == (DatabaseRole.STANDBY, "203.0.113.10:5432")
    assert world.edge.site == "main" and world.state()["active_site"] == "main"
    ((_, message),) = world.sent("sw-home")
    assert "automatic failover of booking is re-armed after the cooldown" in message


def test_refused_when_the_target_lags_beyond_the_limit_and_nothing_is_touched(world: World) -> None:
    world.databases.sites["dr"].replay_lag = 32 * 1024 * 1024
    described, states = world.run(request(), name="sw-lag")
    assert described["status"] == "SUCCEEDED" and states[-1] == "Refused"
    assert states[:5] == [
        "ValidateSwitchover",
        "CheckPreconditions",
        "PlanAllows",
        "CheckDatabases",
        "DatabasesAllow",
    ]
    assert world.acted() == [] and world.sync.digests == [] and world.edge.writes == []
    assert {operation for _, operation in world.databases.calls} == {"status"}
    assert world.store.get_lock("booking") is None
    state = world.state()
    assert (state["active_site"], state["status"]) == ("main", "HEALTHY")
    reasons = world.reasons("sw-lag")
    assert (
        "dr has replayed up to 0/3000000, 33554432 bytes behind main's 0/5000000; the limit is 16777216"
        in reasons
    )
    ((_, message),) = world.sent("sw-lag")
    assert message.startswith("nothing was changed: switchover from main to dr refused: dr has replayed")


@pytest.mark.parametrize(
    ("prepare", "sentence"),
    [
        ("needs_attention", "booking needs attention after incident inc-old"),
        ("lock", "incident inc-fo holds the lock of booking"),
        ("dr_down", "the quorum does not see dr's application UP"),
        ("already", "dr is already the active site of booking: nothing to switch"),
        ("no_agent", "no site agent on dr (sites.dr.agent)"),
        ("agent_silent", "a site agent did not answer its status"),
        ("not_streaming", "dr's standby is not streaming from a primary"),
        (
            "edge_elsewhere",
            "the edge of booking points at dr while the state says main is active; find out which is right",
        ),
        ("edge_unreachable", "Cloudflare did not answer reading the DNS records: HTTP 503"),
    ],
)
def test_each_precondition_refuses_before_any_change(world: World, prepare: str, sentence: str) -> None:
    state = world.store.get_state("booking")
    if prepare == "needs_attention":
        world.store.put_state(
            {**state, "status": "NEEDS_ATTENTION", "lock_holder": "inc-old"}, expected_version=0
        )
    elif prepare == "lock":
        world.store.acquire_lock("booking", "inc-fo", holder="inc-fo", now=time.time(), expires_at=2e9)
    elif prepare == "dr_down":
        world.probes.sites["dr"] = "down"
        world.probe_round()
    elif prepare == "already":
        world.store.put_state({**state, "active_site": "dr"}, expected_version=0)
    elif prepare == "no_agent":
        data = world.ports.config.model_dump(mode="json", by_alias=True, exclude_none=True)
        del data["services"][0]["sites"]["dr"]["agent"]
        world.ports.config = type(world.ports.config).model_validate(data)
    elif prepare == "agent_silent":
        world.databases.unreachable.add("dr")
    elif prepare == "not_streaming":
        world.databases.sites["dr"].streaming = False
    elif prepare == "edge_elsewhere":
        world.edge.site = "dr"
    elif prepare == "edge_unreachable":
        world.edge.unreachable = "Cloudflare did not answer reading the DNS records: HTTP 503"
    described, states = world.run(request(), name=f"sw-{prepare}")
    assert described["status"] == "SUCCEEDED" and states[-1] == "Refused", described.get("cause")
    assert "AcquireSwitchoverLock" not in states and world.acted() == [] and world.edge.writes == []
    assert sentence in world.reasons(f"sw-{prepare}")
    assert world.incident(f"sw-{prepare}").outcome == "refused"


ROLL_BACKS = [
    # fault, sentence, digests taken, agent operations
    (
        "not_received",
        "dr has received up to 0/5000000 and replayed up to 0/5000000, not past",
        ["main", "dr"],
        [*FREEZE_STOP, *ROLL_BACK],
    ),
    (
        "replay_behind",
        "dr has replayed up to 0/4FFFF00, 256 bytes short of main's frozen position 0/5000000",
        ["main"],
        [("main", "freeze"), ("main", "unfreeze")],
    ),
    (
        "sync_mismatch",
        "table public.orders has 3 rows on main but 2 on dr",
        ["main", "dr"],
        [("main", "freeze"), ("main", "unfreeze")],
    ),
    ("unclean_stop", "main's database stopped but not cleanly", ["main", "dr"], [*FREEZE_STOP, *ROLL_BACK]),
    ("freeze_refused", "main's agent refused freeze", [], [("main", "unfreeze")]),
]


@pytest.mark.parametrize(
    ("fault", "sentence", "digests", "acted"), ROLL_BACKS, ids=[r[0] for r in ROLL_BACKS]
)
def test_a_failure_before_the_promotion_rolls_back_and_main_takes_writes_again(
    world: World, fault: str, sentence: str, digests: list[str], acted: list[tuple[str, str]]
) -> None:
    if fault == "not_received":
        world.databases.ships = False  # the target stops receiving: the final position never arrives
    elif fault == "replay_behind":
        world.databases.sites["dr"].replay_lag = 0x100  # within the lag limit, but it never catches up
    elif fault == "sync_mismatch":
        world.sync.tables["dr"]["public.orders"] = ["o1", "o2"]
    elif fault == "unclean_stop":
        world.databases.clean = False
    elif fault == "freeze_refused":
        world.databases.fail[("main", Operation.FREEZE)] = SiteAgentError("role booking does not exist")
    name = f"sw-{fault}"
    described, states = world.run(request(), name=name)
    assert described["status"] == "FAILED" and described["error"] == "SwitchoverRolledBack"
    assert states[-5:] == ["RollBack", "RolledBackWritable", "RecordRollBack", "NotifyRollBack", "RolledBack"]
    assert "PromoteTarget" not in states and "SwitchEdge" not in states
    assert world.acted() == acted
    assert sorted(world.sync.digests) == sorted(digests), "the two sides are digested at the same time"
    main, dr = world.databases.sites["main"], world.databases.sites["dr"]
    assert (main.role, main.running, main.frozen) == (DatabaseRole.PRIMARY, True, False)
    assert dr.role is DatabaseRole.STANDBY and world.edge.writes == []
    world.databases.write("main")  # it takes writes again
    state = world.state()
    assert (state["active_site"], state["status"]) == ("main", "HEALTHY")
    assert state["counted_incident"] is None, "nothing was promoted: no cooldown"
    assert world.store.get_lock("booking") is None
    record = world.incident(name)
    assert record.outcome == "rolled_back" and (record.switchover or {})["rolled_back"] is True
    assert sentence in described["cause"] and "rolled back, nothing lost" in described["cause"]
    ((subject, message),) = world.sent(name)
    assert subject == f"[quorum-dr] booking: switchover rolled back ({name})" and sentence in message


def test_a_hook_on_entering_a_state_runs_before_its_work_and_the_work_meets_what_it_did(world: World) -> None:
    """SfnHarness.on_state_entered, as the drill plays a fault "as the switchover freezes writes":
    the hook runs once per entry, in the execution's thread, before the state's task; the task sees
    the fault (the target stops receiving), so the switchover rolls back."""
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def target_stops_receiving(execution: str) -> None:
        seen.append((execution, world.acted()))
        world.databases.ships = False

    world.harness.on_state_entered("FreezeActive", target_stops_receiving)
    described, states = world.run(request(), name="sw-hooked")
    assert seen == [("sw-hooked", [])], "once, before main was frozen"
    assert described["status"] == "FAILED" and described["error"] == "SwitchoverRolledBack"
    assert "PromoteTarget" not in states and world.edge.writes == []
    assert world.acted() == [*FREEZE_STOP, *ROLL_BACK]


def test_the_content_check_is_made_again_when_the_frozen_primary_wrote_wal_between_the_digests(
    world: World,
) -> None:
    moved: list[str] = []

    def idle_primary_moves(site: str) -> None:
        if site == "dr" and not moved:  # before dr's digest, once (main's runs beside it: either moved)
            moved.append(site)
            world.databases.idle_wal("main")

    world.sync.before_digest = idle_primary_moves
    described, states = world.run(request(), name="sw-moved")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert sorted(world.sync.digests) == ["dr", "dr", "main", "main"], "two comparisons"
    reasons = world.reasons("sw-moved")
    assert "in sync: dr replayed main's final position 0/5000040" in reasons
    assert "(comparison 2 of 2: the positions moved between the digests)" in reasons
    assert (world.incident("sw-moved").sync_check or {})["attempts"] == 2


def test_a_promotion_that_fails_escalates_keeps_the_lock_and_does_not_restart_main(world: World) -> None:
    world.databases.fail[("dr", Operation.PROMOTE)] = SiteAgentError("pg_promote timed out")
    described, states = world.run(request(), name="sw-esc")
    assert described["status"] == "FAILED" and described["error"] == "NeedsAttention"
    assert states[-3:] == ["Escalate", "NotifyEscalation", "NeedsAttention"] and "RollBack" not in states
    assert world.acted() == FREEZE_STOP, "after a promotion attempt main is never restarted as a primary"
    lock = world.store.get_lock("booking")
    assert lock is not None and lock["kept"] is True and lock["incident_id"] == "sw-esc"
    state = world.state()
    assert (state["status"], state["active_site"], state["counted_incident"]) == (
        "NEEDS_ATTENTION",
        "main",
        "sw-esc",
    )
    assert "dr's agent refused promote: pg_promote timed out" in world.reasons("sw-esc")
    ((subject, message),) = world.sent("sw-esc")
    assert subject == "[quorum-dr] booking: switchover escalation (sw-esc)"
    assert "booking NEEDS_ATTENTION after switchover sw-esc from main to dr" in message
    assert "The lock is kept" in message
    # The kept lock refuses the next switchover (and, the same LOCK item, any failover).
    world.databases.fail.clear()
    described, states = world.run(request(), name="sw-after")
    assert states[-1] == "Refused" and "needs attention after incident sw-esc" in world.reasons("sw-after")


def test_a_switch_that_fails_after_the_promotion_says_so_and_keeps_the_lock(world: World) -> None:
    world.edge.fail = True
    described, _ = world.run(request(), name="sw-edge")
    assert described["status"] == "FAILED" and described["error"] == "NeedsAttention"
    assert "dr is promoted but traffic is NOT switched, and main is stopped" in world.reasons("sw-edge")
    assert world.store.get_lock("booking")["kept"] is True


def test_a_dry_run_checks_everything_and_changes_nothing(world: World) -> None:
    before = world.store.get_state("booking")
    described, states = world.run(request(dry_run=True), name="sw-dry")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert "AcquireSwitchoverLock" not in states and states[-1] == "SwitchedOver"
    for state in (
        "CheckPreconditions",
        "CheckDatabases",
        "CheckEdge",
        "FreezeActive",
        "StopActive",
        "PromoteTarget",
        "SwitchEdge",
    ):
        assert state in states
    assert world.acted() == [] and {op for _, op in world.databases.calls} == {"status"}
    assert world.sync.digests == [] and world.edge.writes == [] and world.notifier.sent == []
    assert world.store.get_state("booking") == before and world.store.get_lock("booking") is None
    reasons = world.reasons("sw-dry")
    for sentence in (
        "dry run: would freeze writes on main",
        "dry run: would stop main's PostgreSQL cleanly",
        "dry run: would promote dr",
        "dry run: would point app.example.com at dr",
        "dry run: would start main as a standby of dr (198.51.100.20:5432)",
        "dry run: would notify",
    ):
        assert sentence in reasons, sentence
    assert world.incident("sw-dry").outcome == "dry_run"


def test_bad_input_is_rejected_before_any_side_effect(world: World) -> None:
    described, states = world.run(request(to="cold", extra=1), name="sw-bad")
    assert described["status"] == "FAILED" and described["error"] == "InputRejected"
    assert states == ["ValidateSwitchover", "InputRejected"]
    assert (
        "to: Input should be 'main' or 'dr'" in described["cause"]
        and "extra: unknown field" in described["cause"]
    )
    assert world.store.get_incident("booking", "sw-bad") is None and world.databases.calls == []
    assert [name for name, _ in world.harness.invocations] == ["switchover_plan"]


# ---------------------------------------------------------------------------------------------
# drctl switchover against the same engine
# ---------------------------------------------------------------------------------------------


def drctl_args(world: World, tmp_path: Path, **over: Any) -> argparse.Namespace:
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        yaml.safe_dump(world.ports.config.model_dump(mode="json", by_alias=True, exclude_none=True))
    )
    base: dict[str, Any] = dict(
        service="booking",
        to="dr",
        reason="maintenance on London",
        dry_run=False,
        incident_id=None,
        state_machine_arn=world.harness.machine_arn,
        config=str(config),
        yes=True,
        wait=True,
        wait_timeout=60,
    )
    return argparse.Namespace(**{**base, **over})


def test_drctl_switchover_waits_and_prints_the_figures(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sts = boto3.client("sts", region_name=REGION)
    code = run_switchover(drctl_args(world, tmp_path, incident_id="sw-cli"), sfn=world.harness.sfn, sts=sts)
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("started switchover sw-cli: arn:aws:states:")
    assert "planned switchover of booking from main to dr done: write outage" in out
    assert world.state()["active_site"] == "dr"
    started = json.loads(
        world.harness.sfn.describe_execution(
            executionArn=world.harness.machine_arn.replace(":stateMachine:", ":execution:") + ":sw-cli"
        )["input"]
    )
    assert (
        started["requested_by"].startswith("arn:aws:sts::") and started["reason"] == "maintenance on London"
    )


def test_drctl_switchover_says_why_it_was_refused_or_rolled_back_and_exits_1(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sts = boto3.client("sts", region_name=REGION)
    world.databases.sites["dr"].replay_lag = 32 * 1024 * 1024
    assert (
        run_switchover(drctl_args(world, tmp_path, incident_id="sw-cli-lag"), sfn=world.harness.sfn, sts=sts)
        == 1
    )
    assert (
        "refused: nothing was changed: switchover from main to dr refused: dr has replayed"
        in capsys.readouterr().err
    )
    world.databases.sites["dr"].replay_lag = 0
    world.databases.ships = False
    assert (
        run_switchover(drctl_args(world, tmp_path, incident_id="sw-cli-rb"), sfn=world.harness.sfn, sts=sts)
        == 1
    )
    err = capsys.readouterr().err
    assert "FAILED (SwitchoverRolledBack): planned switchover of booking from main to dr rolled back" in err


def test_drctl_switchover_with_bad_input_starts_nothing(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for over, fragment in (
        ({"reason": "  \x1b "}, "--reason: must not be blank"),
        ({"incident_id": "a/b"}, "incident_id: String should match pattern"),
        ({"service": "nope"}, "--service: no service named 'nope'"),
        ({"state_machine_arn": ""}, "no state machine"),
        ({"wait_timeout": 0}, "--wait-timeout: must be a positive number"),
    ):
        assert run_switchover(drctl_args(world, tmp_path, **over), sfn=world.harness.sfn) == 2
        assert fragment in capsys.readouterr().err
    assert world.harness.sfn.list_executions(stateMachineArn=world.harness.machine_arn)["executions"] == []
