"""End to end, in one process: the real ASL in moto, the real handlers and the REAL adapters (the
production wiring from the environment) against a real PostgreSQL 15 primary + streaming standby,
the Cloudflare API emulator and edge proxy, real local HTTP sites, and moto for DynamoDB, EC2, SNS,
Secrets Manager and Lambda (the probe function of each region runs in-process, in that region)."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from quorum_dr.config import FailoverMode
from quorum_dr_local.rig import REGIONS, FailoverRig
from quorum_dr_local.standins.cloudflare_emulator import Fault

CDK_PRESENT = importlib.util.find_spec("aws_cdk") is not None


@pytest.fixture
def rig_factory(pg_base_dir: Path) -> Iterator[Callable[..., FailoverRig]]:
    """Rigs whose functions run under their own synthesized roles with moto's IAM on: any call
    refused, or not allowed on its exact ARN by the unwidened policy, fails the test."""
    made: list[FailoverRig] = []

    def make(**options: object) -> FailoverRig:
        options.setdefault("postgres_checks", True)  # as configured in production: invariants 3 and 4
        # IAM needs the synthesized templates (aws_cdk): on the Lambda runtime's Python
        # (.venv-lambda, requirements.txt only) these tests run the handlers without it; the
        # main suite runs them all IAM-enforced.
        options.setdefault("enforce_iam", CDK_PRESENT)
        rig = FailoverRig(pg_base_dir, **options).__enter__()  # type: ignore[arg-type]
        made.append(rig)
        return rig

    problems: list[str] = []
    try:
        yield make
    finally:
        for rig in reversed(made):
            problems.extend(rig.iam_problems())
            rig.__exit__(None, None, None)
    assert not problems, "IAM: calls the synthesized policies do not allow:\n  " + "\n  ".join(problems)


def quiet_round(rig: FailoverRig, round_id: str) -> None:
    """A scheduled probe round in every region, as the probes run every interval in production."""
    for region in REGIONS:
        boto3.client("lambda", region_name=region).invoke(
            FunctionName=f"arn:aws:lambda:{region}:123456789012:function:quorum-dr-probe",
            Payload=json.dumps({"round_id": f"{round_id}-{region}", "service": "booking"}).encode(),
        )


def main_fails_after_a_quiet_round(rig: FailoverRig) -> None:
    """The probes saw main's database (its WAL position) and DR's (streaming, hearing from main)
    in the round before main died: that is what bounds the loss of promoting DR (invariant 4)."""
    quiet_round(rig, "before-fault")
    rig.site_down("main")


def steps(rig: FailoverRig, incident_id: str) -> list[str]:
    return [entry.step for entry in rig.incident(incident_id).timeline]


def reasons(rig: FailoverRig, incident_id: str) -> str:
    return " | ".join(entry.reason for entry in rig.incident(incident_id).timeline)


def test_hot_failover_with_real_adapters_promotes_once_switches_once_and_verifies(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    rig = rig_factory()
    rig.pair.primary.sql("CREATE TABLE ledger (id int PRIMARY KEY)", who="app")
    rig.pair.primary.sql("INSERT INTO ledger SELECT generate_series(1, 100)", who="app")
    rig.pair.standby.wait_replayed(rig.pair.primary.value("SELECT pg_current_wal_lsn()::text"))
    main_fails_after_a_quiet_round(rig)

    described = rig.run(name="inc-e2e-hot")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert rig.harness.states_entered(described["executionArn"])[-1] == "FailedOver"
    assert rig.promotions() == ["inc-e2e-hot"]
    assert rig.edge_writes() == 1
    assert rig.emulator.record("023e105f4ecef8ad9ca31a8372d0c353", "rec-1")["content"] == (
        f"127.0.0.1:{rig.apps['dr'].port}"
    )
    assert rig.pair.standby.value("SELECT count(*) FROM ledger", who="app") == 100
    record = rig.incident("inc-e2e-hot")
    assert record.outcome == "failed_over" and (record.scenario or {})["scenario"] == "hot"
    assert record.rto_seconds >= 0 and record.data_loss is not None
    # invariant 4: a known bound from the probes, in bytes and seconds, with its evidence
    loss = record.data_loss
    assert loss["evidence"] in ("wal_position", "heard_from_main") and loss["bound_bytes"] == 0
    assert 0 <= loss["bound_seconds"] <= 30
    assert (record.data_loss_reason or "").startswith("data loss bounded")
    assert record.allow_data_loss_used is False
    # invariant 4b: main's database crashed, so it is unreachable, and the timeline says how
    main_db = f"{rig.pair.primary.host}:{rig.pair.primary.port}/app"
    assert record.fence["unreachable"] is True
    assert record.fence["evidence"]["failure_class"] == "connect_refused"
    assert record.fence["evidence"]["address"] == main_db
    text = reasons(rig, "inc-e2e-hot")
    for sentence in (
        "main is DOWN",
        "hot failover to dr",
        "the DR standby may be promoted",
        f"main's database at {main_db} is unreachable (connect_refused",
        "no final position of main to wait for: main's database was unreachable at the fence",
        "promoted 127.0.0.1",
        "a test write succeeded",
        "verified: ",
        "app.example.com is served by dr",
        "RTO",
    ):
        assert sentence in text, sentence
    subjects = [n["Subject"] for n in rig.notifications()]
    assert any("failed over" in s and "inc-e2e-hot" in s for s in subjects), subjects
    # The IAM check saw every principal under its own role, Step Functions' engine included.
    if not CDK_PRESENT:
        return  # on the Lambda runtime's Python: the handlers ran, without IAM enforcement
    assert rig.iam is not None
    seen = {(call.principal, call.action) for call in rig.iam.calls}
    assert {
        ("state_machine", "lambda:InvokeFunction"),
        ("state_machine", "dynamodb:PutItem"),
        ("function:promote_database", "secretsmanager:GetSecretValue"),
        ("function:confirm_outage", "lambda:InvokeFunction"),
    } <= seen
    assert {principal for principal, _ in seen} >= {
        f"probe:{r}" for r in ("eu-west-2", "us-east-1", "us-west-2")
    }


def test_invariant_4_without_a_probe_view_of_main_the_promotion_escalates(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    """Main dies before any probe saw its database, and the standby's WAL receiver is gone with
    it: nothing bounds the loss, so no automatic promotion; a person is told why."""
    rig = rig_factory()
    rig.site_down("main")

    described = rig.run(name="inc-e2e-unbounded")

    assert described["status"] == "FAILED" and described["error"] == "NeedsAttention"
    assert rig.edge_writes() == 0
    assert rig.pair.standby.in_recovery() is True
    text = reasons(rig, "inc-e2e-unbounded")
    assert (
        "no automatic promotion: data loss unknown, no known bound: no probe saw main's WAL position" in text
    )
    assert "only a manual start with allow_data_loss may proceed" in text


def test_invariant_6_the_replica_is_verified_writable_before_the_edge_switch(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    rig = rig_factory()
    main_fails_after_a_quiet_round(rig)

    described = rig.run(name="inc-e2e-order")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    order = steps(rig, "inc-e2e-order")
    assert order.index("promote") < order.index("writable") < order.index("switch") < order.index("verify")
    record = rig.incident("inc-e2e-order")
    assert record.writable_verified_at <= record.switched_at


def test_invariant_5_two_concurrent_starts_give_one_promotion_and_one_edge_write(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    rig = rig_factory()
    main_fails_after_a_quiet_round(rig)

    arns = [rig.start(name=f"inc-e2e-c{n}") for n in range(2)]
    outcomes = [rig.harness.wait(arn, timeout=60) for arn in arns]

    assert all(o["status"] == "SUCCEEDED" for o in outcomes), [o.get("cause") for o in outcomes]
    ends = sorted(rig.harness.states_entered(arn)[-1] for arn in arns)
    assert ends[1] == "FailedOver" and ends[0] in ("AlreadyHandling", "GatesClosed")
    assert len(rig.promotions()) == 1
    assert rig.edge_writes() == 1


def test_invariant_5_eight_concurrent_starts_give_one_promotion_one_edge_write_seven_already_handling(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    rig = rig_factory()
    main_fails_after_a_quiet_round(rig)
    starts = 8
    # The lock's winner waits at its promotion until every other execution has ended, so that
    # "the rest end AlreadyHandling" does not depend on how fast the winner runs (it would end a
    # latecomer in GatesClosed instead). Bounded: it waits 90 s at most, then the test fails.
    others_ended = threading.Event()
    at_promotion: list[str] = []
    guard = threading.Lock()
    promote = rig.harness.handlers["promote_database"]

    def held_promote(event: dict[str, Any], context: Any) -> Any:
        with guard:
            at_promotion.append(event["incident"]["incident_id"])
        others_ended.wait(timeout=90)
        return promote(event, context)

    rig.harness.handlers["promote_database"] = held_promote
    together = threading.Barrier(starts)
    arns: list[str] = [""] * starts

    def start(n: int) -> None:
        together.wait(timeout=30)
        arns[n] = rig.start(name=f"inc-e2e-8c{n}")

    threads = [threading.Thread(target=start, args=(n,)) for n in range(starts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(arns), "every start was accepted"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(at_promotion) < 2:
        statuses = [rig.harness.sfn.describe_execution(executionArn=arn)["status"] for arn in arns]
        if statuses.count("RUNNING") <= 1:
            break
        time.sleep(0.05)
    others_ended.set()
    outcomes = [rig.harness.wait(arn, timeout=90) for arn in arns]

    assert len(at_promotion) == 1, f"exactly one execution may get past the lock to promote: {at_promotion}"
    assert all(o["status"] == "SUCCEEDED" for o in outcomes), [o.get("cause") for o in outcomes]
    ends = Counter(rig.harness.states_entered(arn)[-1] for arn in arns)
    assert ends == {"FailedOver": 1, "AlreadyHandling": starts - 1}
    assert rig.promotions() == at_promotion
    assert rig.edge_writes() == 1


def test_a_retried_promotion_for_the_same_incident_does_not_promote_again(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    rig = rig_factory()
    main_fails_after_a_quiet_round(rig)
    described = rig.run(name="inc-e2e-once")
    assert described["status"] == "SUCCEEDED", described.get("cause")

    from quorum_dr.failover import wiring
    from quorum_dr.failover.promote import promote
    from quorum_dr.failover.request import Incident

    incident = Incident.model_validate(rig.harness.output(described)["incident"])
    again = promote(wiring.current(), incident)

    assert again["already_promoted"] is True and again["writable"] is True
    assert rig.promotions() == ["inc-e2e-once"]


def test_false_alarm_with_real_probes_changes_nothing(rig_factory: Callable[..., FailoverRig]) -> None:
    rig = rig_factory()

    described = rig.run(name="inc-e2e-fa")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert rig.harness.states_entered(described["executionArn"])[-1] == "FalseAlarm"
    assert rig.incident("inc-e2e-fa").outcome == "false_alarm"
    assert "main is UP" in reasons(rig, "inc-e2e-fa")
    assert rig.pair.standby.in_recovery() is True
    assert rig.edge_writes() == 0


def test_invariant_8_a_load_balancer_edge_keeps_the_old_pool_enabled_when_enabling_the_target_fails(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    rig = rig_factory(edge_kind="load_balancer")
    main_fails_after_a_quiet_round(rig)
    rig.emulator.add_fault(Fault(kind="success_false", method="PATCH", path_contains="pool-dr", count=None))

    described = rig.run(name="inc-e2e-lb")

    assert described["status"] == "FAILED" and described["error"] == "NeedsAttention"
    pools = {p["id"]: p["enabled"] for p in rig.emulator.snapshot()["accounts"]["acct-qdr"]["pools"]}
    assert pools["pool-main"] is True, "the old pool must stay enabled: never zero origins"
    assert pools["pool-dr"] is False
    assert "promoted but traffic is NOT switched" in reasons(rig, "inc-e2e-lb")
    assert rig.promotions() == ["inc-e2e-lb"]


def test_hot_failover_through_load_balancer_pools(rig_factory: Callable[..., FailoverRig]) -> None:
    rig = rig_factory(edge_kind="load_balancer")
    main_fails_after_a_quiet_round(rig)

    described = rig.run(name="inc-e2e-lb-ok")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    pools = {p["id"]: p["enabled"] for p in rig.emulator.snapshot()["accounts"]["acct-qdr"]["pools"]}
    assert pools == {"pool-main": False, "pool-dr": True}
    assert rig.edge_writes() == 2  # enable dr first, then disable main


def test_cold_failover_launches_one_instance_and_waits_for_the_bootstrap_callback(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    from stacks.cold_site import render_bootstrap

    rig = rig_factory(cold=True)
    config = rig.config()
    (rig.config_dir / "cold_site" / "booking.sh").write_text(
        render_bootstrap(config, config.service("booking"))
    )
    rig.site_down("main")
    rig.site_down("dr")
    reporter = rig.cold_bootstrap_reports_ready(backup_age_seconds=420)

    described = rig.run(name="inc-e2e-cold")
    reporter.join(5)

    assert described["status"] == "SUCCEEDED", described.get("cause")
    states = rig.harness.states_entered(described["executionArn"])
    assert "LaunchColdSite" in states and "CheckColdSiteHealth" not in states
    instances = [
        i
        for r in boto3.client("ec2", region_name="us-west-2").describe_instances()["Reservations"]
        for i in r["Instances"]
    ]
    assert len(instances) == 1
    assert rig.pair.standby.in_recovery() is True, "the cold path promotes nothing on DR"
    record = rig.incident("inc-e2e-cold")
    assert record.backup_age_seconds == 420
    assert "app.example.com is served by cold" in reasons(rig, "inc-e2e-cold")
    assert rig.edge_writes() == 1


def test_split_brain_when_the_old_main_primary_comes_back_after_a_failover_is_told(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    import json

    rig = rig_factory(postgres_checks=True)
    main_fails_after_a_quiet_round(rig)
    described = rig.run(name="inc-e2e-sb")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="split-brain")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="split-brain",
        EventBusName="quorum-dr",
        EventPattern=json.dumps({"source": ["quorum-dr"], "detail-type": ["SplitBrainSuspected"]}),
    )
    events.put_targets(Rule="split-brain", EventBusName="quorum-dr", Targets=[{"Id": "q", "Arn": queue_arn}])

    rig.pair.primary.start()  # the old main database comes back, as a writable primary
    answer = boto3.client("lambda", region_name="us-east-1").invoke(
        FunctionName="arn:aws:lambda:us-east-1:123456789012:function:quorum-dr-probe",
        Payload=json.dumps({"round_id": "after-sb-1", "service": "booking"}).encode(),
    )
    round_answer = json.loads(answer["Payload"].read())

    assert {"detail_type": "SplitBrainSuspected", "service": "booking", "site": "main,dr"} in round_answer[
        "events"
    ]
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1
    detail = json.loads(messages[0]["Body"])["detail"]
    assert detail["sites"] == ["main", "dr"] and detail["region"] == "us-east-1"
    assert set(detail["lsns"]) == {"main", "dr"} and all(detail["lsns"].values())
    assert detail["reason"].startswith("split brain suspected for booking: 2 sites have a PostgreSQL primary")


def test_a_dry_run_under_the_functions_own_roles_checks_everything_and_changes_nothing(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    rig = rig_factory()
    main_fails_after_a_quiet_round(rig)  # the loss is bounded: the dry run goes all the way
    request = {"service": "booking", "to": "dr", "reason": "deploy drill", "requested_by": "alice"}

    described = rig.run({**request, "dry_run": True}, name="inc-e2e-dry")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    states = rig.harness.states_entered(described["executionArn"])
    assert {"ConfirmOutageRound", "CheckDrReplica", "PromoteDrDatabase", "SwitchEdgeToDr"} <= set(states)
    assert rig.pair.standby.value("SELECT pg_is_in_recovery()::text") == "true"  # not promoted
    assert rig.edge_writes() == 0
    assert "dry run: would set the active site of booking to dr" in reasons(rig, "inc-e2e-dry")


def test_both_sites_down_without_a_cold_site_under_the_functions_own_roles_leaves_it_to_an_operator(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    rig = rig_factory()
    rig.site_down("main")
    rig.site_down("dr")

    described = rig.run(name="inc-e2e-both")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert rig.harness.states_entered(described["executionArn"])[-1] == "NoAction"
    assert rig.edge_writes() == 0
    assert "main and dr are both DOWN and no cold site is configured; an operator must act" in reasons(
        rig, "inc-e2e-both"
    )


def test_verification_waits_out_the_edge_propagation_within_the_window(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    """The edge proxy serves the switch to DR only 3 s after it first sees it (the edge's
    propagation). Old code: one GET saw main's dead origin, NotVerified, a working failover
    escalated. Now the verify step retries within verify.window_seconds (30 s)."""
    rig = rig_factory(propagation_seconds=3.0)
    main_fails_after_a_quiet_round(rig)

    described = rig.run(name="inc-e2e-propagate")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert rig.harness.states_entered(described["executionArn"])[-1] == "FailedOver"
    verified = [e.reason for e in rig.incident("inc-e2e-propagate").timeline if e.step == "verify"]
    assert len(verified) == 1 and "(attempt " in verified[0], verified
    assert rig.edge_writes() == 1 and rig.promotions() == ["inc-e2e-propagate"]


def operator_start(incident_reason: str) -> dict[str, object]:
    """A manual start without confirmation: main's front end is gone, its database still answers."""
    return {
        "service": "booking",
        "to": "dr",
        "reason": incident_reason,
        "requested_by": "alice",
        "skip_confirm": True,
    }


