"""Scheduled rounds leave out a cold site that is not launched (issue 14, cost), and check it
whenever the state says it may be launched, or cannot be read.

One ProbeService against moto (the results and state tables, EventBridge) and real local servers:
main and dr answer /health; the cold site's address accepts connections and never answers, as a
cold site that is not launched holds each check for its whole timeout.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
from quorum_dr.adapters.dynamodb_state import DynamoStandbyWatch, DynamoStateStore
from quorum_dr.adapters.eventbridge import EventBridgePublisher
from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.adapters.tables import create_table
from quorum_dr.config import WatchdogConfig, parse_config
from quorum_dr.domain.results import CONTROL_SITE, Vote
from quorum_dr.domain.state import ServiceState
from quorum_dr.probes.event import RoundRequest
from quorum_dr.probes.service import ProbeService
from quorum_dr_local.standins.health_page import HealthPage

ROOT = Path(__file__).resolve().parents[2]
HOME = "eu-west-2"
RESULTS, STATE, BUS = "quorum-dr-results", "quorum-dr-state", "quorum-dr"
TIMEOUT = 2.0  # the cold check's timeout: a round that checks cold takes at least this


class CountingWatch(DynamoStandbyWatch):
    """The real adapter, counting its reads of the state item."""

    reads = 0

    def service_state(self, service: str) -> ServiceState:
        CountingWatch.reads += 1
        return super().service_state(service)


def _config(main: int, dr: int, cold: int) -> WatchdogConfig:
    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["home_region"] = HOME
    data["probe"]["timeout_seconds"] = TIMEOUT
    data["probe"]["control_target"] = {
        "checks": [{"name": "control", "type": "tcp", "host": "127.0.0.1", "port": main}]
    }
    service = data["services"][0]
    for site, port in (("main", main), ("dr", dr), ("cold", cold)):
        service["sites"][site]["checks"] = [
            {
                "name": "health",
                "type": "http",
                "url": f"http://127.0.0.1:{port}/health",
                "body_contains": "ok",
            }
        ]
    return parse_config(data)


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": HOME,
    }.items():
        monkeypatch.setenv(name, value)
    main, dr = HealthPage("main").start(), HealthPage("dr").start()
    silent = socket.socket()  # accepts (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        with mock_aws():
            dynamodb = boto3.client("dynamodb", region_name=HOME)
            create_table(dynamodb, RESULTS)
            create_table(dynamodb, STATE)
            boto3.client("events", region_name=HOME).create_event_bus(Name=BUS)
            yield {"config": _config(main.port, dr.port, silent.getsockname()[1])}
    finally:
        main.stop()
        dr.stop()
        silent.close()


def _service(config: WatchdogConfig, state_table: str = STATE) -> ProbeService:
    return ProbeService(
        config,
        region=HOME,
        results=DynamoDbResultStore.from_name(RESULTS, ttl_seconds=3600, region=HOME),
        events=EventBridgePublisher.from_name(BUS, region=HOME),
        secrets=StaticSecrets({}),
        standby=CountingWatch(state_table, region=HOME),
    )


def _timed(service: ProbeService, request: RoundRequest) -> tuple[Any, float]:
    started = time.perf_counter()
    outcome = service.run(request)
    return outcome, time.perf_counter() - started


def test_a_steady_scheduled_round_writes_no_cold_result_and_waits_for_no_cold_timeout(
    aws: dict[str, Any],
) -> None:
    CountingWatch.reads = 0
    outcome, took = _timed(_service(aws["config"]), RoundRequest("scheduled", "sched-1"))
    assert {r.site for r in outcome.stored} == {CONTROL_SITE, "main", "dr"}
    assert all(r.vote is Vote.UP for r in outcome.stored)
    assert took < TIMEOUT, f"the round took {took:.2f} s: it waited for the cold check"
    assert outcome.cold_left_out == {
        "booking": "the cold site of booking is not launched: booking is HEALTHY on main, no incident holds "
        "the lock and no cooldown runs, so scheduled rounds leave its checks out (on-demand rounds still "
        "check it)"
    }
    assert outcome.as_dict()["cold_not_probed"] == outcome.cold_left_out
    assert CountingWatch.reads == 1, "one read of the state item serves the cold rule and the standby watch"
    stored = DynamoDbResultStore.from_name(RESULTS, ttl_seconds=3600, region=HOME).recent_results(
        "booking", 0
    )
    assert "cold" not in {r.site for r in stored}
    assert not [e for e in outcome.events if e.site == "cold"]


def test_a_scheduled_round_checks_cold_while_cold_serves(aws: dict[str, Any]) -> None:
    store = DynamoStateStore(STATE, resource=boto3.resource("dynamodb", region_name=HOME))
    store.put_state(
        {"service": "booking", "active_site": "cold", "status": "FAILED_OVER"}, expected_version=0
    )
    outcome, took = _timed(_service(aws["config"]), RoundRequest("scheduled", "sched-2"))
    cold = [r for r in outcome.stored if r.site == "cold"]
    assert len(cold) == 1 and cold[0].vote is Vote.DOWN, "the silent cold address was checked"
    assert took >= TIMEOUT
    assert outcome.cold_left_out == {}
    assert "it is the active site" in outcome.cold["booking"].reason


def test_a_scheduled_round_checks_cold_when_the_state_cannot_be_read(aws: dict[str, Any]) -> None:
    outcome = _service(aws["config"], state_table="no-such-table").run(RoundRequest("scheduled", "sched-3"))
    assert [r.site for r in outcome.stored if r.site == "cold"] == ["cold"]
    assert outcome.cold["booking"].probe
    assert "could not be read (ResourceNotFoundException" in outcome.cold["booking"].reason


def test_an_on_demand_round_checks_the_cold_site_it_is_asked_for(aws: dict[str, Any]) -> None:
    outcome = _service(aws["config"]).run(
        RoundRequest("on-demand", "inc-1-r1", ["booking"], ["main", "dr", "cold"], "inc-1")
    )
    assert {r.site for r in outcome.stored} == {CONTROL_SITE, "main", "dr", "cold"}
    assert outcome.cold == {}, "the rule is for scheduled rounds only"
