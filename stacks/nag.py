"""cdk-nag: the AwsSolutions pack on every stack, and every acknowledgement in one place.

Each acknowledgement names the finding id (the full `Rule[finding]` for IAM4/IAM5) and the reason,
on the construct it is about, never on a whole stack. `ACKNOWLEDGEMENTS` keeps what was
acknowledged, so tests and the release notes can list it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from aws_cdk import Acknowledgment, App, CfnElement, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

XRAY_REASON = (
    "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions; "
    "AWS requires Resource '*'."
)


@dataclass(frozen=True)
class Acknowledgement:
    path: str
    finding: str
    reason: str


ACKNOWLEDGEMENTS: list[Acknowledgement] = []


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=finding, reason=reason))
    ACKNOWLEDGEMENTS.append(Acknowledgement(scope.node.path, finding, reason))


def enable_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id of an L2 construct's resource, as cdk-nag names it in findings."""
    stack = Stack.of(construct)
    return str(stack.resolve(stack.get_logical_id(cast(CfnElement, construct.node.default_child))))
