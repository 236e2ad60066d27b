"""Control-plane alarms and the one dashboard.

- executions failed: failed + timed out + aborted failover executions (metric math);
- executions escalated: a metric filter on the state machine's log (level ALL) counting entries
  into the `Escalate` state, the Catch target of every Task;
- the same two for the planned switchover (a switchover fails when it is rolled back, escalates,
  or its input is rejected; a refusal changes nothing and succeeds);
- forwarded alarms: probe-region alarms arrive on the home bus and go to the alert topic.
The probe-region alarms (errors, silent) live in each probe stack: an alarm reads only metrics of
its own region. The dashboard shows every region, which dashboards can.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks import naming

NAMESPACE = "QuorumDR"
ESCALATIONS = "Escalations"
SWITCHOVER_ESCALATIONS = "SwitchoverEscalations"
ESCALATE_STATE = "Escalate"


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.StateMachine,
        state_machine_logs: logs.ILogGroup,
        topic: sns.ITopic,
        home_bus: events.IEventBus,
        probe_regions: Sequence[str],
        switchover: sfn.StateMachine | None = None,
        switchover_logs: logs.ILogGroup | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        action = cloudwatch_actions.SnsAction(topic)
        five = Duration.minutes(5)
        failed = cloudwatch.MathExpression(
            expression="FILL(failed, 0) + FILL(timedout, 0) + FILL(aborted, 0)",
            using_metrics={
                "failed": state_machine.metric_failed(period=five, statistic="Sum"),
                "timedout": state_machine.metric_timed_out(period=five, statistic="Sum"),
                "aborted": state_machine.metric_aborted(period=five, statistic="Sum"),
            },
            label="failover executions failed, timed out or aborted",
            period=five,
        )
        self.executions_failed = cloudwatch.Alarm(
            self,
            "ExecutionsFailed",
            alarm_name=f"{naming.PREFIX}-executions-failed",
            alarm_description="A failover execution failed, timed out or was aborted.",
            metric=failed,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        logs.MetricFilter(
            self,
            "EscalationFilter",
            log_group=state_machine_logs,
            metric_namespace=NAMESPACE,
            metric_name=ESCALATIONS,
            metric_value="1",
            filter_pattern=logs.FilterPattern.literal(
                f'{{ ($.details.name = "{ESCALATE_STATE}") && ($.type = "*StateEntered") }}'
            ),
        )
        escalations = cloudwatch.Metric(
            namespace=NAMESPACE, metric_name=ESCALATIONS, period=five, statistic="Sum"
        )
        self.escalated = cloudwatch.Alarm(
            self,
            "Escalated",
            alarm_name=f"{naming.PREFIX}-executions-escalated",
            alarm_description="A failover escalated: the service is NEEDS_ATTENTION and keeps its lock.",
            metric=escalations,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarms = [self.executions_failed, self.escalated]
        self.switchover: SwitchoverAlarms | None = None
        if switchover is not None and switchover_logs is not None:
            self.switchover = SwitchoverAlarms(
                self, "Switchover", state_machine=switchover, logs_=switchover_logs
            )
            alarms += [self.switchover.executions_failed, self.switchover.escalated]
        for alarm in alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)

        self.forwarded_alarms = events.Rule(
            self,
            "ForwardedProbeAlarms",
            description="probe-region alarms forwarded to the home bus -> alert topic",
            event_bus=home_bus,
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                detail={"alarmName": events.Match.prefix(f"{naming.PREFIX}-probe-")},
            ),
            targets=[events_targets.SnsTopic(topic)],
        )

        probe_name = naming.function_name(naming.PROBE)
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=naming.PREFIX)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Failover executions",
                left=[
                    state_machine.metric_started(period=five, statistic="Sum"),
                    state_machine.metric_succeeded(period=five, statistic="Sum"),
                    failed,
                    escalations,
                ],
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=alarms, width=12),
        )
        self.dashboard.add_widgets(
            *[
                cloudwatch.GraphWidget(
                    title=f"Probe {region}",
                    left=[
                        cloudwatch.Metric(
                            namespace="AWS/Lambda",
                            metric_name=metric,
                            dimensions_map={"FunctionName": probe_name},
                            region=region,
                            period=five,
                            statistic="Sum",
                            label=f"{metric} {region}",
                        )
                        for metric in ("Invocations", "Errors")
                    ],
                    width=24 // max(1, len(probe_regions)),
                )
                for region in probe_regions
            ]
        )


class SwitchoverAlarms(Construct):
    """A planned switchover that failed (rolled back, escalated, input rejected), timed out or was
    aborted, and one that escalated (entered `Escalate`: NEEDS_ATTENTION, the lock kept)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, state_machine: sfn.StateMachine, logs_: logs.ILogGroup
    ) -> None:
        super().__init__(scope, construct_id)
        five = Duration.minutes(5)
        failed = cloudwatch.MathExpression(
            expression="FILL(failed, 0) + FILL(timedout, 0) + FILL(aborted, 0)",
            using_metrics={
                "failed": state_machine.metric_failed(period=five, statistic="Sum"),
                "timedout": state_machine.metric_timed_out(period=five, statistic="Sum"),
                "aborted": state_machine.metric_aborted(period=five, statistic="Sum"),
            },
            label="switchover executions failed, timed out or aborted",
            period=five,
        )
        self.executions_failed = cloudwatch.Alarm(
            self,
            "ExecutionsFailed",
            alarm_name=f"{naming.PREFIX}-switchover-failed",
            alarm_description="A planned switchover was rolled back, escalated, timed out or was aborted.",
            metric=failed,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        logs.MetricFilter(
            self,
            "EscalationFilter",
            log_group=logs_,
            metric_namespace=NAMESPACE,
            metric_name=SWITCHOVER_ESCALATIONS,
            metric_value="1",
            filter_pattern=logs.FilterPattern.literal(
                f'{{ ($.details.name = "{ESCALATE_STATE}") && ($.type = "*StateEntered") }}'
            ),
        )
        self.escalated = cloudwatch.Alarm(
            self,
            "Escalated",
            alarm_name=f"{naming.PREFIX}-switchover-escalated",
            alarm_description="A planned switchover escalated: the service is NEEDS_ATTENTION and keeps its "
            "lock.",
            metric=cloudwatch.Metric(
                namespace=NAMESPACE, metric_name=SWITCHOVER_ESCALATIONS, period=five, statistic="Sum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
