"""The ASL rendered from statemachines/*.asl.yaml, and the ASL inlined in the control template,
validate with asl-validator (npm, `make setup`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from quorum_dr.failover.longest_path import (
    EXECUTION_TIMEOUT_SECONDS,
    LAMBDA_RETRY,
    LOCK_WRITE_RETRY,
    RetryPolicy,
)
from quorum_dr.state_machines import definition_json, names
from stacks import naming

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
ACCOUNT = "123456789012"


def _deployed_values(region: str) -> dict[str, str]:
    values = {
        naming.substitution_name(
            name
        ): f"arn:aws:lambda:{region}:{ACCOUNT}:function:{naming.function_name(name)}"
        for name in naming.ACTION_FUNCTIONS + naming.REHEARSAL_FUNCTIONS
    }
    values["StateTableName"] = naming.STATE_TABLE
    values["AlertTopicArn"] = f"arn:aws:sns:{region}:{ACCOUNT}:quorum-dr-alerts"
    return values


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    if not VALIDATOR.exists():
        pytest.fail("asl-validator is missing: run `make setup` (npm ci)")
    return subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, timeout=60
    )


def test_the_template_asl_validates_with_its_substitutions(synth, tmp_path: Path) -> None:
    control = synth.deployment.control
    machines = synth.resources(control, "AWS::StepFunctions::StateMachine").values()
    assert len(machines) == 2  # the failover and the planned switchover
    for machine in machines:
        definition = machine["Properties"]["DefinitionString"]
        supplied = machine["Properties"]["DefinitionSubstitutions"]
        for name, value in _deployed_values(control.region).items():
            if "${" + name + "}" in definition:
                assert name in supplied
            definition = definition.replace("${" + name + "}", value)
        assert "${" not in definition
        path = tmp_path / f"{machine['Properties']['StateMachineName']}.asl.json"
        path.write_text(definition)
        run = _validate(path)
        assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("name", names())
def test_every_rendered_state_machine_validates(name: str, tmp_path: Path) -> None:
    definition = definition_json(name)
    for key, value in _deployed_values("eu-west-2").items():
        definition = definition.replace("${" + key + "}", value)
    assert "${" not in definition, f"{name} uses a substitution the stack does not supply"
    path = tmp_path / f"{name}.asl.json"
    path.write_text(definition)
    run = _validate(path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_validator_rejects_a_broken_definition(tmp_path: Path) -> None:
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps({"StartAt": "Missing", "States": {"Only": {"Type": "Pass", "End": True}}}))
    run = _validate(path)
    assert run.returncode != 0
    assert "MISSING_TRANSITION_TARGET" in run.stdout + run.stderr


# ---------------------------------------------------------------------------------------------
# The incident lock, and the numbers the lock TTL is counted from
# ---------------------------------------------------------------------------------------------


def _asl() -> dict[str, Any]:
    return dict(json.loads(definition_json("failover")))


def _retry(rule: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        interval_seconds=rule["IntervalSeconds"],
        max_attempts=rule["MaxAttempts"],
        backoff_rate=rule["BackoffRate"],
        max_delay_seconds=rule.get("MaxDelaySeconds"),
    )


def test_the_lock_holder_is_the_execution_name_never_a_field_of_the_input() -> None:
    lock = _asl()["States"]["AcquireIncidentLock"]["Parameters"]
    assert lock["Item"]["holder"] == {"S.$": "$$.Execution.Name"}
    assert lock["ExpressionAttributeValues"][":me"] == {"S.$": "$$.Execution.Name"}
    assert lock["ConditionExpression"] == (
        "attribute_not_exists(pk) OR holder = :me OR (lock_expires_at < :now AND kept = :false)"
    )


def test_the_longest_path_count_uses_the_asls_own_retries_and_timeouts() -> None:
    asl = _asl()
    assert asl["TimeoutSeconds"] == EXECUTION_TIMEOUT_SECONDS
    states = asl["States"]
    (lock_retry,) = states["AcquireIncidentLock"]["Retry"]
    assert _retry(lock_retry) == LOCK_WRITE_RETRY
    tasks = {
        name: state
        for name, state in states.items()
        if state["Type"] == "Task" and not state["Resource"].startswith("arn:aws:states:::dynamodb")
    }
    for name, state in tasks.items():
        assert [_retry(rule) for rule in state["Retry"]] == [LAMBDA_RETRY], name
    # A Task's own TimeoutSeconds (at or above its function's timeout) changes nothing: each attempt
    # is counted at the function's timeout. The waits for a task token are counted from the config:
    waits = {name: s["TimeoutSecondsPath"] for name, s in tasks.items() if "TimeoutSecondsPath" in s}
    assert waits == {
        "WaitForVeto": "$.incident.veto_seconds",
        "WaitForApproval": "$.incident.approval_timeout_seconds",
        "LaunchColdSite": "$.incident.cold_ready_timeout_seconds",
    }
