"""The scheduled readiness function as synthesized: its schedule, its own role (exactly the calls
of the gatherer and of ScheduledReadiness, and no more), the FAIL alarm per service, the alert
rule and the dashboard row."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from quorum_dr.domain.cost import secret_copies
from quorum_dr_local.iam_policies import ACCOUNT, StackTemplate, Statement, allows, principal_policies
from stacks import naming


@pytest.fixture(scope="module")
def template(synth: Any) -> Template:
    return Template.from_json(synth.template(synth.deployment.control))


@pytest.fixture(scope="module")
def role(synth: Any) -> list[Statement]:
    stacks = {
        s.stack_name: StackTemplate(s.stack_name, s.region, synth.template(s))
        for s in synth.deployment.stacks
    }
    return principal_policies(stacks)["function:readiness"]


def test_the_function_runs_every_5_minutes_from_its_own_schedule(synth: Any, template: Template) -> None:
    functions = synth.resources(synth.deployment.control, "AWS::Lambda::Function")
    [(logical, props)] = [
        (k, r["Properties"])
        for k, r in functions.items()
        if r["Properties"].get("FunctionName") == "quorum-dr-readiness"
    ]
    env = props["Environment"]["Variables"]
    assert {"STATE_TABLE_NAME", "RESULTS_TABLE_NAME", "EVENT_BUS_NAME", "STATE_MACHINE_ARN"} <= set(env)
    assert "SWITCHOVER_STATE_MACHINE_ARN" in env and env["EVENT_BUS_NAME"] == naming.EVENT_BUS
    template.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "ScheduleExpression": "rate(5 minutes)",
            "Target": {"Arn": {"Fn::GetAtt": [logical, "Arn"]}, "RetryPolicy": {"MaximumRetryAttempts": 0}},
        },
    )


def test_the_role_allows_every_call_of_the_gatherer_and_of_the_event(
    synth: Any, role: list[Statement]
) -> None:
    config = synth.deployment.config
    home = config.home_region
    table = f"arn:aws:dynamodb:{home}:{ACCOUNT}:table/"
    needed = [
        ("dynamodb:GetItem", table + "quorum-dr-state"),  # state and lock, and the previous readiness
        ("dynamodb:PutItem", table + "quorum-dr-state"),  # the readiness item (LeadingKeys below)
        ("dynamodb:Query", table + "quorum-dr-results"),
        ("states:DescribeExecution", f"arn:aws:states:{home}:{ACCOUNT}:execution:quorum-dr-failover:inc-1"),
        ("states:DescribeExecution", f"arn:aws:states:{home}:{ACCOUNT}:execution:quorum-dr-switchover:sw-1"),
        ("events:PutEvents", f"arn:aws:events:{home}:{ACCOUNT}:event-bus/quorum-dr"),
    ]
    for service in config.services:
        token = service.edge.api_token_secret
        needed.append(
            (
                "secretsmanager:GetSecretValue",
                f"arn:aws:secretsmanager:{home}:{ACCOUNT}:secret:{token}-AbCdEf",
            )
        )
        cold = service.cold_site
        if cold is not None:
            needed += [
                ("ec2:DescribeImages", "*"),
                ("ec2:DescribeLaunchTemplates", "*"),
                ("ec2:RunInstances", f"arn:aws:ec2:{cold.region}:{ACCOUNT}:instance/*"),
                ("ec2:RunInstances", f"arn:aws:ec2:{cold.region}::image/ami-0123456789abcdef0"),
            ]
            if cold.ami_ssm_parameter:
                parameter = cold.ami_ssm_parameter.lstrip("/")
                needed.append(
                    ("ssm:GetParameter", f"arn:aws:ssm:{cold.region}:{ACCOUNT}:parameter/{parameter}")
                )
    for region, names in secret_copies(config).items():
        needed += [
            ("secretsmanager:DescribeSecret", f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{n}-AbCdEf")
            for n in names
        ]
    denied = [f"{action} on {arn}" for action, arn in needed if not allows(role, action, arn)]
    assert not denied, "the readiness role does not allow:\n  " + "\n  ".join(denied)


def test_the_role_allows_nothing_more(synth: Any, role: list[Statement]) -> None:
    home = synth.deployment.config.home_region
    state = f"arn:aws:dynamodb:{home}:{ACCOUNT}:table/quorum-dr-state"
    for action in ("dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Scan"):
        assert not allows(role, action, state), action
    assert not allows(
        role, "states:StartExecution", f"arn:aws:states:{home}:{ACCOUNT}:stateMachine:quorum-dr-failover"
    )
    db_admin = f"arn:aws:secretsmanager:{home}:{ACCOUNT}:secret:quorum-dr/booking/db-admin-AbCdEf"
    assert allows(role, "secretsmanager:DescribeSecret", db_admin)
    assert not allows(role, "secretsmanager:GetSecretValue", db_admin)  # described, never read
    assert not allows(role, "cloudwatch:PutMetricData", "*")  # metrics are EMF log lines
    assert not allows(role, "sns:Publish", f"arn:aws:sns:{home}:{ACCOUNT}:quorum-dr-alerts")


def test_its_put_item_is_held_to_the_readiness_partitions(synth: Any) -> None:
    """`allows` does not evaluate Conditions: the condition itself is asserted here."""
    policies = synth.resources(synth.deployment.control, "AWS::IAM::Policy")
    statements = [
        s
        for p in policies.values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "PutReadinessItemsOnly"
    ]
    assert len(statements) == 1
    [statement] = statements
    assert statement["Action"] == "dynamodb:PutItem"
    assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["READINESS#*"]}}


def test_a_fail_alarm_per_service_notifies_the_alert_topic(synth: Any, template: Template) -> None:
    topic = next(iter(synth.resources(synth.deployment.control, "AWS::SNS::Topic")))
    for service in synth.deployment.config.services:
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "AlarmName": f"quorum-dr-readiness-fail-{service.name}",
                "Metrics": [
                    Match.object_like(
                        {
                            "MetricStat": {
                                "Metric": {
                                    "Namespace": "QuorumDR",
                                    "MetricName": "ReadinessStatus",
                                    "Dimensions": Match.array_with(
                                        [
                                            {"Name": "check", "Value": "overall"},
                                            {"Name": "service", "Value": service.name},
                                        ]
                                    ),
                                },
                                "Stat": "Maximum",
                                "Period": 300,
                            }
                        }
                    )
                ],
                "Threshold": 2,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "AlarmActions": [{"Ref": topic}],
                "OKActions": [{"Ref": topic}],
            },
        )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"AlarmName": "quorum-dr-readiness-errors", "AlarmActions": [{"Ref": topic}]},
    )


def test_readiness_changed_goes_to_the_alert_topic_and_the_dashboard_shows_it(
    synth: Any, template: Template
) -> None:
    template.has_resource_properties(
        "AWS::Events::Rule",
        {"EventPattern": {"source": ["quorum-dr"], "detail-type": ["ReadinessChanged"]}},
    )
    [dashboard] = synth.resources(synth.deployment.control, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "Readiness (0 OK, 1 WARN, 2 FAIL)" in body and "ReadinessStatus" in body
