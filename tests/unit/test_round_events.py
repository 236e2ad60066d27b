"""The probe service with in-memory ports: what is recorded, and which events a round puts on the bus."""

from __future__ import annotations

from typing import Any

import pytest

from quorum_dr.config import parse_config
from quorum_dr.probes.event import InvalidProbeEvent, RoundRequest, parse_probe_event
from quorum_dr.probes.service import ProbeService
from tests.fakes import Clock, probe_config


def run(service: ProbeService, clock: Clock, round_id: str, **fields: Any) -> Any:
    clock.now += 30
    return service.run(RoundRequest("on-demand", round_id, **fields))


def test_healthy_rounds_record_everything_and_publish_nothing(world: Any) -> None:
    service, results, bus, _, clock = world
    first = run(service, clock, "r1")
    second = run(service, clock, "r2")
    assert bus.events == []
    assert len(results.items) == len(first.stored) + len(second.stored)
    assert all(r.received_at == clock.now for r in second.stored)
    assert {v["vote"] for v in second.as_dict()["verdicts"]} == {"up"}


def test_failure_publishes_probe_failed_and_the_change_publishes_verdict_changed(world: Any) -> None:
    service, _, bus, endpoints, clock = world
    run(service, clock, "r1")
    endpoints.down = {"tcp-443"}
    outcome = run(service, clock, "r2", incident_id="inc-1")
    kinds = [(kind, detail["site"]) for kind, detail in bus.events]
    assert kinds == [("ProbeFailed", "main"), ("VerdictChanged", "main")]
    failed = bus.events[0][1]
    assert failed["service"] == "booking" and failed["region"] == "eu-west-2" and failed["round_id"] == "r2"
    assert failed["incident_id"] == "inc-1"
    assert [r["check"] for r in failed["failing"]] == ["tcp-443"]
    changed = bus.events[1][1]
    assert changed["previous_vote"] == "up" and changed["vote"] == "down"
    assert changed["change"].startswith("main went from UP to DOWN in eu-west-2: main is DOWN from eu-west-2")
    assert [e["detail_type"] for e in outcome.as_dict()["events"]] == ["ProbeFailed", "VerdictChanged"]

    assert failed["failing_rounds"] == 1 and "turns DOWN" in failed["why"]

    bus.events.clear()
    run(service, clock, "r3")  # still failing: no change, and no ProbeFailed before the 10th round
    assert bus.events == []

    bus.events.clear()
    endpoints.down = set()
    run(service, clock, "r4")  # recovered
    assert [(kind, d["vote"], d["previous_vote"]) for kind, d in bus.events] == [
        ("VerdictChanged", "up", "down")
    ]


def test_a_site_that_stays_down_retriggers_every_retrigger_rounds_and_an_up_round_rearms(world: Any) -> None:
    service, results, bus, endpoints, clock = world
    assert service.config.probe.retrigger_rounds == 10
    endpoints.down = {"tcp-443"}
    published_on = []
    for index in range(1, 22):
        bus.events.clear()
        run(service, clock, f"r{index}")
        if ("ProbeFailed", "main") in [(kind, d["site"]) for kind, d in bus.events]:
            published_on.append(index)
    assert published_on == [1, 10, 20]
    last = [r for r in results.items if r.round_id == "r21" and r.site == "main"]
    assert last and {r.failing_rounds for r in last} == {21}
    assert {r.failing_rounds for r in results.items if r.round_id == "r21" and r.site == "dr"} == {0}

    endpoints.down = set()
    run(service, clock, "up")
    endpoints.down = {"tcp-443"}
    bus.events.clear()
    run(service, clock, "down-again")  # flapping: each turn to DOWN triggers at once
    assert [(d["site"], d["failing_rounds"]) for kind, d in bus.events if kind == "ProbeFailed"] == [
        ("main", 1)
    ]


def test_an_abstaining_round_neither_publishes_nor_breaks_the_count(world: Any) -> None:
    service, _, bus, endpoints, clock = world
    endpoints.down = {"tcp-443"}
    run(service, clock, "r1")
    endpoints.control_down = True
    run(service, clock, "r2")  # abstains: not a vote, not counted
    endpoints.control_down = False
    bus.events.clear()
    run(service, clock, "r3")
    assert bus.events == []  # the 2nd counted failing round: quiet


