"""What the cost model (`quorum_dr/domain/cost.py`) says the stacks deploy is what they synthesize:
memory, architecture, the schedules' cadence (the probe's and the readiness function's), alarms
(counted by the metrics they read), the dashboard, the KMS key, log retention, pay-per-request
tables with point-in-time recovery. A stack that changes one of these fails here until the model
prices the change."""

from __future__ import annotations

import json
from typing import Any

from quorum_dr.domain import cost
from stacks import naming


def _alarm_metrics(alarm: dict[str, Any]) -> int:
    """The metrics an alarm reads: one, or each MetricStat of its metric-math expression."""
    metrics = alarm["Properties"].get("Metrics")
    if metrics is None:
        return 1
    return sum(1 for m in metrics if "MetricStat" in m)


def test_the_probe_function_is_priced_at_its_memory_and_architecture(synth) -> None:
    for stack in synth.deployment.probes.values():
        (fn,) = synth.resources(stack, "AWS::Lambda::Function").values()
        assert fn["Properties"]["MemorySize"] == cost.PROBE_MEMORY_MB
        assert fn["Properties"]["Architectures"] == [cost.ARCHITECTURE]
        (logs,) = synth.resources(stack, "AWS::Logs::LogGroup").values()
        assert logs["Properties"]["RetentionInDays"] == 30 * cost.PROBE_LOG_RETENTION_MONTHS
    control = synth.resources(synth.deployment.control, "AWS::Lambda::Function")
    ours = [f for f in control.values() if f["Properties"].get("FunctionName", "").startswith(naming.PREFIX)]
    readiness = naming.function_name(naming.READINESS)
    actions = [f for f in ours if f["Properties"]["FunctionName"] != readiness]
    assert len(actions) == len(naming.ACTION_FUNCTIONS) and len(ours) == len(actions) + 1
    assert {f["Properties"]["MemorySize"] for f in ours if f not in actions} == {cost.READINESS_MEMORY_MB}
    assert {f["Properties"]["MemorySize"] for f in actions} == {cost.ACTION_MEMORY_MB}
    assert {tuple(f["Properties"]["Architectures"]) for f in actions} == {(cost.ARCHITECTURE,)}


def test_the_schedule_runs_the_cadence_the_model_prices(synth) -> None:
    config = synth.deployment.config
    cadence = cost.Cadence.of(config.probe.interval_seconds)
    for stack in synth.deployment.probes.values():
        (schedule,) = synth.resources(stack, "AWS::Scheduler::Schedule").values()
        props = schedule["Properties"]
        unit = "minute" if cadence.rate_minutes == 1 else "minutes"
        assert props["ScheduleExpression"] == f"rate({cadence.rate_minutes} {unit})"
        sent = json.loads(props["Target"]["Input"])
        assert (sent["rounds"], sent["round_spacing_seconds"]) == (cadence.rounds, cadence.spacing_seconds)
        # The minute's later rounds: a round queue exactly when the model prices one, read one message
        # per invocation (SQS_REQUESTS_PER_QUEUED_ROUND counts one ReceiveMessage and one DeleteMessage
        # a round), with SQS-managed encryption (no KMS key beyond cost.KMS_KEYS).
        queues = list(synth.resources(stack, "AWS::SQS::Queue").values())
        assert len(queues) == int(cadence.queued)
        assert all(q["Properties"].get("SqsManagedSseEnabled") is True for q in queues)
        mappings = list(synth.resources(stack, "AWS::Lambda::EventSourceMapping").values())
        assert [m["Properties"]["BatchSize"] for m in mappings] == [1] * len(queues)


def test_the_readiness_function_is_priced_at_its_memory_rate_and_architecture(synth) -> None:
    control = synth.deployment.control
    readiness = naming.function_name(naming.READINESS)
    functions = synth.resources(control, "AWS::Lambda::Function")
    [(logical, fn)] = [
        (k, f) for k, f in functions.items() if f["Properties"].get("FunctionName") == readiness
    ]
    props = fn["Properties"]
    assert props["MemorySize"] == cost.READINESS_MEMORY_MB
    assert props["Architectures"] == [cost.ARCHITECTURE]
    assert props["TracingConfig"] == {"Mode": "Active"}  # a trace an invocation, priced
    schedules = [
        sched
        for sched in synth.resources(control, "AWS::Scheduler::Schedule").values()
        if logical in json.dumps(sched["Properties"]["Target"]["Arn"])
    ]
    assert [sched["Properties"]["ScheduleExpression"] for sched in schedules] == [
        f"rate({cost.READINESS_RATE_MINUTES} minutes)"
    ]
    groups = [
        g
        for g in synth.resources(control, "AWS::Logs::LogGroup").values()
        if g["Properties"].get("LogGroupName") == f"/aws/lambda/{readiness}"
    ]
    assert [g["Properties"]["RetentionInDays"] for g in groups] == [30 * cost.PROBE_LOG_RETENTION_MONTHS]


def test_alarms_dashboard_and_keys_are_the_ones_priced(synth) -> None:
    for stack in synth.deployment.probes.values():
        alarms = synth.resources(stack, "AWS::CloudWatch::Alarm").values()
        assert sum(_alarm_metrics(a) for a in alarms) == cost.PROBE_ALARM_METRICS_PER_REGION
    control = synth.deployment.control
    alarms = synth.resources(control, "AWS::CloudWatch::Alarm").values()
    priced = cost.CONTROL_ALARM_METRICS + cost.readiness_alarm_metrics(synth.deployment.config)
    assert sum(_alarm_metrics(a) for a in alarms) == priced
    assert len(synth.resources(control, "AWS::CloudWatch::Dashboard")) == cost.DASHBOARDS
    keys = [k for stack in synth.deployment.stacks for k in synth.resources(stack, "AWS::KMS::Key").values()]
    assert len(keys) == cost.KMS_KEYS and all(k["Properties"]["EnableKeyRotation"] for k in keys)
    machines = [
        g
        for g in synth.resources(control, "AWS::Logs::LogGroup").values()
        if str(g["Properties"].get("LogGroupName", "")).startswith("/aws/vendedlogs/states/")
    ]
    assert machines and {g["Properties"]["RetentionInDays"] for g in machines} == {
        365 * cost.STATE_MACHINE_LOG_RETENTION_MONTHS // 12
    }


def test_tables_are_on_demand_with_point_in_time_recovery_as_priced(synth) -> None:
    tables = synth.resources(synth.deployment.control, "AWS::DynamoDB::Table").values()
    assert len(tables) == 2
    for table in tables:
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
