"""The pure edge-switch plans: what to write, in which order, and the sentences that say why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quorum_dr.domain.edge import (
    EdgePlanError,
    PoolState,
    RecordState,
    enabled_after,
    plan_dns_switch,
    plan_pool_switch,
    receipt_sentence,
    site_of_pools,
    site_of_records,
)

ORIGINS = {"main": "203.0.113.10", "dr": "198.51.100.20"}


def record(content: str, *, record_id: str = "r1", name: str = "app.example.com") -> RecordState:
    return RecordState(record_id, name, "A", content, proxied=True, ttl=1)


def test_site_of_records_names_the_site_every_record_points_at() -> None:
    site, reason = site_of_records(
        [record("198.51.100.20"), record("198.51.100.20", record_id="r2")], ORIGINS
    )
    assert site == "dr"
    assert reason == "every edge record points at dr (198.51.100.20)"


def test_records_that_disagree_point_at_no_site() -> None:
    site, reason = site_of_records([record("203.0.113.10"), record("198.51.100.20", record_id="r2")], ORIGINS)
    assert site is None
    assert "do not point at one known site" in reason and "(main)" in reason and "(dr)" in reason


def test_a_record_pointing_at_an_unknown_origin_points_at_no_site() -> None:
    site, reason = site_of_records([record("192.0.2.99")], ORIGINS)
    assert site is None
    assert "192.0.2.99 (unknown origin)" in reason


def test_dns_plan_rewrites_only_the_content_of_records_pointing_elsewhere() -> None:
    stale = RecordState("r1", "app.example.com", "A", "203.0.113.10", proxied=True, ttl=300)
    fresh = RecordState("r2", "www.example.com", "A", "198.51.100.20", proxied=False, ttl=1)
    plan = plan_dns_switch([stale, fresh], "dr", ORIGINS)
    assert plan.writes == (RecordState("r1", "app.example.com", "A", "198.51.100.20", proxied=True, ttl=300),)
    assert plan.reason == "point 1 record at dr: app.example.com A from 203.0.113.10 to 198.51.100.20"


def test_dns_plan_when_already_pointing_at_the_target_writes_nothing() -> None:
    plan = plan_dns_switch([record("198.51.100.20")], "dr", ORIGINS)
    assert not plan.changed
    assert "already points at dr" in plan.reason


def test_dns_plan_to_an_unconfigured_site_is_refused() -> None:
    with pytest.raises(EdgePlanError, match="no such site is configured"):
        plan_dns_switch([record("203.0.113.10")], "cold", ORIGINS)


def pools(main: bool, dr: bool, *, dr_origins: int = 1) -> dict[str, PoolState]:
    return {"main": PoolState("pool-main", main, 1), "dr": PoolState("pool-dr", dr, dr_origins)}


def test_pool_plan_enables_the_target_before_disabling_the_others() -> None:
    plan = plan_pool_switch(pools(main=True, dr=False), "dr")
    assert [(s.pool_id, s.enabled) for s in plan.steps] == [("pool-dr", True), ("pool-main", False)]
    assert plan.reason == (
        "point the load balancer at dr: enable the dr pool pool-dr first, "
        "then disable the main pool pool-main"
    )


def test_pool_plan_when_only_the_target_is_enabled_does_nothing() -> None:
    plan = plan_pool_switch(pools(main=False, dr=True), "dr")
    assert plan.steps == ()
    assert "already points at dr" in plan.reason


def test_pool_plan_refuses_a_target_pool_without_an_enabled_origin() -> None:
    with pytest.raises(EdgePlanError, match="no enabled origin"):
        plan_pool_switch(pools(main=True, dr=False, dr_origins=0), "dr")


@given(flags=st.lists(st.booleans(), min_size=2, max_size=3), target=st.integers(min_value=0, max_value=2))
def test_invariant_8_a_pool_plan_never_leaves_zero_pools_enabled(flags: list[bool], target: int) -> None:
    names = ["main", "dr", "cold"][: len(flags)]
    site = names[target % len(names)]
    state = {name: PoolState(f"pool-{name}", flag, 1) for name, flag in zip(names, flags, strict=True)}
    plan = plan_pool_switch(state, site)
    after = enabled_after(state, plan.steps)
    assert all(enabled for enabled in after)
    final = after[-1] if after else {n for n, p in state.items() if p.enabled}
    assert final == {site}


def test_site_of_pools_needs_exactly_one_enabled_pool() -> None:
    assert site_of_pools(pools(main=True, dr=False)) == ("main", "only the main pool is enabled")
    assert site_of_pools(pools(main=True, dr=True))[0] is None
    assert site_of_pools(pools(main=False, dr=False)) == (None, "no load-balancer pool is enabled")


def test_receipt_sentences_say_what_was_done_or_would_be() -> None:
    reason = "point 1 record at dr: app.example.com A from 203.0.113.10 to 198.51.100.20"
    assert receipt_sentence(reason, dry_run=True, changed=True, writes=0) == (
        f"dry run: would {reason}; nothing written"
    )
    assert receipt_sentence(reason, dry_run=False, changed=True, writes=1) == (
        f"did {reason} (1 write, read back and verified)"
    )
    assert receipt_sentence("the edge already points at dr", dry_run=False, changed=False, writes=0) == (
        "the edge already points at dr"
    )
