"""The control plane: tables, state machine, trigger, action functions, topic, alarms, dashboard."""

from __future__ import annotations

import json
import re

import boto3
import pytest
from aws_cdk.assertions import Match, Template
from moto import mock_aws

from quorum_dr.state_machines import definition_json
from stacks import naming
from stacks.failover_state_machine import substitutions_used


def _control(synth):
    return synth.deployment.control


def test_tables_have_keys_pitr_ttl_and_encryption(synth) -> None:
    tables = synth.resources(_control(synth), "AWS::DynamoDB::Table")
    assert sorted(t["Properties"]["TableName"] for t in tables.values()) == [
        naming.RESULTS_TABLE,
        naming.STATE_TABLE,
    ]
    for table in tables.values():
        props = table["Properties"]
        assert props["KeySchema"] == [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["BillingMode"] == "PAY_PER_REQUEST"


MACHINES = [("failover", naming.STATE_MACHINE), ("switchover", naming.SWITCHOVER_STATE_MACHINE)]


def _machine(synth, name: str) -> dict:
    (machine,) = [
        m
        for m in synth.resources(_control(synth), "AWS::StepFunctions::StateMachine").values()
        if m["Properties"]["StateMachineName"] == name
    ]
    return machine


def test_the_control_stack_has_the_failover_and_the_switchover_state_machines(synth) -> None:
    machines = synth.resources(_control(synth), "AWS::StepFunctions::StateMachine").values()
    assert sorted(m["Properties"]["StateMachineName"] for m in machines) == sorted(n for _, n in MACHINES)


@pytest.mark.parametrize(("definition", "name"), MACHINES)
def test_state_machine_is_inlined_with_logging_all_and_xray(synth, definition: str, name: str) -> None:
    props = _machine(synth, name)["Properties"]
    assert props["StateMachineName"] == name
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is True
    # Inlined, not uploaded to S3: the template carries the JSON rendered from the YAML source.
    assert props["DefinitionString"] == definition_json(definition)


@pytest.mark.parametrize(("definition", "name"), MACHINES)
def test_every_substitution_the_asl_uses_is_supplied(synth, definition: str, name: str) -> None:
    machine = _machine(synth, name)
    used = substitutions_used(definition_json(definition))
    supplied = set(machine["Properties"]["DefinitionSubstitutions"])
    assert used <= supplied, f"unsupplied: {sorted(used - supplied)}"
    # And the fixed set of the lead's conventions is what we supply: each machine its own functions.
    expected = {naming.substitution_name(n) for n in naming.MACHINE_FUNCTIONS[definition]} | {
        "StateTableName"
    }
    if definition == "failover":
        expected.add("AlertTopicArn")
    assert supplied == expected


def test_probe_failed_of_main_on_the_home_bus_starts_the_state_machine(synth) -> None:
    template = Template.from_json(synth.template(_control(synth)))
    template.has_resource_properties("AWS::Events::EventBus", {"Name": naming.EVENT_BUS})
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.exact(
                {"source": ["quorum-dr"], "detail-type": ["ProbeFailed"], "detail": {"site": ["main"]}}
            ),
            "EventBusName": Match.any_value(),
            "Targets": [
                Match.object_like({"Arn": {"Ref": Match.string_like_regexp("FailoverStateMachine")}})
            ],
        },
    )


