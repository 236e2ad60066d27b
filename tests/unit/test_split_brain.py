"""Split brain: two sites with a PostgreSQL primary in one round is told to a person at once."""

from __future__ import annotations

from typing import Any

import pytest

from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.domain.results import DbRole, DbStatus, ProbeResult, Vote
from quorum_dr.domain.split_brain import SPLIT_BRAIN_SUSPECTED, detect_split_brain, split_brain_change
from quorum_dr.probes.event import RoundRequest
from quorum_dr.probes.outcome import CheckOutcome
from quorum_dr.probes.service import ProbeService
from tests.fakes import Clock, FakeBus, FakeResults, probe_config


def pg(site: str, role: DbRole | None, lsn: str | None = None, service: str = "booking") -> ProbeResult:
    db = None if role is None else DbStatus(role=role, current_lsn=lsn if role is DbRole.PRIMARY else None)
    return ProbeResult(
        service=service,
        site=site,
        check="postgres",
        check_type="postgres",
        region="us-east-1",
        round_id="r1",
        vote=Vote.UP if role else Vote.DOWN,
        latency_ms=1,
        probe_time=0,
        counts=False,
        db=db,
    )


def test_two_primaries_in_one_round_is_a_suspected_split_brain() -> None:
    verdict = detect_split_brain(
        [pg("dr", DbRole.PRIMARY, "0/5000100"), pg("main", DbRole.PRIMARY, "0/4FFFF00")], "booking"
    )
    assert verdict.suspected is True
    assert verdict.sites == ["main", "dr"]
    assert verdict.lsns == {"main": "0/4FFFF00", "dr": "0/5000100"}
    assert verdict.reason.startswith(
        "split brain suspected for booking: 2 sites have a PostgreSQL primary at once: "
        "main (WAL 0/4FFFF00), dr (WAL 0/5000100)."
    )
    assert "quorum-dr does not do this itself" in verdict.reason


@pytest.mark.parametrize(
    "results, reason",
    [
        ([pg("main", DbRole.PRIMARY, "0/1"), pg("dr", DbRole.STANDBY)], "only main has a primary"),
        ([pg("main", None), pg("dr", DbRole.PRIMARY, "0/2")], "only dr has a primary"),
        ([pg("main", None), pg("dr", None)], "no site reported a primary"),
        ([pg("main", DbRole.PRIMARY, "0/1"), pg("dr", DbRole.PRIMARY, "0/2", service="shop")], "only main"),
    ],
    ids=["normal", "after-failover", "nothing-answers", "other-service"],
)
def test_one_primary_or_none_is_no_split_brain(results: list[ProbeResult], reason: str) -> None:
    verdict = detect_split_brain(results, "booking")
    assert verdict.suspected is False and verdict.reason.startswith(reason)


def test_the_same_site_seen_primary_twice_is_one_primary() -> None:
    verdict = detect_split_brain(
        [pg("dr", DbRole.PRIMARY, "0/2"), pg("dr", DbRole.PRIMARY, "0/3")], "booking"
    )
    assert verdict.suspected is False and verdict.sites == ["dr"]


