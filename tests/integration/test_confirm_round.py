"""A dark probe region does not slow a confirmation round: the round decides as soon as the answers
in hand settle it, names the late region as silent, and waits when a late answer could still matter
(the database veto). The real LambdaProbeInvoker invokes three probe functions through moto, which
runs them in-process; one of them never answers within the invocation timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.lambda_probes import LambdaProbeInvoker, ProbeFunctions
from quorum_dr.adapters.tables import create_table
from quorum_dr.config import WatchdogConfig
from quorum_dr.domain.results import DbRole, DbStatus, ProbeResult, Vote
from quorum_dr.failover import wiring
from quorum_dr.failover.confirm import confirm_round
from quorum_dr.failover.request import start_incident
from quorum_dr_local.sfn_harness import lambda_dispatch
from tests.fakes import REGIONS, FakeResults, make_config

HOME = "eu-west-2"
ARNS = {r: f"arn:aws:lambda:{r}:123456789012:function:quorum-dr-probe" for r in REGIONS}
DARK = "us-west-2"
SILENCE_SECONDS = 20.0  # the dark region's probe answers after this, if ever; the round's timeout too


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": HOME,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        create_table(boto3.client("dynamodb", region_name=HOME), "quorum-dr-state")
        yield


def probe_round(
    config: WatchdogConfig, results: FakeResults, region: str, round_id: str, *, dr_database_reached: bool
) -> None:
    """What one region's probe writes for an on-demand round: main down, dr and cold up."""
    now = time.time()
    batch = []
    service = config.services[0]
    for site_name, site in (
        ("main", service.sites.main),
        ("dr", service.sites.dr),
        ("cold", service.sites.cold),
    ):
        if site is None:
            continue
        for check in site.checks:
            down = site_name == "main" or (check.type == "postgres" and not dr_database_reached)
            db = None
            if site_name == "dr" and check.type == "postgres" and dr_database_reached:
                db = DbStatus(
                    role=DbRole.STANDBY, receive_lsn="0/3000060", replay_lsn="0/3000060", streaming=False
                )
            batch.append(
                ProbeResult(
                    service=service.name,
                    site=site_name,
                    check=check.name,
                    check_type=check.type,
                    region=region,
                    round_id=round_id,
                    vote=Vote.DOWN if down else Vote.UP,
                    failure_class="connect_timeout" if down else None,
                    latency_ms=1.0,
                    probe_time=now,
                    received_at=now,
                    counts=check.vote,
                    db=db,
                )
            )
    results.put_results(batch)


def run_confirm_round(
    *,
    dr_database_reached: bool,
    timeout_seconds: float,
    state: dict[str, Any] | None = None,
    asked: list[list[str]] | None = None,
) -> tuple[dict[str, Any], float, Any]:
    """`state`: the service's state item to store first; `asked` collects the sites each region's
    on-demand round was asked to check."""
    config = make_config()
    results = FakeResults()
    store = DynamoStateStore("quorum-dr-state", resource=boto3.resource("dynamodb", region_name=HOME))
    if state is not None:
        store.put_state({"service": "booking", **state}, expected_version=0)
    invoker = LambdaProbeInvoker(ProbeFunctions(ARNS, timeout_seconds=timeout_seconds))
    ports = wiring.Ports(config=config, store=store, results=lambda: results, probes=lambda: invoker)
    incident = start_incident(
        {"service": "booking", "to": "dr", "reason": "main looks dead", "requested_by": "test"},
        execution_name="inc-dark",
        started_at=None,
        config=config,
        now=time.time(),
    )
    release = threading.Event()

    def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
        region = context.invoked_function_arn.split(":")[3]
        if asked is not None:
            asked.append(list(event["sites"]))
        if region == DARK:
            release.wait(SILENCE_SECONDS)  # a dark region: no answer within the invocation timeout
            return {"reason": "too late"}
        probe_round(config, results, region, event["round_id"], dr_database_reached=dr_database_reached)
        return {"round_id": event["round_id"], "reason": f"round done in {region}"}

    try:
        with lambda_dispatch({"quorum-dr-probe": probe}):
            started = time.monotonic()
            answer = confirm_round(ports, incident, 0)
            elapsed = time.monotonic() - started
    finally:
        release.set()
    return answer, elapsed, store.get_incident("booking", "inc-dark")


def test_a_dark_region_does_not_hold_the_round_until_its_timeout(aws: None) -> None:
    answer, elapsed, record = run_confirm_round(dr_database_reached=True, timeout_seconds=SILENCE_SECONDS)

    assert answer["main"] == "DOWN" and answer["dr"] == "UP"
    assert elapsed < SILENCE_SECONDS / 2, f"the round waited {elapsed:.1f} s for the dark region"
    assert answer["silent"] == [DARK]
    assert answer["invocations"][DARK].startswith(f"{DARK}: silent: the round was settled without it")
    (timeline,) = [e for e in record.timeline if e.step == "confirm_round"]
    assert f"decided without {DARK} (silent): settled without {DARK}" in timeline.reason
    assert answer["sites"]["main"]["down_votes"] == 2


def test_without_the_dr_databases_state_in_hand_the_round_waits_for_the_late_region(aws: None) -> None:
    # The veto's evidence (the DR database's state) is not among the answers in hand: in doubt, wait.
    timeout = 5.0
    answer, elapsed, _ = run_confirm_round(dr_database_reached=False, timeout_seconds=timeout)

    assert elapsed >= timeout
    assert answer["silent"] == []
    assert answer["invocations"][DARK] == f"{DARK}: its probe did not answer within {timeout:g} s"
    assert answer["main"] == "DOWN", answer["reason"]  # after waiting, the same quorum decides


def test_a_cold_site_that_is_not_launched_is_left_out_of_the_round(aws: None) -> None:
    # The steady state (HEALTHY on main, no cooldown): no scenario needs the cold site's verdict,
    # and an unlaunched cold site would hold every region's round for its checks' timeout.
    asked: list[list[str]] = []
    answer, _, record = run_confirm_round(
        dr_database_reached=True, timeout_seconds=SILENCE_SECONDS, asked=asked
    )

    assert asked and all(sites == ["main", "dr"] for sites in asked), asked
    assert "cold" not in answer and "cold" not in answer["sites"]
    assert "the cold site is not launched (booking is HEALTHY on main" in answer["cold_not_probed"]
    assert answer["main"] == "DOWN" and answer["dr"] == "UP"  # the decision is the same
    assert answer["silent"] == [DARK]  # and the settle rule does not wait for cold's answers


@pytest.mark.parametrize(
    ("state", "why"),
    [
        ({"active_site": "cold", "status": "FAILED_OVER"}, "it is the active site"),
        ({"cooldown_until": time.time() + 600, "counted_incident": "inc-earlier"}, "inc-earlier"),
        ({"status": "NEEDS_ATTENTION"}, "NEEDS_ATTENTION"),
    ],
    ids=["cold active", "cooldown running", "needs attention"],
)
def test_a_cold_site_that_may_be_launched_is_checked(aws: None, state: dict[str, Any], why: str) -> None:
    asked: list[list[str]] = []
    answer, _, _ = run_confirm_round(
        dr_database_reached=True, timeout_seconds=SILENCE_SECONDS, state=state, asked=asked
    )

    assert asked and all(sites == ["main", "dr", "cold"] for sites in asked), asked
    assert "cold" in answer["sites"] and "cold_not_probed" not in answer, why
