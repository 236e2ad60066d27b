"""One quorum-dr Lambda function: its own role, its own log group, X-Ray, the bundled config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks import naming
from stacks.lambda_asset import ARCHITECTURE, CONFIG_FILE, HANDLER, RUNTIME, LambdaAssets
from stacks.nag import XRAY_REASON, acknowledge

LOG_RETENTION = logs.RetentionDays.THREE_MONTHS


class QuorumDrFunction(Construct):
    """`lambdas/<name>/handler.py` as a function named `quorum-dr-<name>`.

    The role starts empty apart from writing to its own log group and X-Ray; every other
    permission is added by the stack with exact actions on exact ARNs.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        assets: LambdaAssets,
        layer: lambda_.ILayerVersion,
        environment: Mapping[str, str],
        timeout: Duration,
        memory_mb: int = 256,
        secrets: Sequence[str] = (),
        star_only_actions: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        physical_name = naming.function_name(name)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{physical_name}",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"quorum-dr {name} function: exact actions on exact resources",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=physical_name,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=assets.function_code(name),
            layers=[layer],
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            timeout=timeout,
            memory_size=memory_mb,
            environment={
                "QUORUM_DR_CONFIG_PATH": CONFIG_FILE,
                "POWERTOOLS_SERVICE_NAME": "quorum-dr",
                "POWERTOOLS_METRICS_NAMESPACE": "QuorumDR",
                **environment,
            },
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"{RUNTIME.name}, not the newest runtime: the handler tests run on this Python in CI "
            "(make test-lambda-runtime); move up when the CI image has the next one.",
        )
        # The role's policy is created with the function (tracing), so the function depends on it.
        if star_only_actions:
            self.role.add_to_policy(iam.PolicyStatement(actions=list(star_only_actions), resources=["*"]))
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            XRAY_REASON
            + (
                f" {', '.join(star_only_actions)} likewise (no resource-level permissions)."
                if star_only_actions
                else ""
            ),
        )
        self.secret_names = sorted(set(secrets))
        for index, secret_name in enumerate(self.secret_names):
            secret = secretsmanager.Secret.from_secret_name_v2(self, f"Secret{index}", secret_name)
            secret.grant_read(self.role)
            acknowledge(
                self.role,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:"
                f"<AWS::Region>:<AWS::AccountId>:secret:{secret_name}-??????]",
                "A secret referenced by name ends in the random 6-character suffix AWS adds; "
                "'-??????' matches exactly that suffix of this one named secret.",
            )


def dependency_layer(scope: Construct, assets: LambdaAssets) -> lambda_.LayerVersion:
    """requirements.txt installed for the Lambda platform, shared by the functions of a stack."""
    return lambda_.LayerVersion(
        scope,
        "Dependencies",
        code=assets.layer_code(),
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        description="quorum-dr runtime dependencies (requirements.txt)",
    )
