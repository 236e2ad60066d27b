"""The calls no moto run signs with the role that makes them, checked against the synthesized
policies (exact ARNs, IAM wildcards; quorum_dr_local.iam_policies):

- each state machine's own role (the failover's, the planned switchover's): every Task of the
  DEPLOYED definition (the template's
  DefinitionString with its substitutions, so whatever the ASL's source format) — Lambda
  functions and the direct DynamoDB / SNS integrations. (The end-to-end tests also hold moto's
  engine to this role's actions; this covers the states no scenario reaches.)
- the cold-site instance role: the bootstrap's S3 reads of the backup and its SendTaskSuccess /
  SendTaskFailure report, which have no resource-level permissions (only `*` can allow them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quorum_dr.adapters.postgres_backup import LATEST
from quorum_dr_local.iam_policies import (
    ACCOUNT,
    Resolver,
    StackTemplate,
    Statement,
    allows,
    principal_policies,
    state_machine_key,
)
from stacks import naming

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stacks(synth: Any) -> dict[str, StackTemplate]:
    return {
        stack.stack_name: StackTemplate(stack.stack_name, stack.region, synth.template(stack))
        for stack in synth.deployment.stacks
    }


@pytest.fixture(scope="module")
def policies(stacks: dict[str, StackTemplate]) -> dict[str, list[Statement]]:
    return principal_policies(stacks)


def deployed_definition(stacks: dict[str, StackTemplate], name: str = naming.STATE_MACHINE) -> dict[str, Any]:
    """The definition of state machine `name` as deployed: its text with its substitutions."""
    resolver = Resolver(stacks)
    for stack in stacks.values():
        for resource in stack.resources.values():
            if resource["Type"] != "AWS::StepFunctions::StateMachine":
                continue
            props = resource["Properties"]
            if resolver.resolve(props["StateMachineName"], stack) != name:
                continue
            text = str(resolver.resolve(props["DefinitionString"], stack))
            for key, value in props.get("DefinitionSubstitutions", {}).items():
                text = text.replace("${" + key + "}", str(resolver.resolve(value, stack)))
            assert "${" not in text, "a substitution is missing from the deployed definition"
            definition: dict[str, Any] = json.loads(text)
            return definition
    raise AssertionError(f"no state machine {name} in the app")


def tasks(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        if state["Type"] == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from tasks(branch["States"])
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from tasks(state[key]["States"])


def task_calls(name: str, state: dict[str, Any], region: str) -> list[tuple[str, str]]:
    """What the state machine's role is asked to do by one Task state."""
    resource, params = state["Resource"], state.get("Parameters", {})
    if resource.startswith("arn:aws:lambda:"):
        return [("lambda:InvokeFunction", resource)]
    integration = re.fullmatch(r"arn:aws:states:::(\w+):(\w+)(?:\.\w+)?", resource)
    assert integration, f"{name}: unknown Task resource {resource}"
    service, api = integration.groups()
    if service == "lambda":
        return [("lambda:InvokeFunction", params["FunctionName"])]
    if service == "dynamodb":
        table = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{params['TableName']}"
        return [(f"dynamodb:{api[0].upper()}{api[1:]}", table)]
    if service == "sns":
        return [("sns:Publish", params["TopicArn"])]
    raise AssertionError(f"{name}: no IAM mapping for the {service}:{api} integration")


