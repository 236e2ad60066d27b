"""One probe region: the probe function, its schedule, its alarms, and the way its events home."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from quorum_dr.config import WatchdogConfig
from quorum_dr.domain.standby_health import STANDBY_ATTRIBUTES
from stacks import naming
from stacks.function import QuorumDrFunction, dependency_layer
from stacks.lambda_asset import LambdaAssets
from stacks.probe_schedule import ProbeAlarms, ProbeCadence, ProbeSchedule, RoundQueue
from stacks.secret_access import secrets_by_function


class ProbeStack(Stack):
    """The probe of `region`.

    With an interval below 60 s, the minute's later rounds wait on the region's round queue (SQS)
    and come back as invocations of their own (`stacks/probe_schedule.py`).

    Results go straight to the home region's results table. Events go on the region's
    `quorum-dr` bus; outside the home region a rule forwards ProbeFailed / VerdictChanged /
    SplitBrainSuspected / StandbyDown / StandbyRecovered to the home bus (in the home region the
    probe's bus *is* the home bus). The region's alarms reach the alert topic directly in the
    home region and through the home bus elsewhere (a CloudWatch alarm can only notify a topic of
    its own region).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: WatchdogConfig,
        region: str,
        assets: LambdaAssets,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        home = config.home_region
        self.is_home = region == home
        cadence = ProbeCadence.of(config.probe.interval_seconds)
        self.probe = QuorumDrFunction(
            self,
            "Probe",
            name=naming.PROBE,
            assets=assets,
            layer=dependency_layer(self, assets),
            environment={
                "RESULTS_TABLE_NAME": naming.RESULTS_TABLE,
                "STATE_TABLE_NAME": naming.STATE_TABLE,
                "EVENT_BUS_NAME": naming.EVENT_BUS,
            },
            timeout=cadence.function_timeout(config.probe),
            # peak RSS measured at 94 MB (a scheduled round: HTTP, TCP, PostgreSQL pair, the stores)
            # and 59 MB (1,000 concurrent checks): bench/probe_memory.py. CPU scales with memory:
            # 256 MB gets half the CPU share of 512 MB (README, "Probing")
            memory_mb=256,
            secrets=secrets_by_function(config).get(naming.PROBE, []),
        )
        self.probe.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:Query"],
                resources=[naming.table_arn(self, naming.RESULTS_TABLE, home)],
            )
        )
        # The standby watch (DynamoStandbyWatch in quorum_dr/adapters/dynamodb_state.py): read the state
        # and the standby record, claim a change with an UpdateItem naming only its own attributes.
        state_table = naming.table_arn(self, naming.STATE_TABLE, home)
        self.probe.role.add_to_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[state_table])
        )
        self.probe.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[state_table],
                conditions={
                    "ForAllValues:StringEquals": {"dynamodb:Attributes": list(STANDBY_ATTRIBUTES)},
                    "StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE"]},
                },
            )
        )
        self.probe.role.add_to_policy(
            iam.PolicyStatement(actions=["events:PutEvents"], resources=[naming.event_bus_arn(self, region)])
        )
        self.schedule = ProbeSchedule(self, "Schedule", probe=self.probe, cadence=cadence)
        # Below 60 s the minute's later rounds come back through the round queue (no waiting billed).
        self.round_queue = (
            RoundQueue(self, "Rounds", probe=self.probe, cadence=cadence, config=config.probe)
            if cadence.queued
            else None
        )
        self.alarms = ProbeAlarms(self, "Alarms", probe=self.probe, region=region)

        home_bus = events.EventBus.from_event_bus_arn(self, "HomeBus", naming.event_bus_arn(self, home))
        if self.is_home:
            topic = sns.Topic.from_topic_arn(
                self, "AlertTopic", naming.topic_arn(self, home, config.notifications.sns_topic_name)
            )
            for alarm in self.alarms.alarms:
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
            return
        self.bus = events.EventBus(self, "Bus", event_bus_name=naming.EVENT_BUS)
        self.forward_events = events.Rule(
            self,
            "ForwardProbeEvents",
            description="the probe events of this region (" + " / ".join(naming.PROBE_DETAIL_TYPES) + ") "
            "to the home bus",
            event_bus=self.bus,
            event_pattern=events.EventPattern(
                source=[naming.EVENT_SOURCE], detail_type=list(naming.PROBE_DETAIL_TYPES)
            ),
            targets=[events_targets.EventBus(home_bus)],
        )
        self.forward_alarms = events.Rule(
            self,
            "ForwardAlarms",
            description="state changes of this region's probe alarms to the home bus (then the alert topic)",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                resources=[alarm.alarm_arn for alarm in self.alarms.alarms],
            ),
            targets=[events_targets.EventBus(home_bus)],
        )
