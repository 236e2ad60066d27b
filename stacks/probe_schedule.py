"""The probe of one region: its function on an EventBridge Scheduler schedule, its round queue, and
its alarms.

EventBridge Scheduler's finest rate is one minute. With `probe.interval_seconds` below 60 the
schedule fires every minute and its input names the minute's `rounds` rounds, spaced
`round_spacing_seconds` apart (interval 30 s -> 2 rounds, 0 s and 30 s into the minute; 20 s -> 3;
10 s -> 6). Every round is its own invocation: the scheduled one runs the first round and queues the
second on the region's round queue (SQS, `DelaySeconds` = the spacing); the queue's event source
mapping invokes the same function with it, which queues the next while the minute has more, then
runs its round. Nothing is billed for waiting between rounds (issue 14: the wait had been 2/3 of
the probe's duration bill). At 60 s and above, one round per invocation every round(interval / 60)
minutes, and no queue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from quorum_dr.config import Probe
from quorum_dr.domain.cost import Cadence
from stacks import naming
from stacks.function import QuorumDrFunction
from stacks.nag import acknowledge, logical_id

SILENT_MINUTES = 15


@dataclass(frozen=True)
class ProbeCadence(Cadence):
    """The cadence the cost model bills (`quorum_dr.domain.cost.Cadence`: the same rule, one copy)
    with what the stack derives from it. Built with `ProbeCadence.of(probe.interval_seconds)`."""

    def function_timeout(self, probe: Probe) -> Duration:
        # One round per invocation: the self-check, the checks, the writes (a few check timeouts).
        return Duration.seconds(min(900, math.ceil(3 * probe.timeout_seconds + 10)))

    def queue_visibility_timeout(self, probe: Probe) -> Duration:
        """Longer than the function's timeout (as Lambda requires of an event source), so longer
        than half the spacing too: a message that comes back after a failed invocation is always
        late, and the handler drops it rather than run its round twice."""
        seconds = max(self.function_timeout(probe).to_seconds() + 30, math.ceil(self.spacing_seconds))
        return Duration.seconds(seconds)


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
                        "round_spacing_seconds": cadence.spacing_seconds,
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


class RoundQueue(Construct):
    """The minute's later rounds, each a message delayed until it is due; the probe function reads
    them through an event source mapping, one message per invocation.

    A standard queue (order and exactly-once do not matter: each message names its own round and
    due time, and a late one is dropped), SQS-managed encryption (no KMS key to pay for: the
    bodies are round ids and times), TLS only. Messages live 5 minutes at most: a round is worth
    nothing later. No dead-letter queue: a message is never failed back (a malformed or late one
    is logged and dropped, and a redelivery after the visibility timeout is always late).
    """

    RETENTION = Duration.minutes(5)

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        probe: QuorumDrFunction,
        cadence: ProbeCadence,
        config: Probe,
    ) -> None:
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=f"{naming.PREFIX}-probe-rounds",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=cadence.queue_visibility_timeout(config),
            retention_period=self.RETENTION,
        )
        acknowledge(
            self.queue,
            "AwsSolutions-SQS3",
            "No dead-letter queue: the probe never fails a round message back. A malformed body is "
            "logged and dropped, a late round is dropped, and a message redelivered after a failed "
            "invocation comes back after the visibility timeout, always late, and is dropped too; "
            "nothing would ever reach a DLQ that is worth keeping (messages live 5 minutes).",
        )
        # The mapping's own grant: ReceiveMessage, DeleteMessage, GetQueueAttributes,
        # ChangeMessageVisibility and GetQueueUrl on this queue only.
        probe.function.add_event_source(
            event_sources.SqsEventSource(self.queue, batch_size=1, report_batch_item_failures=False)
        )
        # The probe queues the minute's next round on its own region's queue only.
        probe.role.add_to_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.queue.queue_arn])
        )
        probe.function.add_environment("ROUND_QUEUE_URL", self.queue.queue_url)


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