def service_with(roles: dict[str, DbRole], clock: Clock | None = None) -> tuple[ProbeService, FakeBus]:
    clock = clock or Clock()
    bus = FakeBus()

    async def postgres(check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:
        site = "main" if check.host == "203.0.113.10" else "dr"
        role = roles[site]
        lsn = "0/7000000" if site == "main" else "0/7100000"
        status = DbStatus(role=role, current_lsn=lsn if role is DbRole.PRIMARY else None)
        return CheckOutcome.up(1, f"{site} is a {role}", db=status)

    async def up(check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:
        return CheckOutcome.up(1, "fine")

    probe = ProbeService(
        probe_config(),
        region="us-east-1",
        results=FakeResults(clock),
        events=bus,
        secrets=StaticSecrets({}),
        clock=clock,
        runners={"http": up, "tcp": up, "postgres": postgres},
    )
    return probe, bus


def test_the_probe_round_publishes_split_brain_suspected_with_sites_lsns_and_reason() -> None:
    probe, bus = service_with({"main": DbRole.PRIMARY, "dr": DbRole.PRIMARY})
    outcome = probe.run(RoundRequest("scheduled", "sched-1"))
    published = [(kind, detail) for kind, detail in bus.events if kind == SPLIT_BRAIN_SUSPECTED]
    assert len(published) == 1
    detail = published[0][1]
    assert detail["service"] == "booking" and detail["region"] == "us-east-1"
    assert detail["round_id"] == "sched-1"
    assert detail["sites"] == ["main", "dr"]
    assert detail["lsns"] == {"main": "0/7000000", "dr": "0/7100000"}
    assert detail["reason"].startswith("split brain suspected for booking")
    assert [e.detail_type for e in outcome.events] == [SPLIT_BRAIN_SUSPECTED]


def test_a_healthy_pair_publishes_no_split_brain() -> None:
    probe, bus = service_with({"main": DbRole.PRIMARY, "dr": DbRole.STANDBY})
    probe.run(RoundRequest("scheduled", "sched-2"))
    assert [kind for kind, _ in bus.events] == []


def test_nineteen_rounds_with_two_primaries_alert_once_and_the_return_to_one_alerts_once() -> None:
    """The old-primary-returns drill raised 19 alerts for one split brain. Once per change: the
    probe Lambda remembers nothing, so the change is read from this region's stored results."""
    clock = Clock()
    roles = {"main": DbRole.PRIMARY, "dr": DbRole.PRIMARY}
    probe, bus = service_with(roles, clock)
    outcomes = []
    for n in range(19):
        clock.now += 30
        outcomes.append(probe.run(RoundRequest("scheduled", f"sched-{n}")))
    alerts = [detail for kind, detail in bus.events if kind == SPLIT_BRAIN_SUSPECTED]
    assert len(alerts) == 1
    assert alerts[0]["change"] == "appeared" and alerts[0]["round_id"] == "sched-0"
    assert alerts[0]["sites"] == ["main", "dr"] and alerts[0]["previous_sites"] == []
    # the evidence stays in every round's stored results
    assert all(
        {r.site for r in o.stored if r.db is not None and r.db.role is DbRole.PRIMARY} == {"main", "dr"}
        for o in outcomes
    )

    roles["main"] = DbRole.STANDBY  # the old main is fenced and follows dr
    for n in range(19, 25):
        clock.now += 30
        probe.run(RoundRequest("scheduled", f"sched-{n}"))
    alerts = [detail for kind, detail in bus.events if kind == SPLIT_BRAIN_SUSPECTED]
    assert [a["change"] for a in alerts] == ["appeared", "resolved"]
    resolved = alerts[1]
    assert resolved["round_id"] == "sched-19" and resolved["sites"] == ["dr"]
    assert resolved["previous_sites"] == ["main", "dr"]
    assert resolved["reason"] == (
        "split brain over for booking, seen from us-east-1: only dr has a primary; before, main (WAL "
        "0/7000000), dr (WAL 0/7100000) each had a PostgreSQL primary. Check which writes each one took "
        "while both were primaries"
    )


def test_a_round_that_did_not_check_a_site_keeps_its_last_result() -> None:
    """A confirmation round of main alone neither resolves nor re-raises dr's split brain."""
    earlier = [pg("main", DbRole.PRIMARY, "0/1"), pg("dr", DbRole.PRIMARY, "0/2")]
    change = split_brain_change(earlier, [pg("main", DbRole.PRIMARY, "0/3")], "booking", region="us-east-1")
    assert change.change is None and change.now.suspected


def test_a_third_primary_is_a_change_and_alerts_again() -> None:
    earlier = [pg("main", DbRole.PRIMARY, "0/1"), pg("dr", DbRole.PRIMARY, "0/2")]
    now = [pg("cold", DbRole.PRIMARY, "0/9")]
    change = split_brain_change(earlier, now, "booking", region="us-east-1")
    assert change.change == "appeared" and change.now.sites == ["main", "dr", "cold"]


def test_a_primary_that_stops_answering_ends_the_split_brain_as_seen() -> None:
    earlier = [pg("main", DbRole.PRIMARY, "0/1"), pg("dr", DbRole.PRIMARY, "0/2")]
    change = split_brain_change(earlier, [pg("main", None)], "booking", region="us-east-1")
    assert change.change == "resolved" and change.now.sites == ["dr"]
