"""The cold site of one service, in its own region: launch template, instance role, security group.

The instance may read only the backup prefix and report readiness to the failover state machine.
Its security group admits HTTPS only from Cloudflare's published ranges (stacks/data/).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Aws, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from quorum_dr.config import ColdSite, Service, WalArchive, WatchdogConfig
from stacks import naming
from stacks.backup_bucket import BackupBucket
from stacks.nag import acknowledge

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "cold_site" / "bootstrap.sh"
CLOUDFLARE_IPS = Path(__file__).resolve().parent / "data" / "cloudflare-ips.json"
TOKEN_PLACEHOLDER = "@@TASK_TOKEN@@"


def cloudflare_ranges() -> dict[str, Any]:
    return json.loads(CLOUDFLARE_IPS.read_text(encoding="utf-8"))


def render_bootstrap(config: WatchdogConfig, service: Service) -> str:
    """The bootstrap script with every value filled in except the task token."""
    cold = service.cold_site
    assert cold is not None
    dbname = service.database.dr.dbname if service.database else "postgres"
    values = {
        "SERVICE": service.name,
        "STATES_REGION": config.home_region,
        "BACKUP_BUCKET": cold.backup_bucket,
        "BACKUP_PREFIX": cold.backup_prefix,
        "DSN": f"host=/var/run/postgresql dbname={dbname} user=postgres",
        "HEALTH_URL": f"http://127.0.0.1{service.public_health_path}",
        "READY_TIMEOUT": str(cold.ready_timeout_seconds),
        "MANIFEST_KEY_SECRET": cold.backup_manifest.key_secret,
        "SECRETS_REGION": cold.region,
        "MAX_BACKUP_AGE": str(cold.backup_manifest.max_age_seconds),
        **_restore_values(cold.wal_archive),
    }
    script = BOOTSTRAP.read_text(encoding="utf-8")
    for key, value in values.items():
        if "'" in value:
            raise ValueError(f"cold site {key} must not contain a single quote: {value!r}")
        script = script.replace(f"@@{key}@@", value)
    return script


def _restore_values(archive: WalArchive | None) -> dict[str, str]:
    """How the bootstrap restores: the signed pg_dump, or base backup + archived WAL (barman-cloud)."""
    if archive is None:
        blank = ("WAL_SERVER", "S3_ENDPOINT", "PGDATA", "PG_START_COMMAND", "PG_STOP_COMMAND")
        return {"RESTORE_METHOD": "pg_dump", **dict.fromkeys(blank, "")}
    return {
        "RESTORE_METHOD": "barman-cloud",
        "WAL_SERVER": archive.server,
        "S3_ENDPOINT": archive.endpoint_url or "",
        "PGDATA": archive.pgdata,
        "PG_START_COMMAND": archive.start_command,
        "PG_STOP_COMMAND": archive.stop_command,
    }


def grant_backup_key(role: iam.IRole, cold: ColdSite) -> None:
    """kms:Decrypt with the backup bucket's key (`wal_archive.kms_key_arn`), through S3 only: reading
    an SSE-KMS object needs it (a HeadObject does not). Nothing when no key is configured."""
    key = cold.wal_archive.kms_key_arn if cold.wal_archive else None
    if key:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[key],
                conditions={"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
            )
        )


def launch_template_name(service: Service) -> str:
    cold = service.cold_site
    assert cold is not None
    return cold.launch_template_name or f"{naming.PREFIX}-{service.name}-cold"


@dataclass(frozen=True)
class ColdSiteTarget:
    """What the launch_cold_site function needs to know of one service's cold site."""

    service: str
    region: str
    launch_template_id: str
    instance_role_arn: str
    security_group_id: str
    cold: ColdSite


