"""The IAM policies the CDK app synthesizes, per principal, as concrete statements (development only).

`synthesize(config_data)` builds the app (`stacks.deployment.build`) for a config, offline and
without bundling, and `principal_policies(templates)` finds every principal the app creates and
the statements of its role, with the CloudFormation intrinsics that appear in them resolved to
concrete ARNs for the local account (`Ref`, `Fn::GetAtt`, `Fn::Join`, `Fn::Sub`, `Fn::Select`,
`Fn::Split`, and the cross-region export readers CDK writes for `cross_region_references`).

Principals: `function:<handler dir>` (one per action function of either state machine),
`probe:<region>`, `state_machine` (the failover state machine's role), `state_machine:switchover`
(the planned switchover's) and `cold_site:<service>` (the instance role).

`allows(statements, action, resource)` evaluates IAM's own matching on the unwidened statements:
`*` matches any run of characters (also across `:` and `/`), `?` exactly one, actions are
case-insensitive, an explicit Deny wins. Conditions are not evaluated (see README "What the
tests prove about AWS").
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
PARTITION = "aws"
UNRESOLVED = "unresolved:"


@dataclass(frozen=True)
class StackTemplate:
    name: str
    region: str
    template: dict[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template.get("Resources", {})
        return resources


@dataclass
class Statement:
    effect: str
    actions: list[str]
    resources: list[str]
    conditions: dict[str, Any] = field(default_factory=dict)

    def as_json(self, *, resource: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "Effect": self.effect,
            "Action": self.actions,
            "Resource": [resource] if resource else self.resources,
        }
        if self.conditions and resource is None:
            body["Condition"] = self.conditions
        return body


def synthesize(config_data: dict[str, Any], *, nag: bool = False) -> dict[str, StackTemplate]:
    """Every stack of the app built from `config_data` (the watchdog config as a dict)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import os

    for name in ("END_OF_LIFE", "UNTESTED", "DEPRECATED"):
        os.environ.setdefault(f"JSII_SILENCE_WARNING_{name}_NODE_VERSION", "1")
    from aws_cdk import App

    from stacks.deployment import build

    with tempfile.TemporaryDirectory(prefix="quorum-dr-iam-synth-") as tmp:
        config_path = Path(tmp) / "watchdog.json"
        config_path.write_text(json.dumps(config_data), encoding="utf-8")
        outdir = Path(tmp) / "cdk.out"
        app = App(context={"config": str(config_path), "skip_bundling": True, "nag": nag}, outdir=str(outdir))
        deployment = build(app)
        app.synth()
        return {
            stack.stack_name: StackTemplate(
                stack.stack_name,
                stack.region,
                json.loads((outdir / f"{stack.artifact_id}.template.json").read_text(encoding="utf-8")),
            )
            for stack in deployment.stacks
        }


