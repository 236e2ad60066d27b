"""No wildcard action anywhere; Resource '*' only for the actions AWS offers no resource for;
secrets readable only by the functions that need them."""

from __future__ import annotations

import json

import pytest

from stacks.secret_access import secrets_by_function

# Actions AWS supports only on Resource "*" (each acknowledged in cdk-nag with this reason).
STAR_ONLY = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "ec2:DescribeInstances",
    "ec2:DescribeAddresses",
    # the readiness function's cold-site check
    "ec2:DescribeImages",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeLaunchTemplateVersions",
    # Reported with the task token by the cold site; no resource type exists for them.
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
}


def _statements(template: dict):
    for logical, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Policy":
            yield logical, props["PolicyDocument"]["Statement"]
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                yield logical, policy["PolicyDocument"]["Statement"]


def _as_list(value):
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("kind", ["action", "resource"])
def test_no_wildcards_beyond_what_aws_requires(synth, kind: str) -> None:
    problems = []
    for name, template in synth.templates.items():
        for logical, statements in _statements(template):
            for statement in statements:
                actions = _as_list(statement["Action"])
                resources = _as_list(statement.get("Resource", []))
                if kind == "action" and any(a == "*" or a.endswith(":*") for a in actions):
                    problems.append(f"{name}/{logical}: wildcard action {actions}")
                if kind == "resource" and "*" in resources and not set(actions) <= STAR_ONLY:
                    problems.append(f"{name}/{logical}: Resource '*' for {sorted(set(actions) - STAR_ONLY)}")
    assert problems == []


def test_secrets_are_readable_only_by_the_functions_that_need_them(synth) -> None:
    config = synth.deployment.config
    expected = secrets_by_function(config)
    assert expected["switch_edge"] == ["quorum-dr/cloudflare-token"]
    assert expected["notify"] == ["quorum-dr/webhook-key"]
    assert "quorum-dr/booking/db-admin" in expected["promote_database"]
    control = synth.deployment.control
    functions = {name: (control, fn) for name, fn in control.actions.functions.items()}
    functions["readiness"] = (control, control.readiness.fn)
    for stack in synth.deployment.probes.values():
        functions[f"probe@{stack.region}"] = (stack, stack.probe)
    all_secrets = {s for names in expected.values() for s in names}
    for secret in all_secrets:
        readers = set()
        for name, (stack, fn) in functions.items():
            logical = stack.resolve(stack.get_logical_id(fn.role.node.default_child))
            for policy in synth.resources(stack, "AWS::IAM::Policy").values():
                if {"Ref": logical} in policy["Properties"]["Roles"] and _reads(policy, secret):
                    readers.add(name.split("@")[0])
        assert readers == {n for n, names in expected.items() if secret in names}, secret


def _reads(policy: dict, secret: str) -> bool:
    """A statement of the policy allows GetSecretValue on the secret (DescribeSecret, which the
    readiness function has on every secret, reads no value)."""
    return any(
        "secretsmanager:GetSecretValue" in _as_list(statement["Action"])
        and f":secret:{secret}-" in json.dumps(statement.get("Resource"))
        for statement in _as_list(policy["Properties"]["PolicyDocument"]["Statement"])
    )


def test_the_site_agents_keys_are_for_the_switchovers_database_step_only() -> None:
    """The agents' HMAC keys sign freeze, stop and promote: only switchover_database may read them
    (the plan asks no agent; the record and the edge never talk to a database)."""
    from tests.fakes import switchover_config

    access = secrets_by_function(switchover_config())
    keys = {"quorum-dr/booking/main-agent-key", "quorum-dr/booking/dr-agent-key"}
    readers = {name for name, secrets in access.items() if keys & set(secrets)}
    assert readers == {"switchover_database"}
    assert keys <= set(access["switchover_database"])
    assert "quorum-dr/booking/db-admin" in access["switchover_database"]  # the sync check's digests
    assert "switchover_plan" not in access  # state and results tables only: no secret at all
    assert access["switchover_edge"] == ["quorum-dr/cloudflare-token"]
    assert access["switchover_record"] == ["quorum-dr/webhook-key"]
