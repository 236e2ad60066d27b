"""Receive time is the home region's (issue 10 item 11): a probe region whose clock is 60 s ahead or
behind stamps its results with home time, from the HTTP Date of the results table's answers, so
it makes neither stale results look fresh nor fresh ones stale."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import formatdate
from types import SimpleNamespace
from typing import Any

import pytest

from quorum_dr.adapters.dynamodb_results import CLOCK_PK, DynamoDbResultStore, HomeRegionClock
from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.domain.quorum import evaluate_service
from quorum_dr.domain.results import ProbeResult, Vote
from quorum_dr.probes.event import RoundRequest
from quorum_dr.probes.service import ProbeService
from tests.fakes import Clock, Endpoints, FakeBus, probe_config


class FakeTable:
    """A DynamoDB Table resource in memory; every answer carries the home region's `Date` (whole
    seconds, as AWS sends it) to the client's `after-call` hooks, as botocore does."""

    def __init__(self, home: Callable[[], float]) -> None:
        self.home = home
        self.items: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.hooks: list[Callable[..., None]] = []
        events = SimpleNamespace(register=lambda name, hook: self.hooks.append(hook))
        self.meta = SimpleNamespace(client=SimpleNamespace(meta=SimpleNamespace(events=events)))

    def _answer(self) -> None:
        response = SimpleNamespace(headers={"date": formatdate(self.home(), usegmt=True)})
        for hook in self.hooks:
            hook(http_response=response, parsed={}, model=None)

    def query(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("query")
        condition = kwargs["KeyConditionExpression"].get_expression()
        if condition["operator"] == "AND":  # pk = :service AND sk >= :since
            equals, at_least = (c.get_expression()["values"][1] for c in condition["values"])
            pk, since = equals, at_least
        else:  # pk = :key
            pk, since = condition["values"][1], ""
        self._answer()
        return {"Items": [i for i in self.items if i["pk"] == pk and i["sk"] >= since]}

    @contextmanager
    def batch_writer(self) -> Iterator[Any]:
        batch: list[dict[str, Any]] = []
        yield SimpleNamespace(put_item=lambda Item: batch.append(Item))
        self.calls.append("batch_write_item")
        self.items.extend(batch)
        self._answer()


def result(region: str = "eu-west-2") -> ProbeResult:
    return ProbeResult(
        service="booking",
        site="main",
        check="health",
        check_type="http",
        region=region,
        round_id="r1",
        vote=Vote.UP,
        latency_ms=1.0,
        probe_time=0.0,
    )


def test_the_home_clock_is_the_local_clock_plus_the_tightest_recent_date_offset():
    local = [1_700_000_100.4]
    clock = HomeRegionClock(lambda: local[0])
    assert clock.now() is None and clock.observe(None) is None and clock.observe("not a date") is None
    # home is 60.4 s behind this clock: the Date (whole seconds) says 1_700_000_040
    assert clock.observe(formatdate(1_700_000_040.0, usegmt=True)) == pytest.approx(-60.4)
    local[0] += 0.3  # a later answer whose Date second had just turned: a tighter offset
    assert clock.observe(formatdate(1_700_000_041.0, usegmt=True)) == pytest.approx(-59.7)
    assert clock.now() == pytest.approx(local[0] - 59.7)
    local[0] += HomeRegionClock.max_age_seconds + 1  # too old to trust: measure again
    assert clock.now() is None


@pytest.mark.parametrize("skew", [60.0, -60.0, 0.0])
def test_a_skewed_probe_region_stamps_home_time_never_later(skew: float):
    home = Clock()
    home.now += 0.7  # mid-second: the Date header says .0
    table = FakeTable(home)
    store = DynamoDbResultStore(table, ttl_seconds=60, clock=lambda: home() + skew, home_clock=True)
    (stored,) = store.put_results([result()])
    # on the old code received_at was the probe region's clock: home + skew
    assert stored.received_at is not None and home() - 1 <= stored.received_at <= home()
    assert table.calls == ["query", "batch_write_item"], "no recent Date yet: one Query measures it"
    assert "Date header" in store.source
    home.now += 2
    store.put_results([result()])
    assert table.calls[2:] == ["batch_write_item"], "the last answer's Date is recent enough"


def test_a_store_in_the_home_region_stamps_its_own_clock():
    home = Clock()
    table = FakeTable(lambda: 0.0)
    (stored,) = DynamoDbResultStore(table, ttl_seconds=60, clock=home).put_results([result()])
    assert stored.received_at == home() and table.calls == ["batch_write_item"]


def test_no_date_header_falls_back_to_the_regions_clock_and_says_so():
    table = FakeTable(lambda: 0.0)
    table._answer = lambda: None  # type: ignore[method-assign]  # a stand-in that sends no Date
    store = DynamoDbResultStore(table, ttl_seconds=60, clock=lambda: 42.0, home_clock=True)
    (stored,) = store.put_results([result()])
    assert stored.received_at == 42.0 and "sent no Date header" in store.source
    assert table.calls[0] == "query" and CLOCK_PK == "_clock"


def test_regions_60_s_ahead_and_behind_neither_look_fresh_when_stale_nor_stale_when_fresh():
    home = Clock()
    table = FakeTable(home)
    endpoints = Endpoints()
    runners = {"http": endpoints.run, "tcp": endpoints.run, "postgres": endpoints.run}
    config = probe_config()

    def region(name: str, skew: float) -> ProbeService:
        clock = lambda: home() + skew  # noqa: E731 - this region's wall clock
        store = DynamoDbResultStore(table, ttl_seconds=600, clock=clock, home_clock=True)
        return ProbeService(
            config,
            region=name,
            results=store,
            events=FakeBus(),
            secrets=StaticSecrets({}),
            clock=clock,
            runners=runners,
        )

    ahead, behind = region(config.probe_regions[0], 60.0), region(config.probe_regions[1], -60.0)
    ahead.run(RoundRequest("scheduled", "sched-1"))
    behind.run(RoundRequest("scheduled", "sched-1"))
    reader = DynamoDbResultStore(table, ttl_seconds=600, clock=home)

    def votes(now: float) -> dict[str, str]:
        verdict = evaluate_service(reader.recent_results("booking", 0), config, "booking", now)["main"]
        return {v.region: v.kind for v in verdict.votes if v.region in (ahead.region, behind.region)}

    assert votes(home()) == {ahead.region: "up", behind.region: "up"}, "fresh results look fresh"
    home.now += config.probe.freshness_seconds + 2
    assert votes(home()) == {ahead.region: "stale", behind.region: "stale"}, "stale ones look stale"
    # the region 60 s ahead still finds its previous round (its read bound is home time too)
    outcome = ahead.run(RoundRequest("scheduled", "sched-2"))
    assert not any(e.detail_type == "VerdictChanged" for e in outcome.events)


def test_rounds_less_than_a_second_apart_keep_their_order():
    home = Clock()
    home.now = 1_700_000_000.05
    table = FakeTable(home)
    first = DynamoDbResultStore(table, ttl_seconds=60, clock=home, home_clock=True)
    first.recent_results("booking", 0)  # measured with a Date error of 0.05 s
    home.now += 0.25
    (one,) = first.put_results([result()])  # stamped .25
    home.now += 0.15  # the next invocation measures at .45, a Date error of 0.45 s: .0 < .25
    second = DynamoDbResultStore(table, ttl_seconds=60, clock=home, home_clock=True)
    second.home_time()
    assert second.home_time() < one.received_at  # type: ignore[operator]
    second.recent_results("booking", 0)  # the round reads the earlier rounds first
    (two,) = second.put_results([result()])
    assert one.received_at is not None and two.received_at is not None
    assert one.received_at < two.received_at <= home()
