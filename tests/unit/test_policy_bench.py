"""The policy benchmark (bench/policies.py) judges what it should: on hand-made traces each policy
does what its rule says (ours through the project's own engine and confirmation), the judge counts
detections, false failovers and misses as defined, the generator is seeded, and the benchmark's
transcription of the state machine's ConfirmVerdict choice is the deployed one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from bench import policies
from bench.policies import (
    REGIONS,
    CloudflareStyle,
    Failover,
    OurWatchdog,
    Route53Style,
    SingleMonitor,
    Trace,
    TraceEvent,
    compare,
    confirm_verdict,
    generate,
    judge,
    table,
)
from quorum_dr.state_machines import definition

HOUR = 3600.0


def _trace(*events: TraceEvent, regions: int = 3, hours: float = 2.0) -> Trace:
    return Trace(REGIONS[regions], hours, events, seed=7, noise=0.0)


def _ours(trace: Trace) -> tuple[OurWatchdog, list[Failover]]:
    watchdog = OurWatchdog(trace)
    return watchdog, watchdog.run()


# -- ours ------------------------------------------------------------------------------------


def test_a_real_outage_is_detected_by_ours_only_once_the_standby_stopped_hearing_from_main() -> None:
    outage = TraceEvent("outage", HOUR, HOUR + 600)
    trace = _trace(outage)
    watchdog, failovers = _ours(trace)
    verdict = judge("ours", "", trace, failovers)
    assert len(failovers) == 1 and verdict.false == [] and verdict.missed == []
    assert failovers[0].reason.startswith("hot failover to dr: main is DOWN")
    deciding = [
        reason for at, reason in watchdog.reasons if at == failovers[0].at and "main is DOWN" in reason
    ]
    assert deciding and "no database veto" in deciding[0]
    # the veto holds while the standby heard from main within its bound: no DOWN before that
    ((_, delay),) = verdict.detections
    assert watchdog.heard_within < delay <= outage.seconds
    assert watchdog.tally.outcomes == {"scenario hot": 1}


@pytest.mark.parametrize("regions", [3, 5])
def test_a_partition_between_one_region_and_main_fails_over_the_single_monitor_not_ours(regions: int) -> None:
    trace = _trace(TraceEvent("partition", HOUR, HOUR + 1200, regions=(0,)), regions=regions)
    watchdog, failovers = _ours(trace)
    assert failovers == []
    assert watchdog.tally.executions > 0 and "scenario hot" not in watchdog.tally.outcomes
    assert all("main is DOWN" not in reason for _, reason in watchdog.reasons)
    single = judge("single", "", trace, SingleMonitor(region=0).run(trace))
    assert [kind for kind, _ in single.false] == ["partition"]
    assert Route53Style(10.0).run(trace) == [] and CloudflareStyle().run(trace) == []


def test_a_correlated_two_region_transit_incident_is_vetoed_by_the_database_for_ours() -> None:
    trace = _trace(TraceEvent("transit", HOUR, HOUR + 1200, regions=(0, 1)))
    watchdog, failovers = _ours(trace)
    assert failovers == []
    assert watchdog.tally.vetoed_rounds > 0
    vetoed = [r for _, r in watchdog.reasons if "2 of 3 regions (eu-west-2, us-east-1) vote DOWN, but" in r]
    assert vetoed and all("the primary is alive and this looks like a partition" in r for r in vetoed)
    # a majority of regions is unhealthy: Cloudflare's rule fails over; 1 of 3 checkers healthy
    # (33% > 18%) keeps Route 53's health check healthy
    cloudflare = judge("cf", "", trace, CloudflareStyle().run(trace))
    assert [kind for kind, _ in cloudflare.false] == ["transit"]
    assert Route53Style(10.0).run(trace) == []


def test_two_regions_cut_off_are_no_quorum_of_five() -> None:
    trace = _trace(TraceEvent("transit", HOUR, HOUR + 1200, regions=(0, 1)), regions=5)
    watchdog, failovers = _ours(trace)
    assert failovers == [] and watchdog.tally.vetoed_rounds == 0
    assert all("main is DOWN" not in r and "vote DOWN, but" not in r for _, r in watchdog.reasons)
    assert CloudflareStyle().run(trace) == []


def test_a_dark_region_is_no_vote_and_an_outage_is_still_detected_by_the_others() -> None:
    outage = TraceEvent("outage_region_dark", HOUR, HOUR + 600, regions=(2,), dark=(HOUR - 600, HOUR + 1200))
    trace = _trace(outage)
    watchdog, failovers = _ours(trace)
    verdict = judge("ours", "", trace, failovers)
    assert len(verdict.detections) == 1 and verdict.false == []
    assert any("us-west-2 has no results" in r for _, r in watchdog.reasons)
    deciding = next(r for at, r in watchdog.reasons if at == failovers[0].at and "main is DOWN" in r)
    assert "2 of 3 regions (eu-west-2, us-east-1)" in deciding


def test_a_dark_region_alone_starts_nothing() -> None:
    trace = _trace(TraceEvent("region_dark", HOUR, HOUR + 3000, regions=(1,)))
    watchdog, failovers = _ours(trace)
    assert failovers == [] and watchdog.tally.executions == 0
    assert SingleMonitor(region=1).run(trace) == []


def test_a_region_whose_resolver_fails_abstains_for_ours_and_fails_the_single_monitor_over() -> None:
    trace = _trace(TraceEvent("dns", HOUR, HOUR + 1200, regions=(0,)))
    watchdog, failovers = _ours(trace)
    # its control target is a name: every round abstains, and an abstaining round publishes nothing
    assert failovers == [] and watchdog.tally.executions == 0
    single = judge("single", "", trace, SingleMonitor(region=0).run(trace))
    assert [kind for kind, _ in single.false] == ["dns"]


def test_a_blip_shorter_than_one_interval_fails_nobody_over() -> None:
    trace = _trace(TraceEvent("blip", HOUR, HOUR + 20))
    _, failovers = _ours(trace)
    assert failovers == []
    assert SingleMonitor().run(trace) == [] and Route53Style(10.0).run(trace) == []


def test_route_53_style_fails_over_on_an_origin_slower_than_its_two_seconds() -> None:
    trace = _trace(TraceEvent("slow_origin", HOUR, HOUR + 1200))
    route53 = judge("r53", "", trace, Route53Style(10.0).run(trace))
    assert [kind for kind, _ in route53.false] == ["slow_origin"]
    _, failovers = _ours(trace)
    assert failovers == []


# -- the judge and the generator ---------------------------------------------------------------


def test_the_judge_counts_detections_false_failovers_and_misses_split_by_length() -> None:
    long_outage = TraceEvent("outage", HOUR, HOUR + 600)
    short_outage = TraceEvent("outage", 3 * HOUR, 3 * HOUR + 60)
    missed_long = TraceEvent("outage", 5 * HOUR, 5 * HOUR + 300)
    partition = TraceEvent("partition", 7 * HOUR, 7 * HOUR + 600, regions=(0,))
    trace = _trace(long_outage, short_outage, missed_long, partition, hours=10.0)
    failovers = [
        Failover(HOUR + 40, "in the outage"),
        Failover(HOUR + 300, "a second one in the same outage"),
        Failover(3 * HOUR + 60 + 5, "in flight when main came back"),
        Failover(7 * HOUR + 100, "during the partition"),
        Failover(8 * HOUR, "nothing happening"),
    ]
    verdict = judge("p", "", trace, failovers)
    assert [(e.start, delay) for e, delay in verdict.detections] == [(HOUR, 40), (3 * HOUR, 65)]
    assert [kind for kind, _ in verdict.false] == ["outage", "partition", "quiet"]
    assert verdict.missed == [missed_long]
    assert verdict.missed_longer_than(90) == 1 and verdict.missed_within(90) == 0
    assert verdict.median() == 52.5 and verdict.p95() == 65


def test_events_may_not_overlap() -> None:
    with pytest.raises(ValueError, match="overlap"):
        _trace(TraceEvent("outage", HOUR, HOUR + 600), TraceEvent("blip", HOUR + 300, HOUR + 310))


def test_the_generator_is_seeded_and_labels_every_kind() -> None:
    mix = {kind: 40 for kind in policies.EVENT_MIX}
    first = generate(REGIONS[5], hours=100, seed=3, mix=mix)
    assert first.events == generate(REGIONS[5], hours=100, seed=3, mix=mix).events
    assert first.events != generate(REGIONS[5], hours=100, seed=4, mix=mix).events
    kinds = {e.kind for e in first.events}
    assert kinds == set(policies.EVENT_MIX)
    for event in first.events:
        assert event.outage == (event.kind in ("outage", "outage_region_dark"))
        if event.kind == "blip":
            assert event.seconds < 30
        if event.kind == "transit":
            assert len(event.regions) == 2
        if event.kind in ("partition", "dns", "region_dark"):
            assert len(event.regions) == 1
    assert all(a.span[1] <= b.span[0] for a, b in zip(first.events, first.events[1:], strict=False))


def test_a_tiny_seeded_comparison_accounts_for_every_outage_once_per_policy() -> None:
    mix = dict.fromkeys(policies.EVENT_MIX, 25)
    comparison = compare(generate(REGIONS[3], hours=80, seed=11, mix=mix))
    outages = [e for e in comparison.trace.events if e.outage]
    assert outages
    assert [j.policy for j in comparison.judgements] == [
        "ours", "single monitor", "Route-53-style 10 s", "Route-53-style 30 s", "Cloudflare-LB-style",
    ]  # fmt: skip
    for verdict in comparison.judgements:
        assert len(verdict.detections) + len(verdict.missed) == len(outages)
        assert all(
            0 <= delay <= event.seconds + policies.DETECTION_GRACE_SECONDS
            for event, delay in verdict.detections
        )
    lines = table(comparison)
    assert any(line.startswith("| ours |") for line in lines)
    assert any("ratio of our median detection" in line for line in lines)


# -- the state machine's choice, transcribed ----------------------------------------------------


def _value(document: Mapping[str, Any], path: str) -> Any:
    assert path.startswith("$."), path
    value: Any = document
    for part in path[2:].split("."):
        value = value[part]
    return value


def _matches(rule: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
    """The ASL comparison operators the ConfirmVerdict choice uses; any other fails the test."""
    if "And" in rule:
        return all(_matches(r, document) for r in rule["And"])
    value = _value(document, rule["Variable"])
    operators = {
        "StringEquals": lambda: value == rule["StringEquals"],
        "NumericLessThanPath": lambda: value < _value(document, rule["NumericLessThanPath"]),
        "NumericGreaterThanEqualsPath": lambda: (
            value >= _value(document, rule["NumericGreaterThanEqualsPath"])
        ),
    }
    (operator,) = [key for key in rule if key not in ("Variable", "Next")]
    return bool(operators[operator]())


def _choose(state: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    rules: Sequence[Mapping[str, Any]] = state["Choices"]
    return next((r["Next"] for r in rules if _matches(r, document)), state["Default"])


@pytest.mark.parametrize("main", ["UP", "DOWN", "UNKNOWN"])
@pytest.mark.parametrize("dr", ["UP", "DOWN", "UNKNOWN"])
def test_confirm_verdict_is_the_state_machines_choice(main: str, dr: str) -> None:
    state = definition("failover")["States"]["ConfirmVerdict"]
    for done in range(1, 6):
        document: dict[str, Any] = {
            "confirm": {"main": main, "dr": dr},
            "rounds": {"done": done},
            "incident": {"max_rounds": 4},
        }
        assert confirm_verdict(document["confirm"], done, 4) == _choose(state, document), (main, dr, done)
