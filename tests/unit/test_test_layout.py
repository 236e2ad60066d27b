"""The suite's own layout: pytest imports test modules by their base name (no packages under
tests/), so two test files of one name in two layers stop the whole run at collection."""

from __future__ import annotations

from collections import Counter

from tests.conftest import ROOT


def test_no_two_test_files_share_a_name() -> None:
    names = Counter(path.name for path in (ROOT / "tests").rglob("test_*.py"))
    assert names, "no test file found"
    assert [name for name, count in names.items() if count > 1] == []