def test_the_start_rule_matches_main_probe_failed_only(synth) -> None:
    """The synthesized pattern on a bus (moto), events put through it: a ProbeFailed for dr or cold
    (an unlaunched cold site fails every round) starts no execution."""
    rules = synth.template(_control(synth))["Resources"].values()
    (pattern,) = [
        r["Properties"]["EventPattern"]
        for r in rules
        if r["Type"] == "AWS::Events::Rule"
        and "ProbeFailed" in r["Properties"]["EventPattern"]["detail-type"]
    ]
    with mock_aws():
        events = boto3.client("events", region_name="eu-west-2")
        sqs = boto3.client("sqs", region_name="eu-west-2")
        queue_url = sqs.create_queue(QueueName="started")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name="start", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="start", Targets=[{"Id": "q", "Arn": arn}])
        sent = [
            ("ProbeFailed", "main"),
            ("ProbeFailed", "dr"),
            ("ProbeFailed", "cold"),
            ("VerdictChanged", "main"),
        ]
        events.put_events(
            Entries=[
                {
                    "Source": "quorum-dr",
                    "DetailType": kind,
                    "Detail": json.dumps({"service": "booking", "site": site, "region": "us-east-1"}),
                }
                for kind, site in sent
            ]
        )
        matched = []
        for _ in range(5):  # bounded drain
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for message in messages:
                body = json.loads(message["Body"])
                matched.append((body["detail-type"], body["detail"]["site"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        assert matched == [("ProbeFailed", "main")]


def test_split_brain_suspected_is_sent_to_the_alert_topic_with_its_reason(synth) -> None:
    template = Template.from_json(synth.template(_control(synth)))
    rules = [
        r["Properties"]
        for r in synth.resources(_control(synth), "AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail-type") == ["SplitBrainSuspected"]
    ]
    assert len(rules) == 1
    (target,) = rules[0]["Targets"]
    assert "AlertsTopic" in json.dumps(target["Arn"])
    transformer = target["InputTransformer"]
    assert set(transformer["InputPathsMap"].values()) == {
        "$.detail.reason",
        "$.detail.region",
        "$.detail.round_id",
    }
    assert "<detail-reason>" in transformer["InputTemplate"]
    template.has_resource_properties(
        "AWS::Events::Rule",
        {"EventPattern": {"source": ["quorum-dr"], "detail-type": ["SplitBrainSuspected"]}},
    )


def test_standby_down_and_recovered_are_sent_to_the_alert_topic_with_their_reason(synth) -> None:
    rules = [
        r["Properties"]
        for r in synth.resources(_control(synth), "AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail-type") == ["StandbyDown", "StandbyRecovered"]
    ]
    assert len(rules) == 1
    assert rules[0]["EventPattern"]["source"] == ["quorum-dr"]
    (target,) = rules[0]["Targets"]
    assert "AlertsTopic" in json.dumps(target["Arn"])
    transformer = target["InputTransformer"]
    assert set(transformer["InputPathsMap"].values()) == {
        "$.detail.reason",
        "$.detail.region",
        "$.detail.round_id",
    }
    assert "<detail-reason>" in transformer["InputTemplate"]


def test_the_ten_action_functions(synth) -> None:
    functions = synth.resources(_control(synth), "AWS::Lambda::Function")
    ours = {
        r["Properties"]["FunctionName"]: r["Properties"]
        for r in functions.values()
        if r["Properties"].get("FunctionName", "").startswith("quorum-dr-")
    }
    readiness = ours.pop(naming.function_name(naming.READINESS))  # scheduled, no state machine's step
    assert sorted(ours) == sorted(naming.function_name(n) for n in naming.ACTION_FUNCTIONS)
    roles = {json.dumps(readiness["Role"])}
    for props in ours.values():
        assert props["Handler"] == "handler.handler"
        assert props["Runtime"].startswith("python3.")
        assert props["TracingConfig"] == {"Mode": "Active"}
        env = props["Environment"]["Variables"]
        assert env["QUORUM_DR_CONFIG_PATH"] == "watchdog.json"
        for name in ("RESULTS_TABLE_NAME", "STATE_TABLE_NAME", "EVENT_BUS_NAME", "ALERT_TOPIC_ARN"):
            assert name in env
        assert "PROBE_FUNCTION_ARNS" in env and "STATE_MACHINE_ARN" in env
        roles.add(json.dumps(props["Role"]))
    assert len(roles) == len(ours) + 1, "one IAM role per function"


def test_alert_topic_is_encrypted_and_enforces_ssl(synth) -> None:
    template = Template.from_json(synth.template(_control(synth)))
    template.has_resource_properties(
        "AWS::SNS::Topic", {"TopicName": "quorum-dr-alerts", "KmsMasterKeyId": Match.any_value()}
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "sns:Publish",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_alarms_and_dashboard(synth) -> None:
    alarms = synth.resources(_control(synth), "AWS::CloudWatch::Alarm")
    names = {a["Properties"]["AlarmName"] for a in alarms.values()}
    assert names == {
        "quorum-dr-executions-failed",
        "quorum-dr-executions-escalated",
        "quorum-dr-switchover-failed",
        "quorum-dr-switchover-escalated",
        "quorum-dr-readiness-errors",
        *(f"quorum-dr-readiness-fail-{s.name}" for s in synth.deployment.config.services),
    }
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"], "every alarm notifies the alert topic"
    filters = synth.resources(_control(synth), "AWS::Logs::MetricFilter").values()
    assert sorted(f["Properties"]["MetricTransformations"][0]["MetricName"] for f in filters) == [
        "Escalations",
        "SwitchoverEscalations",
    ]
    for metric_filter in filters:  # each on its own state machine's log group
        assert '$.details.name = "Escalate"' in metric_filter["Properties"]["FilterPattern"]
    groups = {json.dumps(f["Properties"]["LogGroupName"]) for f in filters}
    assert len(groups) == 2
    (dashboard,) = synth.resources(_control(synth), "AWS::CloudWatch::Dashboard").values()
    body = "".join(p for p in dashboard["Properties"]["DashboardBody"]["Fn::Join"][1] if isinstance(p, str))
    for region in synth.deployment.config.probe_regions:
        assert f'"region":"{region}"' in body, f"no widget for {region}"
    # Forwarded probe-region alarms reach the topic through the home bus.
    template = Template.from_json(synth.template(_control(synth)))
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.cloudwatch"],
                "detail": {"alarmName": [{"prefix": "quorum-dr-probe-"}]},
            }
        },
    )


@pytest.mark.parametrize("definition", ["failover", "switchover"])
def test_state_machine_may_invoke_only_its_own_functions(synth, definition: str) -> None:
    control = _control(synth)
    own = {
        control.resolve(control.get_logical_id(control.actions.functions[name].function.node.default_child))
        for name in naming.MACHINE_FUNCTIONS[definition]
    }
    machine = control.failover if definition == "failover" else control.switchover
    role_logical = control.resolve(control.get_logical_id(machine.role.node.default_child))
    invoked = set()
    for policy in synth.resources(control, "AWS::IAM::Policy").values():
        if {"Ref": role_logical} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "lambda:InvokeFunction" in actions:
                for resource in statement["Resource"]:
                    text = json.dumps(resource)
                    match = re.search(r'"([A-Za-z0-9]+)", "Arn"', text)
                    assert match, f"invoke on something that is not one of our functions: {text}"
                    invoked.add(match.group(1))
    assert invoked == own and len(own) == len(naming.MACHINE_FUNCTIONS[definition])
