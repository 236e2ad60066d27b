"""Fixtures of the unit tests; the fakes themselves live in tests/fakes.py."""

from __future__ import annotations

import pytest

from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.probes.service import ProbeService
from tests.fakes import Clock, Endpoints, FakeBus, FakeResults, probe_config


@pytest.fixture()
def world() -> tuple[ProbeService, FakeResults, FakeBus, Endpoints, Clock]:
    """A probe service in eu-west-2 over in-memory ports: (service, results, bus, endpoints, clock)."""
    clock = Clock()
    results, bus, endpoints = FakeResults(clock), FakeBus(), Endpoints()
    runners = {"http": endpoints.run, "tcp": endpoints.run, "postgres": endpoints.run}
    service = ProbeService(
        probe_config(),
        region="eu-west-2",
        results=results,
        events=bus,
        secrets=StaticSecrets({}),
        clock=clock,
        runners=runners,
    )
    return service, results, bus, endpoints, clock
