"""Every action function's handler carries the Powertools logger, tracer and metrics (as the probe
does): one EMF record per invocation in namespace QuorumDR with the step as a dimension, a
StepSucceeded or StepFailed count and the step's duration."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from quorum_dr.failover import wiring
from quorum_dr.failover.errors import InvalidInput
from quorum_dr.failover.ports import Ports
from quorum_dr.functions import ACTION_FUNCTIONS
from quorum_dr.ports import StateStore
from tests.conftest import ROOT
from tests.fakes import make_config

# the probe and the scheduled readiness function are no state machine's steps, and the restore
# rehearsal's function is no failover's or switchover's step (each has its own tests:
# test_rehearsal_state_machine.py runs the rehearsal's)
ACTIONS = sorted(
    p.parent.name
    for p in (ROOT / "lambdas").glob("*/handler.py")
    if p.parent.name not in ("probe", "readiness", "rehearse_cold_site")
)


@dataclass
class LambdaContext:
    function_name: str = "quorum-dr-action"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-2:123456789012:function:quorum-dr-action"
    aws_request_id: str = "req-1"


def load(name: str) -> Callable[[Any, Any], dict[str, Any]]:
    spec = importlib.util.spec_from_file_location(f"action_{name}", ROOT / "lambdas" / name / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(Callable[[Any, Any], dict[str, Any]], module.handler)


def emf_records(out: str) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric records among the JSON lines a handler printed."""
    records = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            records.append(json.loads(line))
    return records


# Loaded at collection, before the unit layer's socket guard is on: importing Powertools' Tracer
# makes the X-Ray SDK create its UDP emitter's socket (never used: tracing is off outside Lambda).
HANDLERS = {name: load(name) for name in ACTIONS}


class NoIncidents:
    """The state table as validate_input reads it: no incident of that id, no lock."""

    def get_incident(self, service: str, incident_id: str) -> None:
        return None

    def get_lock(self, service: str) -> None:
        return None


@pytest.fixture(autouse=True)
def ports() -> Iterator[None]:
    # validate_input reads the config, the clock and whether the incident id is new; the other
    # steps fail before a port is used
    wiring.use(Ports(config=make_config(), store=cast(StateStore, NoIncidents()), clock=lambda: 1000.0))
    yield
    wiring.use(None)


def test_every_action_function_is_here() -> None:
    assert ACTIONS == sorted(ACTION_FUNCTIONS) and len(ACTIONS) == 14  # failover 10, switchover 4


@pytest.mark.parametrize("name", ACTIONS)
def test_a_failed_step_emits_step_failed_with_its_name(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exception) as raised:  # noqa: B017 - each step fails its own way on {}
        HANDLERS[name]({}, LambdaContext())

    [record] = emf_records(capsys.readouterr().out)
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "QuorumDR"
    assert ["service", "step"] in [sorted(d) for d in directive["Dimensions"]]
    assert record["step"] == name
    assert {m["Name"] for m in directive["Metrics"]} == {"StepFailed", "StepSeconds"}
    assert record["StepFailed"] == [1.0] and record["error"] == type(raised.value).__name__


def test_a_step_that_answers_emits_step_succeeded_and_its_duration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    manual = {"service": "booking", "to": "dr", "reason": "drill", "requested_by": "alice"}
    answer = HANDLERS["validate_input"]({"input": manual, "execution_name": "inc-1"}, LambdaContext())

    [record] = emf_records(capsys.readouterr().out)
    assert answer["incident_id"] == "inc-1"
    assert record["step"] == "validate_input" and record["incident_id"] == "inc-1"
    assert record["StepSucceeded"] == [1.0] and record["StepSeconds"][0] >= 0
    assert "StepFailed" not in record


def test_invalid_input_is_still_the_error_the_state_machine_catches(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(InvalidInput):
        HANDLERS["validate_input"]({"input": "not an object", "execution_name": "inc-2"}, LambdaContext())

    [record] = emf_records(capsys.readouterr().out)
    assert record["error"] == "InvalidInput" and record["incident_id"] == "inc-2"
