"""The state machine loader: YAML source to plain ASL, the phase table, the Mermaid chart, and the
README's copy of the chart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from quorum_dr import state_machines
from quorum_dr.state_machines import (
    PHASES,
    StateMachineError,
    definition,
    definition_json,
    mermaid,
    names,
    phases,
    with_charts,
)
from tests.conftest import ROOT

SMALL = """
x-shared:
  retry: &retry
    - ErrorEquals: [TransientError]
      MaxAttempts: 3
      BackoffRate: 2.0
StartAt: First
States:
  First:
    Type: Task
    Resource: ${FirstArn}
    Retry: *retry
    Next: Second
  Second:
    Type: Task
    Resource: ${SecondArn}
    Retry: *retry
    End: true
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(state_machines, "DIRECTORY", tmp_path)
    return tmp_path


def test_the_authoring_keys_are_stripped_and_aliases_become_independent_copies(folder: Path) -> None:
    (folder / "small.asl.yaml").write_text(SMALL)
    asl = definition("small")
    assert list(asl) == ["StartAt", "States"]
    first, second = asl["States"]["First"]["Retry"], asl["States"]["Second"]["Retry"]
    assert first == second == [{"ErrorEquals": ["TransientError"], "MaxAttempts": 3, "BackoffRate": 2.0}]
    first[0]["MaxAttempts"] = 99
    assert second[0]["MaxAttempts"] == 3


def test_the_json_keeps_the_authored_order_and_is_the_same_every_time(folder: Path) -> None:
    (folder / "small.asl.yaml").write_text(SMALL)
    text = definition_json("small")
    assert text == definition_json("small")
    assert text.endswith("}\n") and '\n  "StartAt": "First",\n' in text
    assert list(json.loads(text)["States"]) == ["First", "Second"]
    assert '"BackoffRate": 2.0' in text


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("States: [", "is not valid YAML"),
        ("- a list\n", "is not a state machine"),
        ("StartAt: A\n", "is not a state machine"),
        ("StartAt: A\nStates:\n  A: {Type: Pass, Result: 2024-01-01, End: true}\n", "is not JSON"),
    ],
)
def test_a_broken_source_is_a_clear_error(folder: Path, source: str, complaint: str) -> None:
    (folder / "broken.asl.yaml").write_text(source)
    with pytest.raises(StateMachineError, match=complaint):
        definition("broken")


def test_an_unknown_name_says_which_machines_exist() -> None:
    with pytest.raises(
        StateMachineError, match=r"no state machine 'nope'.*known: \['failover', 'rehearsal', 'switchover'\]"
    ):
        definition("nope")


def test_the_failover_source_has_its_shape() -> None:
    asl = definition("failover")
    assert asl["StartAt"] == "ValidateInput" and len(asl["States"]) == 90
    assert not [key for key in asl if key.startswith("x-")]
    lambda_tasks = [
        s for s in asl["States"].values() if s["Type"] == "Task" and "dynamodb" not in s["Resource"]
    ]
    # The shared Retry is on every Lambda task, as it was in every copy before.
    assert all(s["Retry"][0]["ErrorEquals"][-1] == "TransientError" for s in lambda_tasks)
    assert len(lambda_tasks) == 41


def test_every_state_has_exactly_one_phase() -> None:
    for name in names():
        table = phases(name)
        assert list(table) == list(definition(name)["States"])
        assert set(table.values()) <= set(PHASES)


def test_a_state_without_a_phase_or_a_stale_entry_fails_loudly() -> None:
    states = [*definition("failover")["States"], "BrandNewState"]
    with pytest.raises(StateMachineError, match=r"without a phase \['BrandNewState'\]"):
        phases("failover", states)
    with pytest.raises(StateMachineError, match=r"no state \['ValidateInput'\]"):
        phases("failover", [s for s in states[:-1] if s != "ValidateInput"])


def test_the_chart_fails_for_a_state_the_phase_table_does_not_know(folder: Path) -> None:
    (folder / "failover.asl.yaml").write_text((ROOT / "statemachines" / "failover.asl.yaml").read_text())
    text = (folder / "failover.asl.yaml").read_text()
    (folder / "failover.asl.yaml").write_text(text.replace("  InputRejected:\n", "  InputRefused:\n"))
    with pytest.raises(StateMachineError, match="InputRefused"):
        mermaid("failover")


def _nodes_and_edges(chart: str) -> tuple[dict[str, str], list[tuple[str, str, str, str]]]:
    nodes = dict(re.findall(r"^    (\w+)\W+\"(\w+)\"", chart, flags=re.M))
    edges = re.findall(r"^  (\w+) (-->|-\.->)(?:\|\"([^\"]*)\"\|)? (\w+)$", chart, flags=re.M)
    return nodes, [(src, arrow, label, dst) for src, arrow, label, dst in edges]


