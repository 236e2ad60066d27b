"""The probe's scheduled input (several rounds per invocation), its verify round, and the bindings
of the hooks and notifier ports: pure, with a fake clock and an in-memory HTTP transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from quorum_dr.adapters.hooks import ServiceHooks
from quorum_dr.adapters.notifier import OperatorNotifier
from quorum_dr.config import Hook
from quorum_dr.failover.errors import HookFailed
from quorum_dr.ports import HookCaller, HookResult, Notification, NotificationChannel, NotifyReceipt
from quorum_dr.probes.event import (
    InvalidProbeEvent,
    RoundRequest,
    VerifyRequest,
    is_verify_event,
    parse_probe_event,
    parse_verify_event,
)
from quorum_dr.probes.service import ProbeService
from quorum_dr.probes.verify import public_url, see_public
from tests.fakes import probe_config

SCHEDULE = {"source": "schedule", "rounds": 2, "round_spacing_seconds": 30}


# -- the schedule input ----------------------------------------------------------------------------


def test_the_cdk_schedule_input_asks_for_several_spaced_rounds() -> None:
    request = parse_probe_event(SCHEDULE, now=1_700_000_000)
    assert request.kind == "scheduled" and request.round_id.startswith("sched-1700000000-")
    assert request.rounds == 2 and request.round_spacing_seconds == 30


@pytest.mark.parametrize(
    "event, problem",
    [
        ({"source": "schedule", "rounds": 0}, "rounds: Input should be greater than or equal to 1"),
        ({"source": "schedule", "rounds": 2, "spacing": 30}, "spacing: unknown field"),
    ],
)
def test_a_bad_schedule_input_is_refused(event: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidProbeEvent, match=problem):
        parse_probe_event(event, now=0)


class FakeTime:
    """A monotonic clock that only moves when someone sleeps; remembers the sleeps."""

    def __init__(self, lambda_seconds: float) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.lambda_seconds = lambda_seconds

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def remaining(self) -> float:
        return self.lambda_seconds - self.now


def test_scheduled_rounds_are_spaced_from_the_first_start(world: Any) -> None:
    service, results, _, _, _ = world
    fake = FakeTime(lambda_seconds=60)
    request = RoundRequest("scheduled", "sched-1", rounds=2, round_spacing_seconds=30)

    outcomes, reason = service.run_scheduled(
        request, remaining_seconds=fake.remaining, sleep=fake.sleep, monotonic=fake.monotonic
    )

    assert [o.report.round_id for o in outcomes] == ["sched-1", "sched-1-2"]
    assert fake.sleeps == [30]
    assert reason == "ran 2 of 2 round(s), 30 s apart"
    assert {r.round_id for r in results.items} == {"sched-1", "sched-1-2"}


def test_scheduled_rounds_stop_before_the_lambda_timeout(world: Any) -> None:
    service, _, _, _, _ = world
    fake = FakeTime(lambda_seconds=40)  # the second round would start at 30 s, a round may take 15 s
    request = RoundRequest("scheduled", "sched-2", rounds=3, round_spacing_seconds=30)

    outcomes, reason = service.run_scheduled(
        request, remaining_seconds=fake.remaining, sleep=fake.sleep, monotonic=fake.monotonic
    )

    assert [o.report.round_id for o in outcomes] == ["sched-2"]
    assert fake.sleeps == []
    assert reason == (
        "ran 1 of 3 rounds: 2 skipped, since 10 s would be left of the invocation and a round may take 15 s"
    )


# -- the verify round ------------------------------------------------------------------------------


def test_verify_events_are_told_apart_and_validated() -> None:
    event = {"action": "verify", "service": "booking", "expect_site": "dr", "incident_id": "inc-1"}
    assert is_verify_event(event) and not is_verify_event({"round_id": "r1"})
    assert parse_verify_event(event) == VerifyRequest(
        action="verify", service="booking", expect_site="dr", incident_id="inc-1"
    )
    with pytest.raises(InvalidProbeEvent, match="expect_site"):
        parse_verify_event({"action": "verify", "service": "booking", "expect_site": "mars"})


def edge_answering(marker: str | None, status: int = 200) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, headers={"X-Site": marker} if marker else {})

    return httpx.MockTransport(answer), seen


def test_the_public_hostname_is_asked_with_its_host_and_the_marker_compared() -> None:
    service = probe_config().service("booking")
    transport, requests = edge_answering("dr")

    ok = see_public(service, "dr", region="us-east-1", timeout=1, transport=transport)
    wrong = see_public(service, "main", region="us-east-1", timeout=1, transport=transport)

    assert public_url(service) == "https://app.example.com/health"
    assert str(requests[0].url) == "https://app.example.com/health"
    assert requests[0].headers["Host"] == "app.example.com"
    assert requests[0].extensions["sni_hostname"] == "app.example.com"
    assert (ok.ok, ok.marker_seen, ok.reason) == (
        True,
        "dr",
        "us-east-1: app.example.com is served by dr (marker 'dr')",
    )
    assert (wrong.ok, wrong.marker_seen) == (False, "dr")
    assert wrong.reason == "us-east-1: app.example.com is served by 'dr', expected main's marker 'main'"


def test_an_error_page_from_the_edge_is_not_a_verification() -> None:
    service = probe_config().service("booking")
    transport, _ = edge_answering(None, status=502)
    seen = see_public(service, "dr", region="eu-west-2", timeout=1, transport=transport)
    assert seen.ok is False and seen.status == 502
    assert seen.reason == "eu-west-2: app.example.com answered HTTP 502 (marker None), expected 200 from dr"


def test_verify_round_origin_only_runs_the_target_sites_own_checks(world: Any) -> None:
    service, results, bus, endpoints, _ = world
    request = VerifyRequest(action="verify", service="booking", expect_site="cold", origin_only=True)
    ready = service.verify(request)
    endpoints.down.add("https-health")
    not_ready = service.verify(request)
    assert ready.seen.ok is True and "cold is UP from eu-west-2" in ready.seen.reason
    assert not_ready.seen.ok is False and "https-health failed" in not_ready.seen.reason
    assert results.items == [] and bus.events == [], "a verify round is no vote and no event"


def test_verify_round_refuses_an_unknown_service(world: Any) -> None:
    service: ProbeService = world[0]
    with pytest.raises(InvalidProbeEvent, match="no service named 'shop'"):
        service.verify(VerifyRequest(action="verify", service="shop", expect_site="dr"))


# -- hooks and notifier bindings ---------------------------------------------------------------------


class ScriptedCaller(HookCaller):
    def __init__(self, ok: bool) -> None:
        self.ok = ok
        self.calls: list[tuple[str, Hook | None, str]] = []

    def call(
        self,
        name: Any,
        hook: Hook | None,
        *,
        incident_id: str,
        service: str,
        payload: Mapping[str, Any] | None = None,
    ) -> HookResult:
        self.calls.append((name, hook, incident_id))
        if hook is None:
            return HookResult(hook=name, ok=True, blocking=False, skipped=True, reason=f"no {name} hook")
        blocking = not self.ok and hook.required
        return HookResult(hook=name, ok=self.ok, blocking=blocking, reason=f"{name} answered HTTP 500")


def service_with_hooks(required: bool) -> Any:
    hook = {"url": "https://hooks.example.com/fence", "signing_secret": "k", "required": required}
    base = probe_config().service("booking")
    return base.model_copy(update={"hooks": base.hooks.model_validate({"fence_main": hook})})


def test_a_failed_required_hook_stops_the_failover() -> None:
    caller = ScriptedCaller(ok=False)
    hooks = ServiceHooks(service_with_hooks(required=True), caller)
    with pytest.raises(HookFailed, match="fence_main answered HTTP 500"):
        hooks.run("fence_main", incident_id="inc-1", payload={})
    assert caller.calls[0][0] == "fence_main" and caller.calls[0][2] == "inc-1"


def test_a_failed_optional_hook_and_an_unconfigured_hook_do_not_stop_it() -> None:
    hooks = ServiceHooks(service_with_hooks(required=False), ScriptedCaller(ok=False))
    assert hooks.run("fence_main", incident_id="inc-1", payload={}).ok is False
    assert hooks.run("before_promote", incident_id="inc-1", payload={}).skipped is True
    with pytest.raises(ValueError, match="unknown hook"):
        hooks.run("after_lunch", incident_id="inc-1", payload={})


class Inbox(NotificationChannel):
    def __init__(self, delivered: bool) -> None:
        self.delivered = delivered
        self.messages: list[Notification] = []

    def notify(self, message: Notification) -> list[NotifyReceipt]:
        self.messages.append(message)
        reason = "sent" if self.delivered else "webhook answered HTTP 500; gave up after 3 attempts"
        return [NotifyReceipt(channel="webhook:x", delivered=self.delivered, attempts=1, reason=reason)]


def test_the_failover_message_becomes_one_notification() -> None:
    inbox = Inbox(delivered=True)
    receipt = OperatorNotifier(inbox).notify(
        "subject",
        "what happened and why",
        incident_id="inc-5",
        detail={"incident_id": "inc-5", "service": "booking", "kind": "escalation", "step": "switch"},
    )
    assert inbox.messages == [
        Notification(
            incident_id="inc-5",
            service="booking",
            event="escalation",
            subject="subject",
            summary="what happened and why",
            details={"step": "switch"},
        )
    ]
    assert receipt["reason"] == "delivered on 1 of 1 channel(s)"


def test_an_undelivered_notification_says_so() -> None:
    receipt = OperatorNotifier(Inbox(delivered=False)).notify(
        "s", "m", incident_id="inc-6", detail={"service": "booking", "kind": "failed_over"}
    )
    assert receipt["delivered"] == 0
    assert receipt["reason"] == (
        "NOT delivered on any of 1 channel(s): webhook answered HTTP 500; gave up after 3 attempts"
    )


# -- the round queue's message (pure) ------------------------------------------------------------


def test_a_minute_of_six_rounds_chains_through_five_queued_messages_each_keeping_its_slot() -> None:
    from quorum_dr.probes.event import QueuedRound

    request = RoundRequest("scheduled", "sched-100-abc", rounds=6, round_spacing_seconds=10)
    queued = QueuedRound.second_of(request, started_at=100.0)
    chain = []
    while queued is not None:
        chain.append((queued.round_id, queued.due_at, queued.remaining))
        queued = queued.following()
    assert chain == [
        ("sched-100-abc-2", 110.0, 4),
        ("sched-100-abc-3", 120.0, 3),
        ("sched-100-abc-4", 130.0, 2),
        ("sched-100-abc-5", 140.0, 1),
        ("sched-100-abc-6", 150.0, 0),
    ]
    assert QueuedRound.second_of(RoundRequest("scheduled", "sched-1-x"), started_at=1.0) is None


def test_a_queued_round_is_late_past_half_its_spacing() -> None:
    from quorum_dr.probes.event import QueuedRound

    message = QueuedRound(series="s", index=2, due_at=1000.0, remaining=0, spacing_seconds=20)
    assert not message.is_late(999.0) and not message.is_late(1010.0)
    assert message.is_late(1010.01)


def test_a_malformed_queue_event_names_its_field_and_a_malformed_body_is_returned_not_raised() -> None:
    from quorum_dr.probes.event import is_queue_event, parse_queue_event

    with pytest.raises(InvalidProbeEvent, match=r"Records\.0\.eventSource: Input should be 'aws:sqs'"):
        parse_queue_event({"Records": [{"messageId": "m", "body": "{}", "eventSource": "aws:sns"}]})
    with pytest.raises(InvalidProbeEvent, match="Records: List should have at least 1 item"):
        parse_queue_event({"Records": []})
    (message,) = parse_queue_event({"Records": [{"messageId": "m", "body": "{}", "eventSource": "aws:sqs"}]})
    assert message.queued is None and "series: Field required" in message.problem
    assert is_queue_event({"Records": []}) and not is_queue_event(SCHEDULE)
