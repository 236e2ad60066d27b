"""Run a real state machine's ASL (the failover's, or the planned switchover's with
`definition_name="switchover"`) in moto's Step Functions engine with the real handlers in-process.

Used by the integration tests and the drill (development only: it imports moto).

- Lambda: `LambdaSimpleBackend.invoke` dispatches to the handler of the function's name; an
  exception becomes a function error whose `errorType` is the exception's class name, so ASL
  Retry/Catch match it as on AWS.
- Time: Wait states and Retry intervals are scaled by `time_scale` (0 = no waiting) by patching
  moto's Wait function and the retrier module's own `time` reference, never `time.sleep` itself.
- Mock config: Step Functions Local style test cases (`{"StateMachines": {NAME: {"TestCases":
  {CASE: {STATE: RESPONSE}}}}, "MockedResponses": {RESPONSE: {"0": {"Return": ...}}}}`); moto
  ships the engine but not the loader, so `start(..., case=CASE)` attaches the case here.
"""

from __future__ import annotations

import importlib.util
import io
import json
import threading
import time
import types
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import boto3

from quorum_dr.functions import ACTION_FUNCTIONS, REHEARSAL_FUNCTIONS, substitution_name
from quorum_dr.state_machines import definition_json
from quorum_dr_local.standins.atomic_dynamodb import atomic_writes

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
Handler = Callable[[Any, Any], Any]


