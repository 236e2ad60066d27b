"""The action functions of the failover (ten) and of the planned switchover (four), each with exactly
the permissions its step needs."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from quorum_dr.config import WatchdogConfig
from quorum_dr.functions import DEFAULT_TIMEOUT, TIMEOUTS
from stacks import naming
from stacks.alert_topic import AlertTopic
from stacks.cold_site import ColdSiteTarget
from stacks.function import QuorumDrFunction
from stacks.lambda_asset import LambdaAssets
from stacks.nag import acknowledge
from stacks.secret_access import secrets_by_function
from stacks.tables import Tables

# TIMEOUTS and DEFAULT_TIMEOUT live in quorum_dr/functions.py (no CDK there): the stack deploys them,
# and the lock TTL's longest path (quorum_dr/failover/longest_path.py) counts from the same numbers.


# Every step records its progress on the incident item of the state table (update_incident); the
# steps that decide from the record or the service state read it too. Found by the IAM-enforced
# end-to-end tests (tests/integration/test_failover_end_to_end.py).
STATE_TABLE_ACCESS = {
    "validate_input": ("dynamodb:GetItem", "dynamodb:Query"),
    "incident_state": (
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
    ),
    "confirm_outage": ("dynamodb:GetItem", "dynamodb:UpdateItem"),
    "check_replica": ("dynamodb:UpdateItem",),
    # promote and launch count the failover in the cooldown and daily cap (a versioned state put)
    "promote_database": ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
    "fence_main": ("dynamodb:UpdateItem",),
    "switch_edge": ("dynamodb:GetItem", "dynamodb:UpdateItem"),
    "launch_cold_site": ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
    "verify_switch": ("dynamodb:UpdateItem",),
    "notify": ("dynamodb:UpdateItem",),
    # the planned switchover: the plan reads the state, the lock and the incident (a reused id)
    # and writes the incident; the databases and the edge write the incident's timeline (the edge
    # reads it: one switch per switchover); the record writes the state, keeps or releases the lock
    "switchover_plan": ("dynamodb:GetItem", "dynamodb:UpdateItem"),
    "switchover_database": ("dynamodb:UpdateItem",),
    "switchover_edge": ("dynamodb:GetItem", "dynamodb:UpdateItem"),
    "switchover_record": (
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ),
}


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
                star_only_actions=_star_only(name, cold_sites),
            )
        fn = self.functions
        for name, actions in STATE_TABLE_ACCESS.items():
            tables.state.grant(fn[name].role, *actions)
        for name in ("confirm_outage", "check_replica", "switchover_plan"):
            tables.results.grant(fn[name].role, "dynamodb:Query", "dynamodb:GetItem")
        for name in ("confirm_outage", "verify_switch", "switchover_edge"):
            fn[name].role.add_to_policy(
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=sorted(probe_arns.values()))
            )
        alerts.grant_publish(fn["notify"].role)
        alerts.grant_publish(fn["switchover_record"].role)
        for site in cold_sites:
            grant_launch(fn["launch_cold_site"].role, stack, site)


def grant_launch(role: iam.IRole, stack: Stack, site: ColdSiteTarget) -> None:
    """RunInstances of the cold site (its template, security group, subnet, instance role, the AMI's
    SSM parameter, the Elastic IP): what launch_cold_site does, and what the readiness function's
    RunInstances dry run must be allowed for its answer to be DryRunOperation."""

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
                # GetParameter: the function resolves the image itself; GetParameters: EC2
                # resolves the launch template's `resolve:ssm:` image with the caller's rights.
                actions=["ssm:GetParameter", "ssm:GetParameters"],
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
    acknowledge(role, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:{site.region}::image/*]", reason)
    if not site.cold.subnet_id:
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:{site.region}:<AWS::AccountId>:subnet/*]",
            "No subnet_id configured: the instance goes to the default subnet, chosen by EC2.",
        )


def _star_only(name: str, cold_sites: Sequence[ColdSiteTarget]) -> list[str]:
    """The function's actions that have no resource-level permissions (IAM requires `*`)."""
    if name != "launch_cold_site" or not cold_sites:
        return []
    actions = ["ec2:DescribeInstances"]  # waiting for the cold instance
    if any(site.cold.elastic_ip_allocation_id for site in cold_sites):
        actions.append("ec2:DescribeAddresses")  # where the Elastic IP is before associating it
    return actions
