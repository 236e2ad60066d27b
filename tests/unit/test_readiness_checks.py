"""The readiness checks, pure: each one OK on healthy facts, and FAIL (or WARN) for the right reason.

The facts are the models the adapter fills (`quorum_dr.domain.readiness`); the probe results are
`ProbeResult`s with the `DbStatus` the PostgreSQL check records. Every case states the status and
a fragment of the sentence an operator reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from quorum_dr.config import WatchdogConfig
from quorum_dr.domain.readiness import (
    Check,
    ColdSiteFacts,
    EdgeFacts,
    FileSyncFacts,
    LockItem,
    Readiness,
    ReadinessFacts,
    ResultFacts,
    SecretFact,
    StateFacts,
    Status,
    TokenFacts,
    assess,
    cloudflare_token_check,
    cold_site_check,
    edge_check,
    file_sync_check,
    parse_marker,
    probe_regions_check,
    secrets_check,
    service_state_check,
    size_text,
    standby_check,
)
from quorum_dr.domain.results import (
    CONTROL_SITE,
    DbRole,
    DbStatus,
    FailureClass,
    ProbeResult,
    Vote,
    format_lsn,
)
from quorum_dr.domain.state import AutomationChange, ServiceState, ServiceStatus, utc_day
from tests.fakes import REGIONS, make_config

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
MiB = 1024 * 1024
CONFIG: WatchdogConfig = make_config()
SERVICE = CONFIG.services[0]
assert SERVICE.database is not None
DATABASE = SERVICE.database  # limits 16 MiB / 30 s
MAIN_LSN = 0x3000100


# ---------------------------------------------------------------------------------------------
# Probe results as the probes record them
# ---------------------------------------------------------------------------------------------


def standby_db(**kw: Any) -> DbStatus:
    fields: dict[str, Any] = {
        "role": DbRole.STANDBY,
        "receive_lsn": format_lsn(MAIN_LSN),
        "replay_lsn": format_lsn(MAIN_LSN),
        "replay_lag_bytes": 0,
        "replay_lag_seconds": 600.0,  # an idle primary: the last replayed transaction is old
        "streaming": True,
    }
    return DbStatus(**{**fields, **kw})


def primary_db(lsn: int = MAIN_LSN) -> DbStatus:
    return DbStatus(role=DbRole.PRIMARY, current_lsn=format_lsn(lsn))


def result(site: str, region: str, *, age: float = 5.0, round_id: str = "r1", **kw: Any) -> ProbeResult:
    fields: dict[str, Any] = {
        "service": "booking",
        "site": site,
        "check": "postgres" if site in ("main", "dr") else "control-aws",
        "check_type": "postgres" if site in ("main", "dr") else "tcp",
        "region": region,
        "round_id": f"{region}-{round_id}",
        "vote": Vote.UP,
        "latency_ms": 3.0,
        "probe_time": NOW - age,
        "received_at": NOW - age,
    }
    return ProbeResult(**{**fields, **kw})


def round_of(
    region: str,
    *,
    age: float = 5.0,
    main: DbStatus | None = None,
    dr: DbStatus | None = None,
    abstaining: bool = False,
    **dr_fields: Any,
) -> list[ProbeResult]:
    """One round of one region: its control check, main's and dr's PostgreSQL checks."""
    return [
        result(CONTROL_SITE, region, age=age, abstaining=abstaining),
        result("main", region, age=age, db=main or primary_db(), abstaining=abstaining),
        result("dr", region, age=age, db=dr or standby_db(), abstaining=abstaining, **dr_fields),
    ]


def healthy_results(**per_region: Any) -> list[ProbeResult]:
    return [r for region in REGIONS for r in round_of(region, **per_region)]


def results(items: list[ProbeResult], error: str | None = None) -> ResultFacts:
    return ResultFacts(results=items, since=NOW - 600, error=error)


def run_standby(facts: ResultFacts, active: str | None = "main", checks: Any = None) -> Check:
    return standby_check(
        facts,
        service="booking",
        active_site=active,
        database=DATABASE,
        postgres_checks=checks if checks is not None else {"main": ["postgres"], "dr": ["postgres"]},
        now=NOW,
        freshness_seconds=90,
    )


# ---------------------------------------------------------------------------------------------
# standby
# ---------------------------------------------------------------------------------------------

STANDBY_CASES: list[tuple[str, Callable[[], Check], Status, str]] = [
    (
        "healthy",
        lambda: run_standby(results(healthy_results())),
        Status.OK,
        "dr standby streams, lag 0 bytes / 0 s within the limit 16 MiB / 30 s (replay behind main's WAL "
        "position in the same round; probed from",
    ),
    (
        "lag within the limit",
        lambda: run_standby(
            results(healthy_results(dr=standby_db(replay_lsn=format_lsn(MAIN_LSN - 1_258_291)), main=None))
        ),
        Status.OK,
        "dr standby streams, lag 1.2 MiB / 0 s within the limit 16 MiB / 30 s",
    ),
    (
        "not streaming",
        lambda: run_standby(results(healthy_results(dr=standby_db(streaming=False)))),
        Status.FAIL,
        "the dr standby is not streaming from main (probed from",
    ),
    (
        "bytes over the limit",
        lambda: run_standby(results(healthy_results(main=primary_db(MAIN_LSN + 20 * MiB)))),
        Status.FAIL,
        "the dr standby streams but lag 20 MiB / 0 s over the limit 16 MiB / 30 s",
    ),
    (
        "seconds over the limit",
        lambda: run_standby(
            results(
                healthy_results(
                    dr=standby_db(
                        replay_lsn=format_lsn(MAIN_LSN - 4096), replay_lag_bytes=4096, replay_lag_seconds=45.0
                    )
                )
            )
        ),
        Status.FAIL,
        "the dr standby streams but lag 4 KiB / 45 s over the limit 16 MiB / 30 s",
    ),
    (
        "stale results",
        lambda: run_standby(results(healthy_results(age=200.0))),
        Status.WARN,
        "the newest probe of the dr database is stale (200 s old, fresh within 90 s): as of then, lag 0 "
        "bytes",
    ),
    (
        "no results",
        lambda: run_standby(results([])),
        Status.FAIL,
        "no probe reported the dr database (check postgres) since",
    ),
    (
        "dr is a primary",
        lambda: run_standby(results(healthy_results(dr=primary_db()))),
        Status.FAIL,
        "the dr database is a primary, not a standby",
    ),
    (
        "the check fails from every region",
        lambda: run_standby(
            results(
                [
                    result(
                        "dr",
                        region,
                        vote=Vote.DOWN,
                        failure_class=FailureClass.CONNECT_REFUSED,
                        detail="connection refused",
                    )
                    for region in REGIONS
                ]
            )
        ),
        Status.FAIL,
        "the dr database check failed (probed from",
    ),
    (
        "the check fails from one region only",
        lambda: run_standby(
            results(
                [r for region in REGIONS[:2] for r in round_of(region)]
                + [
                    result(
                        "dr",
                        REGIONS[2],
                        age=1.0,
                        vote=Vote.DOWN,
                        failure_class=FailureClass.CONNECT_TIMEOUT,
                        detail="timed out",
                    )
                ]
            )
        ),
        Status.WARN,
        "but the newest check of the dr database failed from us-west-2: connect_timeout: timed out",
    ),
    (
        "streaming unknown",
        lambda: run_standby(results(healthy_results(dr=standby_db(streaming=None)))),
        Status.WARN,
        "whether its WAL receiver streams is unknown",
    ),
    (
        "seconds unknown while replay is behind",
        lambda: run_standby(
            results(healthy_results(dr=standby_db(replay_lag_bytes=4096, replay_lag_seconds=None)))
        ),
        Status.FAIL,
        "the dr standby's lag is unknown: replay is 4 KiB behind what it received and its lag in seconds",
    ),
    (
        "main not seen in the round",
        lambda: run_standby(results([r for r in healthy_results() if r.site != "main"])),
        Status.OK,
        "lag 0 bytes / 0 s within the limit 16 MiB / 30 s (received but not replayed; main's WAL position "
        "was not seen in that round",
    ),
    (
        "the cold site serves",
        lambda: run_standby(results(healthy_results()), active="cold"),
        Status.FAIL,
        "the cold site serves: neither main's nor dr's database streams from it",
    ),
    (
        "dr serves: main is the standby",
        lambda: run_standby(
            results(
                [
                    r.model_copy(update={"site": {"main": "dr", "dr": "main"}.get(r.site, r.site)})
                    for r in healthy_results()
                ]
            ),
            active="dr",
        ),
        Status.OK,
        "main standby streams, lag 0 bytes / 0 s within the limit",
    ),
    (
        "results unreadable",
        lambda: run_standby(results([], error="ResourceNotFoundException: Requested resource not found")),
        Status.FAIL,
        "cannot read the probe results: ResourceNotFoundException: Requested resource not found",
    ),
    (
        "active site unknown",
        lambda: run_standby(results(healthy_results()), active=None),
        Status.FAIL,
        "the active site is unknown (the state could not be read)",
    ),
    (
        "no postgres check on dr",
        lambda: run_standby(results(healthy_results()), checks={"main": ["postgres"], "dr": []}),
        Status.FAIL,
        "no postgres check is configured on the dr site",
    ),
]


@pytest.mark.parametrize(
    ("run", "status", "fragment"), [c[1:] for c in STANDBY_CASES], ids=[c[0] for c in STANDBY_CASES]
)
def test_standby(run: Callable[[], Check], status: Status, fragment: str) -> None:
    check = run()
    assert check.name == "standby"
    assert (check.status, fragment in check.reason) == (status, True), check.reason


def test_standby_figures_carry_the_lag_and_the_limits() -> None:
    check = run_standby(results(healthy_results(main=primary_db(MAIN_LSN + 2 * MiB))))
    assert check.figures["lag_bytes"] == 2 * MiB
    assert check.figures["lag_seconds"] == 0.0
    assert check.figures["max_lag_bytes"] == 16 * MiB and check.figures["max_lag_seconds"] == 30


# ---------------------------------------------------------------------------------------------
# probe regions
# ---------------------------------------------------------------------------------------------


def run_regions(items: list[ProbeResult], error: str | None = None) -> Check:
    return probe_regions_check(
        results(items, error), service="booking", regions=REGIONS, quorum=2, interval_seconds=30, now=NOW
    )


REGION_CASES: list[tuple[str, Callable[[], Check], Status, str]] = [
    (
        "every region reports",
        lambda: run_regions(healthy_results()),
        Status.OK,
        "all 3 probe regions reported within two probe intervals (60 s): eu-west-2 5 s ago, us-east-1 5 s "
        "ago",
    ),
    (
        "one region is late",
        lambda: run_regions(round_of("eu-west-2") + round_of("us-east-1") + round_of("us-west-2", age=100.0)),
        Status.FAIL,
        "1 of 3 probe regions did not report within two probe intervals (60 s): us-west-2 last 100 s ago",
    ),
    (
        "one region is silent",
        lambda: run_regions(round_of("eu-west-2") + round_of("us-east-1")),
        Status.FAIL,
        "us-west-2 not since",
    ),
    (
        "two regions are silent",
        lambda: run_regions(round_of("eu-west-2")),
        Status.FAIL,
        "only 1 can vote, the quorum needs 2",
    ),
    (
        "one region abstains",
        lambda: run_regions(
            round_of("eu-west-2") + round_of("us-east-1") + round_of("us-west-2", abstaining=True)
        ),
        Status.WARN,
        "but us-west-2 abstains (its control target failed); 2 vote, the quorum needs 2",
    ),
    (
        "two regions abstain",
        lambda: run_regions(
            round_of("eu-west-2")
            + round_of("us-east-1", abstaining=True)
            + round_of("us-west-2", abstaining=True)
        ),
        Status.FAIL,
        "us-east-1, us-west-2 abstains (its control target failed); only 1 can vote, the quorum needs 2",
    ),
    (
        "an older round does not hide a newer one",
        lambda: run_regions(healthy_results(age=300.0) + healthy_results(age=10.0)),
        Status.OK,
        "all 3 probe regions reported",
    ),
    (
        "results unreadable",
        lambda: run_regions([], error="AccessDeniedException: not allowed"),
        Status.FAIL,
        "cannot read the probe results: AccessDeniedException: not allowed",
    ),
]


@pytest.mark.parametrize(
    ("run", "status", "fragment"), [c[1:] for c in REGION_CASES], ids=[c[0] for c in REGION_CASES]
)
def test_probe_regions(run: Callable[[], Check], status: Status, fragment: str) -> None:
    check = run()
    assert check.name == "probe_regions"
    assert (check.status, fragment in check.reason) == (status, True), check.reason


# ---------------------------------------------------------------------------------------------
# service state
# ---------------------------------------------------------------------------------------------


def state_facts(lock: dict[str, Any] | None = None, **kw: Any) -> StateFacts:
    execution = {k: kw.pop(k) for k in ("execution_status", "execution_unchecked") if k in kw}
    return StateFacts(
        state=ServiceState(service="booking", **kw),
        lock=LockItem.model_validate(lock) if lock else None,
        **execution,
    )


LIVE_LOCK = {
    "incident_id": "inc-9",
    "holder": "inc-9",
    "acquired_at": NOW - 60,
    "lock_expires_at": NOW + 3600,
}

STATE_CASES: list[tuple[str, StateFacts, Status, str]] = [
    ("healthy", state_facts(), Status.OK, "booking is HEALTHY on main, automation on, no lock held"),
    (
        "needs attention",
        state_facts(status=ServiceStatus.NEEDS_ATTENTION, lock_holder="inc-7"),
        Status.FAIL,
        "booking needs attention after incident inc-7: no automatic failover until an operator resets it",
    ),
    (
        "a kept lock",
        state_facts({"incident_id": "inc-7", "holder": "inc-7", "kept": True, "lock_expires_at": 2**53}),
        Status.FAIL,
        "incident inc-7 (execution inc-7) keeps the lock after an escalation",
    ),
    (
        "an expired lock still present",
        state_facts({**LIVE_LOCK, "lock_expires_at": NOW - 120}),
        Status.FAIL,
        "the lock of incident inc-9 (execution inc-9) is stale: it expired at 2027-01-15 07:58:00Z "
        "(120 s ago)",
    ),
    (
        "a lock whose execution ended",
        state_facts(LIVE_LOCK, execution_status="SUCCEEDED"),
        Status.FAIL,
        "the lock of incident inc-9 (execution inc-9) is stale: its execution is SUCCEEDED",
    ),
    (
        "a lock whose execution is not found",
        state_facts(LIVE_LOCK, execution_status="NOT_FOUND"),
        Status.FAIL,
        "is stale: its execution is NOT_FOUND",
    ),
    (
        "a lock whose execution runs",
        state_facts(LIVE_LOCK, execution_status="RUNNING"),
        Status.WARN,
        "incident inc-9 (execution inc-9) holds the lock until 2027-01-15 09:00:00Z: a failover or "
        "switchover is under way",
    ),
    (
        "a lock not checked",
        state_facts(LIVE_LOCK, execution_unchecked="no state machine given"),
        Status.WARN,
        "whether its execution still runs was not checked (no state machine given)",
    ),
    (
        "paused",
        state_facts(
            automation_enabled=False,
            automation_changed=AutomationChange(
                at=NOW - 3600, by="alice", reason="maintenance", enabled=False
            ),
        ),
        Status.WARN,
        "automation is paused by alice at 2027-01-15 07:00:00Z (maintenance): automatic triggers are refused",
    ),
    (
        "cooldown",
        state_facts(cooldown_until=NOW + 600),
        Status.WARN,
        "in cooldown until 2027-01-15 08:10:00Z",
    ),
    (
        "daily cap used",
        state_facts(failover_day=utc_day(NOW), failovers_today=1),
        Status.WARN,
        "1 of the daily cap of 1 automatic failovers used today",
    ),
    (
        "yesterday's failovers do not count",
        state_facts(failover_day=utc_day(NOW - 86_400), failovers_today=1),
        Status.OK,
        "daily cap not reached",
    ),
    (
        "failing over without a lock",
        state_facts(status=ServiceStatus.FAILING_OVER),
        Status.FAIL,
        "booking is FAILING_OVER but no lock is held",
    ),
    (
        "paused and needs attention: the FAIL first",
        state_facts(status=ServiceStatus.NEEDS_ATTENTION, lock_holder="inc-7", automation_enabled=False),
        Status.FAIL,
        "booking needs attention after incident inc-7: no automatic failover until an operator resets it "
        "(drctl reset); automation is paused",
    ),
    (
        "state unreadable",
        StateFacts(error="ResourceNotFoundException: Requested resource not found"),
        Status.FAIL,
        "cannot read the service's state: ResourceNotFoundException",
    ),
]


@pytest.mark.parametrize(
    ("facts", "status", "fragment"), [c[1:] for c in STATE_CASES], ids=[c[0] for c in STATE_CASES]
)
def test_service_state(facts: StateFacts, status: Status, fragment: str) -> None:
    check = service_state_check(facts, policy=SERVICE.failover, now=NOW)
    assert check.name == "service_state"
    assert (check.status, fragment in check.reason) == (status, True), check.reason


# ---------------------------------------------------------------------------------------------
# edge
# ---------------------------------------------------------------------------------------------

EDGE_CASES: list[tuple[str, EdgeFacts, StateFacts, Status, str]] = [
    (
        "as the state says",
        EdgeFacts(site="main", reason="every edge record points at main (203.0.113.10)"),
        state_facts(),
        Status.OK,
        "the edge serves main, as the state says (every edge record points at main (203.0.113.10))",
    ),
    (
        "the edge serves dr while the state says main",
        EdgeFacts(site="dr", reason="every edge record points at dr (198.51.100.20)"),
        state_facts(),
        Status.FAIL,
        "the edge serves dr (every edge record points at dr (198.51.100.20)) but the state says main is "
        "active",
    ),
    (
        "the edge serves main after a failover to dr",
        EdgeFacts(site="main", reason="every edge record points at main (203.0.113.10)"),
        state_facts(active_site="dr", status=ServiceStatus.FAILED_OVER),
        Status.FAIL,
        "the edge serves main (every edge record points at main (203.0.113.10)) but the state says dr",
    ),
    (
        "switched, not yet recorded, while the failover runs",
        EdgeFacts(site="dr", reason="every edge record points at dr (198.51.100.20)"),
        state_facts(LIVE_LOCK, execution_status="RUNNING"),
        Status.WARN,
        "while the state still says main: incident ",
    ),
    (
        "switched, and the lock holder's execution is gone",
        EdgeFacts(site="dr", reason="every edge record points at dr (198.51.100.20)"),
        state_facts(LIVE_LOCK, execution_status="NOT_FOUND"),
        Status.FAIL,
        "but the state says main is active: they disagree",
    ),
    (
        "records disagree",
        EdgeFacts(site=None, reason="the edge records do not point at one known site: ..."),
        state_facts(),
        Status.FAIL,
        "the edge does not point at one known site (the edge records do not point at one known site",
    ),
    (
        "edge unreadable",
        EdgeFacts(error="Cloudflare refused the API token"),
        state_facts(),
        Status.FAIL,
        "cannot read the edge: Cloudflare refused the API token",
    ),
    (
        "state unreadable",
        EdgeFacts(site="main", reason="every edge record points at main"),
        StateFacts(error="no credentials"),
        Status.FAIL,
        "but the state could not be read to compare: no credentials",
    ),
]


@pytest.mark.parametrize(
    ("edge", "state", "status", "fragment"), [c[1:] for c in EDGE_CASES], ids=[c[0] for c in EDGE_CASES]
)
def test_edge(edge: EdgeFacts, state: StateFacts, status: Status, fragment: str) -> None:
    check = edge_check(edge, state=state)
    assert check.name == "edge"
    assert (check.status, fragment in check.reason) == (status, True), check.reason


# ---------------------------------------------------------------------------------------------
# file sync
# ---------------------------------------------------------------------------------------------

MARKER_URL = "https://dr.example.com/.sync-marker"

FILE_SYNC_CASES = [
    ("fresh", FileSyncFacts(url=MARKER_URL, written_at=NOW - 70), state_facts(), Status.OK,
     "file replication lags 70 s, within the limit 300 s (the marker DR serves was written by main at 2027"),
    ("stale", FileSyncFacts(url=MARKER_URL, written_at=NOW - 301), state_facts(), Status.FAIL,
     f"file replication lags 301 s, over the limit 300 s: the marker DR serves ({MARKER_URL}) was written"),
    ("unreadable", FileSyncFacts(url=MARKER_URL, error="HTTP 404"), state_facts(), Status.FAIL,
     f"cannot read the file-sync marker at {MARKER_URL}: HTTP 404"),
    ("from the future", FileSyncFacts(url=MARKER_URL, written_at=NOW + 120), state_facts(), Status.WARN,
     "120 s in this clock's future: main's clock and the home region's disagree"),
    ("slightly ahead", FileSyncFacts(url=MARKER_URL, written_at=NOW + 5), state_facts(), Status.OK,
     "file replication lags 0 s, within the limit 300 s"),
    ("dr active", FileSyncFacts(url=MARKER_URL, written_at=NOW - 9999), state_facts(active_site="dr"),
     Status.WARN, "not checked while dr is active: the marker is written on main and read from DR"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("facts", "state", "status", "fragment"),
    [c[1:] for c in FILE_SYNC_CASES],
    ids=[c[0] for c in FILE_SYNC_CASES],
)
def test_file_sync(facts: FileSyncFacts, state: StateFacts, status: Status, fragment: str) -> None:
    check = file_sync_check(facts, max_lag_seconds=300, state=state, now=NOW)
    assert check.name == "file_sync"
    assert (check.status, fragment in check.reason) == (status, True), check.reason


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "the marker is empty"),
        ("<html>not found</html>", "the marker does not start with epoch seconds: '<html>not"),
        ("12 2026-12-03T14:35:01Z main-host", "the marker's time 12 is not a plausible epoch time"),
    ],
)
def test_a_marker_that_is_not_one_is_refused_with_why(text: str, error: str) -> None:
    with pytest.raises(ValueError, match="^" + error.replace("(", r"\(").replace("*", r"\*")):
        parse_marker(text)


def test_a_marker_is_read_by_its_first_word() -> None:
    assert parse_marker("1796308501.293141143 2026-12-03T14:35:01Z main-host\n") == 1796308501.293141143


# ---------------------------------------------------------------------------------------------
# cold site
# ---------------------------------------------------------------------------------------------


def cold(**kw: Any) -> ColdSiteFacts:
    fields: dict[str, Any] = {
        "region": "us-west-2",
        "image_source": "SSM parameter /quorum-dr/booking/cold-ami",
        "image_id": "ami-0abc",
        "image_state": "available",
        "template": "quorum-dr-booking-cold",
        "template_found": True,
        "dry_run_code": "DryRunOperation",
        "dry_run_message": "Request would have succeeded, but DryRun flag is set.",
    }
    return ColdSiteFacts(**{**fields, **kw})


COLD_CASES: list[tuple[str, ColdSiteFacts, Status, str]] = [
    (
        "can launch",
        cold(),
        Status.OK,
        "the cold site can launch: AMI ami-0abc (from SSM parameter /quorum-dr/booking/cold-ami) is "
        "available and a RunInstances dry run of launch template quorum-dr-booking-cold in us-west-2 "
        "succeeded",
    ),
    (
        "the AMI is gone",
        cold(image_state=None),
        Status.FAIL,
        "AMI ami-0abc (from SSM parameter /quorum-dr/booking/cold-ami) does not exist in us-west-2",
    ),
    (
        "the AMI is not available",
        cold(image_state="pending"),
        Status.FAIL,
        "is pending, not available",
    ),
    (
        "the SSM parameter is gone",
        cold(image_id=None, image_state=None, image_error="the parameter does not exist in us-west-2"),
        Status.FAIL,
        "the AMI from SSM parameter /quorum-dr/booking/cold-ami is unknown: the parameter does not exist",
    ),
    (
        "the launch template is gone",
        cold(template_found=False, dry_run_code=None),
        Status.FAIL,
        "the launch template quorum-dr-booking-cold does not exist in us-west-2",
    ),
    (
        "the dry run is unauthorized",
        cold(dry_run_code="UnauthorizedOperation", dry_run_message="You are not authorized to perform this"),
        Status.FAIL,
        "a RunInstances dry run was refused: UnauthorizedOperation: You are not authorized to perform this",
    ),
    (
        "the dry run could not be asked",
        cold(dry_run_code=None, dry_run_message="not tried: Could not connect to the endpoint URL"),
        Status.FAIL,
        "the RunInstances dry run was not tried: Could not connect to the endpoint URL",
    ),
]


@pytest.mark.parametrize(
    ("facts", "status", "fragment"), [c[1:] for c in COLD_CASES], ids=[c[0] for c in COLD_CASES]
)
def test_cold_site(facts: ColdSiteFacts, status: Status, fragment: str) -> None:
    check = cold_site_check(facts)
    assert check.name == "cold_site"
    assert (check.status, fragment in check.reason) == (status, True), check.reason


# ---------------------------------------------------------------------------------------------
# Cloudflare token
# ---------------------------------------------------------------------------------------------


def token(**kw: Any) -> TokenFacts:
    fields: dict[str, Any] = {
        "secret": "quorum-dr/cloudflare-token",
        "reads": "the A record app.example.com",
        "status": "active",
    }
    return TokenFacts(**{**fields, **kw})


TOKEN_CASES: list[tuple[str, TokenFacts, Status, str]] = [
    (
        "verifies and reads",
        token(),
        Status.OK,
        "the API token from secret quorum-dr/cloudflare-token verifies as active and reads the A record "
        "app.example.com",
    ),
    (
        "the secret cannot be read",
        token(status=None, error="the secret could not be read in eu-west-2: ResourceNotFoundException"),
        Status.FAIL,
        "cannot be verified: the secret could not be read in eu-west-2: ResourceNotFoundException",
    ),
    (
        "Cloudflare refuses the token",
        token(status=None, error="Cloudflare refused the API token (HTTP 401: 1000: Invalid API Token)"),
        Status.FAIL,
        "cannot be verified: Cloudflare refused the API token (HTTP 401: 1000: Invalid API Token)",
    ),
    ("disabled", token(status="disabled"), Status.FAIL, "is disabled, not active"),
    (
        "cannot read the records",
        token(read_error="Cloudflare refused reading the A record app.example.com: HTTP 403"),
        Status.FAIL,
        "verifies but cannot read the A record app.example.com: Cloudflare refused",
    ),
    (
        "expires within a week",
        token(expires_on=NOW + 2 * 86_400),
        Status.WARN,
        "it expires at 2027-01-17 08:00:00Z: renew it",
    ),
    ("expires in a month", token(expires_on=NOW + 30 * 86_400), Status.OK, "verifies as active"),
    (
        "edit permission proven by the marker",
        token(
            edit_proven_at=NOW - 3600,
            edit_proof="proven 2027-01-15 07:00:00Z by the marker in each record's comment",
        ),
        Status.OK,
        "reads the A record app.example.com and may edit it (proven 2027-01-15 07:00:00Z by the marker",
    ),
    (
        "the marker's write is refused",
        token(edit_error="Cloudflare refused the API token ... while writing the edit check (HTTP 403)"),
        Status.FAIL,
        "reads the A record app.example.com but may not edit it: Cloudflare refused the API token",
    ),
    (
        "edit permission not proven (the operator's comment)",
        token(edit_proof="not proven: the comment of the app.example.com A record is the operator's own"),
        Status.OK,
        "(its edit permission: not proven: the comment of the app.example.com A record is the operator's",
    ),
]


@pytest.mark.parametrize(
    ("facts", "status", "fragment"), [c[1:] for c in TOKEN_CASES], ids=[c[0] for c in TOKEN_CASES]
)
def test_cloudflare_token(facts: TokenFacts, status: Status, fragment: str) -> None:
    check = cloudflare_token_check(facts, now=NOW)
    assert check.name == "cloudflare_token"
    assert (check.status, fragment in check.reason) == (status, True), check.reason


# ---------------------------------------------------------------------------------------------
# secrets
# ---------------------------------------------------------------------------------------------


def secret(name: str, region: str = "eu-west-2", **kw: Any) -> SecretFact:
    return SecretFact(region=region, name=name, **{"exists": True, **kw})


SECRET_CASES: list[tuple[str, list[SecretFact], Status, str]] = [
    (
        "all exist",
        [secret("a"), secret("b"), secret("a", "us-east-1")],
        Status.OK,
        "all 3 secrets the functions read exist where they read them (eu-west-2: 2, us-east-1: 1)",
    ),
    (
        "one is missing in one region",
        [secret("a"), secret("a", "us-west-2", exists=False)],
        Status.FAIL,
        "1 of 2 secrets the functions read are not usable: a is missing in us-west-2",
    ),
    (
        "one is scheduled for deletion",
        [secret("a", deleted_at=NOW + 86_400)],
        Status.FAIL,
        "a in eu-west-2 is scheduled for deletion at 2027-01-16 08:00:00Z",
    ),
    (
        "one could not be checked",
        [secret("a", exists=False, error="AccessDeniedException: no")],
        Status.FAIL,
        "a in eu-west-2 could not be checked: AccessDeniedException: no",
    ),
]


@pytest.mark.parametrize(
    ("facts", "status", "fragment"), [c[1:] for c in SECRET_CASES], ids=[c[0] for c in SECRET_CASES]
)
def test_secrets(facts: list[SecretFact], status: Status, fragment: str) -> None:
    check = secrets_check(facts)
    assert check.name == "secrets"
    assert (check.status, fragment in check.reason) == (status, True), check.reason


# ---------------------------------------------------------------------------------------------
# The whole round, the model, the lines
# ---------------------------------------------------------------------------------------------


def healthy_facts(**kw: Any) -> ReadinessFacts:
    fields: dict[str, Any] = {
        "service": "booking",
        "now": NOW,
        "state": state_facts(),
        "results": results(healthy_results()),
        "edge": EdgeFacts(site="main", reason="every edge record points at main (203.0.113.10)"),
        "token": token(),
        "cold": cold(),
        "secrets": [secret("quorum-dr/cloudflare-token")],
    }
    return ReadinessFacts(**{**fields, **kw})


def test_a_healthy_service_is_ok_in_every_check_in_reading_order() -> None:
    readiness = assess(healthy_facts(), CONFIG)

    assert [(c.name, c.status) for c in readiness.checks] == [
        ("standby", Status.OK),
        ("probe_regions", Status.OK),
        ("service_state", Status.OK),
        ("edge", Status.OK),
        ("cloudflare_token", Status.OK),
        ("cold_site", Status.OK),
        ("secrets", Status.OK),
    ]
    assert readiness.overall is Status.OK


def test_overall_is_the_worst_check() -> None:
    paused = state_facts(automation_enabled=False)
    assert assess(healthy_facts(state=paused), CONFIG).overall is Status.WARN
    gone = cold(image_state=None)
    assert assess(healthy_facts(state=paused, cold=gone), CONFIG).overall is Status.FAIL


def test_without_a_database_or_a_cold_site_those_checks_are_left_out() -> None:
    data = CONFIG.model_dump(mode="json", by_alias=True, exclude_none=True)
    service = data["services"][0]
    del service["database"], service["cold_site"], service["sites"]["cold"]
    bare = WatchdogConfig.model_validate(data)

    readiness = assess(healthy_facts(cold=None), bare)

    assert [c.name for c in readiness.checks] == [
        "probe_regions",
        "service_state",
        "edge",
        "cloudflare_token",
        "secrets",
    ]


def test_the_lines_put_one_check_on_each_and_the_overall_last() -> None:
    readiness = assess(healthy_facts(edge=EdgeFacts(site="dr", reason="r")), CONFIG)

    lines = readiness.lines()

    assert lines[0].startswith("OK   standby           dr standby streams, lag 0 bytes")
    assert lines[3].startswith("FAIL edge              the edge serves dr (r) but the state says main")
    assert lines[-1] == "overall: FAIL (1 FAIL, 6 OK) for booking at 2027-01-15 08:00:00Z"


def test_the_json_model_reads_back_and_refuses_an_overall_that_is_not_the_worst() -> None:
    readiness = assess(healthy_facts(state=state_facts(automation_enabled=False)), CONFIG)

    again = Readiness.model_validate_json(readiness.model_dump_json())

    assert again == readiness and again.overall is Status.WARN
    with pytest.raises(ValidationError, match="overall OK is not the worst status of the checks"):
        Readiness.model_validate({**readiness.model_dump(mode="json"), "overall": "OK"})


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (4096, "4 KiB"), (1_258_291, "1.2 MiB"), (16 * MiB, "16 MiB")],
)
def test_sizes_read_as_people_write_them(count: int, text: str) -> None:
    assert size_text(count) == text
