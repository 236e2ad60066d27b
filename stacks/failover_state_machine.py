"""A state machine of statemachines/ (the failover, the planned switchover): the ASL rendered from
its YAML source, inlined with its substitutions."""

from __future__ import annotations

import re
from collections.abc import Mapping

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from quorum_dr.state_machines import definition_json
from stacks import naming
from stacks.nag import acknowledge

SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def substitutions_used(definition: str) -> set[str]:
    return set(SUBSTITUTION.findall(definition))


class FailoverStateMachine(Construct):
    """Standard workflow, logging level ALL to its own log group, X-Ray tracing.

    The role may invoke only the functions passed in, and touch only the state table and the
    alert topic (the ASL's direct SDK integrations). The failover's by default; the planned
    switchover's with `definition_name="switchover"` and its own name.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        substitutions: Mapping[str, str],
        definition_name: str = "failover",
        state_machine_name: str = naming.STATE_MACHINE,
    ) -> None:
        super().__init__(scope, construct_id)
        definition = definition_json(definition_name)
        missing = substitutions_used(definition) - set(substitutions)
        if missing:
            raise ValueError(f"{definition_name} uses substitutions nobody supplies: {sorted(missing)}")
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{state_machine_name}",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"quorum-dr {definition_name} state machine: its own functions, table and topic only",
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(definition),
            definition_substitutions=dict(substitutions),
            role=self.role,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery (logs:CreateLogDelivery, GetLogDelivery, ...) and X-Ray "
            "(PutTraceSegments, GetSamplingRules, ...) support no resource-level permissions; "
            "AWS requires Resource '*'.",
        )
