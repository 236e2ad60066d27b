"""Test layers: the folder gives the marker (tests/unit -> unit, ...); unit tests get no sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# Powertools' Tracer builds the X-Ray SDK's UDP emitter (a socket, never used outside Lambda) when
# quorum_dr.observability is first imported. Import it once here, so the unit test that happens to
# import it first (alone, or early in a random order) is not refused a socket it never uses.
import quorum_dr.observability  # noqa: F401

LAYERS = ("unit", "integration", "infrastructure", "drill")
ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        layer = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if layer not in LAYERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live under tests/<layer>/, layer one of {LAYERS}")
        item.add_marker(getattr(pytest.mark, layer))


class _NoSockets(socket.socket):
    # AF_UNIX stays allowed: an asyncio event loop needs its socketpair self-pipe; it never leaves
    # the process. Every network socket is refused.
    def __init__(self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None) -> None:
        if family != socket.AF_UNIX:
            raise RuntimeError("unit tests must not open sockets; move this test to tests/integration")
        super().__init__(family, type, proto, fileno)


@pytest.fixture(autouse=True)
def _block_sockets_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit"):
        monkeypatch.setattr(socket, "socket", _NoSockets)


import botocore.session  # noqa: E402

_CREATE_CLIENT = botocore.session.Session.create_client


@pytest.fixture(autouse=True, scope="module")
def _no_sdk_patch_outlives_its_module() -> Iterator[None]:
    """A patch of botocore's create_client (the IAM enforcement's: it hands every new client a
    principal's credentials) left behind by a module would quietly give later modules' clients
    credentials they do not have. Fail the module that left it, and put the original back."""
    yield
    if botocore.session.Session.create_client is not _CREATE_CLIENT:
        left = getattr(botocore.session.Session.create_client, "__qualname__", "?")
        botocore.session.Session.create_client = _CREATE_CLIENT  # type: ignore[method-assign]
        pytest.fail(f"botocore's Session.create_client is still patched ({left}) after this module's tests")


@pytest.fixture(scope="session")
def example_config_path() -> Path:
    return ROOT / "config" / "watchdog.example.yaml"
