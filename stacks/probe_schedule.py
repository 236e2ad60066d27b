"""The probe of one region: its function on an EventBridge Scheduler schedule, and its alarms.

EventBridge Scheduler's finest rate is one minute. With `probe.interval_seconds` below 60 the
schedule fires every minute and its input asks the probe for `rounds` rounds spaced
`round_spacing_seconds` apart inside that invocation (interval 30 s -> 2 rounds, 0 s and 30 s
into the minute). At 60 s and above, one round per invocation every round(interval / 60) minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from constructs import Construct

from quorum_dr.config import Probe
from stacks import naming
from stacks.function import QuorumDrFunction
from stacks.nag import acknowledge, logical_id

SILENT_MINUTES = 15


@dataclass(frozen=True)
class ProbeCadence:
    rate_minutes: int
    rounds: int
    round_spacing_seconds: float

    @classmethod
    def of(cls, probe: Probe) -> ProbeCadence:
        if probe.interval_seconds < 60:
            return cls(1, math.ceil(60 / probe.interval_seconds), probe.interval_seconds)
        return cls(max(1, round(probe.interval_seconds / 60)), 1, 0)

    def function_timeout(self, probe: Probe) -> Duration:
        # The last round starts (rounds - 1) * spacing in, then runs at most a few check timeouts.
        seconds = (self.rounds - 1) * self.round_spacing_seconds + 3 * probe.timeout_seconds + 10
        return Duration.seconds(min(900, math.ceil(seconds)))


class ProbeSchedule(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, probe: QuorumDrFunction, cadence: ProbeCadence
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description="quorum-dr probe schedule: invoke the probe function only",
        )
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            description=f"quorum-dr probe round(s) every {cadence.rate_minutes} minute(s)",
            schedule=scheduler.ScheduleExpression.rate(Duration.minutes(cadence.rate_minutes)),
            target=scheduler_targets.LambdaInvoke(
                probe.function,
                input=scheduler.ScheduleTargetInput.from_object(
                    {
                        "source": "schedule",
                        "rounds": cadence.rounds,
                        "round_spacing_seconds": cadence.round_spacing_seconds,
                    }
                ),
                retry_attempts=0,  # a late round is worth nothing: the next one comes soon
                max_event_age=Duration.minutes(1),
                role=self.role,
            ),
        )
        logical = logical_id(probe.function)
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::<{logical}.Arn>:*]",
            "The Scheduler Lambda target grants the probe function and its versions (ARN:*); it is "
            "still the one probe function of this region.",
        )


class ProbeAlarms(Construct):
    """Probe errors, and the region gone silent (no invocation at all, missing data = breaching)."""

    def __init__(self, scope: Construct, construct_id: str, *, probe: QuorumDrFunction, region: str) -> None:
        super().__init__(scope, construct_id)
        fn = probe.function
        self.errors = cloudwatch.Alarm(
            self,
            "Errors",
            alarm_name=f"{naming.PREFIX}-probe-errors-{region}",
            alarm_description=f"The probe function in {region} failed (errors, not failing checks).",
            metric=fn.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        invocations = fn.metric_invocations(period=Duration.minutes(5), statistic="Sum")
        self.silent = cloudwatch.Alarm(
            self,
            "Silent",
            alarm_name=f"{naming.PREFIX}-probe-silent-{region}",
            alarm_description=(
                f"No probe round ran in {region} for {SILENT_MINUTES} minutes: the region's votes are "
                "missing and the quorum is thinner."
            ),
            metric=cloudwatch.MathExpression(
                expression="FILL(invocations, 0)",
                using_metrics={"invocations": invocations},
                label="probe invocations (missing = 0)",
                period=Duration.minutes(5),
            ),
            threshold=1,
            evaluation_periods=SILENT_MINUTES // 5,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.alarms = [self.errors, self.silent]