class Resolver:
    """Resolves the intrinsic functions of one app's templates to concrete strings.

    `physical` maps what only the running test knows (a launch template's id, by its name) to its
    value: `{"launch_template:<name>": "lt-..."}`. What cannot be resolved becomes a string
    starting with `unresolved:`, which matches no real ARN."""

    def __init__(self, stacks: dict[str, StackTemplate], physical: dict[str, str] | None = None) -> None:
        self.stacks = stacks
        self.physical = dict(physical or {})

    def resolve(self, value: Any, stack: StackTemplate) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return [self.resolve(v, stack) for v in value]
        if not isinstance(value, dict) or len(value) != 1:
            raise ValueError(f"cannot resolve {json.dumps(value)[:200]} in {stack.name}")
        ((kind, arg),) = value.items()
        if kind == "Ref":
            return self._ref(arg, stack)
        if kind == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self._get_att(logical, attribute, stack)
        if kind == "Fn::Join":
            separator, parts = arg
            return separator.join(str(self.resolve(p, stack)) for p in parts)
        if kind == "Fn::Sub":
            return self._sub(arg, stack)
        if kind == "Fn::Select":
            index, items = arg
            return self.resolve(items, stack)[int(self.resolve(index, stack))]
        if kind == "Fn::Split":
            separator, text = arg
            return str(self.resolve(text, stack)).split(separator)
        return f"{UNRESOLVED}{kind}"

    def _sub(self, arg: Any, stack: StackTemplate) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg
        local = {k: self.resolve(v, stack) for k, v in variables.items()}

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return str(self._get_att(logical, attribute, stack))
            return str(self._ref(name, stack))

        return re.sub(r"\$\{([^}!]+)\}", sub, text)

    def _ref(self, name: str, stack: StackTemplate) -> str:
        pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": stack.region,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack.name,
        }
        if name in pseudo:
            return pseudo[name]
        resource = stack.resources.get(name)
        if resource is None:
            return f"{UNRESOLVED}Ref:{name}"
        kind, props = resource["Type"], resource.get("Properties", {})
        region, prefix = stack.region, f"arn:{PARTITION}"
        if kind == "AWS::DynamoDB::Table":
            return str(self.resolve(props["TableName"], stack))
        if kind == "AWS::Lambda::Function":
            return str(self.resolve(props["FunctionName"], stack))
        if kind == "AWS::SNS::Topic":
            return f"{prefix}:sns:{region}:{ACCOUNT}:{self.resolve(props['TopicName'], stack)}"
        if kind == "AWS::StepFunctions::StateMachine":
            name_ = self.resolve(props["StateMachineName"], stack)
            return f"{prefix}:states:{region}:{ACCOUNT}:stateMachine:{name_}"
        if kind == "AWS::EC2::LaunchTemplate":
            template_name = self.resolve(props["LaunchTemplateName"], stack)
            return self.physical.get(f"launch_template:{template_name}", f"{UNRESOLVED}{name}")
        if kind == "AWS::IAM::Role":
            return name
        if kind == "AWS::SQS::Queue":  # Ref is the queue's URL
            return f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{self.resolve(props['QueueName'], stack)}"
        return f"{UNRESOLVED}{kind}:{name}"

    def _get_att(self, logical: str, attribute: str, stack: StackTemplate) -> str:
        resource = stack.resources.get(logical)
        if resource is None:
            return f"{UNRESOLVED}GetAtt:{logical}"
        kind, props = resource["Type"], resource.get("Properties", {})
        region, prefix = stack.region, f"arn:{PARTITION}"
        if kind == "AWS::DynamoDB::Table" and attribute == "Arn":
            return f"{prefix}:dynamodb:{region}:{ACCOUNT}:table/{self._ref(logical, stack)}"
        if kind == "AWS::Lambda::Function" and attribute == "Arn":
            return f"{prefix}:lambda:{region}:{ACCOUNT}:function:{self._ref(logical, stack)}"
        if kind == "AWS::Logs::LogGroup" and attribute == "Arn":
            return (
                f"{prefix}:logs:{region}:{ACCOUNT}:log-group:{self.resolve(props['LogGroupName'], stack)}:*"
            )
        if kind == "AWS::SNS::Topic" and attribute == "TopicArn":
            return self._ref(logical, stack)
        if kind == "AWS::KMS::Key" and attribute == "Arn":
            return f"{prefix}:kms:{region}:{ACCOUNT}:key/{logical}"
        if kind == "AWS::IAM::Role" and attribute == "Arn":
            return f"{prefix}:iam::{ACCOUNT}:role/{logical}"
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            return f"{prefix}:sqs:{region}:{ACCOUNT}:{self.resolve(props['QueueName'], stack)}"
        if kind == "Custom::CrossRegionExportReader":
            return self._export(attribute)
        return f"{UNRESOLVED}{kind}.{attribute}:{logical}"

    def _export(self, name: str) -> str:
        for other in self.stacks.values():
            for resource in other.resources.values():
                if resource["Type"] != "Custom::CrossRegionExportWriter":
                    continue
                exports = resource["Properties"]["WriterProps"]["exports"]
                if name in exports:
                    return str(self.resolve(exports[name], other))
        return f"{UNRESOLVED}export:{name}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(resolver: Resolver, stack: StackTemplate, role: str) -> list[Statement]:
    props = stack.resources[role].get("Properties", {})
    if props.get("ManagedPolicyArns"):
        raise ValueError(f"{stack.name}/{role} has managed policies; only inline statements are expected")
    documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
    for resource in stack.resources.values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"].get(
            "Roles", []
        ):
            documents.append(resource["Properties"]["PolicyDocument"])
    statements = []
    for document in documents:
        for raw in _as_list(document["Statement"]):
            if "NotAction" in raw or "NotResource" in raw:
                raise ValueError(f"{stack.name}/{role}: NotAction/NotResource are not evaluated here")
            statements.append(
                Statement(
                    effect=raw["Effect"],
                    actions=[str(a) for a in _as_list(raw["Action"])],
                    resources=[str(resolver.resolve(r, stack)) for r in _as_list(raw["Resource"])],
                    conditions=raw.get("Condition", {}),
                )
            )
    return statements


