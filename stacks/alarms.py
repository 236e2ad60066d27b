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
        failover = ExecutionAlarmSet(
            self,
            state_machine=state_machine,
            logs_=state_machine_logs,
            what="failover",
            failed_name="executions-failed",
            failed_description="A failover execution failed, timed out or was aborted.",
            escalated_name="executions-escalated",
            escalated_description="A failover escalated: the service is NEEDS_ATTENTION and keeps its lock.",
            escalations_metric=ESCALATIONS,
        )
        failed, escalations = failover.failed, failover.escalations
        self.executions_failed, self.escalated = failover.executions_failed, failover.escalated
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


class ExecutionAlarmSet:
    """In `scope`, the two alarms of one state machine: an execution that failed, timed out or was
    aborted (a math expression over its metrics), and one that escalated (entered `Escalate`, counted
    by a metric filter on its log group)."""

    def __init__(
        self,
        scope: Construct,
        *,
        state_machine: sfn.StateMachine,
        logs_: logs.ILogGroup,
        what: str,
        failed_name: str,
        failed_description: str,
        escalated_name: str,
        escalated_description: str,
        escalations_metric: str,
    ) -> None:
        five = Duration.minutes(5)
        self.failed = cloudwatch.MathExpression(
            expression="FILL(failed, 0) + FILL(timedout, 0) + FILL(aborted, 0)",
            using_metrics={
                "failed": state_machine.metric_failed(period=five, statistic="Sum"),
                "timedout": state_machine.metric_timed_out(period=five, statistic="Sum"),
                "aborted": state_machine.metric_aborted(period=five, statistic="Sum"),
            },
            label=f"{what} executions failed, timed out or aborted",
            period=five,
        )
        self.executions_failed = cloudwatch.Alarm(
            scope,
            "ExecutionsFailed",
            alarm_name=f"{naming.PREFIX}-{failed_name}",
            alarm_description=failed_description,
            metric=self.failed,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        logs.MetricFilter(
            scope,
            "EscalationFilter",
            log_group=logs_,
            metric_namespace=NAMESPACE,
            metric_name=escalations_metric,
            metric_value="1",
            filter_pattern=logs.FilterPattern.literal(
                f'{{ ($.details.name = "{ESCALATE_STATE}") && ($.type = "*StateEntered") }}'
            ),
        )
        self.escalations = cloudwatch.Metric(
            namespace=NAMESPACE, metric_name=escalations_metric, period=five, statistic="Sum"
        )
        self.escalated = cloudwatch.Alarm(
            scope,
            "Escalated",
            alarm_name=f"{naming.PREFIX}-{escalated_name}",
            alarm_description=escalated_description,
            metric=self.escalations,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )


class SwitchoverAlarms(Construct):
    """A planned switchover that failed (rolled back, escalated, input rejected), timed out or was
    aborted, and one that escalated (entered `Escalate`: NEEDS_ATTENTION, the lock kept)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, state_machine: sfn.StateMachine, logs_: logs.ILogGroup
    ) -> None:
        super().__init__(scope, construct_id)
        alarms = ExecutionAlarmSet(
            self,
            state_machine=state_machine,
            logs_=logs_,
            what="switchover",
            failed_name="switchover-failed",
            failed_description="A planned switchover was rolled back, escalated, timed out or was aborted.",
            escalated_name="switchover-escalated",
            escalated_description="A planned switchover escalated: the service is NEEDS_ATTENTION and keeps "
            "its lock.",
            escalations_metric=SWITCHOVER_ESCALATIONS,
        )
        self.executions_failed, self.escalated = alarms.executions_failed, alarms.escalated
