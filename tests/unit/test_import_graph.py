"""The import graph of the project's packages has no cycle, and what runs in AWS (`quorum_dr`) does
not depend on the local world (`quorum_dr_local`: stand-ins, the drill, the Step Functions harness).

Every import statement counts, wherever it is: at module level, inside a function (a lazy import
only hides a cycle until the day both halves load), or under `if TYPE_CHECKING:` (a type-only cycle
is still two modules that cannot be read apart). Imports are read with `ast`, nothing is imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("quorum_dr", "stacks", "quorum_dr_local")  # those present are walked
CLOUD = "quorum_dr"
LOCAL = "quorum_dr_local"
# The one door from the command line into the local world: `drctl drill`, importing inside its
# command function so that nothing else in quorum_dr (and nothing in a Lambda) loads the drill.
LOCAL_WORLD_DOORS = frozenset({"quorum_dr.cli.drill_cmd"})


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (a package's __init__ when the name is not a submodule)
    line: int
    in_function: bool


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of the packages that exist under `root`, by dotted name."""
    modules: dict[str, Path] = {}
    for package in packages:
        folder = root / package
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" not in path.parts:
                modules[module_name(root, path)] = path
    return modules


def _resolve_relative(source: str, is_package: bool, level: int, module: str | None) -> str:
    base = source.split(".") if is_package else source.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


class _Collector(ast.NodeVisitor):
    def __init__(self, source: str, is_package: bool, known: Mapping[str, Path]) -> None:
        self.source = source
        self.is_package = is_package
        self.known = known
        self.depth = 0  # function nesting
        self.found: list[Import] = []

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, target: str, node: ast.stmt) -> None:
        # the longest known module the name starts with (`import a.b.c` when only a.b exists)
        parts = target.split(".")
        while parts and ".".join(parts) not in self.known:
            parts.pop()
        if parts:
            self.found.append(Import(self.source, ".".join(parts), node.lineno, self.depth > 0))
        elif target.split(".")[0] in PACKAGES:
            # a project package that is not there (yet): keep the edge so the rules below see it
            self.found.append(Import(self.source, target, node.lineno, self.depth > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = _resolve_relative(self.source, self.is_package, node.level, node.module)
        else:
            base = node.module or ""
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(submodule if submodule in self.known else base, node)


def imports(modules: Mapping[str, Path]) -> list[Import]:
    found: list[Import] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _Collector(name, path.name == "__init__.py", modules)
        collector.visit(tree)
        found += [i for i in collector.found if i.target != name]
    return found


def cycles(edges: Iterable[Import]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module, as a path a -> ... -> a."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan; the graph is a few hundred modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_a_cycle_in(graph, component) for component in components]


def _a_cycle_in(graph: Mapping[str, set[str]], component: set[str]) -> list[str]:
    start = min(component)
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:  # breadth first inside the component: the shortest way back to the start
        node = queue.pop(0)
        for nxt in sorted(graph[node] & component):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")  # cannot happen in an SCC


def local_world_imports(edges: Iterable[Import]) -> Iterator[Import]:
    """Imports of the local world from the cloud package, but for the drill command's lazy one."""
    for edge in edges:
        in_cloud = edge.source == CLOUD or edge.source.startswith(CLOUD + ".")
        to_local = edge.target == LOCAL or edge.target.startswith(LOCAL + ".")
        if in_cloud and to_local and not (edge.source in LOCAL_WORLD_DOORS and edge.in_function):
            yield edge


def describe(edge: Import) -> str:
    where = "inside a function" if edge.in_function else "at module level"
    return f"{edge.source} (line {edge.line}, {where}) imports {edge.target}"


# -- the project ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project_imports() -> list[Import]:
    modules = discover(ROOT, PACKAGES)
    assert "quorum_dr.failover.wiring" in modules and "stacks.control_stack" in modules
    return imports(modules)


def test_the_project_has_no_import_cycle(project_imports: list[Import]) -> None:
    found = cycles(project_imports)
    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_what_runs_in_aws_does_not_import_the_local_world(project_imports: list[Import]) -> None:
    found = [describe(edge) for edge in local_world_imports(project_imports)]
    assert not found, (
        "quorum_dr must not depend on quorum_dr_local (only drctl drill, inside its function): "
        + "; ".join(found)
    )


# -- the check itself, on small trees it must refuse ----------------------------------------


def write(root: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return discover(root, PACKAGES)


def test_a_cycle_through_a_lazy_and_a_type_only_import_is_found_and_named(tmp_path: Path) -> None:
    modules = write(
        tmp_path,
        {
            "quorum_dr/__init__.py": "",
            "quorum_dr/failover/__init__.py": "",
            "quorum_dr/failover/wiring.py": "def current():\n    from quorum_dr.failover import production\n",
            "quorum_dr/failover/production.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .wiring import Ports\n",
            "quorum_dr/domain.py": "import quorum_dr.failover\n",
        },
    )

    assert cycles(imports(modules)) == [
        ["quorum_dr.failover.production", "quorum_dr.failover.wiring", "quorum_dr.failover.production"]
    ]


def test_a_tree_without_a_cycle_passes(tmp_path: Path) -> None:
    modules = write(
        tmp_path,
        {
            "stacks/__init__.py": "",
            "stacks/alert_topic.py": "from stacks import naming\n",
            "stacks/naming.py": "",
            "stacks/control_stack.py": "from stacks.alert_topic import AlertTopic\n"
            "from stacks import naming\n",
        },
    )

    edges = imports(modules)

    assert {(e.source, e.target) for e in edges} == {
        ("stacks.alert_topic", "stacks.naming"),
        ("stacks.control_stack", "stacks.alert_topic"),
        ("stacks.control_stack", "stacks.naming"),
    }
    assert cycles(edges) == []


def test_the_local_world_may_be_entered_only_by_the_drill_command_inside_a_function(tmp_path: Path) -> None:
    modules = write(
        tmp_path,
        {
            "quorum_dr/__init__.py": "",
            "quorum_dr/cli/__init__.py": "",
            "quorum_dr/cli/drill_cmd.py": "def run(args):\n    from quorum_dr_local.drill import run\n",
            "quorum_dr/cli/probe_cmd.py": "def run(args):\n    import quorum_dr_local.sandbox\n",
            "quorum_dr/failover/__init__.py": "",
            "quorum_dr/failover/wiring.py": "from quorum_dr_local import sfn_harness\n",
            "quorum_dr_local/__init__.py": "import quorum_dr.failover.wiring\n",
            "quorum_dr_local/sfn_harness.py": "",
        },
    )

    refused = sorted(describe(edge) for edge in local_world_imports(imports(modules)))

    assert refused == [
        "quorum_dr.cli.probe_cmd (line 2, inside a function) imports quorum_dr_local",
        "quorum_dr.failover.wiring (line 1, at module level) imports quorum_dr_local.sfn_harness",
    ]


def test_a_module_level_import_in_the_drill_command_is_refused_too(tmp_path: Path) -> None:
    modules = write(
        tmp_path,
        {
            "quorum_dr/__init__.py": "",
            "quorum_dr/cli/__init__.py": "",
            "quorum_dr/cli/drill_cmd.py": "from quorum_dr_local.drill.scenario import load_scenario\n",
        },
    )

    refused = [describe(edge) for edge in local_world_imports(imports(modules))]

    assert refused == [
        "quorum_dr.cli.drill_cmd (line 1, at module level) imports quorum_dr_local.drill.scenario"
    ]