def test_the_chart_draws_every_state_and_every_transition_but_no_retry() -> None:
    asl = definition("failover")
    chart = mermaid("failover")
    assert chart.startswith('flowchart TD\n  Start(("start")) --> ValidateInput\n')
    nodes, edges = _nodes_and_edges(chart)
    assert sorted(nodes) == sorted(asl["States"])
    for phase in PHASES:
        assert f'  subgraph phase{phase.capitalize()} ["{phase}"]' in chart
    # Shapes by type.
    assert '    IsDryRun{"IsDryRun"}' in chart and '    WaitBetweenRounds[/"WaitBetweenRounds"/]' in chart
    assert '    FailedOver(["FailedOver"])' in chart and '    NeedsAttention{{"NeedsAttention"}}' in chart
    wanted = set()
    for name, state in asl["States"].items():
        if "Next" in state:
            wanted.add((name, "-->", state["Next"]))
        for rule in state.get("Choices", []):
            wanted.add((name, "-->", rule["Next"]))
        if "Default" in state:
            wanted.add((name, "-->", state["Default"]))
        for catcher in state.get("Catch", []):
            wanted.add((name, "-.->", catcher["Next"]))
    assert {(src, arrow, dst) for src, arrow, _, dst in edges} == wanted
    labels = {(src, dst): label for src, arrow, label, dst in edges if arrow == "-.->"}
    assert labels[("AcquireIncidentLock", "DescribeLockHolder")] == "DynamoDB.ConditionalCheckFailedException"
    assert labels[("ValidateInput", "InputRejected")] == "InvalidInput, States.ALL"
    assert labels[("FenceMain", "Escalate")] == "States.ALL"
    choice = {(src, dst): label for src, arrow, label, dst in edges if arrow == "-->" and label}
    assert choice[("ConfirmVerdict", "OutageConfirmed")] == "confirm.main = DOWN"
    assert choice[("ConfirmVerdict", "StopNoDecision")] == "rounds.done #gt;= incident.max_rounds"
    assert choice[("DatabaseWritable", "SwitchEdgeToDr")] == "promotion.writable or incident.dry_run"
    assert choice[("ModeGate", "MarkFailingOver")] == "otherwise"
    assert "TransientError" not in chart and "Lambda.ServiceException" not in chart


def test_labels_are_quoted_and_escaped(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "odd.asl.yaml").write_text(
        "StartAt: end\nStates:\n"
        "  end: {Type: Choice, Choices: [{Variable: '$.a', StringEquals: 'say \"hi\" #1', Next: 'x-y'}],"
        " Default: 'x-y'}\n"
        "  x-y: {Type: Succeed}\n"
    )
    monkeypatch.setitem(state_machines._PHASE_STATES, "odd", {"detect": ("end", "x-y")})
    chart = mermaid("odd")
    assert 'State0{"end"}' in chart and 'State1(["x-y"])' in chart
    assert 'State0 -->|"a = say #quot;hi#quot; #35;1 or otherwise"| State1' in chart
    assert "Start((" in chart


def test_the_readme_shows_the_current_chart_of_every_state_machine() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in names():
        assert f"<!-- chart:{name}:begin -->\n```mermaid\nflowchart TD\n" in readme, f"no chart of {name}"
    assert with_charts(readme) == readme, "the README's state machine chart is stale: run `make charts`"


def test_with_charts_replaces_only_between_the_markers_and_needs_them() -> None:
    text = "intro\n<!-- chart:failover:begin -->\nstale chart\n<!-- chart:failover:end -->\noutro\n"
    redrawn = with_charts(text, ["failover"])
    assert redrawn.startswith("intro\n<!-- chart:failover:begin -->\n```mermaid\nflowchart TD\n")
    assert redrawn.endswith("```\n<!-- chart:failover:end -->\noutro\n") and "stale chart" not in redrawn
    with pytest.raises(StateMachineError, match="needs one <!-- chart:failover:begin -->"):
        with_charts("no markers here\n")
    with pytest.raises(StateMachineError, match="needs one <!-- chart:rehearsal:begin -->"):
        with_charts(text)  # every state machine needs its markers


@pytest.mark.parametrize(("name", "machine"), [("failover", "Failover"), ("switchover", "Switchover")])
def test_the_mock_config_names_only_states_that_exist(name: str, machine: str) -> None:
    config = json.loads((ROOT / "tests" / "integration" / f"{name}_mock_config.json").read_text())
    states = set(definition(name)["States"])
    for case, mocked in config["StateMachines"][machine]["TestCases"].items():
        assert set(mocked) <= states, f"mock case {case} names states that do not exist"
    assert set(config["MockedResponses"]) == {
        r for m in config["StateMachines"][machine]["TestCases"].values() for r in m.values()
    }, "a mocked response no case uses"


