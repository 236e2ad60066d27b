"""The scheduled readiness function (home region, every 5 minutes): its own role, its schedule, an
alarm per service on its FAIL metric, an alarm on its own errors, and a rule sending its
ReadinessChanged events to the alert topic.

The role allows exactly what `ReadinessGatherer` and `ScheduledReadiness` call:
- the state table: GetItem (state and lock); PutItem of the readiness items only (partition keys
  `READINESS#<service>`, a `dynamodb:LeadingKeys` condition: it cannot write a state or a lock);
- the results table: Query (the recent results and the home clock);
- Step Functions: DescribeExecution of the failover's and the switchover's executions;
- Secrets Manager: the API tokens (GetSecretValue, home region) and DescribeSecret of every secret
  the functions read, in every region that reads it (`quorum_dr.domain.cost.secret_copies`);
- the cold site: DescribeImages, DescribeLaunchTemplates (no resource-level permissions), the AMI's
  SSM parameter and RunInstances as launch_cold_site has it: a dry run answers DryRunOperation only
  to a caller allowed the real launch, so the check proves the permission by holding it. (IAM has
  no condition key for DryRun.)
- events:PutEvents on the home bus. Metrics go out as EMF log lines: no cloudwatch:PutMetricData.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from constructs import Construct

from quorum_dr.adapters.dynamodb_state import READINESS_PK_PREFIX
from quorum_dr.adapters.wal_archive import ArchiveTarget
from quorum_dr.config import WatchdogConfig
from quorum_dr.domain.cost import secret_copies
from quorum_dr.domain.readiness import READINESS_CHANGED, Status, status_value
from quorum_dr.functions import READINESS, READINESS_TIMEOUT
from quorum_dr.readiness_service import METRIC, OVERALL
from stacks import naming
from stacks.action_functions import grant_launch
from stacks.alarms import NAMESPACE
from stacks.alert_topic import AlertTopic
from stacks.cold_site import ColdSiteTarget, grant_backup_key
from stacks.function import QuorumDrFunction
from stacks.lambda_asset import LambdaAssets
from stacks.nag import acknowledge, logical_id
from stacks.secret_access import secrets_by_function
from stacks.tables import Tables

RATE_MINUTES = 5


def readiness_metric(service: str, check: str = OVERALL) -> cloudwatch.Metric:
    """The function's status metric of one service (0 OK, 1 WARN, 2 FAIL), the worst in 5 minutes."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=METRIC,
        dimensions_map={"service": service, "check": check},
        period=Duration.minutes(RATE_MINUTES),
        statistic="Maximum",
        label=f"readiness {service} ({check})",
    )


class ReadinessFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: WatchdogConfig,
        assets: LambdaAssets,
        layer: lambda_.ILayerVersion,
        tables: Tables,
        bus: events.IEventBus,
        alerts: AlertTopic,
        cold_sites: Sequence[ColdSiteTarget] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        home = config.home_region
        machines = {
            "STATE_MACHINE_ARN": naming.STATE_MACHINE,
            "SWITCHOVER_STATE_MACHINE_ARN": naming.SWITCHOVER_STATE_MACHINE,
        }
        self.fn = QuorumDrFunction(
            self,
            "Function",
            name=READINESS,
            assets=assets,
            layer=layer,
            environment={
                "STATE_TABLE_NAME": tables.state.table_name,
                "RESULTS_TABLE_NAME": tables.results.table_name,
                "EVENT_BUS_NAME": naming.EVENT_BUS,
                **{env: _machine_arn(stack, home, name) for env, name in machines.items()},
            },
            timeout=Duration.seconds(READINESS_TIMEOUT),
            secrets=secrets_by_function(config).get(READINESS, []),
            star_only_actions=_star_only(cold_sites),
        )
        role = self.fn.role
        tables.state.grant(role, "dynamodb:GetItem")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PutReadinessItemsOnly",
                actions=["dynamodb:PutItem"],
                resources=[tables.state.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{READINESS_PK_PREFIX}*"]}},
            )
        )
        tables.results.grant(role, "dynamodb:Query")
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution"],
                resources=[
                    stack.format_arn(
                        service="states",
                        region=home,
                        resource="execution",
                        resource_name=f"{name}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                    for name in machines.values()
                ],
            )
        )
        for name in machines.values():
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:{home}:<AWS::AccountId>:"
                f"execution:{name}:*]",
                "The lock names the execution that holds it; any execution of this one state machine "
                "may be asked about (DescribeExecution reads, never acts).",
            )
        role.add_to_policy(
            iam.PolicyStatement(actions=["events:PutEvents"], resources=[naming.event_bus_arn(stack, home)])
        )
        described = []
        for region, names in sorted(secret_copies(config).items()):
            for secret in sorted(names):
                arn = stack.format_arn(
                    service="secretsmanager",
                    region=region,
                    resource="secret",
                    resource_name=f"{secret}-??????",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
                described.append(arn)
                acknowledge(
                    role,
                    f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:{region}:"
                    f"<AWS::AccountId>:secret:{secret}-??????]",
                    "DescribeSecret (metadata, not the value) of a secret the functions read, in a region "
                    "that reads it; '-??????' is the random suffix AWS adds to the one named secret.",
                )
        if described:
            role.add_to_policy(
                iam.PolicyStatement(actions=["secretsmanager:DescribeSecret"], resources=described)
            )
        for site in cold_sites:
            grant_launch(role, stack, site)
            if site.cold.wal_archive is not None:  # the base_backup and wal_archive checks list it
                bucket_arn = f"arn:{Aws.PARTITION}:s3:::{site.cold.backup_bucket}"
                root = ArchiveTarget.of(site.cold).root
                role.add_to_policy(
                    iam.PolicyStatement(
                        actions=["s3:ListBucket"],
                        resources=[bucket_arn],
                        conditions={"StringLike": {"s3:prefix": [f"{root}*"]}},
                    )
                )
                role.add_to_policy(
                    iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{bucket_arn}/{root}base/*"])
                )
                grant_backup_key(role, site.cold)  # backup.info under SSE-KMS
                acknowledge(
                    role,
                    f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{site.cold.backup_bucket}/{root}base/*]",
                    "barman names each base backup's folder by its time; the check reads backup.info "
                    "under this one server's base/ folder and nothing else in the bucket.",
                )

        self.schedule_role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description="quorum-dr readiness schedule: invoke the readiness function only",
        )
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            description=f"quorum-dr readiness of every service every {RATE_MINUTES} minutes",
            schedule=scheduler.ScheduleExpression.rate(Duration.minutes(RATE_MINUTES)),
            target=scheduler_targets.LambdaInvoke(
                self.fn.function,
                input=scheduler.ScheduleTargetInput.from_object({"source": "schedule"}),
                retry_attempts=0,  # the next evaluation comes in 5 minutes
                max_event_age=Duration.minutes(RATE_MINUTES),
                role=self.schedule_role,
            ),
        )
        acknowledge(
            self.schedule_role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(self.fn.function)}.Arn>:*]",
            "The Scheduler Lambda target grants the readiness function and its versions (ARN:*); it is "
            "still the one readiness function.",
        )

        action = cloudwatch_actions.SnsAction(alerts.topic)
        fail = status_value(Status.FAIL)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for service in config.services:
            alarm = cloudwatch.Alarm(
                self,
                f"Fail{''.join(part.capitalize() for part in service.name.replace('_', '-').split('-'))}",
                alarm_name=f"{naming.PREFIX}-readiness-fail-{service.name}",
                alarm_description=(
                    f"A readiness check of {service.name} is FAIL: a failover would not work as it "
                    f"should. drctl readiness --service {service.name} says which and why."
                ),
                metric=readiness_metric(service.name),
                threshold=fail,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,  # silence: the errors alarm
            )
            self.alarms[service.name] = alarm
        self.errors = cloudwatch.Alarm(
            self,
            "Errors",
            alarm_name=f"{naming.PREFIX}-readiness-errors",
            alarm_description="The readiness function failed: readiness is not being evaluated or reported.",
            metric=self.fn.function.metric_errors(period=Duration.minutes(RATE_MINUTES), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in [*self.alarms.values(), self.errors]:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)

        detail = events.EventField.from_path
        self.alert_on_change = events.Rule(
            self,
            "AlertOnReadinessChanged",
            description="ReadinessChanged on the home bus -> the alert topic",
            event_bus=bus,
            event_pattern=events.EventPattern(source=[naming.EVENT_SOURCE], detail_type=[READINESS_CHANGED]),
            targets=[
                events_targets.SnsTopic(
                    alerts.topic,
                    message=events.RuleTargetInput.from_text(f"quorum-dr: {detail('$.detail.reason')}"),
                )
            ],
        )

    def widgets(self, services: Sequence[str]) -> list[cloudwatch.IWidget]:
        """The dashboard's readiness row: each service's overall status, and the alarms."""
        return [
            cloudwatch.GraphWidget(
                title="Readiness (0 OK, 1 WARN, 2 FAIL)",
                left=[readiness_metric(service) for service in services],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=2),
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Readiness alarms", alarms=[*self.alarms.values(), self.errors], width=12
            ),
        ]


def _machine_arn(stack: Stack, region: str, name: str) -> str:
    return stack.format_arn(
        service="states",
        region=region,
        resource="stateMachine",
        resource_name=name,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def _star_only(cold_sites: Sequence[ColdSiteTarget]) -> list[str]:
    """EC2's Describe calls of the cold-site check: no resource-level permissions (IAM requires `*`)."""
    if not cold_sites:
        return []
    actions = ["ec2:DescribeImages", "ec2:DescribeLaunchTemplates"]
    if any(not site.cold.ami_id and not site.cold.ami_ssm_parameter for site in cold_sites):
        actions.append("ec2:DescribeLaunchTemplateVersions")  # the AMI named by the template
    return actions
