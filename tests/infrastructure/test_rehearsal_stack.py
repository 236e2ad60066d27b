"""With cold_site.wal_archive configured: the synthesized app (cdk-nag on, so an unacknowledged
finding fails here) has the rehearsal state machine over its one function, a weekly schedule, and a
role that may launch the cold site as a failover does, terminate only a rehearsal's cold site,
read only the figures, and write only the rehearsal items; without wal_archive there is none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum_dr.config import load_config
from quorum_dr.state_machines import definition_json
from quorum_dr_local.iam_policies import StackTemplate, allows, principal_policies
from stacks import naming


def _synth(tmp: Path, data: dict[str, Any]) -> dict[str, Any]:
    from aws_cdk import App

    from stacks.deployment import build

    config_path = tmp / "watchdog.yaml"
    config_path.write_text(yaml.safe_dump(data), encoding="utf-8")
    outdir = tmp / "cdk.out"
    app = App(context={"config": str(config_path), "skip_bundling": True, "nag": True}, outdir=str(outdir))
    deployment = build(app)
    app.synth()  # raises on any unacknowledged cdk-nag finding
    stacks = {
        s.stack_name: StackTemplate(
            s.stack_name, s.region, json.loads((outdir / f"{s.artifact_id}.template.json").read_text())
        )
        for s in deployment.stacks
    }
    control_path = outdir / f"{deployment.control.artifact_id}.template.json"
    control = json.loads(control_path.read_text())
    return {
        "config": load_config(config_path),
        "policies": principal_policies(stacks),
        "control": control,
        "control_path": control_path,
        "region": deployment.control.region,
    }


@pytest.fixture(scope="module")
def rehearsing(tmp_path_factory: pytest.TempPathFactory, example_config_path: Path) -> dict[str, Any]:
    data = yaml.safe_load(example_config_path.read_text(encoding="utf-8"))
    data["services"][0]["cold_site"]["wal_archive"] = {"server": "booking"}
    return _synth(tmp_path_factory.mktemp("rehearsal"), data)


def _resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def test_the_state_machine_is_the_rendered_asl_over_the_rehearsal_function(
    rehearsing: dict[str, Any],
) -> None:
    machines = {
        m["Properties"]["StateMachineName"]: m
        for m in _resources(rehearsing["control"], "AWS::StepFunctions::StateMachine")
    }
    machine = machines[naming.REHEARSAL_STATE_MACHINE]
    assert machine["Properties"]["DefinitionString"] == definition_json("rehearsal")
    assert set(machine["Properties"]["DefinitionSubstitutions"]) == {
        "RehearseColdSiteFunctionArn",
        "StateTableName",
    }
    functions = [
        f["Properties"].get("FunctionName")
        for f in _resources(rehearsing["control"], "AWS::Lambda::Function")
    ]
    assert naming.function_name("rehearse_cold_site") in functions


def test_a_weekly_schedule_starts_it_for_the_service(rehearsing: dict[str, Any]) -> None:
    schedules = [
        s
        for s in _resources(rehearsing["control"], "AWS::Scheduler::Schedule")
        if "rehearsal" in json.dumps(s)
    ]
    assert len(schedules) == 1
    props = schedules[0]["Properties"]
    assert props["ScheduleExpression"] == "cron(0 3 ? * MON *)"
    assert json.loads(props["Target"]["Input"]) == {"service": "booking", "requested_by": "schedule"}


def test_a_failed_rehearsal_goes_to_the_alert_topic_and_a_passed_one_does_not(
    rehearsing: dict[str, Any],
) -> None:
    rules = [
        r["Properties"]
        for r in _resources(rehearsing["control"], "AWS::Events::Rule")
        if "RehearsalFinished" in json.dumps(r["Properties"].get("EventPattern", {}))
    ]
    assert len(rules) == 1
    (rule,) = rules
    assert rule["EventPattern"]["detail"] == {"outcome": ["FAILED"]}
    assert rule["EventPattern"]["detail-type"] == ["RehearsalFinished"]
    (target,) = rule["Targets"]
    assert "Ref" in target["Arn"] and "Alerts" in target["Arn"]["Ref"], target["Arn"]
    text = json.dumps(target["InputTransformer"])
    assert "FAILED" in text and "$.detail.reason" in text, text


def test_the_role_launches_as_a_failover_terminates_only_a_rehearsal_and_writes_only_its_items(
    rehearsing: dict[str, Any],
) -> None:
    role = rehearsing["policies"]["function:rehearse_cold_site"]
    cold = rehearsing["config"].services[0].cold_site
    instance = f"arn:aws:ec2:{cold.region}:123456789012:instance/i-0123"
    assert allows(role, "ec2:RunInstances", instance)  # grant_launch: as launch_cold_site
    terminating = [st for st in role if "ec2:TerminateInstances" in st.actions]
    assert terminating and all(st.effect == "Allow" for st in terminating)
    for st in terminating:  # only a rehearsal's cold site: never a failover's, never another instance
        assert st.conditions == {
            "StringEquals": {"aws:ResourceTag/quorum-dr:role": "cold-site"},
            "StringLike": {"aws:ResourceTag/quorum-dr:incident": "rehearsal-*"},
        }, st.conditions
    bucket = f"arn:aws:s3:::{cold.backup_bucket}"
    root = f"{cold.backup_prefix.strip('/')}/booking/"
    assert allows(role, "s3:GetObject", f"{bucket}/{root}quorum-dr-figures/20270115T023000.json")
    assert not allows(role, "s3:GetObject", f"{bucket}/{root}base/20270115T023000/backup.info")
    writes = [st for st in role if "dynamodb:PutItem" in st.actions or "dynamodb:UpdateItem" in st.actions]
    assert writes and all(
        st.conditions == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["REHEARSAL#*"]}}
        for st in writes
    ), [st.conditions for st in writes]
    reads = [st for st in role if "dynamodb:GetItem" in st.actions]  # the state, to refuse during an incident
    assert reads and all(
        st.conditions == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["booking"]}} for st in reads
    ), [st.conditions for st in reads]
    for never in (
        "dynamodb:DeleteItem",
        "secretsmanager:GetSecretValue",
        "lambda:InvokeFunction",
        "ec2:AssociateAddress",  # the example's cold site has an Elastic IP: the rehearsal leaves it
    ):
        assert not any(never in s.actions for s in role), never


def test_cfn_lint_reports_no_error_in_the_control_stack_with_the_rehearsal(
    rehearsing: dict[str, Any],
) -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(
        rehearsing["control_path"], ManualArgs(ignore_checks=["W3005"], regions=[rehearsing["region"]])
    )
    errors = [m for m in matches if m.rule.id.startswith("E")]
    assert errors == [], [str(m) for m in errors]


def test_without_wal_archive_there_is_no_rehearsal(synth: Any) -> None:
    control = synth.template(synth.deployment.control)
    names = [
        m["Properties"]["StateMachineName"] for m in _resources(control, "AWS::StepFunctions::StateMachine")
    ]
    assert naming.REHEARSAL_STATE_MACHINE not in names and synth.deployment.control.rehearsal is None


def test_the_schedule_can_be_turned_off(tmp_path: Path, example_config_path: Path) -> None:
    data = yaml.safe_load(example_config_path.read_text(encoding="utf-8"))
    data["services"][0]["cold_site"]["wal_archive"] = {"server": "booking"}
    data["services"][0]["cold_site"]["rehearsal"] = {"schedule_enabled": False}
    control = _synth(tmp_path, data)["control"]
    assert not [s for s in _resources(control, "AWS::Scheduler::Schedule") if "rehearsal" in json.dumps(s)]
