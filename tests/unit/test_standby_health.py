"""Standby health: the standby (dr while main serves) DOWN by quorum is said once, and its return.

Table-driven over the rounds each region saw; the config is the example's (interval 30 s,
down_after_rounds 2, freshness 90 s, quorum 2 of 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from quorum_dr.domain.results import CONTROL_SITE, DbRole, DbStatus, FailureClass, ProbeResult, Vote
from quorum_dr.domain.standby_health import (
    STANDBY_DOWN,
    STANDBY_RECOVERED,
    StandbyAlertDetail,
    StandbyRecord,
    evaluate_standby,
    standby_change,
)
from quorum_dr.domain.state import ServiceStatus
from tests.fakes import REGIONS, probe_config

CONFIG = probe_config()
T0 = 1_700_000_000.0
INTERVAL = 30.0

# What one region saw of the dr site in one round: "ok" (app up, streaming standby), "app" (the
# HTTP check fails), "db" (the database refuses connections), "lag" (a standby NOT streaming),
# "primary" (dr's database answers as a primary), "net" (the region's own network: control fails).
Seen = str


def _result(
    site: str, check: str, kind: str, region: str, round_id: str, at: float, **kw: object
) -> ProbeResult:
    return ProbeResult(
        service="booking",
        site=site,
        check=check,
        check_type=kind,
        region=region,
        round_id=round_id,
        latency_ms=1,
        probe_time=at,
        received_at=at,
        **kw,  # type: ignore[arg-type]
    )


def round_results(region: str, index: int, dr: Seen, main_up: bool = True) -> list[ProbeResult]:
    at = T0 + index * INTERVAL + REGIONS.index(region)  # regions a second apart
    rid = f"{region}-r{index}"
    up = {"vote": Vote.UP}
    down = {"vote": Vote.DOWN, "failure_class": FailureClass.CONNECT_REFUSED}
    standby = DbStatus(role=DbRole.STANDBY, receive_lsn="0/5000000", streaming=dr != "lag")
    results = [
        _result(CONTROL_SITE, "control", "tcp", region, rid, at, **(down if dr == "net" else up)),
        _result("main", "https-health", "http", region, rid, at, **(up if main_up else down)),
        _result(
            "main",
            "postgres",
            "postgres",
            region,
            rid,
            at,
            counts=False,
            **({**up, "db": DbStatus(role=DbRole.PRIMARY, current_lsn="0/5000000")} if main_up else down),
        ),
        _result("dr", "https-health", "http", region, rid, at, **(down if dr in ("app", "net") else up)),
    ]
    if dr in ("db", "net"):
        db: dict[str, object] = {**down, "failure_class": FailureClass.CONNECT_REFUSED}
    elif dr == "primary":
        db = {**up, "db": DbStatus(role=DbRole.PRIMARY, current_lsn="0/6000000")}
    else:
        db = {**up, "db": standby}
    results.append(_result("dr", "postgres", "postgres", region, rid, at, counts=False, **db))
    return results


@dataclass
class Case:
    rounds: dict[str, list[Seen]]  # region -> what it saw, oldest round first
    previous: StandbyRecord | None = None
    change: str | None = None
    says: list[str] = field(default_factory=list)
    main_up: bool = True
    active: str = "main"
    status: ServiceStatus = ServiceStatus.HEALTHY


def said_down(since: float = T0) -> StandbyRecord:
    return StandbyRecord(
        site="dr",
        down=True,
        since=since,
        said_at=T0 + 60,
        reason="dr is DOWN",
        region="us-east-1",
        round_id="x",
    )


ALL = dict.fromkeys(REGIONS)
CASES = {
    "app down in every region: DOWN": Case(
        {r: ["ok", "app", "app"] for r in ALL},
        change="down",
        says=[
            "dr (US East), the standby of booking while main serves, is DOWN: 3 of 3 probe regions "
            "(eu-west-2, us-east-1, us-west-2) saw 2 consecutive failing rounds; failing: "
            "https-health: connect_refused (from eu-west-2)",
            "failing since 2023-11-14 22:13:50Z",
            "quorum is 2. Until it is back, a failover of main has no hot standby to go to",
        ],
    ),
    "database refused in two regions: DOWN by quorum": Case(
        {"eu-west-2": ["db", "db"], "us-east-1": ["db", "db"], "us-west-2": ["ok", "ok"]},
        change="down",
        says=["2 of 3 probe regions (eu-west-2, us-east-1)", "postgres: connect_refused (from us-east-1)"],
    ),
    "standby not streaming: DOWN": Case(
        {r: ["lag", "lag"] for r in ALL},
        change="down",
        says=["postgres: standby NOT streaming from the primary (from us-west-2)"],
    ),
    "dr answers as a primary: DOWN": Case(
        {r: ["primary", "primary"] for r in ALL},
        change="down",
        says=["postgres: answered as a primary, not a streaming standby"],
    ),
    "one region fails alone: no alert": Case(
        {"eu-west-2": ["app", "app", "app"], "us-east-1": ["ok"] * 3, "us-west-2": ["ok"] * 3},
        change=None,
        says=["no change for dr (US East)", "dr is UP"],
    ),
    "one region's own network is bad: it abstains, no alert": Case(
        {"eu-west-2": ["net", "net"], "us-east-1": ["net", "net"], "us-west-2": ["ok", "ok"]}, change=None
    ),
    "a single failing round is not yet a vote": Case({r: ["ok", "ok", "app"] for r in ALL}, change=None),
    "still down after it was said: no repeat": Case(
        {r: ["app", "app", "app"] for r in ALL}, previous=said_down(), change=None, says=["still DOWN"]
    ),
    "back UP after it was said: recovered": Case(
        {r: ["app", "app", "ok"] for r in ALL},
        previous=said_down(since=T0 - 600),
        change="recovered",
        says=[
            "dr (US East), the standby of booking while main serves, is back UP: 3 of 3 probe regions",
            "It had been DOWN since 2023-11-14 22:03:20Z (11 min), said at 2023-11-14 22:14:20Z",
        ],
    ),
    "back in one region only after it was said: not yet": Case(
        {"eu-west-2": ["app", "ok"], "us-east-1": ["ok", "app"], "us-west-2": ["app", "app"]},
        previous=said_down(),
        change=None,
        says=["not yet UP by quorum"],
    ),
    "said about another site: dr down is news": Case(
        {r: ["app", "app"] for r in ALL},
        previous=StandbyRecord(site="main", down=True, said_at=T0, reason="", region="x", round_id="y"),
        change="down",
    ),
    "main itself DOWN: dr not streaming is not a second alert": Case(
        {r: ["lag", "lag"] for r in ALL}, main_up=False, change=None
    ),
    "main itself DOWN: dr refusing connections still is": Case(
        {r: ["db", "db"] for r in ALL}, main_up=False, change="down"
    ),
    "failover under way: not watched": Case(
        {r: ["primary", "primary"] for r in ALL},
        status=ServiceStatus.FAILING_OVER,
        change=None,
        says=["a failover is under way"],
    ),
    "cold serves: no standby": Case(
        {r: ["app", "app"] for r in ALL}, active="cold", change=None, says=["no hot standby to watch"]
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_standby_change(case: Case) -> None:
    results = [
        r
        for region, seen in case.rounds.items()
        for index, what in enumerate(seen)
        for r in round_results(region, index, what, case.main_up)
    ]
    now = max(r.received_at or 0.0 for r in results) + 1
    view = evaluate_standby(results, CONFIG, "booking", active_site=case.active, status=case.status, now=now)
    change = standby_change(view, case.previous, CONFIG, region="us-east-1", round_id="this", now=now)
    assert change.change == case.change, change.reason
    for words in case.says:
        assert words in change.reason
    if case.change is None:
        assert change.record is None
        return
    assert change.record is not None and change.record.site == "dr"
    assert change.record.down is (case.change == "down")
    detail = StandbyAlertDetail.model_validate(change.detail().model_dump(mode="json"))
    assert change.detail_type == (STANDBY_DOWN if case.change == "down" else STANDBY_RECOVERED)
    assert detail.site == "dr" and detail.active_site == "main" and detail.region == "us-east-1"
    assert len(detail.regions) >= CONFIG.quorum


def test_after_a_failover_main_is_the_standby() -> None:
    results = [
        r for region in REGIONS for i in range(2) for r in round_results(region, i, "ok", main_up=False)
    ]
    now = T0 + INTERVAL + 5
    view = evaluate_standby(
        results, CONFIG, "booking", active_site="dr", status=ServiceStatus.FAILED_OVER, now=now
    )
    change = standby_change(view, None, CONFIG, region="eu-west-2", round_id="this", now=now)
    assert change.change == "down"
    assert change.reason.startswith("main (London), the standby of booking while dr serves, is DOWN")


def test_stale_results_are_no_vote() -> None:
    """Rounds older than freshness (90 s) say nothing, however bad they were."""
    results = [r for region in REGIONS for i in range(2) for r in round_results(region, i, "app")]
    now = T0 + INTERVAL + 2 + 91
    view = evaluate_standby(
        results, CONFIG, "booking", active_site="main", status=ServiceStatus.HEALTHY, now=now
    )
    assert standby_change(view, None, CONFIG, region="x", round_id="y", now=now).change is None


def test_the_default_settings_alert_within_three_probe_intervals() -> None:
    """The docstring's arithmetic: down_after_rounds rounds plus one round's budget fit in 3 intervals,
    and the voters' rounds are still fresh when the quorum forms."""
    probe = CONFIG.probe
    budget = 2 * probe.timeout_seconds + 5  # ProbeService.round_budget_seconds
    worst = probe.down_after_rounds * probe.interval_seconds + budget
    assert worst <= 3 * probe.interval_seconds
    assert (probe.down_after_rounds - 1) * probe.interval_seconds + budget <= probe.freshness_seconds