def test_invariant_4b_a_reachable_main_that_cannot_be_fenced_escalates_without_promoting(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    """The functions reach main's database with a role that lacks the privileges a fence needs:
    main is reachable and not fenced, so nothing is promoted and a person is told why."""
    rig = rig_factory(main_admin="monitor")
    quiet_round(rig, "before-fault")
    rig.apps["main"].stop()  # main's application is gone; its database is alive

    described = rig.run(operator_start("main's front end is gone"), name="inc-e2e-unfenced")

    assert described["status"] == "FAILED" and described["error"] == "NeedsAttention"
    states = rig.harness.states_entered(described["executionArn"])
    assert states[states.index("FenceMain") + 1] == "Escalate" and "PromoteDrDatabase" not in states
    assert rig.pair.standby.in_recovery() is True and rig.edge_writes() == 0
    text = reasons(rig, "inc-e2e-unfenced")
    main_db = f"{rig.pair.primary.host}:{rig.pair.primary.port}/app"
    assert f"no promotion: main's database at {main_db} is reachable but fencing it failed" in text
    assert "permission denied" in text
    assert rig.incident("inc-e2e-unfenced").status == "NEEDS_ATTENTION"


def test_invariant_4_writes_between_the_replica_check_and_the_fence_are_on_the_promoted_dr(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    """Main's database is alive and the application writes after the replica check: the fence
    reads main's final position, the standby reaches it before the promotion, and the loss
    receipt taken then says 0 bytes; every order is on DR, whose app role may log in."""
    rig = rig_factory()
    rig.pair.primary.sql("CREATE TABLE ledger (id int PRIMARY KEY)", who="app")
    rig.pair.primary.sql("INSERT INTO ledger SELECT generate_series(1, 100)", who="app")
    quiet_round(rig, "before-fault")
    rig.apps["main"].stop()
    check_replica = rig.harness.handlers["check_replica"]

    def check_then_main_writes(event: dict[str, Any], context: Any) -> Any:
        answer = check_replica(event, context)
        if event.get("action") == "check":
            rig.pair.primary.sql("INSERT INTO ledger SELECT generate_series(101, 600)", who="app")
        return answer

    rig.harness.handlers["check_replica"] = check_then_main_writes

    described = rig.run(operator_start("main's front end is gone"), name="inc-e2e-final")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert rig.promotions() == ["inc-e2e-final"]
    assert rig.pair.standby.value("SELECT count(*) FROM ledger", who="app") == 600
    record = rig.incident("inc-e2e-final")
    assert record.fence["fenced"] is True
    final_lsn = record.fence["database"]["final_lsn"]
    assert record.data_loss["evidence"] == "final_position" and record.data_loss["loss_bytes"] == 0
    assert record.data_loss_reason.startswith(
        f"no data lost: main's final position after the fence, {final_lsn}, reached by the standby"
    )
    order = steps(rig, "inc-e2e-final")
    at = [order.index(step) for step in ("replica", "fence", "final_position", "promote")]
    assert at == sorted(at)
    assert rig.pair.primary.value("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app'") is False
    assert rig.pair.standby.value("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app'") is True


def test_veto_mode_under_the_functions_own_roles_asks_waits_reconfirms_and_fails_over(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    """Mode veto with IAM enforced: notify publishes the veto window to the alert topic and records
    its task token, the window passes with no veto, a fresh confirmation round runs after the
    wait, and the failover proceeds; every call within each function's synthesized policy."""
    rig = rig_factory(mode=FailoverMode.VETO, veto_seconds=1)
    main_fails_after_a_quiet_round(rig)

    described = rig.run(name="inc-e2e-veto")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    states = rig.harness.states_entered(described["executionArn"])
    assert states[-1] == "FailedOver"
    assert {"WaitForVeto", "ReconfirmOutage"} <= set(states)
    assert states.index("ReconfirmOutage") > states.index("WaitForVeto")
    assert rig.promotions() == ["inc-e2e-veto"] and rig.edge_writes() == 1
    record = rig.incident("inc-e2e-veto")
    assert record.task_token is None and record.awaiting is None  # the token is a credential


def _waits_for_an_answer(rig: FailoverRig, incident_id: str, *, timeout: float = 60) -> None:
    """Bounded: until notify has recorded the approval request's task token."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if rig.incident(incident_id).task_token:
                return
        except KeyError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{incident_id}: no approval request recorded within {timeout:g} s")


def test_approve_mode_under_the_functions_own_roles_waits_for_drctl_approve_then_fails_over(
    rig_factory: Callable[..., FailoverRig], capsys: pytest.CaptureFixture[str]
) -> None:
    """Mode approve with IAM enforced: notify records the task token and publishes the request, the
    operator's `drctl approve` (the operator's own credentials) answers it, a fresh confirmation
    round runs, and the failover proceeds; every function call within its synthesized policy."""
    from quorum_dr.cli import main as drctl
    from quorum_dr_local.rig import STATE_TABLE

    rig = rig_factory(mode=FailoverMode.APPROVE, approval_timeout_seconds=600)
    main_fails_after_a_quiet_round(rig)
    arn = rig.start(name="inc-e2e-approve")
    _waits_for_an_answer(rig, "inc-e2e-approve")
    assert any(
        "approval" in json.dumps(body).lower() and "inc-e2e-approve" in json.dumps(body)
        for body in rig.notifications()
    ), "the approval request reached no subscriber of the alert topic"

    config = str(rig.config_dir / "watchdog.json")
    answered = drctl(
        ["approve", "inc-e2e-approve", "--service", "booking", "--table", STATE_TABLE, "--config", config]
    )

    assert answered == 0, capsys.readouterr().err
    described = rig.harness.wait(arn, timeout=60)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    states = rig.harness.states_entered(arn)
    assert states[-1] == "FailedOver"
    assert states.index("ReconfirmOutage") > states.index("WaitForApproval")
    assert rig.promotions() == ["inc-e2e-approve"] and rig.edge_writes() == 1
    record = rig.incident("inc-e2e-approve")
    assert record.task_token is None and record.awaiting is None
    assert "operator_approve" in steps(rig, "inc-e2e-approve")


def test_approve_mode_under_the_functions_own_roles_aborts_when_nobody_answers(
    rig_factory: Callable[..., FailoverRig],
) -> None:
    """No approval within approval_timeout_seconds: the failover is aborted, nothing changes, the
    lock is released and the token (a credential) is not left in the incident record."""
    rig = rig_factory(mode=FailoverMode.APPROVE, approval_timeout_seconds=1)
    main_fails_after_a_quiet_round(rig)

    described = rig.run(name="inc-e2e-unanswered")

    assert described["status"] == "SUCCEEDED", described.get("cause")
    states = rig.harness.states_entered(described["executionArn"])
    assert states[-1] == "ApprovalTimedOut" and "StopApprovalTimedOut" in states
    assert "PromoteDrDatabase" not in states and "ReconfirmOutage" not in states
    assert rig.pair.standby.value("SELECT pg_is_in_recovery()::text") == "true"  # not promoted
    assert rig.edge_writes() == 0
    record = rig.incident("inc-e2e-unanswered")
    assert record.task_token is None and record.awaiting is None