# ---------------------------------------------------------------------------------------------
# The planned switchover's state machine
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["failover", "switchover"])
def test_every_task_has_retry_and_catch(name: str) -> None:
    tasks = {n: s for n, s in definition(name)["States"].items() if s["Type"] == "Task"}
    assert tasks
    for state_name, state in tasks.items():
        assert state.get("Retry"), f"{name}: {state_name} has no Retry"
        assert state.get("Catch"), f"{name}: {state_name} has no Catch"
        assert state["Catch"][-1]["ErrorEquals"] == ["States.ALL"] or any(
            c["ErrorEquals"] == ["States.ALL"] for c in state["Catch"]
        ), f"{name}: {state_name} lets some error through uncaught"


def test_the_switchover_source_has_its_shape() -> None:
    asl = definition("switchover")
    states = asl["States"]
    assert asl["StartAt"] == "ValidateSwitchover" and len(states) == 55
    lambda_tasks = [s for s in states.values() if s["Type"] == "Task" and "dynamodb" not in s["Resource"]]
    assert all(s["Retry"] == definition("failover")["States"]["CheckGates"]["Retry"] for s in lambda_tasks)
    assert all("${Switchover" in s["Resource"] for s in lambda_tasks), "it calls its own functions only"


def test_a_switchover_takes_the_failovers_lock_the_same_way() -> None:
    """One LOCK item per service, the same holder and condition: a failover and a switchover
    exclude each other, whichever comes first."""
    failover = definition("failover")["States"]["AcquireIncidentLock"]
    switchover = definition("switchover")["States"]["AcquireSwitchoverLock"]
    assert switchover["Resource"] == failover["Resource"] == "arn:aws:states:::dynamodb:putItem"
    as_switchover = json.loads(json.dumps(failover["Parameters"]).replace("$.incident.", "$.switchover."))
    assert switchover["Parameters"] == as_switchover
    assert switchover["Parameters"]["Item"]["holder"] == {"S.$": "$$.Execution.Name"}
    for direct in ("KeepLockDirectly", "MarkNeedsAttentionDirectly"):
        theirs = json.dumps(definition("failover")["States"][direct]).replace("$.incident.", "$.switchover.")
        ours = dict(definition("switchover")["States"][direct])
        assert {**ours, "Comment": ""} == {**json.loads(theirs), "Comment": ""}, direct


BEFORE_PROMOTION = ["FreezeActive", "SyncCheck", "StopActive", "WaitForFinalPosition", "StartCooldown"]
FROM_PROMOTION = ["PromoteTarget", "SwitchEdge", "VerifySwitch", "SetActiveSite", "ReleaseLock"]


def test_before_the_promotion_a_failure_rolls_back_and_from_it_on_it_escalates() -> None:
    states = definition("switchover")["States"]
    for name in BEFORE_PROMOTION:
        assert {c["Next"] for c in states[name]["Catch"]} == {"RollBack"}, name
    for name in FROM_PROMOTION:
        assert {c["Next"] for c in states[name]["Catch"]} == {"Escalate"}, name
    refusals = [n for n, s in states.items() if s["Type"] == "Pass" and s.get("Next") == "RollBack"]
    assert sorted(refusals) == ["FinalPositionNotReached", "NotInSync", "UncleanStop"]
    assert {c["Next"] for c in states["RollBack"]["Catch"]} == {"Escalate"}, "a failed roll back escalates"
    # Following is told, never undone: its failure goes on to the record.
    assert {c["Next"] for c in states["FollowNewPrimary"]["Catch"]} == {"SetActiveSite"}
    # A check before the lock that cannot run is a refusal: nothing changed yet.
    for name in ("CheckPreconditions", "CheckDatabases", "CheckEdge"):
        assert {c["Next"] for c in states[name]["Catch"]} == {"CouldNotCheck"}, name
    # The edge is checked before the lock and the freeze (a refused token refuses, changes nothing).
    assert states["DatabasesAllow"]["Choices"][0]["Next"] == "CheckEdge"
    assert states["EdgeAllows"]["Choices"][0] == {
        "Variable": "$.edge.proceed",
        "BooleanEquals": True,
        "Next": "IsDryRun",
    }
    assert states["EdgeAllows"]["Default"] == "RefusedByEdge"
    assert states["TargetWritable"]["Choices"][0] == {
        "Variable": "$.promotion.writable",
        "BooleanEquals": True,
        "Next": "SwitchEdge",
    }
