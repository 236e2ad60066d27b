"""Test layers: the folder gives the marker (tests/unit -> unit, ...); unit tests get no sockets."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

LAYERS = ("unit", "integration", "infrastructure", "drill")
ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        layer = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if layer not in LAYERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live under tests/<layer>/, layer one of {LAYERS}")
        item.add_marker(getattr(pytest.mark, layer))


class _NoSockets(socket.socket):
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("unit tests must not open sockets; move this test to tests/integration")


@pytest.fixture(autouse=True)
def _block_sockets_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit"):
        monkeypatch.setattr(socket, "socket", _NoSockets)


@pytest.fixture(scope="session")
def example_config_path() -> Path:
    return ROOT / "config" / "watchdog.example.yaml"
