"""The Cloudflare edge switch (official SDK) against the emulator, with real HTTP and real faults.

Retry waits go through an injected `sleep` that records what it was asked to wait and advances a
fake clock, so the tests assert the waits the adapter chose, not the time they took.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from quorum_dr import config
from quorum_dr.adapters.cloudflare_edge import CloudflareEdge
from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.domain.edge import (
    EdgeApiError,
    EdgeAuthError,
    EdgePlanError,
    EdgeRateLimitedError,
    EdgeReadBackError,
    EdgeUnavailableError,
)
from quorum_dr.ports import EdgeSwitch
from quorum_dr_local.standins.cloudflare_emulator import CloudflareEmulator, Fault, seed_for_service

TOKEN = "cf-token-0123456789abcdef"
SECRET_NAME = "quorum-dr/cloudflare-token"
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
ACCOUNT = "acct-1"
MAIN, DR = "203.0.113.10", "198.51.100.20"


def site(label: str, origin: str) -> config.Site:
    check = config.TcpCheck(name="tcp", host=origin, port=443)
    return config.Site(label=label, marker=label.lower(), origin=origin, checks=[check])


def service(edge: dict[str, Any]) -> config.Service:
    return config.Service.model_validate(
        {
            "name": "booking",
            "public_hostname": "app.example.com",
            "sites": {"main": site("London", MAIN), "dr": site("Virginia", DR)},
            "edge": {"zone_id": ZONE, "api_token_secret": SECRET_NAME, **edge},
        }
    )


DNS = service({"kind": "dns", "records": [{"name": "app.example.com"}, {"name": "www.example.com"}]})
POOLS = service(
    {"kind": "load_balancer", "account_id": ACCOUNT, "pools": {"main": "pool-main", "dr": "pool-dr"}}
)


class FakeTime:
    """A clock that only moves when the adapter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def emulator() -> Iterator[CloudflareEmulator]:
    seed = seed_for_service(DNS, TOKEN)
    seed["accounts"] = seed_for_service(POOLS, TOKEN)["accounts"]
    with CloudflareEmulator(seed) as running:
        yield running


def edge_for(
    svc: config.Service, emulator: CloudflareEmulator, fake_time: FakeTime, token: str = TOKEN, **kwargs: Any
) -> CloudflareEdge:
    return CloudflareEdge.for_service(
        svc,
        StaticSecrets({SECRET_NAME: token}),
        base_url=emulator.base_url,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        **kwargs,
    )


@pytest.fixture
def dns_edge(emulator: CloudflareEmulator, fake_time: FakeTime) -> CloudflareEdge:
    return edge_for(DNS, emulator, fake_time)


@pytest.fixture
def pool_edge(emulator: CloudflareEmulator, fake_time: FakeTime) -> CloudflareEdge:
    return edge_for(POOLS, emulator, fake_time)


def contents(emulator: CloudflareEmulator) -> list[str]:
    return [emulator.record(ZONE, rid)["content"] for rid in ("rec-1", "rec-2")]


def enabled_pools(emulator: CloudflareEmulator) -> dict[str, bool]:
    return {p: emulator.pool(ACCOUNT, p)["enabled"] for p in ("pool-main", "pool-dr")}


# -- DNS records --------------------------------------------------------------------------------


