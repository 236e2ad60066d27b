"""The IAM side of the IAM-enforced tests: wildcard matching, the ARNs a call targets, the test copy
of a policy, and the resolver of the synthesized templates' intrinsics."""

from __future__ import annotations

from typing import Any

import pytest

from quorum_dr.adapters.postgres_promoter import PostgresPromoter
from quorum_dr.config import Database
from quorum_dr_local.iam_enforcement import Call, IamEnforcement, request_of, widened
from quorum_dr_local.iam_policies import ACCOUNT, Resolver, StackTemplate, Statement, allows, matches

TABLE = f"arn:aws:dynamodb:eu-west-2:{ACCOUNT}:table/quorum-dr-state"


def test_iam_wildcards_cross_colons_and_slashes_and_question_marks_match_one_character() -> None:
    assert matches("arn:aws:s3:::bucket/postgres/*", "arn:aws:s3:::bucket/postgres/a/b:c.dump")
    assert matches("arn:aws:secretsmanager:*:secret:db-??????", "arn:aws:secretsmanager:r:1:secret:db-AbCdEf")
    assert not matches(
        "arn:aws:secretsmanager:*:secret:db-??????", "arn:aws:secretsmanager:r:1:secret:db-dr-AbCdEf"
    )
    assert not matches("arn:aws:s3:::bucket/postgres/*", "arn:aws:s3:::bucket/other")
    assert matches("dynamodb:getitem", "dynamodb:GetItem", ignore_case=True)


def test_allows_needs_the_action_and_the_exact_resource_and_a_deny_wins() -> None:
    grant = [Statement("Allow", ["dynamodb:GetItem", "dynamodb:Query"], [TABLE])]
    assert allows(grant, "dynamodb:GetItem", TABLE)
    assert not allows(grant, "dynamodb:UpdateItem", TABLE)
    assert not allows(grant, "dynamodb:GetItem", TABLE.replace("state", "results"))
    assert not allows([*grant, Statement("Deny", ["dynamodb:*"], ["*"])], "dynamodb:GetItem", TABLE)


def test_an_action_without_resource_level_permissions_is_allowed_only_by_star() -> None:
    machine = f"arn:aws:states:eu-west-2:{ACCOUNT}:stateMachine:quorum-dr-failover"
    action, resources = request_of(
        "states", "SendTaskSuccess", {"taskToken": "t", "output": "{}"}, "eu-west-2"
    )
    assert (action, resources) == ("states:SendTaskSuccess", ["*"])
    assert not allows([Statement("Allow", [action], [machine])], action, "*")
    assert allows([Statement("Allow", [action], ["*"])], action, "*")


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"),
    [
        ("dynamodb", "UpdateItem", {"TableName": "quorum-dr-state"}, ("dynamodb:UpdateItem", [TABLE])),
        (
            "lambda",
            "Invoke",
            {"FunctionName": "quorum-dr-probe"},
            ("lambda:InvokeFunction", [f"arn:aws:lambda:eu-west-2:{ACCOUNT}:function:quorum-dr-probe"]),
        ),
        (
            "ssm",
            "GetParameter",
            {"Name": "/quorum-dr/ami"},
            ("ssm:GetParameter", [f"arn:aws:ssm:eu-west-2:{ACCOUNT}:parameter/quorum-dr/ami"]),
        ),
        ("ec2", "DescribeAddresses", {"AllocationIds": ["eipalloc-1"]}, ("ec2:DescribeAddresses", ["*"])),
        (
            "events",
            "PutEvents",
            {"Entries": [{"EventBusName": "quorum-dr"}]},
            ("events:PutEvents", [f"arn:aws:events:eu-west-2:{ACCOUNT}:event-bus/quorum-dr"]),
        ),
    ],
)
def test_the_action_and_arns_of_a_call(
    service: str, operation: str, params: dict[str, Any], expected: tuple[str, list[str]]
) -> None:
    assert request_of(service, operation, params, "eu-west-2") == expected


def test_a_secret_named_without_its_suffix_matches_the_grant_of_that_secret_only() -> None:
    _, [arn] = request_of("secretsmanager", "GetSecretValue", {"SecretId": "db-admin"}, "eu-west-2")
    grant = [Statement("Allow", ["secretsmanager:GetSecretValue"], [arn.rsplit("-", 1)[0] + "-??????"])]
    _, [other] = request_of("secretsmanager", "GetSecretValue", {"SecretId": "db-admin-dr"}, "eu-west-2")
    assert allows(grant, "secretsmanager:GetSecretValue", arn)
    assert not allows(grant, "secretsmanager:GetSecretValue", other)


