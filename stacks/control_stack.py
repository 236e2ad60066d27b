"""The control plane in the home region: tables, home bus, alert topic, action functions, the
failover state machine and the rule that starts it, alarms and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from quorum_dr.config import WatchdogConfig
from stacks import naming
from stacks.action_functions import ActionFunctions
from stacks.alarms import Alarms
from stacks.cold_site import ColdSiteTarget
from stacks.failover_state_machine import FailoverStateMachine
from stacks.function import dependency_layer
from stacks.lambda_asset import LambdaAssets
from stacks.tables import Tables


class AlertTopic(Construct):
    """The SNS topic of every alert: KMS-encrypted with its own key (CloudWatch and EventBridge
    may use it to publish), SSL enforced."""

    def __init__(self, scope: Construct, construct_id: str, *, topic_name: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{naming.PREFIX}-alerts",
            description="quorum-dr alert topic encryption",
            enable_key_rotation=True,
        )
        for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
            self.key.grant(iam.ServicePrincipal(service), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=topic_name,
            master_key=self.key,
            enforce_ssl=True,
            display_name="quorum-dr",
        )

    def grant_publish(self, role: iam.IRole) -> None:
        """sns:Publish on the topic and the two key actions publishing to an encrypted topic needs."""
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[self.key.key_arn])
        )


class ControlStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: WatchdogConfig,
        assets: LambdaAssets,
        cold_sites: Sequence[ColdSiteTarget] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.tables = Tables(self, "Tables")
        self.bus = events.EventBus(self, "HomeBus", event_bus_name=naming.EVENT_BUS)
        self.alerts = AlertTopic(self, "Alerts", topic_name=config.notifications.sns_topic_name)
        self.actions = ActionFunctions(
            self,
            "Actions",
            config=config,
            assets=assets,
            layer=dependency_layer(self, assets),
            tables=self.tables,
            alerts=self.alerts,
            cold_sites=cold_sites,
        )
        substitutions = {
            naming.substitution_name(name): fn.function.function_arn
            for name, fn in self.actions.functions.items()
        }
        substitutions["StateTableName"] = self.tables.state.table_name
        substitutions["AlertTopicArn"] = self.alerts.topic.topic_arn
        self.failover = FailoverStateMachine(self, "Failover", substitutions=substitutions)
        role = self.failover.role
        for fn in self.actions.functions.values():
            fn.function.grant_invoke(role)
        self.tables.state.grant(
            role, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
        )
        self.alerts.grant_publish(role)

        self.start_on_probe_failed = events.Rule(
            self,
            "StartFailoverOnProbeFailed",
            description="ProbeFailed for the main site on the home bus starts the failover state machine",
            event_bus=self.bus,
            # Only main fails over: a ProbeFailed for dr or cold (say an unlaunched cold site) is
            # recorded on the bus but starts nothing.
            event_pattern=events.EventPattern(
                source=[naming.EVENT_SOURCE], detail_type=["ProbeFailed"], detail={"site": ["main"]}
            ),
            targets=[
                events_targets.SfnStateMachine(
                    self.failover.state_machine,
                    retry_attempts=4,
                    max_event_age=Duration.minutes(5),
                )
            ],
        )
        detail = events.EventField.from_path
        self.alert_on_split_brain = events.Rule(
            self,
            "AlertOnSplitBrain",
            description="SplitBrainSuspected from any probe region -> the alert topic: a person must act",
            event_bus=self.bus,
            event_pattern=events.EventPattern(
                source=[naming.EVENT_SOURCE], detail_type=[naming.SPLIT_BRAIN_SUSPECTED]
            ),
            targets=[
                events_targets.SnsTopic(
                    self.alerts.topic,
                    message=events.RuleTargetInput.from_text(
                        f"quorum-dr: {detail('$.detail.reason')} "
                        f"(seen from {detail('$.detail.region')}, round {detail('$.detail.round_id')})"
                    ),
                )
            ],
        )
        self.alarms = Alarms(
            self,
            "Alarms",
            state_machine=self.failover.state_machine,
            state_machine_logs=self.failover.log_group,
            topic=self.alerts.topic,
            home_bus=self.bus,
            probe_regions=config.probe_regions,
        )