def load_handler_module(name: str) -> Any:
    """A fresh copy of `lambdas/<name>/handler.py` as a module (its ports can be replaced)."""
    path = ROOT / "lambdas" / name / "handler.py"
    spec = importlib.util.spec_from_file_location(f"quorum_dr_lambda_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_handler(name: str) -> Handler:
    return load_handler_module(name).handler


def substitute(definition: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        definition = definition.replace("${" + key + "}", value)
    if "${" in definition:
        raise ValueError("a DefinitionSubstitution is missing: " + definition.split("${", 1)[1][:40])
    return definition


class _Context:
    def __init__(self, name: str, region: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"
        self.memory_limit_in_mb = 256
        self.aws_request_id = f"req-{time.monotonic_ns()}"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _mock_test_case(config: Mapping[str, Any], machine: str, case: str) -> Any:
    from moto.stepfunctions.parser.mocking.mock_config import (
        MockedResponse,
        MockedResponseReturn,
        MockedResponseThrow,
        MockTestCase,
        StateMockedResponses,
    )

    cases = config["StateMachines"][machine]["TestCases"]
    if case not in cases:
        raise KeyError(f"no mock-config test case {case!r}; known: {sorted(cases)}")
    states = []
    for state_name, response_name in cases[case].items():
        responses: list[MockedResponse] = []
        for span, body in config["MockedResponses"][response_name].items():
            first, _, last = span.partition("-")
            start, end = int(first), int(last or first)
            if "Return" in body:
                responses.append(MockedResponseReturn(start, end, body["Return"]))
            else:
                throw = body["Throw"]
                responses.append(MockedResponseThrow(start, end, throw["Error"], throw.get("Cause", "")))
        states.append(StateMockedResponses(state_name, response_name, responses))
    return MockTestCase(machine, case, states)


def answer_invoke(
    handlers: Mapping[str, Handler], function_name: str, region: str, body: Any, response_headers: Any
) -> bytes:
    """What Lambda answers when `function_name` (a name or an ARN) is invoked in `region`: the
    handler's JSON, or a function error named after the exception's class, as on AWS."""
    name = function_name.split(":function:")[-1].split(":")[0]
    event = json.loads(body or "{}")
    try:
        result = handlers[name](event, _Context(name, region))
    except Exception as exc:  # noqa: BLE001 - every error becomes a Lambda function error
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()
    return json.dumps(result).encode()


@contextmanager
def lambda_dispatch(handlers: Mapping[str, Handler]) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    """Inside moto: Lambda Invoke in any region runs `handlers[function name]` in-process, with a
    context whose ARN names the region invoked. Yields the calls as (region, name, event)."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    calls: list[tuple[str, str, dict[str, Any]]] = []
    guard = threading.Lock()

    def invoke(
        backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        name = function_name.split(":function:")[-1].split(":")[0]
        with guard:
            calls.append((backend.region_name, name, json.loads(body or "{}")))
        return answer_invoke(handlers, function_name, backend.region_name, body, response_headers)

    with mock.patch.object(LambdaSimpleBackend, "invoke", invoke):
        yield calls


class SfnHarness:
    """Create the functions and the state machine in moto; start, wait for and inspect executions."""

    def __init__(
        self,
        *,
        state_table: str,
        alert_topic_arn: str = f"arn:aws:sns:eu-west-2:{ACCOUNT}:quorum-dr-alerts",
        region: str = "eu-west-2",
        machine_name: str = "Failover",
        definition_name: str = "failover",
        handlers: Mapping[str, Handler] | None = None,
        mock_config: Mapping[str, Any] | None = None,
        time_scale: float = 0.0,
    ) -> None:
        self.region = region
        self.machine_name = machine_name
        self.definition_name = definition_name
        self.state_table = state_table
        self.alert_topic_arn = alert_topic_arn
        self.handlers = dict(
            handlers or {name: load_handler(name) for name in ACTION_FUNCTIONS + REHEARSAL_FUNCTIONS}
        )
        self.mock_config = mock_config
        self.time_scale = time_scale
        self.invocations: list[tuple[str, dict[str, Any]]] = []
        self._cases: dict[str, Any] = {}
        self._entry_hooks: dict[str, list[Callable[[str], None]]] = {}
        self._guard = threading.Lock()
        self._stack = ExitStack()
        self.sfn: Any = None
        self.machine_arn = ""

    # -- patches ------------------------------------------------------------------------------

    def on_state_entered(self, state: str, hook: Callable[[str], None]) -> None:
        """Call `hook(execution name)` each time an execution of any of the harness's machines
        enters `state`, after its StateEntered event and before the state's work, in the
        execution's own thread: the state waits until the hook returns. (The drill plays a fault
        "as the switchover freezes writes" here; seen from the execution history instead, the
        fault can land after the state's work is done.)"""
        with self._guard:
            self._entry_hooks.setdefault(state, []).append(hook)

    def _entered(self, state: str, env: Any) -> None:
        with self._guard:
            hooks = list(self._entry_hooks.get(state, ()))
        if hooks:
            execution = env.states.context_object.context_object_data["Execution"]["Name"]
            for hook in hooks:
                hook(execution)

    def _invoke(
        self, backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        name = function_name.split(":function:")[-1].split(":")[0]
        with self._guard:
            self.invocations.append((name, json.loads(body or "{}")))
        region = getattr(backend, "region_name", None) or self.region
        return answer_invoke(self.handlers, function_name, region, body, response_headers)

    def _patch(self) -> None:
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
        from moto.stepfunctions.parser.asl.component.state.state import CommonStateField
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
            WaitFunction,
        )
        from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

        harness = self

        def invoke(
            backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
        ) -> bytes:
            return harness._invoke(backend, function_name, qualifier, body, headers, response_headers)

        original_wait = WaitFunction._wait_interval

        def scaled_wait(self_: Any, env: Any, wait_seconds: int) -> None:
            seconds = wait_seconds * harness.time_scale
            if seconds > 0:
                original_wait(self_, env, max(1, int(seconds)))

        scaled_time = types.SimpleNamespace(
            sleep=lambda s: time.sleep(s * harness.time_scale), time=time.time, monotonic=time.monotonic
        )
        original_init = ExecutionWorker.__init__

        def init_with_case(self_: Any, *args: Any, **kwargs: Any) -> None:
            original_init(self_, *args, **kwargs)
            name = self_._evaluation_details.execution_details.name
            case = harness._cases.get(name)
            if case is not None:
                self_._mock_test_case = case

        self._stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", invoke))
        self._stack.enter_context(mock.patch.object(WaitFunction, "_wait_interval", scaled_wait))
        self._stack.enter_context(mock.patch.object(retrier_decl, "time", scaled_time))
        original_input = CommonStateField._eval_state_input

        def input_after_hooks(self_: Any, env: Any) -> None:
            harness._entered(self_.name, env)
            original_input(self_, env)

        self._stack.enter_context(mock.patch.object(ExecutionWorker, "__init__", init_with_case))
        self._stack.enter_context(mock.patch.object(CommonStateField, "_eval_state_input", input_after_hooks))
        # DynamoDB checks a condition and writes atomically; moto does not unless we say so.
        self._stack.enter_context(atomic_writes())

    # -- set-up -------------------------------------------------------------------------------

    def __enter__(self) -> SfnHarness:
        self._patch()
        iam = boto3.client("iam", region_name=self.region)
        role = iam.create_role(RoleName="quorum-dr-harness", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = boto3.client("lambda", region_name=self.region)
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
        arns = {}
        for name in ACTION_FUNCTIONS + REHEARSAL_FUNCTIONS:
            arns[substitution_name(name)] = lam.create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=role,
                Handler="handler.handler",
                Code={"ZipFile": code.getvalue()},
            )["FunctionArn"]
        self._substitutions = {
            **arns,
            "StateTableName": self.state_table,
            "AlertTopicArn": self.alert_topic_arn,
        }
        self._role = role
        self.sfn = boto3.client("stepfunctions", region_name=self.region)
        self.machine_arn = self.add_machine(self.definition_name, self.machine_name)
        return self

    def add_machine(self, definition_name: str, machine_name: str) -> str:
        """Another of the repo's state machines beside the first, calling the same handlers (the
        drill runs the failover and the planned switchover side by side); its ARN."""
        definition = substitute(definition_json(definition_name), self._substitutions)
        return str(
            self.sfn.create_state_machine(
                name=machine_name, definition=definition, roleArn=self._role, type="STANDARD"
            )["stateMachineArn"]
        )

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # -- executions ---------------------------------------------------------------------------

    def start(self, payload: Mapping[str, Any], *, name: str, case: str | None = None) -> str:
        if case is not None:
            if self.mock_config is None:
                raise ValueError("no mock config was given to the harness")
            self._cases[name] = _mock_test_case(self.mock_config, self.machine_name, case)
        return str(
            self.sfn.start_execution(stateMachineArn=self.machine_arn, name=name, input=json.dumps(payload))[
                "executionArn"
            ]
        )

    # A loose bound: an execution that hangs fails the test; a machine that is busy does not.
    def wait(self, execution_arn: str, *, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return dict(described)
            time.sleep(0.02)
        raise TimeoutError(f"{execution_arn} still running after {timeout} s")

    def run(
        self, payload: Mapping[str, Any], *, name: str, case: str | None = None, timeout: float = 120.0
    ) -> dict[str, Any]:
        return self.wait(self.start(payload, name=name, case=case), timeout=timeout)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        for _ in range(100):
            page = self.sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        return events

    def states_entered(self, execution_arn: str) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history(execution_arn)
            if "stateEnteredEventDetails" in e
        ]

    def output(self, described: Mapping[str, Any]) -> dict[str, Any]:
        return dict(json.loads(described.get("output") or "{}"))
