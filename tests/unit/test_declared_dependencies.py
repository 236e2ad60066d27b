"""Every third-party package the code imports is declared, where that code runs.

The imports are read with `ast` (never executed), each top-level name is mapped to the
distributions that provide it in this environment (`importlib.metadata.packages_distributions`),
and at least one of them must be named in the requirements: runtime code (the Lambda functions
and drctl) in requirements.txt, since that is what the Lambda layer installs; local tooling, tests,
the CDK app and the benchmarks in requirements.txt or requirements-dev.txt. A package that arrives
only as somebody else's dependency (httpx through cloudflare) can vanish with their next release.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# Local tooling inside quorum_dr (never bundled into a Lambda; moving to quorum_dr_local).
LOCAL_ONLY = ("quorum_dr/sandbox", "quorum_dr/drill", "quorum_dr/sfn_harness.py", "quorum_dr_local")
RUNTIME_TREES = ("quorum_dr", "lambdas")
DEV_TREES = ("quorum_dr_local", "stacks", "bench", "scripts", "tests", "app.py", *LOCAL_ONLY)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: Path) -> set[str]:
    """Distribution names in a requirements file, following `-r other.txt`."""
    names: set[str] = set()
    for raw in requirements.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ")):
            names |= declared(requirements.parent / line.split(None, 1)[1])
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        assert match, f"{requirements.name}: cannot read a distribution name in {raw!r}"
        names.add(_normalize(match.group(0)))
    return names


def _first_party() -> set[str]:
    return {p.stem if p.suffix == ".py" else p.name for p in ROOT.iterdir() if not p.name.startswith(".")}


def _files(trees: Iterable[str], *, excluding: Iterable[str] = ()) -> list[Path]:
    skip = [ROOT / e for e in excluding]
    found: list[Path] = []
    for tree in trees:
        path = ROOT / tree
        candidates = [path] if path.is_file() else sorted(path.rglob("*.py")) if path.is_dir() else []
        found += [f for f in candidates if not any(f == s or s in f.parents for s in skip)]
    return found


def third_party_imports(files: Iterable[Path]) -> dict[str, set[str]]:
    """Top-level import name -> the files importing it (stdlib and first-party left out)."""
    first_party = _first_party()
    found: dict[str, set[str]] = {}
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in first_party:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def undeclared(files: list[Path], allowed: set[str]) -> list[str]:
    providers = packages_distributions()
    problems = []
    for name, where in sorted(third_party_imports(files).items()):
        dists = {_normalize(d) for d in providers.get(name, [])}
        if not dists:
            problems.append(f"{name} (imported by {sorted(where)[0]}) is provided by no installed package")
        elif not dists & allowed:
            problems.append(
                f"{name} (imported by {', '.join(sorted(where)[:3])}) comes from {sorted(dists)}, "
                "none of which is declared"
            )
    return problems


def test_the_scan_sees_the_imports_it_must_judge() -> None:
    runtime = third_party_imports(_files(RUNTIME_TREES, excluding=LOCAL_ONLY))
    assert {"boto3", "httpx", "psycopg2", "pydantic", "cloudflare"} <= set(runtime)
    assert "aws_cdk" not in runtime and "moto" not in runtime, "local tooling leaked into the runtime set"
    assert {"pytest", "moto"} <= set(third_party_imports(_files(["tests"])))


def test_the_requirement_reader_follows_includes_and_drops_extras_and_pins(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("aws-lambda-powertools[tracer,parser]>=3.0,<4\nPyYAML>=6\n")
    (tmp_path / "dev.txt").write_text("# dev\n-r base.txt\nmoto[s3]>=5.2  # trailing\n")
    assert declared(tmp_path / "dev.txt") == {"aws-lambda-powertools", "pyyaml", "moto"}


def test_runtime_code_imports_only_what_requirements_txt_declares() -> None:
    problems = undeclared(_files(RUNTIME_TREES, excluding=LOCAL_ONLY), declared(ROOT / "requirements.txt"))
    assert not problems, "add to requirements.txt (the Lambda layer installs only that):\n" + "\n".join(
        problems
    )


def test_tools_tests_and_the_cdk_app_import_only_declared_packages() -> None:
    pytest.importorskip("aws_cdk", reason="the development requirements are not installed here")
    problems = undeclared(_files(DEV_TREES), declared(ROOT / "requirements-dev.txt"))
    assert not problems, "add to requirements-dev.txt:\n" + "\n".join(problems)
