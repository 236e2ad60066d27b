"""docs/architecture.md names the code and the tests that keep each invariant: every test it
names exists, and every path it names is in the repository, so the page cannot quietly go stale."""

from __future__ import annotations

import re

from tests.conftest import ROOT

DOC = ROOT / "docs" / "architecture.md"
TEST_NAME = re.compile(r"\btest_[a-z0-9_]+\b(?![.\w])")  # not a file name (test_x.py)
PATH = re.compile(
    r"`((?:quorum_dr|quorum_dr_local|stacks|lambdas|statemachines|tests|cold_site|scenarios)/[^`*<> ]*)`"
)


def defined_tests() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.update(re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), flags=re.MULTILINE))
    return names


def test_every_test_the_architecture_names_exists() -> None:
    named = {n for n in TEST_NAME.findall(DOC.read_text(encoding="utf-8")) if not n.endswith("_")}
    assert len(named) > 30, "the page names the tests of each invariant"
    assert sorted(named - defined_tests()) == []


def test_every_path_the_architecture_names_exists() -> None:
    paths = {p.split("::")[0].rstrip("/") for p in PATH.findall(DOC.read_text(encoding="utf-8"))}
    assert len(paths) > 20

    def exists(path: str) -> bool:  # a module's function: quorum_dr/failover/entry.run
        module = path.rsplit(".", 1)[0] + ".py"
        return (ROOT / path).exists() or ("." in path and (ROOT / module).is_file())

    assert sorted(p for p in paths if not exists(p)) == []


def test_invariants_are_numbered_once_each() -> None:
    numbers = re.findall(r"^\*\*(\d+b?)\. ", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert numbers == ["1", "2", "3", "4", "4b", "5", "6", "7", "8", "9", "10", "11"]