def test_informational_check_failure_publishes_nothing(world: Any) -> None:
    service, _, bus, endpoints, clock = world
    run(service, clock, "r1")
    endpoints.down = {"postgres"}  # vote: false in the example
    run(service, clock, "r2")
    assert bus.events == []


def test_abstaining_round_is_recorded_but_publishes_nothing_and_is_not_the_previous_verdict(
    world: Any,
) -> None:
    service, results, bus, endpoints, clock = world
    run(service, clock, "r1")
    endpoints.control_down = True
    endpoints.down = {"tcp-443"}
    outcome = run(service, clock, "r2")
    assert outcome.report.abstaining and bus.events == []
    assert all(r.abstaining for r in results.items if r.round_id == "r2")
    endpoints.control_down = False
    run(service, clock, "r3")  # compared with r1 (UP), not the abstaining r2
    assert [(k, d["previous_vote"]) for k, d in bus.events if k == "VerdictChanged"] == [
        ("VerdictChanged", "up")
    ]


def test_unknown_service_or_missing_site_is_refused_before_any_probe(world: Any) -> None:
    service, results, bus, _, clock = world
    with pytest.raises(InvalidProbeEvent, match="service: no service named 'shop'"):
        run(service, clock, "r1", services=["shop"])
    data = probe_config().model_dump(mode="json", exclude_none=True)
    del data["services"][0]["sites"]["cold"], data["services"][0]["cold_site"]
    service.config = parse_config(data)
    with pytest.raises(InvalidProbeEvent, match="sites: service 'booking' has no cold site configured"):
        run(service, clock, "r2", sites=["cold"])
    assert results.items == [] and bus.events == []


# ---------------------------------------------------------------------------------------------
# The event model
# ---------------------------------------------------------------------------------------------


def test_empty_event_is_a_scheduled_round() -> None:
    request = parse_probe_event({}, now=1700000000.5)
    assert request.kind == "scheduled"
    assert request.round_id.startswith("sched-1700000000-")
    assert request.services is None and request.sites is None


def test_scheduled_event_envelope() -> None:
    envelope = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": "2024-01-01T00:00:00Z",
        "region": "eu-west-2",
        "resources": ["arn:aws:scheduler:eu-west-2:123456789012:schedule/default/p"],
        "detail": {},
    }
    request = parse_probe_event(envelope, now=1700000000)
    assert request == RoundRequest("scheduled", "sched-1700000000-53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa")


def test_on_demand_round() -> None:
    event = {
        "round_id": "inc-7-confirm-1",
        "service": "booking",
        "sites": ["main", "dr"],
        "incident_id": "inc-7",
    }
    request = parse_probe_event(event, now=0)
    assert request == RoundRequest("on-demand", "inc-7-confirm-1", ["booking"], ["main", "dr"], "inc-7")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"round_id": "r1", "servise": "booking"}, "invalid on-demand probe event: servise: unknown field"),
        ({"service": "booking"}, "invalid on-demand probe event: round_id: Field required"),
        ({"round_id": "a#b"}, "round_id: String should match pattern"),
        ({"round_id": "r1", "sites": ["moon"]}, "sites.0: Input should be 'main', 'dr' or 'cold'"),
        ({"round_id": "r1", "sites": []}, "sites: List should have at least 1 item"),
        ({"hello": "world"}, "unrecognised probe event with fields ['hello']"),
        (["round_id"], "the probe event must be a JSON object, got list"),
        (
            {
                "detail-type": "Object Created",
                "source": "aws.s3",
                "version": "0",
                "id": "x",
                "account": "1",
                "time": "2024-01-01T00:00:00Z",
                "region": "eu-west-2",
                "resources": [],
                "detail": {},
            },
            "not a scheduled event: source 'aws.s3'",
        ),
    ],
)
def test_malformed_events_are_rejected_with_a_clear_message(event: Any, message: str) -> None:
    with pytest.raises(InvalidProbeEvent) as caught:
        parse_probe_event(event, now=0)
    assert message in str(caught.value)
