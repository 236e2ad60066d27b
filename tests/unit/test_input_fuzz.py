"""Fuzz the inputs a person or another system writes (issue 11): the config loader, the scenario
loader and the manual start (`FailoverRequest`). Random bytes, YAML token soup, and mutations of the
shipped files (a key deleted, a line given twice, a value retyped) must end in the documented error
type or a valid object, never in another exception.

Documented errors: `ConfigError` (load_config), `ScenarioError` (load_scenario), `InvalidInput`
(parse_manual) and pydantic's `ValidationError` (FailoverRequest.model_validate).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from quorum_dr.config import ConfigError, WatchdogConfig, load_config
from quorum_dr.config_types import first_unprintable
from quorum_dr.failover.errors import InvalidInput
from quorum_dr.failover.request import FailoverRequest, parse_manual
from quorum_dr_local.drill.scenario import Scenario, ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TEXT = (ROOT / "config" / "watchdog.example.yaml").read_text()
SCENARIO_TEXT = (ROOT / "scenarios" / "main-outage.yaml").read_text()
EXAMPLES = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKENS = [
    "{", "}", "[", "]", ":", ": ", "- ", "\n", "  ", ",", "&a ", "*a", "*b", "<<: ", "? ", "!!int ",
    "!!float ", "!!binary ", "!!set ", "!!timestamp ", "!!python/object:os.system ", "quorum",
    "probe", "services", "name", "faults", "at", "1e999", ".nan", "-.inf", "0x1F", "0o17",
    "190:20:30", "2024-13-45", "9" * 40, "'", '"', "|", ">", "#", "%YAML 1.1\n", "---\n", "...\n",
    "\t", "\x1b[31m", "\u202e", "\ufeff", "~", "null", "true", "yes",
]  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**31), max_value=10**31),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="qdr-fuzz-") as name:
        yield Path(name)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a loaded YAML tree (mapping keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    """The shipped file with one to three mutations: a key deleted, a value retyped, a line twice."""
    data = yaml.safe_load(text)
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        operation = draw(st.sampled_from(["delete", "retype", "retype", "duplicate line"]))
        if operation == "duplicate line":
            index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines.insert(index, lines[index])
            data = None
            continue
        if data is None:
            continue
        path = draw(st.sampled_from(_paths(data)))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if operation == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(VALUES)
    if data is None:
        return "".join(lines).encode()
    return yaml.safe_dump(data, allow_unicode=True).encode()


def files(text: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.lists(st.sampled_from(TOKENS), max_size=80).map(lambda t: "".join(t).encode()),
        mutated(text),
    )


@EXAMPLES
@given(contents=files(EXAMPLE_TEXT))
def test_the_config_loader_raises_only_config_error(folder: Path, contents: bytes) -> None:
    path = folder / "config.yaml"
    path.write_bytes(contents)
    try:
        assert isinstance(load_config(path), WatchdogConfig)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and "\n" not in p for p in exc.problems)


@EXAMPLES
@given(contents=files(SCENARIO_TEXT))
def test_the_scenario_loader_raises_only_scenario_error(folder: Path, contents: bytes) -> None:
    path = folder / "scenario.yaml"
    path.write_bytes(contents)
    try:
        assert isinstance(load_scenario(path), Scenario)
    except ScenarioError as exc:
        assert exc.problems and all(isinstance(p, str) and "\n" not in p for p in exc.problems)


GOOD_REQUEST = {"service": "booking", "to": "dr", "reason": "London is down", "requested_by": "alice"}
FIELDS = [*FailoverRequest.model_fields, "extra", "detail-type", "source"]


@st.composite
def requests(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        data = copy.deepcopy(GOOD_REQUEST)
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
            if draw(st.booleans()) and name in data:
                del data[name]
            else:
                data[name] = draw(VALUES)
        return data
    return draw(st.one_of(VALUES, st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8)))


@EXAMPLES
@given(data=requests())
def test_the_manual_start_raises_only_its_documented_errors(data: Any) -> None:
    try:
        request = parse_manual(data)
    except InvalidInput as exc:
        assert str(exc).startswith("manual start rejected: ")
    else:
        assert 1 <= len(request.reason) <= 500 and request.reason == request.reason.strip()
        text = request.reason + request.requested_by
        assert first_unprintable(text) is None, text
    try:
        FailoverRequest.model_validate(data)
    except ValidationError:
        pass
