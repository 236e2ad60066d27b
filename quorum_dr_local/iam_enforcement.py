"""IAM enforced in moto, per principal, from the synthesized policies (development only).

moto checks IAM for requests signed with a known access key once its initial no-auth count is
spent, but it evaluates the ACTION only: the request's resource is `*` for every service but S3,
and a statement with a Condition counts as an explicit deny. So the check has two sides:

(a) moto enforces the actions. Each principal (`function:<name>`, `probe:<region>`,
    `cold_site:<service>`) gets a moto IAM role whose policy is its synthesized statements with
    every Resource widened to `*` and Conditions dropped; its code runs with credentials assumed
    through STS. The Step Functions engine signs its own calls (Lambda Invoke, the direct DynamoDB
    integrations) with the fixed key `ak`: that key is given to an IAM user holding the state
    machine role's widened policy, so the engine is held to the state machine's actions.
(b) every call is recorded (botocore `before-parameter-build`) with the IAM action and the ARNs it
    targets, and `unauthorized()` lists each one the UNWIDENED statements do not allow
    (`iam_policies.allows`: IAM wildcards, exact ARNs).

Which principal a client belongs to is decided when the client is created: inside `acting_as(key)`
(the harness wraps each handler call in it, and it follows the handler into the threads it starts
through ThreadPoolExecutor) the client gets that principal's credentials; outside, the test's own
operator credentials (allowed everything). Adapters that cache clients therefore need one set of
ports per principal: `ports_for` builds them through the production wiring, once per principal.

`denials` collects every request moto refused (AccessDenied, an unknown key): a refusal caught by
a Retry/Catch in the ASL still fails `problems()`.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from quorum_dr_local.iam_policies import ACCOUNT, Statement, allows

OPERATOR = "operator"
ENGINE = "state_machine"
ENGINE_KEY, ENGINE_SECRET = "ak", "sk"  # moto's Step Functions engine signs with these
SECRET_SUFFIX = "-AbCdEf"  # what AWS appends to a secret's name in its ARN (6 characters)

# The IAM action of an API operation, where the two names differ.
_ACTION_NAMES = {
    ("lambda", "Invoke"): "lambda:InvokeFunction",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
}
# moto names an action after the operation (Lambda's Invoke): let the widened copy say both.
_MOTO_ALIASES = {"lambda:InvokeFunction": ["lambda:Invoke"]}
_NO_RESOURCE_LEVEL = {
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
    "sts:GetCallerIdentity",
}

_principal: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "quorum_dr_iam_principal", default=None
)


@dataclass(frozen=True)
class Call:
    principal: str
    action: str
    resources: tuple[str, ...]
    problem: str | None = None  # set when the call's resource could not be derived


def widened(statements: list[Statement]) -> dict[str, Any]:
    """The test copy of a policy: the same actions (plus moto's names for them) on `*`, no
    Conditions (moto would count a Condition it cannot evaluate as a deny)."""
    body = []
    for statement in statements:
        actions = [*statement.actions, *(a for s in statement.actions for a in _MOTO_ALIASES.get(s, []))]
        body.append({"Effect": statement.effect, "Action": actions, "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": body}


def _arn(service: str, region: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


def _name_or_arn(value: str, service: str, region: str, resource: str) -> str:
    return value if value.startswith("arn:") else _arn(service, region, f"{resource}{value}")


def _dynamodb(operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    if operation == "TransactWriteItems":
        tables = {next(iter(item.values()))["TableName"] for item in params["TransactItems"]}
    elif operation.startswith("Batch"):
        tables = set(params["RequestItems"])
    else:
        tables = {params["TableName"]}
    return sorted(_name_or_arn(t, "dynamodb", region, "table/") for t in tables)


def _secretsmanager(operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    secret = str(params["SecretId"])  # a name matches `name-??????`: AWS appends 6 characters
    return [
        secret
        if secret.startswith("arn:")
        else _arn("secretsmanager", region, f"secret:{secret}{SECRET_SUFFIX}")
    ]


def _ec2(operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    if operation.startswith("Describe"):
        return ["*"]
    if operation == "RunInstances":
        resources = [_arn("ec2", region, "instance/*")]
        template = params.get("LaunchTemplate") or {}
        if template.get("LaunchTemplateId"):
            resources.append(_arn("ec2", region, f"launch-template/{template['LaunchTemplateId']}"))
        if params.get("ImageId"):
            resources.append(f"arn:aws:ec2:{region}::image/{params['ImageId']}")
        if params.get("SubnetId"):
            resources.append(_arn("ec2", region, f"subnet/{params['SubnetId']}"))
        return resources
    if operation == "AssociateAddress":
        return [
            _arn("ec2", region, f"elastic-ip/{params['AllocationId']}"),
            _arn("ec2", region, f"instance/{params['InstanceId']}"),
        ]
    if operation == "TerminateInstances":
        return [_arn("ec2", region, f"instance/{i}") for i in params["InstanceIds"]]
    raise KeyError(f"no resource mapping for ec2:{operation}")


def _events(operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    buses = {entry.get("EventBusName", "default") for entry in params["Entries"]}
    return sorted(_name_or_arn(b, "events", region, "event-bus/") for b in buses)


def _ssm(operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    names = [params["Name"]] if operation == "GetParameter" else list(params["Names"])
    return [_arn("ssm", region, "parameter/" + n.lstrip("/")) for n in names]


def _states(operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    return [params.get("stateMachineArn") or params["executionArn"]]


def _lambda(operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    return [_name_or_arn(params["FunctionName"], "lambda", region, "function:")]


def _s3(operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    key = f"/{params['Key']}" if operation in ("GetObject", "HeadObject") else ""
    return [f"arn:aws:s3:::{params['Bucket']}{key}"]


def _sqs(operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    # https://sqs.REGION.amazonaws.com/ACCOUNT/NAME (or the legacy host): the ARN from the path
    account, name = params["QueueUrl"].rstrip("/").split("/")[-2:]
    return [f"arn:aws:sqs:{region}:{account}:{name}"]


# (service, operation or None for every operation of the service) -> the ARNs a call targets
_RESOURCES: dict[tuple[str, str | None], Callable[[str, Mapping[str, Any], str], list[str]]] = {
    ("dynamodb", None): _dynamodb,
    ("secretsmanager", "GetSecretValue"): _secretsmanager,
    ("secretsmanager", "DescribeSecret"): _secretsmanager,
    ("sns", "Publish"): lambda op, p, r: [p["TopicArn"]],
    ("lambda", "Invoke"): _lambda,
    ("events", "PutEvents"): _events,
    ("ssm", "GetParameter"): _ssm,
    ("ssm", "GetParameters"): _ssm,
    ("states", "StartExecution"): _states,
    ("states", "DescribeExecution"): _states,
    ("states", "StopExecution"): _states,
    ("ec2", None): _ec2,
    ("s3", "GetObject"): _s3,
    ("s3", "HeadObject"): _s3,
    ("s3", "ListObjectsV2"): _s3,
    ("sqs", "SendMessage"): _sqs,
}


def request_of(
    signing_name: str, operation: str, params: Mapping[str, Any], region: str
) -> tuple[str, list[str]]:
    """The IAM action of an API call and the ARNs it targets (`*`: no resource-level permissions).
    Raises KeyError for a call this table does not know yet: add it rather than guess."""
    action = _ACTION_NAMES.get((signing_name, operation), f"{signing_name}:{operation}")
    if action in _NO_RESOURCE_LEVEL:
        return action, ["*"]
    derive = _RESOURCES.get((signing_name, operation)) or _RESOURCES.get((signing_name, None))
    if derive is None:
        raise KeyError(f"no resource mapping for {signing_name}:{operation}")
    return action, derive(operation, params, region)


class IamEnforcement:
    """See the module docstring. Use inside `mock_aws`: `install()` before the test's resources
    are created (the operator's calls are free until `enforce()`), `enforce()` once they are."""

    def __init__(self, policies: Mapping[str, list[Statement]], *, region: str) -> None:
        self.policies = dict(policies)
        self.region = region
        self.credentials: dict[str, dict[str, str]] = {}
        self._by_key: dict[str, str] = {}
        self.calls: list[Call] = []
        self.denials: list[str] = []
        self._lock = threading.Lock()
        self._stack = ExitStack()
        self._ports: dict[str, Any] = {}

    # -- set-up ---------------------------------------------------------------------------------

    def install(self) -> IamEnforcement:
        import boto3
        from moto.iam.models import iam_backends

        plain = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        iam = boto3.client("iam", region_name=self.region, **plain)
        sts = boto3.client("sts", region_name=self.region, **plain)
        everything = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        operator = iam.create_user(UserName="quorum-dr-test-operator")["User"]["Arn"]
        iam.put_user_policy(
            UserName="quorum-dr-test-operator", PolicyName="all", PolicyDocument=json.dumps(everything)
        )
        key = iam.create_access_key(UserName="quorum-dr-test-operator")["AccessKey"]
        self._add(OPERATOR, key["AccessKeyId"], key["SecretAccessKey"])
        if ENGINE in self.policies:
            iam.create_user(UserName="quorum-dr-sfn-engine")
            iam.put_user_policy(
                UserName="quorum-dr-sfn-engine",
                PolicyName="state-machine-role",
                PolicyDocument=json.dumps(widened(self.policies[ENGINE])),
            )
            iam.create_access_key(UserName="quorum-dr-sfn-engine")
            user = iam_backends[ACCOUNT]["aws"].get_user("quorum-dr-sfn-engine")
            user.access_keys[0].access_key_id = ENGINE_KEY
            user.access_keys[0].secret_access_key = ENGINE_SECRET
            self._by_key[ENGINE_KEY] = ENGINE
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": operator}, "Action": "sts:AssumeRole"}],
        }
        for index, (principal, statements) in enumerate(sorted(self.policies.items())):
            if principal == ENGINE:
                continue
            role_name = f"quorum-dr-test-{index}"
            role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
            iam.put_role_policy(
                RoleName=role_name, PolicyName="synthesized", PolicyDocument=json.dumps(widened(statements))
            )
            credentials = sts.assume_role(RoleArn=role["Arn"], RoleSessionName=principal.replace(":", "-"))[
                "Credentials"
            ]
            self._add(
                principal,
                credentials["AccessKeyId"],
                credentials["SecretAccessKey"],
                credentials["SessionToken"],
            )
        self._patch()
        return self

    def _add(self, principal: str, key: str, secret: str, token: str | None = None) -> None:
        self.credentials[principal] = {"aws_access_key_id": key, "aws_secret_access_key": secret}
        if token:
            self.credentials[principal]["aws_session_token"] = token
        self._by_key[key] = principal

    def enforce(self) -> None:
        from moto.core.authorization import enable_iam_authentication

        self._stack.enter_context(enable_iam_authentication())

    def close(self) -> None:
        self._stack.close()

    # -- principals -----------------------------------------------------------------------------

    @contextmanager
    def acting_as(self, principal: str) -> Iterator[None]:
        if principal not in self.credentials:
            raise KeyError(f"no synthesized policy for {principal!r}; known: {sorted(self.credentials)}")
        token = _principal.set(principal)
        try:
            yield
        finally:
            _principal.reset(token)

    def handler_as(
        self, principal: Callable[[Any], str], handler: Callable[[Any, Any], Any]
    ) -> Callable[[Any, Any], Any]:
        """`handler`, run as the principal `principal(context)` names."""

        @functools.wraps(handler)
        def run(event: Any, context: Any) -> Any:
            with self.acting_as(principal(context)):
                return handler(event, context)

        return run

    def ports_for(self, make: Callable[[], Any], fallback: Callable[[], Any]) -> Any:
        """The ports of the principal acting now (built by `make` on first use), else `fallback()`."""
        principal = _principal.get()
        if principal is None:
            return fallback()
        with self._lock:
            if principal not in self._ports:
                self._ports[principal] = make()
            return self._ports[principal]

    # -- patches --------------------------------------------------------------------------------

    def _patch(self) -> None:
        import botocore.session
        from moto.core.authorization import ActionAuthenticatorMixin

        enforcement = self
        original_create = botocore.session.Session.create_client

        def create_client(session: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError(
                    "create_client is called with keyword arguments by boto3; got positional ones"
                )
            key = kwargs.get("aws_access_key_id")
            if key is None:
                principal = _principal.get() or OPERATOR
                kwargs.update(enforcement.credentials[principal])
                if principal.startswith("probe:") and kwargs.get("region_name") is None:
                    # The probe of a region runs there: its default region is its own (AWS_REGION).
                    kwargs["region_name"] = principal.split(":", 1)[1]
            else:
                principal = enforcement._by_key.get(key, f"unknown key {key}")
            client = original_create(session, service_name, **kwargs)
            client.meta.events.register(
                "before-parameter-build", functools.partial(enforcement._record, principal, client)
            )
            return client

        original_submit = concurrent.futures.ThreadPoolExecutor.submit

        def submit(pool: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            return original_submit(pool, contextvars.copy_context().run, fn, *args, **kwargs)

        original_auth = ActionAuthenticatorMixin._authenticate_and_authorize_action

        def authorize(response: Any, iam_request_cls: type, resource: str = "*") -> None:
            try:
                original_auth(response, iam_request_cls, resource)
            except Exception as exc:
                header = response.headers.get("Authorization", "")
                key = header.split("Credential=", 1)[-1].split("/", 1)[0]
                who = enforcement._by_key.get(key, f"unknown key {key}")
                with enforcement._lock:
                    enforcement.denials.append(f"{who}: {type(exc).__name__}: {exc}")
                raise

        self._stack.enter_context(mock.patch.object(botocore.session.Session, "create_client", create_client))
        self._stack.enter_context(mock.patch.object(concurrent.futures.ThreadPoolExecutor, "submit", submit))
        self._stack.enter_context(
            mock.patch.object(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", authorize)
        )

    def _record(self, principal: str, client: Any, params: Any, model: Any, **_: Any) -> None:
        if principal == OPERATOR:
            return
        signing = client.meta.service_model.signing_name
        region = client.meta.region_name
        try:
            action, resources = request_of(signing, model.name, params, region)
            call = Call(principal, action, tuple(self._rename(principal, action, r) for r in resources))
        except KeyError as exc:
            call = Call(principal, f"{signing}:{model.name}", (), problem=str(exc))
        with self._lock:
            self.calls.append(call)

    @staticmethod
    def _rename(principal: str, action: str, resource: str) -> str:
        """The harness names its Lambda functions after the handler directory; deployed, they are
        `naming.function_name(dir)`: what the state machine's role is scoped to."""
        if principal == ENGINE and action == "lambda:InvokeFunction" and ":function:" in resource:
            from stacks import naming

            head, _, name = resource.partition(":function:")
            if name in naming.ACTION_FUNCTIONS:
                return f"{head}:function:{naming.function_name(name)}"
        return resource

    # -- verdicts -------------------------------------------------------------------------------

    def unauthorized(self) -> list[str]:
        """Each distinct call the unwidened synthesized policy of its principal does not allow."""
        found: list[str] = []
        for call in sorted(set(self.calls), key=lambda c: (c.principal, c.action, c.resources)):
            if call.problem:
                found.append(f"{call.principal}: {call.problem}")
                continue
            if call.principal not in self.policies:
                found.append(f"{call.principal}: {call.action} by a principal with no synthesized policy")
                continue
            for resource in call.resources:
                if not allows(self.policies[call.principal], call.action, resource):
                    found.append(f"{call.principal}: {call.action} on {resource} is not allowed")
        return found

    def problems(self) -> list[str]:
        with self._lock:
            denials = sorted(set(self.denials))
        return [*(f"denied by moto: {d}" for d in denials), *self.unauthorized()]

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, "IAM: the synthesized policies do not cover these calls:\n  " + "\n  ".join(
            problems
        )