def _role_of(value: Any) -> str:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    raise ValueError(f"a role given as {value!r}, not as Fn::GetAtt of a role in the same stack")


def principal_policies(
    stacks: dict[str, StackTemplate], physical: dict[str, str] | None = None
) -> dict[str, list[Statement]]:
    """Each principal's statements, resolved (see the module docstring for the keys)."""
    from stacks import naming

    by_physical = {
        naming.function_name(n): n
        for n in (*naming.ACTION_FUNCTIONS, *naming.REHEARSAL_FUNCTIONS, naming.READINESS)
    }
    resolver = Resolver(stacks, physical)
    policies: dict[str, list[Statement]] = {}
    for stack in stacks.values():
        for logical, resource in stack.resources.items():
            kind, props = resource["Type"], resource.get("Properties", {})
            if kind == "AWS::Lambda::Function":
                name = str(resolver.resolve(props.get("FunctionName", logical), stack))
                if name == naming.function_name(naming.PROBE):
                    key = f"probe:{stack.region}"
                elif name in by_physical:
                    key = f"function:{by_physical[name]}"
                else:
                    continue  # CDK's own helper functions (log retention, export readers)
                policies[key] = _role_statements(resolver, stack, _role_of(props["Role"]))
            elif kind == "AWS::StepFunctions::StateMachine":
                policies[state_machine_key(str(resolver.resolve(props["StateMachineName"], stack)))] = (
                    _role_statements(resolver, stack, _role_of(props["RoleArn"]))
                )
            elif kind == "AWS::IAM::Role":
                description = str(props.get("Description", ""))
                found = re.match(r"quorum-dr cold site of ([^:]+):", description)
                if found:
                    policies[f"cold_site:{found.group(1)}"] = _role_statements(resolver, stack, logical)
    return policies


def state_machine_key(name: str) -> str:
    """`quorum-dr-failover` -> `state_machine` (as it always was), `quorum-dr-switchover` ->
    `state_machine:switchover`."""
    from stacks import naming

    if name == naming.STATE_MACHINE:
        return "state_machine"
    return "state_machine:" + name.removeprefix(naming.PREFIX + "-")


# -- IAM matching ---------------------------------------------------------------------------------


def _glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    parts = ["^"]
    for char in pattern:
        parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    parts.append("$")
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard matching: `*` any run of characters (across `:` and `/`), `?` one."""
    return bool(_glob(pattern, ignore_case=ignore_case).match(value))


def allows(statements: list[Statement], action: str, resource: str) -> bool:
    """Whether the statements allow `action` on `resource` (an explicit Deny wins). A resource of
    `*` is an action without resource-level permissions: only a `*` statement allows it."""

    def applies(statement: Statement) -> bool:
        return any(matches(a, action, ignore_case=True) for a in statement.actions) and any(
            matches(r, resource) for r in statement.resources
        )

    if any(s.effect == "Deny" and applies(s) for s in statements):
        return False
    return any(s.effect == "Allow" and applies(s) for s in statements)
