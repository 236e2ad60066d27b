"""The state machines in `statemachines/`: load the YAML source, render the JSON, draw the chart.

`statemachines/<name>.asl.yaml` is the one source of a state machine (Amazon States Language,
JSONPath). YAML lets the shared Retry and Catch blocks be written once as anchors under a
top-level key starting with `x-`; `definition()` strips those keys and returns the plain ASL, and
`definition_json()` renders it as the JSON that the control stack deploys, asl-validator and
cfn-lint check, and moto runs. No CDK, no boto3: the stack and the local harness both use it.

Each state belongs to one phase of the runbook (`PHASES`); the README chart and the drill's
timeline group states by it. A state missing from the table is an error, so a new state gets a
phase when it is added.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

DIRECTORY = Path(__file__).resolve().parent.parent / "statemachines"
SUFFIX = ".asl.yaml"
AUTHORING_PREFIX = "x-"

PHASES = ("detect", "confirm", "decide", "act", "verify", "record")
_PHASE_STATES: dict[str, dict[str, tuple[str, ...]]] = {
    "failover": {
        "detect": (
            "ValidateInput",
            "InputRejected",
            "TriggerApplies",
            "NotTheActiveSite",
            "IsDryRun",
            "AcquireShadowLock",
            "AlreadyShadowing",
            "AcquireIncidentLock",
            "LockUnavailable",
            "DescribeLockHolder",
            "AlreadyHandling",
            "CheckGates",
            "GatesOpen",
            "StopGatesClosed",
            "GatesClosed",
        ),
        "confirm": (
            "SkipConfirmation",
            "NoConfirmation",
            "StartConfirmation",
            "ConfirmOutageRound",
            "CountConfirmRound",
            "ConfirmVerdict",
            "WaitBetweenRounds",
            "OutageConfirmed",
            "RecordFalseAlarm",
            "FalseAlarm",
            "StopNoDecision",
            "AlertNoDecision",
            "NoDecision",
        ),
        "decide": (
            "DecideScenario",
            "ScenarioChosen",
            "StopNoAction",
            "NotifyNoAction",
            "NoAction",
            "RefuseConfirmedOutage",
            "NotifyGatesClosed",
            "ModeGate",
            "WaitForVeto",
            "VetoDecision",
            "WaitForApproval",
            "ApprovalDecision",
            "ReconfirmOutage",
            "Reconfirmed",
            "CallOffFailover",
            "NotifyCalledOff",
            "StopVetoed",
            "Vetoed",
            "StopApprovalTimedOut",
            "ApprovalTimedOut",
            "AlertOnly",
            "StopAlertOnly",
            "AlertedOnly",
        ),
        "act": (
            "MarkFailingOver",
            "HotOrCold",
            "CheckDrReplica",
            "ReplicaReady",
            "WaitForReplay",
            "ReplayCaughtUp",
            "RefusePromotion",
            "RefuseReplay",
            "FenceMain",
            "MainFenced",
            "RefuseUnfenced",
            "WaitForFinalPosition",
            "FinalPositionReached",
            "RefuseFinalPosition",
            "PromoteDrDatabase",
            "DatabaseWritable",
            "RefuseSwitch",
            "SwitchEdgeToDr",
            "LaunchColdSite",
            "LaunchColdSiteDryRun",
            "CheckColdSiteHealth",
            "ColdSiteHealthy",
            "ColdSiteNotReady",
            "SwitchEdgeToCold",
        ),
        "verify": ("VerifyThroughPublicHostname", "VerifyColdSite", "Verified", "NotVerified"),
        "record": (
            "RecordIncident",
            "NotifyOutcome",
            "SetActiveSite",
            "ReleaseLock",
            "FailedOver",
            "Escalate",
            "EscalateFailedDryRun",
            "KeepLockDirectly",
            "MarkNeedsAttentionDirectly",
            "NotifyEscalation",
            "NeedsAttention",
        ),
    },
    "rehearsal": {
        "detect": ("BeginRehearsal", "RequestRejected"),
        "act": ("LaunchColdSite",),
        "verify": ("JudgeRestore",),
        "record": (
            "TerminateColdSite",
            "NotTerminated",
            "RehearsalOutcome",
            "RehearsalPassed",
            "RehearsalFailed",
        ),
    },
    "switchover": {
        "detect": ("ValidateSwitchover", "InputRejected"),
        "decide": (
            "CheckPreconditions",
            "PlanAllows",
            "RefusedByPlan",
            "CheckDatabases",
            "DatabasesAllow",
            "RefusedByDatabases",
            "CheckEdge",
            "EdgeAllows",
            "RefusedByEdge",
            "CouldNotCheck",
            "IsDryRun",
            "AcquireSwitchoverLock",
            "LockUnavailable",
            "DescribeLockHolder",
            "LockHeld",
            "RecordRefusal",
            "NotifyRefusal",
            "Refused",
        ),
        "act": (
            "FreezeActive",
            "SyncCheck",
            "InSync",
            "NotInSync",
            "StopActive",
            "StoppedCleanly",
            "UncleanStop",
            "WaitForFinalPosition",
            "FinalPositionReached",
            "FinalPositionNotReached",
            "StartCooldown",
            "PromoteTarget",
            "TargetWritable",
            "NotWritable",
            "SwitchEdge",
            "FollowNewPrimary",
            "RollBack",
            "RolledBackWritable",
            "RollBackNotWritable",
        ),
        "verify": ("VerifySwitch", "Verified", "NotVerified"),
        "record": (
            "SetActiveSite",
            "ReleaseLock",
            "NotifySwitchedOver",
            "SwitchedOver",
            "RecordRollBack",
            "NotifyRollBack",
            "RolledBack",
            "Escalate",
            "EscalateFailedDryRun",
            "KeepLockDirectly",
            "MarkNeedsAttentionDirectly",
            "NotifyEscalation",
            "NeedsAttention",
        ),
    },
}


class StateMachineError(ValueError):
    """A state machine source that cannot be loaded, or a state without a phase."""


def names() -> list[str]:
    """The state machines in `statemachines/`, by file name (`failover.asl.yaml` -> failover)."""
    return sorted(path.name[: -len(SUFFIX)] for path in DIRECTORY.glob("*" + SUFFIX))


def source_path(name: str) -> Path:
    path = DIRECTORY / (name + SUFFIX)
    if not path.is_file():
        raise StateMachineError(f"no state machine {name!r}: {path} does not exist; known: {names()}")
    return path


def definition(name: str = "failover") -> dict[str, Any]:
    """The ASL of `name` as plain JSON data, the authoring-only `x-` keys stripped."""
    path = source_path(name)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StateMachineError(f"{path.name} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict) or not isinstance(loaded.get("States"), dict) or "StartAt" not in loaded:
        raise StateMachineError(f"{path.name} is not a state machine: it needs StartAt and a States mapping")
    plain = {key: value for key, value in loaded.items() if not str(key).startswith(AUTHORING_PREFIX)}
    # Through JSON and back: aliases become independent copies, and a value JSON cannot carry
    # (a YAML date, a non-string key) fails here instead of in the deployed text.
    try:
        return json.loads(json.dumps(plain, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StateMachineError(f"{path.name} holds a value that is not JSON: {exc}") from exc


def definition_json(name: str = "failover") -> str:
    """The deployed text: keys in the order authored, two-space indent, ASCII, final newline."""
    return json.dumps(definition(name), indent=2) + "\n"


# ---------------------------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------------------------


def phases(name: str = "failover", states: Iterable[str] | None = None) -> dict[str, str]:
    """state -> phase for every state of `name`; fails for a state without a phase, or an entry
    in the table that names no state (a renamed state)."""
    table = {state: phase for phase, listed in _PHASE_STATES.get(name, {}).items() for state in listed}
    known = list(definition(name)["States"]) if states is None else list(states)
    unphased = [state for state in known if state not in table]
    stale = sorted(set(table) - set(known))
    if unphased or stale:
        raise StateMachineError(
            f"the phase table of {name!r} in quorum_dr/state_machines.py is out of date: "
            f"states without a phase {unphased}, entries that are no state {stale}; "
            f"give each state one of {PHASES}"
        )
    return {state: table[state] for state in known}


def phase_of(state: str, name: str = "failover") -> str | None:
    """The phase of one state, None for a name the table does not know."""
    for phase, listed in _PHASE_STATES.get(name, {}).items():
        if state in listed:
            return phase
    return None


# ---------------------------------------------------------------------------------------------
# Mermaid flowchart
# ---------------------------------------------------------------------------------------------

# Task: rectangle, Choice: rhombus, Wait: parallelogram, Pass: rounded, Succeed: stadium,
# Fail: hexagon, Parallel and Map: subroutine (their inner branches are not drawn).
_SHAPES = {
    "Task": ("[", "]"),
    "Choice": ("{", "}"),
    "Wait": ("[/", "/]"),
    "Pass": ("(", ")"),
    "Succeed": ("([", "])"),
    "Fail": ("{{", "}}"),
    "Parallel": ("[[", "]]"),
    "Map": ("[[", "]]"),
}
_COLOURS = {"Succeed": "fill:#dff0d8,stroke:#3c763d", "Fail": "fill:#f2dede,stroke:#a94442"}
_OPERATORS = (
    ("GreaterThanEquals", ">="),
    ("LessThanEquals", "<="),
    ("GreaterThan", ">"),
    ("LessThan", "<"),
    ("Equals", "="),
    ("Matches", "~"),
)
_RESERVED = {"end", "graph", "subgraph", "flowchart", "style", "class", "classdef", "click", "linkstyle",
             "default", "call", "href", "direction"}  # fmt: skip


def _label(text: str) -> str:
    """A quoted Mermaid label: entity codes for what would end or confuse the quotes."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return '"' + text + '"'


