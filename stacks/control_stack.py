"""The control plane in the home region: tables, home bus, alert topic, action functions, the
failover state machine and the rule that starts it, the planned switchover's state machine, the
scheduled readiness function, alarms and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from constructs import Construct

from quorum_dr.config import WatchdogConfig
from stacks import naming
from stacks.action_functions import ActionFunctions
from stacks.alarms import Alarms
from stacks.alert_topic import AlertTopic
from stacks.cold_site import ColdSiteTarget
from stacks.failover_state_machine import FailoverStateMachine
from stacks.function import dependency_layer
from stacks.lambda_asset import LambdaAssets
from stacks.readiness_function import ReadinessFunction
from stacks.rehearsal import Rehearsal, rehearsed
from stacks.tables import Tables


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
        layer = dependency_layer(self, assets)
        self.actions = ActionFunctions(
            self,
            "Actions",
            config=config,
            assets=assets,
            layer=layer,
            tables=self.tables,
            alerts=self.alerts,
            cold_sites=cold_sites,
        )
        functions = self.actions.functions

        def substitutions(machine: str) -> dict[str, str]:
            """Each state machine is given (and may invoke) its own functions only."""
            named = {
                naming.substitution_name(name): functions[name].function.function_arn
                for name in naming.MACHINE_FUNCTIONS[machine]
            }
            return {**named, "StateTableName": self.tables.state.table_name}

        self.failover = FailoverStateMachine(
            self,
            "Failover",
            substitutions={**substitutions("failover"), "AlertTopicArn": self.alerts.topic.topic_arn},
        )
        role = self.failover.role
        for name in naming.MACHINE_FUNCTIONS["failover"]:
            functions[name].function.grant_invoke(role)
        self.tables.state.grant(
            role, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
        )
        self.alerts.grant_publish(role)
        # The planned switchover: the failover's lock (PutItem) and, when its Escalate fails, the
        # direct lock and status writes (UpdateItem); it notifies through its own function.
        self.switchover = FailoverStateMachine(
            self,
            "Switchover",
            substitutions=substitutions("switchover"),
            definition_name="switchover",
            state_machine_name=naming.SWITCHOVER_STATE_MACHINE,
        )
        for name in naming.MACHINE_FUNCTIONS["switchover"]:
            functions[name].function.grant_invoke(self.switchover.role)
        self.tables.state.grant(self.switchover.role, "dynamodb:PutItem", "dynamodb:UpdateItem")

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
        self.alert_on_standby = events.Rule(
            self,
            "AlertOnStandbyChange",
            description="StandbyDown / StandbyRecovered from any probe region -> the alert topic: the site "
            "a failover would go to is down, or back",
            event_bus=self.bus,
            event_pattern=events.EventPattern(
                source=[naming.EVENT_SOURCE], detail_type=[naming.STANDBY_DOWN, naming.STANDBY_RECOVERED]
            ),
            targets=[
                events_targets.SnsTopic(
                    self.alerts.topic,
                    message=events.RuleTargetInput.from_text(
                        f"quorum-dr: {detail('$.detail.reason')} "
                        f"(said by {detail('$.detail.region')}, round {detail('$.detail.round_id')})"
                    ),
                )
            ],
        )
        self.alarms = Alarms(
            self,
            "Alarms",
            state_machine=self.failover.state_machine,
            state_machine_logs=self.failover.log_group,
            switchover=self.switchover.state_machine,
            switchover_logs=self.switchover.log_group,
            topic=self.alerts.topic,
            home_bus=self.bus,
            probe_regions=config.probe_regions,
        )
        self.readiness = ReadinessFunction(
            self,
            "Readiness",
            config=config,
            assets=assets,
            layer=layer,
            tables=self.tables,
            bus=self.bus,
            alerts=self.alerts,
            cold_sites=cold_sites,
        )
        self.alarms.dashboard.add_widgets(*self.readiness.widgets([s.name for s in config.services]))
        # the restore rehearsal, for the cold sites that restore base backup + archived WAL
        self.rehearsal = (
            Rehearsal(
                self,
                "Rehearsal",
                config=config,
                assets=assets,
                layer=layer,
                tables=self.tables,
                cold_sites=cold_sites,
                bus=self.bus,
                alerts=self.alerts,
            )
            if rehearsed(cold_sites)
            else None
        )
