"""The results table (probe results, TTL one day) and the state table (state, lock, incidents)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from stacks import naming

TTL_ATTRIBUTE = "expires_at"


def _table(scope: Construct, construct_id: str, name: str, removal: RemovalPolicy) -> dynamodb.Table:
    return dynamodb.Table(
        scope,
        construct_id,
        table_name=name,
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=TTL_ATTRIBUTE,
        removal_policy=removal,
    )


class Tables(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # Results expire after a day and can be rebuilt by probing; the state table is the audit
        # record of every incident and outlives the stack.
        self.results = _table(self, "Results", naming.RESULTS_TABLE, RemovalPolicy.DESTROY)
        self.state = _table(self, "State", naming.STATE_TABLE, RemovalPolicy.RETAIN)