def _ids(states: Iterable[str]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for index, state in enumerate(states):
        plain = re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", state) and state.lower() not in _RESERVED
        ids[state] = state if plain else f"State{index}"
    return ids


def _path(value: Any) -> str:
    return value[2:] if isinstance(value, str) and value.startswith("$.") else str(value)


def _condition(rule: Mapping[str, Any]) -> str:
    """A short form of a Choice rule: `confirm.main = DOWN`, `incident.dry_run`, `a and b`."""
    for combinator, word in (("And", " and "), ("Or", " or ")):
        if combinator in rule:
            return word.join(_condition(inner) for inner in rule[combinator])
    if "Not" in rule:
        return "not (" + _condition(rule["Not"]) + ")"
    variable = _path(rule.get("Variable", "?"))
    for key, value in rule.items():
        if key in ("Variable", "Next"):
            continue
        if key == "BooleanEquals":
            return variable if value is True else "not " + variable
        if key in ("IsPresent", "IsNull", "IsString", "IsNumeric", "IsBoolean", "IsTimestamp"):
            return f"{variable} {key[2:].lower() if value else 'not ' + key[2:].lower()}"
        is_path = key.endswith("Path")
        bare = key[: -len("Path")] if is_path else key
        for suffix, symbol in _OPERATORS:
            if bare.endswith(suffix):
                shown = _path(value) if is_path else value if isinstance(value, str) else json.dumps(value)
                return f"{variable} {symbol} {shown}"
    return variable


def _edges(states: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(source, target, style, label) in definition order; parallel edges of one style merged."""
    merged: dict[tuple[str, str, str], list[str]] = {}
    for name, state in states.items():
        if state.get("Type") == "Choice":
            for rule in state.get("Choices", []):
                merged.setdefault((name, rule["Next"], "choice"), []).append(_condition(rule))
            if "Default" in state:
                merged.setdefault((name, state["Default"], "choice"), []).append("otherwise")
        if "Next" in state:
            merged.setdefault((name, state["Next"], "next"), [])
        for catcher in state.get("Catch", []):
            merged.setdefault((name, catcher["Next"], "catch"), []).extend(catcher["ErrorEquals"])
    joiner = {"choice": " or ", "catch": ", ", "next": ""}
    return [(src, dst, style, joiner[style].join(labels)) for (src, dst, style), labels in merged.items()]


def mermaid(name: str = "failover") -> str:
    """A Mermaid `flowchart TD` of `name`: one node per state (shape by type), a subgraph per
    phase, solid edges for Next and Choice rules, dotted edges for Catch. Retries are not drawn."""
    asl = definition(name)
    states: dict[str, dict[str, Any]] = asl["States"]
    phase = phases(name, states)
    ids = _ids(states)
    start = next(f"Start{n or ''}" for n in range(len(ids) + 1) if f"Start{n or ''}" not in ids.values())
    lines = ["flowchart TD", f"  {start}(({_label('start')})) --> {ids[asl['StartAt']]}"]
    for current in PHASES:
        members = [state for state in states if phase[state] == current]
        if not members:
            continue
        lines.append(f"  subgraph phase{current.capitalize()} [{_label(current)}]")
        for state in members:
            kind = states[state].get("Type", "")
            if kind not in _SHAPES:
                raise StateMachineError(f"{name}: state {state} has type {kind!r}, which has no chart shape")
            opening, closing = _SHAPES[kind]
            lines.append(f"    {ids[state]}{opening}{_label(state)}{closing}")
        lines.append("  end")
    for src, dst, style, label in _edges(states):
        arrow = "-.->" if style == "catch" else "-->"
        lines.append(f"  {ids[src]} {arrow}{'|' + _label(label) + '|' if label else ''} {ids[dst]}")
    for kind, colours in _COLOURS.items():
        members = [ids[state] for state, body in states.items() if body.get("Type") == kind]
        if members:
            lines.append(f"  classDef {kind.lower()} {colours}")
            lines.append(f"  class {','.join(members)} {kind.lower()}")
    return "\n".join(lines) + "\n"


def chart_block(name: str) -> str:
    """What sits between the README markers of `name`: the chart in a mermaid fence."""
    return f"```mermaid\n{mermaid(name)}```\n"


def with_charts(readme: str, chart_names: Iterable[str] | None = None) -> str:
    """`readme` with every `<!-- chart:NAME:begin -->` ... `<!-- chart:NAME:end -->` block
    redrawn; every state machine must have its markers."""
    for name in names() if chart_names is None else chart_names:
        begin, end = f"<!-- chart:{name}:begin -->\n", f"<!-- chart:{name}:end -->"
        if readme.count(begin) != 1 or readme.count(end) != 1 or readme.index(begin) > readme.index(end):
            raise StateMachineError(f"the README needs one {begin.strip()} ... {end} pair for {name}")
        head, rest = readme.split(begin)
        _, tail = rest.split(end)
        readme = head + begin + chart_block(name) + end + tail
    return readme


def main(argv: list[str]) -> int:
    """`python -m quorum_dr.state_machines README.md`: redraw the charts in that file."""
    if len(argv) != 1:
        print("usage: python -m quorum_dr.state_machines README.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    try:
        text = path.read_text(encoding="utf-8")
        updated = with_charts(text)
    except (OSError, StateMachineError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    print(f"{path}: charts of {', '.join(names())} {'redrawn' if updated != text else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
