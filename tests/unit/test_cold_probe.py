"""The rule of a scheduled round's cold checks: left out only while the state says, beyond doubt,
that the cold site is not launched; when in doubt, probed."""

from __future__ import annotations

import pytest

from quorum_dr.domain.cold_probe import confirmation_cold_probe, scheduled_cold_probe
from quorum_dr.domain.state import ServiceState, ServiceStatus

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def state(**kw: object) -> ServiceState:
    return ServiceState(service="booking", **kw)


CASES = [
    # (name, state or None, probe?, words the reason must carry)
    ("steady on main", state(), False, "not launched"),
    (
        "steady on dr after a hot failover, cooldown over",
        state(active_site="dr", status=ServiceStatus.FAILED_OVER, cooldown_until=NOW - 1),
        False,
        "FAILED_OVER on dr",
    ),
    ("active cold", state(active_site="cold", status=ServiceStatus.FAILED_OVER), True, "active site"),
    ("active cold, even HEALTHY", state(active_site="cold"), True, "active site"),
    ("failing over", state(status=ServiceStatus.FAILING_OVER), True, "FAILING_OVER"),
    ("confirming", state(status=ServiceStatus.CONFIRMING), True, "CONFIRMING"),
    ("needs attention", state(status=ServiceStatus.NEEDS_ATTENTION), True, "NEEDS_ATTENTION"),
    ("lock recorded", state(lock_holder="inc-7"), True, "inc-7 holds the lock"),
    ("cooldown running", state(cooldown_until=NOW + 60, counted_incident="inc-8"), True, "inc-8"),
    ("state unreadable", None, True, "could not be read"),
]


@pytest.mark.parametrize(("name", "given", "probe", "words"), CASES, ids=[c[0] for c in CASES])
def test_the_rule(name: str, given: ServiceState | None, probe: bool, words: str) -> None:
    rule = scheduled_cold_probe(given, service="booking", now=NOW, error=None if given else "AccessDenied")
    assert rule.probe is probe, rule.reason
    assert words in rule.reason
    assert "booking" in rule.reason


def test_an_unreadable_state_says_why() -> None:
    rule = scheduled_cold_probe(None, service="booking", now=NOW, error="ClientError: throttled")
    assert rule.probe
    assert rule.reason == (
        "the state of booking could not be read (ClientError: throttled): the cold site is checked, "
        "since it may be launched"
    )


def test_the_skip_sentence() -> None:
    rule = scheduled_cold_probe(state(), service="booking", now=NOW)
    assert not rule.probe
    assert rule.reason == (
        "the cold site of booking is not launched: booking is HEALTHY on main, no incident holds the "
        "lock and no cooldown runs, so scheduled rounds leave its checks out (on-demand rounds still "
        "check it)"
    )


CONFIRMATION_CASES = [
    # (name, state or None, target, probe?, words the reason must carry)
    ("steady on main", state(), None, False, "not launched"),
    (
        "its own CONFIRMING and lock",
        state(status=ServiceStatus.CONFIRMING, lock_holder="inc-1"),
        None,
        False,
        "not launched",
    ),
    ("the operator asks for cold", state(), "cold", True, "target"),
    ("active cold", state(active_site="cold", status=ServiceStatus.FAILED_OVER), None, True, "active site"),
    ("failing over", state(status=ServiceStatus.FAILING_OVER), None, True, "FAILING_OVER"),
    ("needs attention", state(status=ServiceStatus.NEEDS_ATTENTION), None, True, "NEEDS_ATTENTION"),
    ("another incident's lock", state(lock_holder="inc-9"), None, True, "inc-9, not this one"),
    ("cooldown running", state(cooldown_until=NOW + 60, counted_incident="inc-8"), None, True, "inc-8"),
    ("state unreadable", None, None, True, "could not be read"),
]


@pytest.mark.parametrize(
    ("name", "given", "target", "probe", "words"), CONFIRMATION_CASES, ids=[c[0] for c in CONFIRMATION_CASES]
)
def test_the_confirmation_rule(
    name: str, given: ServiceState | None, target: str | None, probe: bool, words: str
) -> None:
    rule = confirmation_cold_probe(
        given,
        service="booking",
        incident_id="inc-1",
        target=target,
        now=NOW,
        error=None if given else "throttled",
    )
    assert rule.probe is probe, rule.reason
    assert words in rule.reason