def test_dns_switch_points_every_record_at_dr_and_reads_it_back(
    dns_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    assert isinstance(dns_edge, EdgeSwitch)
    assert dns_edge.current_site() == "main"
    receipt = dns_edge.switch_to("dr", incident_id="inc-1")
    assert (receipt.site, receipt.changed, receipt.writes, receipt.verified_read_back) == (
        "dr",
        True,
        2,
        True,
    )
    assert receipt.reason.startswith("did point 2 records at dr: app.example.com A from 203.0.113.10 to ")
    assert contents(emulator) == [DR, DR]
    record = emulator.record(ZONE, "rec-1")
    assert (record["name"], record["type"], record["ttl"], record["proxied"]) == (
        "app.example.com",
        "A",
        1,
        True,
    )
    assert dns_edge.current_site() == "dr"


def test_dns_switch_is_idempotent_the_second_call_writes_nothing(
    dns_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    dns_edge.switch_to("dr", incident_id="inc-1")
    again = dns_edge.switch_to("dr", incident_id="inc-1")
    assert (again.changed, again.writes, again.verified_read_back) == (False, 0, True)
    assert "already points at dr" in again.reason
    assert emulator.total_writes() == 2  # one per record, from the first call only
    assert len(emulator.requests("PATCH")) == 2


def test_a_failover_uses_a_handful_of_api_calls(
    dns_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    dns_edge.switch_to("dr", incident_id="inc-1")
    assert dns_edge.calls == len(emulator.requests()) == 6  # per record: look-up, PATCH, read-back


def test_dry_run_says_what_it_would_do_and_writes_nothing(
    dns_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    receipt = dns_edge.switch_to("dr", incident_id="inc-1", dry_run=True)
    assert (receipt.changed, receipt.writes, receipt.dry_run) == (False, 0, True)
    assert receipt.reason.startswith("dry run: would point 2 records at dr")
    assert receipt.reason.endswith("nothing written")
    assert emulator.requests("PATCH") == [] and contents(emulator) == [MAIN, MAIN]


def test_read_back_that_differs_from_the_write_is_an_error(
    dns_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    # The API answers the PATCH with success and the new record, but the write is lost.
    emulator.add_fault(Fault(kind="drop_write", method="PATCH", path_contains="rec-1"))
    with pytest.raises(
        EdgeReadBackError, match=f"read back app.example.com A as {MAIN} .* after writing {DR}"
    ):
        dns_edge.switch_to("dr", incident_id="inc-1")
    assert emulator.requests("PATCH")[0]["status"] == 200


def test_pool_read_back_that_differs_stops_before_disabling_main(
    pool_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    emulator.add_fault(Fault(kind="drop_write", method="PATCH", path_contains="pool-dr"))
    with pytest.raises(EdgeReadBackError, match="pool-dr as enabled=False"):
        pool_edge.switch_to("dr", incident_id="inc-1")
    assert enabled_pools(emulator) == {"pool-main": True, "pool-dr": False}


def test_429_with_retry_after_is_honoured_then_the_switch_succeeds(
    dns_edge: CloudflareEdge, emulator: CloudflareEmulator, fake_time: FakeTime
) -> None:
    emulator.add_fault(Fault(kind="rate_limit", count=3, retry_after=4, method="PATCH"))
    receipt = dns_edge.switch_to("dr", incident_id="inc-1")
    assert receipt.writes == 2 and contents(emulator) == [DR, DR]
    assert fake_time.waits == [4.0, 4.0, 4.0]
    assert [e["status"] for e in emulator.requests("PATCH")] == [429, 429, 429, 200, 200]
    assert emulator.total_writes() == 2


def test_429_beyond_the_retry_budget_gives_up_with_a_clear_error(
    emulator: CloudflareEmulator, fake_time: FakeTime
) -> None:
    edge = edge_for(DNS, emulator, fake_time, retry_budget_seconds=10)
    emulator.add_fault(Fault(kind="rate_limit", count=None, retry_after=4, method="PATCH"))
    with pytest.raises(EdgeRateLimitedError, match="would exceed the retry budget of 10 s"):
        edge.switch_to("dr", incident_id="inc-1")
    assert fake_time.waits == [4.0, 4.0]
    assert emulator.total_writes() == 0 and contents(emulator) == [MAIN, MAIN]


def test_5xx_is_retried_with_backoff(
    dns_edge: CloudflareEdge, emulator: CloudflareEmulator, fake_time: FakeTime
) -> None:
    emulator.add_fault(Fault(kind="server_error", status=502, count=2))
    receipt = dns_edge.switch_to("dr", incident_id="inc-1")
    assert receipt.writes == 2
    assert fake_time.waits == [0.5, 1.0]


def test_5xx_forever_ends_as_unavailable(emulator: CloudflareEmulator, fake_time: FakeTime) -> None:
    edge = edge_for(DNS, emulator, fake_time, retry_budget_seconds=5)
    emulator.add_fault(Fault(kind="server_error", status=500, count=None))
    with pytest.raises(EdgeUnavailableError, match="HTTP 500"):
        edge.switch_to("dr", incident_id="inc-1")
    assert sum(fake_time.waits) <= 5


def test_a_request_slower_than_the_timeout_is_retried(
    emulator: CloudflareEmulator, fake_time: FakeTime
) -> None:
    edge = edge_for(DNS, emulator, fake_time, request_timeout_seconds=0.2)
    emulator.add_fault(Fault(kind="latency", latency_seconds=1.0, method="GET", count=1))
    assert edge.current_site() == "main"
    assert fake_time.waits == [0.5]  # one backoff after the timed-out read


def test_403_fails_fast_naming_the_secret_never_the_token(
    dns_edge: CloudflareEdge, emulator: CloudflareEmulator, fake_time: FakeTime
) -> None:
    emulator.add_fault(Fault(kind="forbidden", method="PATCH"))
    with pytest.raises(EdgeAuthError) as refused:
        dns_edge.switch_to("dr", incident_id="inc-1")
    message = str(refused.value)
    assert SECRET_NAME in message and "HTTP 403" in message
    assert TOKEN not in message
    assert fake_time.waits == [] and len(emulator.requests("PATCH")) == 1


def test_an_unknown_token_fails_fast_too(emulator: CloudflareEmulator, fake_time: FakeTime) -> None:
    edge = edge_for(DNS, emulator, fake_time, token="wrong-token-value")
    with pytest.raises(EdgeAuthError, match=SECRET_NAME) as refused:
        edge.current_site()
    assert "wrong-token-value" not in str(refused.value)
    assert len(emulator.requests()) == 1


def test_http_200_with_success_false_is_an_error(
    dns_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    emulator.add_fault(Fault(kind="success_false", method="PATCH"))
    with pytest.raises(EdgeApiError, match="success: false"):
        dns_edge.switch_to("dr", incident_id="inc-1")


def test_a_record_that_does_not_exist_is_named(emulator: CloudflareEmulator, fake_time: FakeTime) -> None:
    svc = service({"kind": "dns", "records": [{"name": "api.example.com"}]})
    with pytest.raises(EdgePlanError, match="no A record named api.example.com"):
        edge_for(svc, emulator, fake_time).switch_to("dr", incident_id="inc-1")


def test_a_configured_record_id_is_read_directly(emulator: CloudflareEmulator, fake_time: FakeTime) -> None:
    svc = service({"kind": "dns", "records": [{"name": "app.example.com", "record_id": "rec-1"}]})
    edge = edge_for(svc, emulator, fake_time)
    assert edge.switch_to("dr", incident_id="inc-1").writes == 1
    assert [e["path"].rsplit("/", 1)[-1] for e in emulator.requests("GET")] == ["rec-1", "rec-1"]


# -- load-balancer pools -----------------------------------------------------------------------


def test_pool_switch_enables_dr_first_then_disables_main(
    pool_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    assert pool_edge.current_site() == "main"
    receipt = pool_edge.switch_to("dr", incident_id="inc-1")
    assert (receipt.changed, receipt.writes, receipt.verified_read_back) == (True, 2, True)
    assert enabled_pools(emulator) == {"pool-main": False, "pool-dr": True}
    patches = [(e["path"].rsplit("/", 1)[-1], e["body"]) for e in emulator.requests("PATCH")]
    assert patches == [("pool-dr", {"enabled": True}), ("pool-main", {"enabled": False})]
    assert pool_edge.current_site() == "dr"
    again = pool_edge.switch_to("dr", incident_id="inc-1")
    assert again.writes == 0 and "already points at dr" in again.reason


def test_invariant_8_when_enabling_the_target_fails_no_pool_is_disabled(
    pool_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    emulator.add_fault(Fault(kind="success_false", method="PATCH", path_contains="pool-dr"))
    with pytest.raises(EdgeApiError):
        pool_edge.switch_to("dr", incident_id="inc-1")
    assert enabled_pools(emulator) == {"pool-main": True, "pool-dr": False}
    assert [e["path"].rsplit("/", 1)[-1] for e in emulator.requests("PATCH")] == ["pool-dr"]


def test_invariant_8_when_disabling_main_fails_dr_stays_enabled(
    pool_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    emulator.add_fault(Fault(kind="forbidden", method="PATCH", path_contains="pool-main"))
    with pytest.raises(EdgeAuthError):
        pool_edge.switch_to("dr", incident_id="inc-1")
    assert enabled_pools(emulator) == {"pool-main": True, "pool-dr": True}


def test_invariant_8_a_target_pool_without_enabled_origins_is_never_switched_to(
    pool_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    emulator.state.accounts[ACCOUNT]["pools"][1]["origins"][0]["enabled"] = False
    with pytest.raises(EdgePlanError, match="no enabled origin"):
        pool_edge.switch_to("dr", incident_id="inc-1")
    assert emulator.requests("PATCH") == [] and enabled_pools(emulator)["pool-main"] is True


def test_pool_dry_run_writes_nothing(pool_edge: CloudflareEdge, emulator: CloudflareEmulator) -> None:
    receipt = pool_edge.switch_to("dr", incident_id="inc-1", dry_run=True)
    assert receipt.reason == (
        "dry run: would point the load balancer at dr: enable the dr pool pool-dr first, "
        "then disable the main pool pool-main; nothing written"
    )
    assert emulator.requests("PATCH") == []


# -- the readiness edit check (quorum_dr/domain/edit_proof.py) ------------------------------------


def test_the_edit_check_writes_only_each_pools_description_and_then_reads_it_as_the_proof(
    pool_edge: CloudflareEdge, emulator: CloudflareEmulator
) -> None:
    from quorum_dr.domain.edit_proof import marked_at

    before = {p: emulator.pool(ACCOUNT, p) for p in ("pool-main", "pool-dr")}
    proof = pool_edge.prove_edit(now=1_796_400_000.0, every=86_400, write=True)
    assert proof.proven_at == 1_796_400_000.0
    assert "wrote only the description of main pool pool-main, dr pool pool-dr" in proof.sentence
    patches = [(e["path"].rsplit("/", 1)[-1], e["body"]) for e in emulator.requests("PATCH")]
    assert patches == [
        ("pool-main", {"description": "quorum-dr edit check 2026-12-04T16:00:00Z"}),
        ("pool-dr", {"description": "quorum-dr edit check 2026-12-04T16:00:00Z"}),
    ]
    for pool_id, was in before.items():
        now = emulator.pool(ACCOUNT, pool_id)
        assert marked_at(now["description"]) == 1_796_400_000.0
        assert (now["enabled"], now["origins"]) == (was["enabled"], was["origins"])
    assert enabled_pools(emulator) == {"pool-main": True, "pool-dr": False}

    later = pool_edge.prove_edit(now=1_796_400_000.0 + 3600, every=86_400, write=True)
    assert later.proven_at == 1_796_400_000.0 and "by the marker in each pool's description" in later.sentence
    assert len(emulator.requests("PATCH")) == 2  # no second write within the interval


def test_the_edit_check_with_a_read_only_token_is_refused_and_changes_nothing(
    emulator: CloudflareEmulator, fake_time: FakeTime
) -> None:
    from quorum_dr.domain.edge import EdgeAuthError

    emulator.state.tokens[TOKEN] = "read"
    edge = edge_for(DNS, emulator, fake_time)
    with pytest.raises(EdgeAuthError, match="while writing the edit check into the comment"):
        edge.prove_edit(now=1_796_400_000.0, every=86_400, write=True)
    assert emulator.total_writes() == 0
    assert contents(emulator) == [MAIN, MAIN]
