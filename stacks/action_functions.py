"""The ten action functions of the failover, each with exactly the permissions its step needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from quorum_dr.config import WatchdogConfig
from stacks import naming
from stacks.cold_site import ColdSiteTarget
from stacks.function import QuorumDrFunction
from stacks.lambda_asset import LambdaAssets
from stacks.nag import acknowledge
from stacks.secret_access import secrets_by_function
from stacks.tables import Tables

if TYPE_CHECKING:
    from stacks.control_stack import AlertTopic

# Each holds its function's worst case: every call it makes at its timeout, every retry and wait
# (tests/infrastructure/test_budgets.py adds them up from the config and the code's constants).
TIMEOUTS = {
    "incident_state": 150,  # up to 4 state-table calls
    "confirm_outage": 120,  # one on-demand round from every region, invoked in parallel
    "check_replica": 150,  # two secrets, the bounded wait for replay
    "promote_database": 660,  # hooks, advisory lock and pg_promote(true, 60), verify, record
    "fence_main": 210,  # the fence of main (roles, sessions, the check, the final position) and the hook
    "switch_edge": 780,  # up to 9 Cloudflare calls (3 load-balancer pools), each retried for 60 s
    "launch_cold_site": 720,  # five EC2/SSM calls and the wait for running before the Elastic IP
    "verify_switch": 120,
    "notify": 110,  # SNS and a webhook; below the veto window (WaitForVeto's task timeout)
}
DEFAULT_TIMEOUT = 30


class ActionFunctions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: WatchdogConfig,
        assets: LambdaAssets,
        layer: lambda_.ILayerVersion,
        tables: Tables,
        alerts: AlertTopic,
        cold_sites: Sequence[ColdSiteTarget],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        home = config.home_region
        probe_arns = {
            region: naming.function_arn(stack, naming.PROBE, region) for region in config.probe_regions
        }
        environment = {
            "RESULTS_TABLE_NAME": tables.results.table_name,
            "STATE_TABLE_NAME": tables.state.table_name,
            "EVENT_BUS_NAME": naming.EVENT_BUS,
            "ALERT_TOPIC_ARN": alerts.topic.topic_arn,
            "PROBE_FUNCTION_ARNS": stack.to_json_string(probe_arns),
            "STATE_MACHINE_ARN": naming.state_machine_arn(stack, home),
        }
        secrets = secrets_by_function(config)
        self.functions: dict[str, QuorumDrFunction] = {}
        for name in naming.ACTION_FUNCTIONS:
            extra = {}
            if name == "launch_cold_site" and cold_sites:
                extra["COLD_SITE_LAUNCH_TEMPLATES"] = stack.to_json_string(
                    {
                        site.service: {"region": site.region, "launch_template_id": site.launch_template_id}
                        for site in cold_sites
                    }
                )
            self.functions[name] = QuorumDrFunction(
                self,
                "".join(part.capitalize() for part in name.split("_")),
                name=name,
                assets=assets,
                layer=layer,
                environment={**environment, **extra},
                timeout=Duration.seconds(TIMEOUTS.get(name, DEFAULT_TIMEOUT)),
                secrets=secrets.get(name, []),
                # Waiting for the cold instance; DescribeInstances has no resource-level permissions.
                star_only_actions=["ec2:DescribeInstances"]
                if name == "launch_cold_site" and cold_sites
                else [],
            )
        fn = self.functions
        tables.state.grant(fn["validate_input"].role, "dynamodb:GetItem", "dynamodb:Query")
        tables.state.grant(
            fn["incident_state"].role,
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
        )
        for name in ("confirm_outage", "check_replica"):
            tables.results.grant(fn[name].role, "dynamodb:Query", "dynamodb:GetItem")
        for name in ("confirm_outage", "verify_switch"):
            fn[name].role.add_to_policy(
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=sorted(probe_arns.values()))
            )
        alerts.grant_publish(fn["notify"].role)
        for site in cold_sites:
            self._grant_launch(fn["launch_cold_site"].role, stack, site)

    def _grant_launch(self, role: iam.IRole, stack: Stack, site: ColdSiteTarget) -> None:
        def ec2_arn(resource: str, account: str | None = None) -> str:
            return stack.format_arn(
                service="ec2",
                region=site.region,
                account=account if account is not None else Aws.ACCOUNT_ID,
                resource=resource.split("/")[0],
                resource_name=resource.split("/", 1)[1],
            )

        new_resources = [ec2_arn("instance/*"), ec2_arn("volume/*"), ec2_arn("network-interface/*")]
        subnet = ec2_arn(f"subnet/{site.cold.subnet_id}") if site.cold.subnet_id else ec2_arn("subnet/*")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid=f"RunColdSite{site.service.replace('-', '')}",
                actions=["ec2:RunInstances"],
                resources=[
                    *new_resources,
                    subnet,
                    ec2_arn(f"launch-template/{site.launch_template_id}"),
                    ec2_arn(f"security-group/{site.security_group_id}"),
                    ec2_arn("image/*", account=""),
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ec2:CreateTags"],
                resources=[ec2_arn("instance/*"), ec2_arn("volume/*")],
                conditions={"StringEquals": {"ec2:CreateAction": "RunInstances"}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[site.instance_role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            )
        )
        if site.cold.ami_ssm_parameter:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["ssm:GetParameters"],
                    resources=[
                        stack.format_arn(
                            service="ssm",
                            region=site.region,
                            resource="parameter",
                            resource_name=site.cold.ami_ssm_parameter.lstrip("/"),
                        )
                    ],
                )
            )
        if site.cold.elastic_ip_allocation_id:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["ec2:AssociateAddress"],
                    resources=[
                        ec2_arn(f"elastic-ip/{site.cold.elastic_ip_allocation_id}"),
                        ec2_arn("instance/*"),
                    ],
                )
            )
        reason = (
            "RunInstances creates the instance, its volumes and network interface, whose ids do not "
            "exist before the call, and the image is resolved from the SSM parameter at launch; the "
            "template, security group and subnet are exact."
        )
        for resource in ("instance/*", "volume/*", "network-interface/*"):
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:{site.region}:<AWS::AccountId>:{resource}]",
                reason,
            )
        acknowledge(
            role, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:{site.region}::image/*]", reason
        )
        if not site.cold.subnet_id:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:{site.region}:<AWS::AccountId>:subnet/*]",
                "No subnet_id configured: the instance goes to the default subnet, chosen by EC2.",
            )