def test_a_call_nobody_mapped_is_a_problem_not_a_pass() -> None:
    with pytest.raises(KeyError, match="no resource mapping for kinesis:PutRecord"):
        request_of("kinesis", "PutRecord", {}, "eu-west-2")


def test_the_test_copy_widens_resources_drops_conditions_and_names_lambda_invoke_as_moto_does() -> None:
    copy = widened(
        [
            Statement("Allow", ["lambda:InvokeFunction"], ["arn:aws:lambda:r:1:function:f"]),
            Statement(
                "Allow", ["ec2:CreateTags"], ["arn:x"], {"StringEquals": {"ec2:CreateAction": "RunInstances"}}
            ),
        ]
    )
    assert copy["Statement"] == [
        {"Effect": "Allow", "Action": ["lambda:InvokeFunction", "lambda:Invoke"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": "*"},
    ]


def test_unauthorized_lists_each_call_its_unwidened_policy_does_not_allow() -> None:
    enforcement = IamEnforcement(
        {"function:notify": [Statement("Allow", ["sns:Publish"], ["arn:t"])]}, region="r"
    )
    enforcement.calls += [
        Call("function:notify", "sns:Publish", ("arn:t",)),
        Call("function:notify", "dynamodb:UpdateItem", (TABLE,)),
        Call("function:other", "sns:Publish", ("arn:t",)),
        Call("function:notify", "kinesis:PutRecord", (), problem="no resource mapping for kinesis:PutRecord"),
    ]
    assert enforcement.unauthorized() == [
        f"function:notify: dynamodb:UpdateItem on {TABLE} is not allowed",
        "function:notify: no resource mapping for kinesis:PutRecord",
        "function:other: sns:Publish by a principal with no synthesized policy",
    ]


def test_the_resolver_turns_intrinsics_into_arns_of_the_local_account() -> None:
    control = StackTemplate(
        "Control",
        "eu-west-2",
        {
            "Resources": {
                "State": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "quorum-dr-state"}},
                "Reader": {"Type": "Custom::CrossRegionExportReader", "Properties": {}},
            }
        },
    )
    cold = StackTemplate(
        "Cold",
        "us-west-2",
        {
            "Resources": {
                "Template": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {"LaunchTemplateName": "lt"}},
                "Writer": {
                    "Type": "Custom::CrossRegionExportWriter",
                    "Properties": {"WriterProps": {"exports": {"/cdk/exports/x": {"Ref": "Template"}}}},
                },
            }
        },
    )
    resolver = Resolver({"Control": control, "Cold": cold}, {"launch_template:lt": "lt-0123"})
    joined = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":ssm:", {"Ref": "AWS::Region"}, ":x"]]}
    assert resolver.resolve(joined, control) == "arn:aws:ssm:eu-west-2:x"
    assert resolver.resolve({"Fn::GetAtt": ["State", "Arn"]}, control) == TABLE
    assert resolver.resolve({"Fn::Sub": "${State.Arn}/index/*"}, control) == TABLE + "/index/*"
    assert resolver.resolve({"Fn::GetAtt": ["Reader", "/cdk/exports/x"]}, control) == "lt-0123"
    assert resolver.resolve({"Ref": "Missing"}, control).startswith("unresolved:")


class CountingSecrets:
    def __init__(self) -> None:
        self.read: list[str] = []

    def get_json(self, name: str) -> dict[str, Any]:
        self.read.append(name)
        return {"username": "postgres", "password": "pw"}


def test_the_promoter_reads_only_the_secret_of_the_database_a_step_talks_to() -> None:
    database = Database.model_validate(
        {
            "main": {"host": "10.0.0.1", "port": 5432, "dbname": "app", "credentials_secret": "db-main"},
            "dr": {"host": "10.0.0.2", "port": 5432, "dbname": "app", "credentials_secret": "db-dr"},
        }
    )
    secrets = CountingSecrets()
    promoter = PostgresPromoter.from_config(database, secrets)  # type: ignore[arg-type]
    assert secrets.read == []
    assert promoter.dr.host == "10.0.0.2" and secrets.read == ["db-dr"]
    fencer = PostgresPromoter.from_config(database, secrets)  # type: ignore[arg-type]
    assert fencer.old_primary is not None and fencer.old_primary.host == "10.0.0.1"
    assert secrets.read == ["db-dr", "db-main"]