@pytest.mark.parametrize("machine", [naming.STATE_MACHINE, naming.SWITCHOVER_STATE_MACHINE])
def test_the_state_machine_role_allows_every_task_of_the_deployed_definition(
    stacks: dict[str, StackTemplate], policies: dict[str, list[Statement]], synth: Any, machine: str
) -> None:
    region = synth.deployment.config.home_region
    calls = [
        (name, action, arn)
        for name, state in tasks(deployed_definition(stacks, machine)["States"])
        for action, arn in task_calls(name, state, region)
    ]
    assert {action for _, action, _ in calls} >= {
        "lambda:InvokeFunction",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    role = policies[state_machine_key(machine)]
    denied = [f"{name}: {action} on {arn}" for name, action, arn in calls if not allows(role, action, arn)]
    assert not denied, f"the role of {machine} does not allow:\n  " + "\n  ".join(denied)


def test_each_state_machine_may_invoke_its_own_functions_only(
    policies: dict[str, list[Statement]], synth: Any
) -> None:
    region = synth.deployment.config.home_region
    for machine, key in ((naming.STATE_MACHINE, "failover"), (naming.SWITCHOVER_STATE_MACHINE, "switchover")):
        role = policies[state_machine_key(machine)]
        for name in naming.ACTION_FUNCTIONS:
            arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{naming.function_name(name)}"
            assert allows(role, "lambda:InvokeFunction", arn) == (name in naming.MACHINE_FUNCTIONS[key]), (
                f"{machine} and {name}"
            )


def test_the_cold_site_instance_role_allows_the_bootstraps_reads_and_its_report(
    policies: dict[str, list[Statement]], synth: Any
) -> None:
    script = (ROOT / "cold_site" / "bootstrap.sh").read_text(encoding="utf-8")
    reports = {
        "states:" + "".join(part.capitalize() for part in verb.split("-"))
        for verb in re.findall(r"stepfunctions (send-task-\w+)", script)
    }
    assert reports == {"states:SendTaskSuccess", "states:SendTaskFailure"}
    for service in synth.deployment.config.services:
        cold = service.cold_site
        if cold is None:
            continue
        role = policies[f"cold_site:{service.name}"]
        objects = [f"{cold.backup_prefix}{LATEST}", f"{cold.backup_prefix}app-20260101T000000Z.dump"]
        for key in objects:  # quorum_dr.adapters.postgres_backup restore: the pointer, then the dump
            assert allows(role, "s3:GetObject", f"arn:aws:s3:::{cold.backup_bucket}/{key}")
        assert not allows(role, "s3:GetObject", f"arn:aws:s3:::{cold.backup_bucket}/elsewhere/{LATEST}")
        for action in sorted(reports):  # no resource-level permissions: only `*` allows them
            assert allows(role, action, "*"), f"{service.name}: {action} is not allowed"


def test_the_matcher_denies_what_iam_would_deny(policies: dict[str, list[Statement]]) -> None:
    """The checks above can fail: the same matcher refuses an ungranted table and a report scoped
    to an ARN (how the cold-site role was written before: AWS would have denied it)."""
    scoped = [Statement("Allow", ["states:SendTaskSuccess"], ["arn:aws:states:eu-west-2:1:stateMachine:x"])]
    assert not allows(scoped, "states:SendTaskSuccess", "*")
    table = f"arn:aws:dynamodb:eu-west-2:{ACCOUNT}:table/quorum-dr-other"
    assert not allows(policies["state_machine"], "dynamodb:PutItem", table)


def test_the_probe_role_allows_the_standby_watch_and_no_other_state_write(
    policies: dict[str, list[Statement]], synth: Any
) -> None:
    """DynamoStandbyWatch reads the state and the standby record (GetItem) and claims a change
    (UpdateItem naming only STANDBY_ATTRIBUTES); the probe never puts or deletes a state item."""
    from quorum_dr.domain.standby_health import STANDBY_ATTRIBUTES

    home = synth.deployment.config.home_region
    table = f"arn:aws:dynamodb:{home}:{ACCOUNT}:table/{naming.STATE_TABLE}"
    for region in synth.deployment.config.probe_regions:
        role = policies[f"probe:{region}"]
        assert allows(role, "dynamodb:GetItem", table), region
        assert allows(role, "dynamodb:UpdateItem", table), region
        for action in ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:TransactWriteItems"):
            assert not allows(role, action, table), f"{region}: {action}"
        updates = [s for s in role if "dynamodb:UpdateItem" in s.actions]
        assert [s.conditions for s in updates] == [
            {
                "ForAllValues:StringEquals": {"dynamodb:Attributes": list(STANDBY_ATTRIBUTES)},
                "StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE"]},
            }
        ], region


def test_the_probe_role_sends_to_its_own_round_queue_only(
    policies: dict[str, list[Statement]], synth: Any
) -> None:
    """The probe queues the minute's next round on its own region's round queue, and the event
    source mapping reads that queue with the same role; nothing else on SQS (moto's IAM checks
    the action only, so the ARNs are held here)."""
    queues = {
        region: f"arn:aws:sqs:{region}:{ACCOUNT}:quorum-dr-probe-rounds"
        for region in synth.deployment.config.probe_regions
    }
    for region, queue in queues.items():
        role = policies[f"probe:{region}"]
        assert allows(role, "sqs:SendMessage", queue), region
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            assert allows(role, action, queue), f"{region}: {action} (the event source mapping)"
        for other, arn in queues.items():
            if other != region:
                for action in ("sqs:SendMessage", "sqs:ReceiveMessage"):
                    assert not allows(role, action, arn), f"{region} -> {other}: {action}"
        assert not allows(role, "sqs:SendMessage", f"arn:aws:sqs:{region}:{ACCOUNT}:another-queue")
        for action in ("sqs:PurgeQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes"):
            assert not allows(role, action, queue), f"{region}: {action}"
