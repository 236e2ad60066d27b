"""Probe stacks (schedule, logs, forwarding, alarms) and the cold-site stack."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match, Template

from stacks import naming
from stacks.cold_site import cloudflare_ranges
from stacks.probe_schedule import ProbeCadence


def test_probe_runs_on_a_schedule_with_sub_rounds_below_one_minute(synth) -> None:
    config = synth.deployment.config
    assert config.probe.interval_seconds == 30
    for stack in synth.deployment.probes.values():
        (schedule,) = synth.resources(stack, "AWS::Scheduler::Schedule").values()
        props = schedule["Properties"]
        assert props["ScheduleExpression"] == "rate(1 minute)"
        assert json.loads(props["Target"]["Input"]) == {
            "source": "schedule",
            "rounds": 2,
            "round_spacing_seconds": 30.0,
        }
        (fn,) = synth.resources(stack, "AWS::Lambda::Function").values()
        assert fn["Properties"]["FunctionName"] == "quorum-dr-probe"
        # One round per invocation: the timeout covers a round, not the minute's wait between rounds.
        assert 2 * config.probe.timeout_seconds + 5 <= fn["Properties"]["Timeout"] < 30
        (logs,) = synth.resources(stack, "AWS::Logs::LogGroup").values()
        assert logs["Properties"]["LogGroupName"] == "/aws/lambda/quorum-dr-probe"
        assert logs["Properties"]["RetentionInDays"] == 90


def test_the_minutes_later_rounds_come_back_through_the_regions_round_queue(synth) -> None:
    for region, stack in synth.deployment.probes.items():
        (queue,) = synth.resources(stack, "AWS::SQS::Queue").values()
        props = queue["Properties"]
        assert props["QueueName"] == "quorum-dr-probe-rounds"
        assert props["SqsManagedSseEnabled"] is True and "KmsMasterKeyId" not in props  # no $1/month key
        assert "FifoQueue" not in props and "RedrivePolicy" not in props
        assert props["MessageRetentionPeriod"] == 300
        (fn_id, fn) = next(iter(synth.resources(stack, "AWS::Lambda::Function").items()))
        # Longer than the function's timeout, so a redelivery after a failed invocation is always late.
        assert props["VisibilityTimeout"] > fn["Properties"]["Timeout"]
        assert props["VisibilityTimeout"] > 30 / 2
        (queue_policy,) = synth.resources(stack, "AWS::SQS::QueuePolicy").values()
        (deny,) = queue_policy["Properties"]["PolicyDocument"]["Statement"]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        (mapping,) = synth.resources(stack, "AWS::Lambda::EventSourceMapping").values()
        mp = mapping["Properties"]
        assert mp["BatchSize"] == 1 and "FunctionResponseTypes" not in mp
        assert mp["FunctionName"] == {"Ref": fn_id}
        assert "Fn::GetAtt" in mp["EventSourceArn"]
        env = fn["Properties"]["Environment"]["Variables"]
        assert "Ref" in env["ROUND_QUEUE_URL"], region


def test_no_round_queue_from_a_60_second_interval() -> None:
    from quorum_dr.config import Probe

    probe = Probe.model_validate(
        {
            "interval_seconds": 60,
            "timeout_seconds": 5,
            "control_target": {"checks": [{"name": "c", "type": "tcp", "host": "h", "port": 1}]},
        }
    )
    cadence = ProbeCadence.of(probe.interval_seconds)
    assert cadence == ProbeCadence(rate_minutes=1, rounds=1, spacing_seconds=0) and not cadence.queued
    for interval, rounds in ((30, 2), (20, 3), (10, 6)):
        fast = ProbeCadence.of(interval)
        assert (fast.rounds, fast.queued) == (rounds, True)
        assert fast.function_timeout(probe).to_seconds() == cadence.function_timeout(probe).to_seconds()


def test_cadence_for_long_intervals() -> None:
    from quorum_dr.config import Probe

    probe = Probe.model_validate(
        {
            "interval_seconds": 120,
            "timeout_seconds": 5,
            "control_target": {"checks": [{"name": "c", "type": "tcp", "host": "h", "port": 1}]},
        }
    )
    assert ProbeCadence.of(probe.interval_seconds) == ProbeCadence(
        rate_minutes=2, rounds=1, spacing_seconds=0
    )


def test_probe_events_reach_the_home_bus(synth) -> None:
    home = synth.deployment.config.home_region
    for region, stack in synth.deployment.probes.items():
        template = Template.from_json(synth.template(stack))
        alarms = synth.resources(stack, "AWS::CloudWatch::Alarm")
        assert {a["Properties"]["AlarmName"] for a in alarms.values()} == {
            f"quorum-dr-probe-errors-{region}",
            f"quorum-dr-probe-silent-{region}",
        }
        silent = next(a for a in alarms.values() if "silent" in a["Properties"]["AlarmName"])
        assert silent["Properties"]["TreatMissingData"] == "breaching"
        assert any("FILL(" in m.get("Expression", "") for m in silent["Properties"]["Metrics"])
        if region == home:
            # The probe's bus is the home bus itself; its alarms notify the topic directly.
            template.resource_count_is("AWS::Events::EventBus", 0)
            template.resource_count_is("AWS::Events::Rule", 0)
            for alarm in alarms.values():
                assert "quorum-dr-alerts" in json.dumps(alarm["Properties"]["AlarmActions"])
            continue
        template.has_resource_properties("AWS::Events::EventBus", {"Name": naming.EVENT_BUS})
        home_bus = Match.object_like({"Arn": {"Fn::Join": ["", Match.array_with([f":events:{home}:"])]}})
        template.has_resource_properties(
            "AWS::Events::Rule",
            {
                "EventPattern": {
                    "source": ["quorum-dr"],
                    "detail-type": [
                        "ProbeFailed",
                        "VerdictChanged",
                        "SplitBrainSuspected",
                        "StandbyDown",
                        "StandbyRecovered",
                    ],
                },
                "Targets": [home_bus],
            },
        )
        template.has_resource_properties(
            "AWS::Events::Rule",
            {"EventPattern": Match.object_like({"source": ["aws.cloudwatch"]}), "Targets": [home_bus]},
        )


def test_cold_site_launch_template_security_group_and_instance_role(synth) -> None:
    stack = synth.deployment.cold_sites["us-west-2"]
    cold = synth.deployment.config.service("booking").cold_site
    (lt,) = synth.resources(stack, "AWS::EC2::LaunchTemplate").values()
    data = lt["Properties"]["LaunchTemplateData"]
    assert data["ImageId"] == f"resolve:ssm:{cold.ami_ssm_parameter}"
    assert data["InstanceType"] == "t3.small"
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    script = data["UserData"]["Fn::Base64"]
    assert script.startswith("#!/bin/bash")
    assert f"'{cold.backup_bucket}'" in script and f"'{cold.backup_prefix}'" in script
    assert "quorum_dr.adapters.postgres_backup restore" in script
    assert "send-task-success" in script
    assert f"'{cold.backup_manifest.key_secret}'" in script and f"'{cold.region}'" in script
    assert f"'{cold.backup_manifest.max_age_seconds}'" in script
    # Only the task token is left for the launcher to fill in.
    import re

    assert set(re.findall(r"'(@@[A-Z_]+@@)'", script)) == {"@@TASK_TOKEN@@"}

    (sg,) = synth.resources(stack, "AWS::EC2::SecurityGroup").values()
    ingress = sg["Properties"]["SecurityGroupIngress"]
    ranges = cloudflare_ranges()
    assert {r.get("CidrIp") or r.get("CidrIpv6") for r in ingress} == set(ranges["ipv4"]) | set(
        ranges["ipv6"]
    )
    assert all((r["FromPort"], r["ToPort"], r["IpProtocol"]) == (443, 443, "tcp") for r in ingress)
    assert sg["Properties"]["VpcId"] == cold.vpc_id
    assert ranges["as_of"] and ranges["source"]

    (policy,) = synth.resources(stack, "AWS::IAM::Policy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    text = json.dumps(statements)
    assert {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    } == {
        "s3:GetObject",
        "s3:ListBucket",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "secretsmanager:GetSecretValue",
    }
    assert f":s3:::{cold.backup_bucket}/{cold.backup_prefix}*" in text
    # the backup manifest's key, exactly that secret, in the cold site's region
    (read_key,) = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    assert f":secretsmanager:{cold.region}:" in json.dumps(read_key["Resource"])
    assert f":secret:{cold.backup_manifest.key_secret}-??????" in json.dumps(read_key["Resource"])
    # SendTaskSuccess/Failure have no resource-level permissions: `*`, limited to the home region
    (report,) = [s for s in statements if "states:SendTaskSuccess" in s["Action"]]
    assert report["Resource"] == "*" and sorted(report["Action"]) == [
        "states:SendTaskFailure",
        "states:SendTaskSuccess",
    ]
    home = synth.deployment.config.home_region
    assert report["Condition"] == {"StringEquals": {"aws:RequestedRegion": home}}
    Template.from_json(synth.template(stack)).resource_count_is("AWS::IAM::InstanceProfile", 1)


def test_launch_cold_site_may_run_only_this_template(synth) -> None:
    control = synth.deployment.control
    role = control.actions.functions["launch_cold_site"].role
    logical = control.resolve(control.get_logical_id(role.node.default_child))
    text = json.dumps(
        [
            p["Properties"]["PolicyDocument"]
            for p in synth.resources(control, "AWS::IAM::Policy").values()
            if {"Ref": logical} in p["Properties"]["Roles"]
        ]
    )
    assert "ec2:RunInstances" in text and "launch-template/" in text
    assert "iam:PassRole" in text and "ec2.amazonaws.com" in text
    assert "subnet/subnet-0abc1234" in text and "elastic-ip/eipalloc-0abc1234" in text
