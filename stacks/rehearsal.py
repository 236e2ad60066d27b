"""The cold site's restore rehearsal (home region): its state machine, its one function with its own
role, and a schedule per service (cold_site.rehearsal.schedule, weekly by default; off with
`schedule_enabled: false`). Built only for services whose cold site has `wal_archive` (the figures
the restore is compared with are recorded with its base backups).

The function's role allows exactly what `quorum_dr/rehearsal/service.py` calls:
- the launch, as launch_cold_site has it (`grant_launch`: RunInstances of the cold site's template,
  its tags, PassRole of its instance role, the AMI's SSM parameter), but not the Elastic IP: a
  rehearsal leaves the cold site's public address where it is;
- ec2:TerminateInstances only on instances tagged `quorum-dr:role = cold-site` whose
  `quorum-dr:incident` is a rehearsal's (`rehearsal-*`): an `aws:ResourceTag` condition, so it can
  never end a failover's cold site; DescribeInstances (no resource-level permissions);
- s3:GetObject of the figures recorded with the backups (`<prefix>/<server>/quorum-dr-figures/*`),
  and kms:Decrypt through S3 with the bucket's key when `wal_archive.kms_key_arn` is set;
- the state table: PutItem and UpdateItem of the rehearsal items only (partition keys
  `REHEARSAL#<service>`, a `dynamodb:LeadingKeys` condition: no state, lock or incident);
- events:PutEvents on the home bus (RehearsalFinished).
No edge, no database, no lock, no secrets: it cannot fail over.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from constructs import Construct

from quorum_dr.adapters.cold_site import INCIDENT_TAG, ROLE_TAG
from quorum_dr.adapters.wal_archive import ArchiveTarget
from quorum_dr.config import WatchdogConfig
from quorum_dr.domain.backup_figures import FIGURES_FOLDER
from quorum_dr.domain.rehearsal import ID_PREFIX, REHEARSAL_FINISHED, REHEARSAL_PK_PREFIX
from quorum_dr.functions import REHEARSAL_FUNCTIONS, substitution_name
from stacks import naming
from stacks.action_functions import grant_launch
from stacks.alert_topic import AlertTopic
from stacks.cold_site import ColdSiteTarget, grant_backup_key
from stacks.failover_state_machine import FailoverStateMachine
from stacks.function import QuorumDrFunction
from stacks.lambda_asset import LambdaAssets
from stacks.nag import acknowledge, logical_id
from stacks.tables import Tables

(FUNCTION,) = REHEARSAL_FUNCTIONS
# launch (five EC2/SSM calls and the wait for running before the Elastic IP, as launch_cold_site),
# judge (one S3 read, two DynamoDB writes, one event), terminate (two EC2 calls, two updates)
TIMEOUT_SECONDS = 720


def rehearsed(cold_sites: Sequence[ColdSiteTarget]) -> list[ColdSiteTarget]:
    """The cold sites a rehearsal can judge: those restoring base backup + archived WAL."""
    return [site for site in cold_sites if site.cold.wal_archive is not None]


class Rehearsal(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: WatchdogConfig,
        assets: LambdaAssets,
        layer: lambda_.ILayerVersion,
        tables: Tables,
        cold_sites: Sequence[ColdSiteTarget],
        bus: events.IEventBus,
        alerts: AlertTopic,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # launched as a failover launches, but the Elastic IP stays where it is (service.py,
        # without_public_address): no AssociateAddress, no DescribeAddresses
        sites = [
            dataclasses.replace(s, cold=s.cold.model_copy(update={"elastic_ip_allocation_id": None}))
            for s in rehearsed(cold_sites)
        ]
        self.fn = QuorumDrFunction(
            self,
            "Function",
            name=FUNCTION,
            assets=assets,
            layer=layer,
            environment={
                "STATE_TABLE_NAME": tables.state.table_name,
                "EVENT_BUS_NAME": naming.EVENT_BUS,
                "COLD_SITE_LAUNCH_TEMPLATES": stack.to_json_string(
                    {
                        s.service: {"region": s.region, "launch_template_id": s.launch_template_id}
                        for s in sites
                    }
                ),
            },
            timeout=Duration.seconds(TIMEOUT_SECONDS),
            star_only_actions=["ec2:DescribeInstances"],
        )
        role = self.fn.role
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteRehearsalItemsOnly",
                actions=["dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[tables.state.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{REHEARSAL_PK_PREFIX}*"]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadTheServicesState",  # a rehearsal is refused while an incident is under way
                actions=["dynamodb:GetItem"],
                resources=[tables.state.table_arn],
                conditions={
                    "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [s.service for s in sites]}
                },
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["events:PutEvents"], resources=[naming.event_bus_arn(stack, config.home_region)]
            )
        )
        for site in sites:
            grant_launch(role, stack, site)
            instances = stack.format_arn(
                service="ec2", region=site.region, resource="instance", resource_name="*"
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    sid=f"TerminateRehearsalColdSite{site.service.replace('-', '')}",
                    actions=["ec2:TerminateInstances"],
                    resources=[instances],
                    conditions={
                        "StringEquals": {f"aws:ResourceTag/{ROLE_TAG}": "cold-site"},
                        "StringLike": {f"aws:ResourceTag/{INCIDENT_TAG}": f"{ID_PREFIX}*"},
                    },
                )
            )
            root = ArchiveTarget.of(site.cold).root
            figures = f"arn:{Aws.PARTITION}:s3:::{site.cold.backup_bucket}/{root}{FIGURES_FOLDER}*"
            role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[figures]))
            grant_backup_key(role, site.cold)  # the figures under the bucket's SSE-KMS key
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{site.cold.backup_bucket}/"
                f"{root}{FIGURES_FOLDER}*]",
                "The figures are named by their backup's id, known only when the cold site reports "
                "which backup it restored; only this server's figures folder is readable.",
            )

        self.machine = FailoverStateMachine(
            self,
            "StateMachine",
            substitutions={
                substitution_name(FUNCTION): self.fn.function.function_arn,
                "StateTableName": tables.state.table_name,
            },
            definition_name="rehearsal",
            state_machine_name=naming.REHEARSAL_STATE_MACHINE,
        )
        self.fn.function.grant_invoke(self.machine.role)
        acknowledge(
            self.machine.role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(self.fn.function)}.Arn>:*]",
            "grant_invoke also allows the function's versions and aliases (ARN:*); it is still the "
            "rehearsal's one function.",
        )

        self.schedule_role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description="quorum-dr rehearsal schedule: start the rehearsal state machine only",
        )
        self.schedules: dict[str, scheduler.Schedule] = {}
        for site in sites:
            rehearsal = site.cold.rehearsal
            if not rehearsal.schedule_enabled:
                continue
            self.schedules[site.service] = scheduler.Schedule(
                self,
                f"Schedule{''.join(p.capitalize() for p in site.service.split('-'))}",
                description=f"quorum-dr restore rehearsal of {site.service}'s cold site "
                f"({rehearsal.schedule} UTC)",
                schedule=scheduler.ScheduleExpression.expression(rehearsal.schedule),
                target=scheduler_targets.StepFunctionsStartExecution(
                    self.machine.state_machine,
                    input=scheduler.ScheduleTargetInput.from_object(
                        {"service": site.service, "requested_by": "schedule"}
                    ),
                    retry_attempts=2,
                    max_event_age=Duration.hours(1),
                    role=self.schedule_role,
                ),
            )
        # A failed rehearsal tells a person at once (the readiness FAIL alarm may already be in ALARM
        # for another check and would say nothing new); a passed one is only recorded.
        detail = events.EventField.from_path
        self.alert_on_failure = events.Rule(
            self,
            "AlertOnFailedRehearsal",
            description="RehearsalFinished with outcome FAILED on the home bus -> the alert topic",
            event_bus=bus,
            event_pattern=events.EventPattern(
                source=[naming.EVENT_SOURCE], detail_type=[REHEARSAL_FINISHED], detail={"outcome": ["FAILED"]}
            ),
            targets=[
                events_targets.SnsTopic(
                    alerts.topic,
                    message=events.RuleTargetInput.from_text(
                        f"quorum-dr: the restore rehearsal {detail('$.detail.rehearsal_id')} of "
                        f"{detail('$.detail.service')} FAILED: {detail('$.detail.reason')}"
                    ),
                )
            ],
        )
        self.state_machine_arn = stack.format_arn(
            service="states",
            region=config.home_region,
            resource="stateMachine",
            resource_name=naming.REHEARSAL_STATE_MACHINE,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
