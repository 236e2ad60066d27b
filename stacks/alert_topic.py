"""The alert topic: where every alert of the watchdog goes (operators subscribe to it)."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks import naming


class AlertTopic(Construct):
    """The SNS topic of every alert: KMS-encrypted with its own key (CloudWatch and EventBridge
    may use it to publish), SSL enforced."""

    def __init__(self, scope: Construct, construct_id: str, *, topic_name: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{naming.PREFIX}-alerts",
            description="quorum-dr alert topic encryption",
            enable_key_rotation=True,
        )
        for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
            self.key.grant(iam.ServicePrincipal(service), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=topic_name,
            master_key=self.key,
            enforce_ssl=True,
            display_name="quorum-dr",
        )

    def grant_publish(self, role: iam.IRole) -> None:
        """sns:Publish on the topic and the two key actions publishing to an encrypted topic needs."""
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[self.key.key_arn])
        )