class ColdSiteLaunchTemplate(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: WatchdogConfig, service: Service
    ) -> None:
        super().__init__(scope, construct_id)
        cold = service.cold_site
        assert cold is not None
        stack = Stack.of(self)
        ranges = cloudflare_ranges()
        self.security_group = ec2.CfnSecurityGroup(
            self,
            "SecurityGroup",
            group_description=f"quorum-dr cold site of {service.name}: HTTPS from Cloudflare only "
            f"(ranges as of {ranges['as_of']})",
            vpc_id=cold.vpc_id,
            security_group_ingress=[
                ec2.CfnSecurityGroup.IngressProperty(
                    ip_protocol="tcp", from_port=443, to_port=443, cidr_ip=cidr, description="Cloudflare"
                )
                for cidr in ranges["ipv4"]
            ]
            + [
                ec2.CfnSecurityGroup.IngressProperty(
                    ip_protocol="tcp", from_port=443, to_port=443, cidr_ipv6=cidr, description="Cloudflare"
                )
                for cidr in ranges["ipv6"]
            ],
            security_group_egress=[
                ec2.CfnSecurityGroup.EgressProperty(
                    ip_protocol="tcp",
                    from_port=443,
                    to_port=443,
                    cidr_ip="0.0.0.0/0",
                    description="HTTPS out: S3 (backup), Step Functions (ready), package mirrors",
                )
            ],
        )
        self.role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description=f"quorum-dr cold site of {service.name}: read the backup prefix, report readiness",
        )
        bucket_arn = f"arn:{Aws.PARTITION}:s3:::{cold.backup_bucket}"
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{bucket_arn}/{cold.backup_prefix}*"])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{cold.backup_prefix}*"]}},
            )
        )
        if cold.wal_archive is not None:
            # barman-cloud-restore and -wal-restore first ask whether the bucket exists (HeadBucket),
            # which IAM authorizes as s3:ListBucket with no s3:prefix: without this they stop there.
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[bucket_arn],
                    conditions={"Null": {"s3:prefix": "true"}},
                )
            )
        grant_backup_key(self.role, cold)  # the restore reads base backups and WAL
        # SendTaskSuccess/SendTaskFailure have no resource-level permissions (the Service
        # Authorization Reference lists no resource type for them): a statement scoped to the state
        # machine's ARN never matches and the bootstrap's report would be denied. The task token is
        # the capability (unguessable, valid for one waiting task); the tightest IAM allows is `*`
        # limited to the home region, where the state machine runs.
        self.role.add_to_policy(
            iam.PolicyStatement(  # the backup manifest's HMAC key, to verify latest.json
                actions=["secretsmanager:GetSecretValue"],
                resources=[
                    f"arn:{Aws.PARTITION}:secretsmanager:{cold.region}:{Aws.ACCOUNT_ID}:secret:"
                    f"{cold.backup_manifest.key_secret}-??????"
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                resources=["*"],
                conditions={"StringEquals": {"aws:RequestedRegion": config.home_region}},
            )
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "states:SendTaskSuccess and SendTaskFailure support no resource-level permissions; the "
            "task token is the capability, and the statement is limited to the home region.",
        )
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:{cold.region}:<AWS::AccountId>:"
            f"secret:{cold.backup_manifest.key_secret}-??????]",
            "A secret referenced by name ends in the random 6-character suffix AWS adds; "
            "'-??????' matches exactly that suffix of the backup manifest key.",
        )
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{cold.backup_bucket}/{cold.backup_prefix}*]",
            "The backups are objects under the configured prefix with names the backup job chooses; "
            "the instance may read exactly that prefix and nothing else in the bucket.",
        )
        if cold.ami_ssm_parameter:
            image = ec2.MachineImage.resolve_ssm_parameter_at_launch(cold.ami_ssm_parameter)
        elif cold.ami_id:
            image = ec2.MachineImage.generic_linux({stack.region: cold.ami_id})
        else:
            raise ValueError(
                f"services.{service.name}.cold_site: give ami_id or ami_ssm_parameter; a launch template of "
                "your own (launch_template_name alone) is not created by this app"
            )
        self.image_ssm_parameter = cold.ami_ssm_parameter
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            launch_template_name=launch_template_name(service),
            machine_image=image,
            instance_type=ec2.InstanceType(cold.instance_type),
            role=self.role,
            security_group=ec2.SecurityGroup.from_security_group_id(
                self, "SecurityGroupRef", self.security_group.attr_group_id
            ),
            user_data=ec2.UserData.custom(render_bootstrap(config, service)),
            require_imdsv2=True,
            http_put_response_hop_limit=1,
            detailed_monitoring=True,
            instance_initiated_shutdown_behavior=ec2.InstanceInitiatedShutdownBehavior.TERMINATE,
        )


class ColdSiteStack(Stack):
    """The cold-site resources of every service whose cold site is in this stack's region."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: WatchdogConfig,
        services: list[Service],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.targets: list[ColdSiteTarget] = []
        for service in services:
            assert service.cold_site is not None
            site = ColdSiteLaunchTemplate(self, f"ColdSite-{service.name}", config=config, service=service)
            if service.cold_site.create_backup_bucket:
                BackupBucket(self, f"Backups-{service.name}", cold=service.cold_site)
            self.targets.append(
                ColdSiteTarget(
                    service=service.name,
                    region=service.cold_site.region,
                    launch_template_id=site.launch_template.launch_template_id or "",
                    instance_role_arn=site.role.role_arn,
                    security_group_id=site.security_group.attr_group_id,
                    cold=service.cold_site,
                )
            )
