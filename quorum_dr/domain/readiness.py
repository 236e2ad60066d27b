"""Readiness: would a failover work if main failed now? Each check says OK, WARN or FAIL, and why.

Pure: the facts are gathered by `quorum_dr.adapters.readiness` (the state and results tables, the
edge through the Cloudflare adapter, EC2 / SSM for the cold site, Secrets Manager) and handed
here as models; nothing in this module does I/O. A fact that could not be gathered arrives as its
one-line error, and the check that needed it is FAIL with that line: unknown is not fine.

The checks:
- `standby`: the standby of the active site (DR while main serves) streams, and its lag in bytes
  and seconds is within `database.max_lag_bytes` / `max_lag_seconds`, from the newest probe result
  of its database (the probes' PostgreSQL check records it, `DbStatus`). Bytes are how far its
  replay is behind the active site's WAL position seen in the same probe round (or, without that
  view, what it received but has not replayed); seconds count only while replay is behind what it
  received, as the promotion decision counts them (an idle primary makes the replay timestamp old
  without any lag). A stale newest result is a WARN.
- `probe_regions`: every probe region reported within two probe intervals, and enough of them
  vote (not abstaining) to make the quorum.
- `service_state`: not NEEDS_ATTENTION, no stale lock (a kept lock after an escalation, an expired
  one still present, or one whose execution ended), automation on (paused is a WARN), no cooldown
  or daily cap that would refuse an automatic failover now (WARN).
- `edge`: the edge points at the site the state says is active.
- `cold_site`: the AMI exists and is available, the launch template exists, and RunInstances
  with DryRun on it answers DryRunOperation.
- `cloudflare_token`: the API token (from its secret) verifies as active and reads the records or
  pools it must edit, and may edit them: the scheduled function writes only a marker into each
  one's comment (description) at most every `edge.edit_proof_interval_seconds`, never what the
  edge serves (`quorum_dr/domain/edit_proof.py`); a refused write is FAIL.
- `secrets`: every secret the functions read exists in every region that reads it.
- `cold_rehearsal`: the last restore rehearsal of the cold site passed and is younger than
  `cold_site.rehearsal.max_age_seconds`; none recorded yet is a WARN (see `cold_rehearsal_check`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from quorum_dr.config import Database, FailoverPolicy, PostgresCheck, Service, WatchdogConfig
from quorum_dr.domain.rehearsal import RehearsalResult
from quorum_dr.domain.results import DbRole, ProbeResult, Vote, parse_lsn
from quorum_dr.domain.state import ServiceState, ServiceStatus, utc_day, utc_text


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


_RANK = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2}

Figure = int | float | str | bool | None


def worst(statuses: Iterable[Status]) -> Status:
    """The worst of the statuses (OK for none)."""
    return max(statuses, key=_RANK.__getitem__, default=Status.OK)


class Check(BaseModel):
    """One readiness check: its verdict and the sentence that says why, with the figures behind it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    status: Status
    reason: str
    figures: dict[str, Figure] = Field(default_factory=dict)


class Readiness(BaseModel):
    """Every check of one service at one time; `overall` is the worst of them (computed)."""

    model_config = ConfigDict(extra="forbid")

    service: str
    checked_at: float = Field(description="epoch seconds, the home region's clock")
    checks: list[Check] = Field(min_length=1)
    overall: Status = Field(default=Status.OK, description="the worst status of the checks")

    @model_validator(mode="after")
    def _overall_is_the_worst(self) -> Readiness:
        computed = worst(c.status for c in self.checks)
        if "overall" in self.model_fields_set and self.overall != computed:
            raise ValueError(f"overall {self.overall} is not the worst status of the checks ({computed})")
        self.overall = computed
        return self

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def lines(self) -> list[str]:
        """`OK   name  reason`, one per check, then the overall line."""
        width = max(len(c.name) for c in self.checks)
        lines = [f"{c.status.value:<4} {c.name:<{width}}  {c.reason}" for c in self.checks]
        counts = ", ".join(
            f"{sum(c.status is s for c in self.checks)} {s.value}"
            for s in (Status.FAIL, Status.WARN, Status.OK)
            if any(c.status is s for c in self.checks)
        )
        lines.append(
            f"overall: {self.overall.value} ({counts}) for {self.service} at {utc_text(self.checked_at)}"
        )
        return lines


# ---------------------------------------------------------------------------------------------
# Facts: what the adapter gathered (an `error` is the one-line reason it could not)
# ---------------------------------------------------------------------------------------------


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LockItem(BaseModel):
    """The incident lock item as the state table holds it (sk LOCK)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    incident_id: str | None = None
    holder: str | None = None
    acquired_at: float | None = None
    lock_expires_at: float | None = None
    kept: bool = False


class StateFacts(_Facts):
    state: ServiceState | None = None
    lock: LockItem | None = None
    error: str | None = None
    execution_status: str | None = Field(
        default=None, description="Step Functions' status of the lock holder's execution, NOT_FOUND, or None"
    )
    execution_unchecked: str | None = Field(default=None, description="why the execution was not asked")


class ResultFacts(_Facts):
    results: list[ProbeResult] = Field(default_factory=list)
    since: float = Field(description="the results are those received since this time")
    error: str | None = None


class EdgeFacts(_Facts):
    site: str | None = None
    reason: str = ""
    error: str | None = None


class TokenFacts(_Facts):
    secret: str = Field(description="the Secrets Manager name of the API token")
    reads: str = Field(description="what the token must read, e.g. 'the A record app.example.com'")
    error: str | None = Field(default=None, description="reading the secret or verifying the token failed")
    status: str | None = Field(default=None, description="active, disabled or expired")
    expires_on: float | None = None
    read_error: str | None = None
    edit_proven_at: float | None = Field(default=None, description="when the edit check's marker was written")
    edit_proof: str | None = Field(default=None, description="how edit permission was proven, or why not")
    edit_error: str | None = Field(default=None, description="the edit check's write was refused or failed")


class ColdSiteFacts(_Facts):
    region: str
    image_source: str = Field(description="where the AMI id comes from, e.g. 'SSM parameter /x'")
    image_id: str | None = None
    image_error: str | None = Field(default=None, description="the AMI id could not be resolved")
    image_state: str | None = Field(default=None, description="DescribeImages' state; None: no such image")
    template: str
    template_found: bool = False
    template_error: str | None = None
    dry_run_code: str | None = Field(
        default=None, description="the error code RunInstances answered the dry run"
    )
    dry_run_message: str = ""


class SecretFact(_Facts):
    region: str
    name: str
    exists: bool = False
    deleted_at: float | None = Field(default=None, description="scheduled for deletion at")
    error: str | None = None


# ---------------------------------------------------------------------------------------------
# Sentences' figures
# ---------------------------------------------------------------------------------------------


def size_text(count: int) -> str:
    """Bytes as a person reads them: 512 bytes, 1.2 MiB, 16 MiB."""
    if count < 1024:
        return f"{count} bytes"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f}".rstrip("0").rstrip(".") + f" {unit}"


def seconds_text(value: float) -> str:
    """Seconds as a person reads them: 42 s, 1.5 s."""
    return f"{value:.1f}".rstrip("0").rstrip(".") + " s"


_seconds = seconds_text  # the short name this module's sentences use


def span_text(value: float, *, over: float | None = None) -> str:
    """A longer span as a person reads it: 40 s, 15 min, 3 h, 26 h, 2.5 d. With `over` (a limit the
    value exceeds), as many more decimals as it takes not to read as the limit (60.04 s, not 60 s)."""
    spans = ((120, "s", 1), (7200, "min", 60), (48 * 3600, "h", 3600))
    unit, size = next(((unit, size) for limit, unit, size in spans if value < limit), ("d", 86400))
    for decimals in (1, 2, 3):
        text = f"{value / size:.{decimals}f}".rstrip("0").rstrip(".") + f" {unit}"
        if over is None or text != span_text(over):
            break
    return text


# ---------------------------------------------------------------------------------------------
# standby
# ---------------------------------------------------------------------------------------------

STANDBY = "standby"


def _fail(name: str, reason: str, **figures: Figure) -> Check:
    return Check(name=name, status=Status.FAIL, reason=reason, figures=figures)


def standby_check(
    facts: ResultFacts,
    *,
    service: str,
    active_site: str | None,
    database: Database,
    postgres_checks: Mapping[str, Sequence[str]],
    now: float,
    freshness_seconds: float,
) -> Check:
    """Does the standby of the active site stream, within the lag limits? (see the module text)"""
    if facts.error:
        return _fail(STANDBY, f"cannot read the probe results: {facts.error}")
    if active_site is None:
        return _fail(
            STANDBY,
            "the active site is unknown (the state could not be read), so which database "
            "must be the standby is unknown",
        )
    if active_site not in ("main", "dr"):
        return _fail(
            STANDBY,
            f"the {active_site} site serves: neither main's nor dr's database streams from it, so no hot "
            "failover is possible until main or dr serves again",
        )
    standby = "dr" if active_site == "main" else "main"
    names = list(postgres_checks.get(standby, ()))
    if not names:
        return _fail(
            STANDBY,
            f"no postgres check is configured on the {standby} site: nothing reports whether its database "
            "streams (add one with vote: false)",
        )
    mine = [
        r
        for r in facts.results
        if r.service == service and r.site == standby and r.check in names and r.received_at is not None
    ]
    if not mine:
        return _fail(
            STANDBY,
            f"no probe reported the {standby} database (check {', '.join(names)}) since "
            f"{utc_text(facts.since)} ({_seconds(now - facts.since)} ago)",
        )
    per_region: dict[str, ProbeResult] = {}
    for result in sorted(mine, key=lambda r: r.received_at or 0.0):
        per_region[result.region] = result  # the newest of each region
    seeing = [r for r in per_region.values() if r.vote is Vote.UP and r.db is not None]
    newest = max(seeing or per_region.values(), key=lambda r: r.received_at or 0.0)
    check = _standby_verdict(newest, facts.results, standby, active_site, database, now, freshness_seconds)
    failing = [r for r in per_region.values() if r not in seeing]
    if not seeing or not failing or check.status is Status.FAIL:
        return check
    others = "; ".join(f"from {r.region}: {r.failure_class or 'no status'}: {r.detail}" for r in failing)
    return check.model_copy(
        update={
            "status": Status.WARN,
            "reason": f"{check.reason}; but the newest check of the {standby} database failed {others}",
        }
    )


def _standby_verdict(
    newest: ProbeResult,
    results: Sequence[ProbeResult],
    standby: str,
    active: str,
    limits: Database,
    now: float,
    freshness_seconds: float,
) -> Check:
    age = now - (newest.received_at or now)
    seen = f"probed from {newest.region} {_seconds(age)} ago"
    figures: dict[str, Figure] = {
        "site": standby,
        "region": newest.region,
        "result_age_seconds": round(age, 1),
        "max_lag_bytes": limits.max_lag_bytes,
        "max_lag_seconds": limits.max_lag_seconds,
    }
    db = newest.db
    if newest.vote is Vote.DOWN or db is None:
        failure = f"{newest.failure_class.value}: " if newest.failure_class else ""
        return _fail(
            STANDBY, f"the {standby} database check failed ({seen}): {failure}{newest.detail}", **figures
        )
    if db.role is DbRole.PRIMARY:
        return _fail(
            STANDBY,
            f"the {standby} database is a primary, not a standby ({seen}): there is no standby to promote",
            **figures,
        )
    figures["streaming"] = db.streaming
    if db.streaming is False:
        return _fail(STANDBY, f"the {standby} standby is not streaming from {active} ({seen})", **figures)
    lag = _standby_lag(newest, results, active)
    if isinstance(lag, str):
        return _fail(STANDBY, f"the {standby} standby's lag is unknown: {lag} ({seen})", **figures)
    lag_bytes, lag_seconds, basis = lag
    figures.update(lag_bytes=lag_bytes, lag_seconds=lag_seconds)

    def lag_text(relation: str) -> str:
        limit = f"{size_text(limits.max_lag_bytes)} / {_seconds(limits.max_lag_seconds)}"
        lag = f"{size_text(lag_bytes)} / {_seconds(lag_seconds)}"
        return f"lag {lag} {relation} the limit {limit} ({basis}; {seen})"

    if lag_bytes > limits.max_lag_bytes or lag_seconds > limits.max_lag_seconds:
        return _fail(STANDBY, f"the {standby} standby streams but " + lag_text("over"), **figures)
    within = lag_text("within")
    if age > freshness_seconds:
        return Check(
            name=STANDBY,
            status=Status.WARN,
            reason=f"the newest probe of the {standby} database is stale ({_seconds(age)} old, fresh within "
            f"{_seconds(freshness_seconds)}): as of then, {within}",
            figures=figures,
        )
    if db.streaming is None:
        return Check(
            name=STANDBY,
            status=Status.WARN,
            reason=f"{standby} standby, {within}, but whether its WAL receiver streams is unknown: the "
            "probe's role cannot read pg_stat_wal_receiver (grant it pg_monitor)",
            figures=figures,
        )
    return Check(
        name=STANDBY, status=Status.OK, reason=f"{standby} standby streams, {within}", figures=figures
    )


def _standby_lag(
    newest: ProbeResult, results: Sequence[ProbeResult], active: str
) -> tuple[int, float, str] | str:
    """(bytes, seconds, how the bytes were measured), or why the lag is unknown."""
    db = newest.db
    assert db is not None
    view = next(
        (
            r.db
            for r in results
            if r.site == active
            and r.region == newest.region
            and r.round_id == newest.round_id
            and r.db is not None
            and r.db.role is DbRole.PRIMARY
            and r.db.current_lsn
        ),
        None,
    )
    pending = db.replay_lag_bytes
    if view is not None and view.current_lsn and db.replay_lsn:
        # what it received but has not replayed counts too when main was probed a moment earlier
        lag_bytes = max(0, parse_lsn(view.current_lsn) - parse_lsn(db.replay_lsn), pending or 0)
        basis = f"replay behind {active}'s WAL position in the same round"
    elif pending is not None:
        lag_bytes = pending
        basis = f"received but not replayed; {active}'s WAL position was not seen in that round"
    else:
        return "its replay position and received-but-not-replayed bytes are unknown"
    if pending:  # seconds matter only while replay is behind what was received
        if db.replay_lag_seconds is None:
            return f"replay is {size_text(pending)} behind what it received and its lag in seconds is unknown"
        return lag_bytes, round(db.replay_lag_seconds, 1), basis
    return lag_bytes, 0.0, basis


# ---------------------------------------------------------------------------------------------
# probe regions
# ---------------------------------------------------------------------------------------------

PROBE_REGIONS = "probe_regions"


def probe_regions_check(
    facts: ResultFacts,
    *,
    service: str,
    regions: Sequence[str],
    quorum: int,
    interval_seconds: float,
    now: float,
) -> Check:
    """Every probe region reported within two intervals, and at least `quorum` of them vote."""
    if facts.error:
        return _fail(PROBE_REGIONS, f"cannot read the probe results: {facts.error}")
    limit = 2 * interval_seconds
    newest: dict[str, ProbeResult] = {}
    for result in facts.results:
        if result.service != service or result.region not in regions or result.received_at is None:
            continue
        if result.region not in newest or result.received_at > (newest[result.region].received_at or 0.0):
            newest[result.region] = result
    silent, ages = [], {}
    for region in regions:
        found = newest.get(region)
        if found is None:
            silent.append(f"{region} not since {utc_text(facts.since)}")
            continue
        ages[region] = now - (found.received_at or now)
        if ages[region] > limit:
            silent.append(f"{region} last {_seconds(ages[region])} ago")
    reported = [r for r in regions if r in ages and ages[r] <= limit]
    abstaining = [r for r in reported if _abstains(facts.results, newest[r])]
    voting = len(reported) - len(abstaining)
    figures: dict[str, Figure] = {
        "regions": len(regions),
        "reported": len(reported),
        "voting": voting,
        "quorum": quorum,
        "limit_seconds": limit,
    }
    short = f"; only {voting} can vote, the quorum needs {quorum}" if voting < quorum else ""
    within = f"within two probe intervals ({_seconds(limit)})"
    if silent:
        reason = (
            f"{len(silent)} of {len(regions)} probe regions did not report {within}: "
            f"{'; '.join(silent)}{short}"
        )
        return _fail(PROBE_REGIONS, reason, **figures)
    if abstaining:
        status = Status.FAIL if voting < quorum else Status.WARN
        reason = (
            f"every probe region reported {within}, but {', '.join(abstaining)} abstains (its control target "
            f"failed){short or f'; {voting} vote, the quorum needs {quorum}'}"
        )
        return Check(name=PROBE_REGIONS, status=status, reason=reason, figures=figures)
    seen = ", ".join(f"{r} {_seconds(ages[r])} ago" for r in regions)
    return Check(
        name=PROBE_REGIONS,
        status=Status.OK,
        reason=f"all {len(regions)} probe regions reported {within}: {seen}",
        figures=figures,
    )


def _abstains(results: Sequence[ProbeResult], newest: ProbeResult) -> bool:
    return any(r.abstaining for r in results if r.region == newest.region and r.round_id == newest.round_id)


# ---------------------------------------------------------------------------------------------
# service state
# ---------------------------------------------------------------------------------------------

SERVICE_STATE = "service_state"


def service_state_check(facts: StateFacts, *, policy: FailoverPolicy, now: float) -> Check:
    """NEEDS_ATTENTION and a stale lock are FAIL; paused automation, a lock held by a running
    execution, a cooldown or a used-up daily cap are WARN (an automatic failover would wait or be
    refused now)."""
    if facts.error or facts.state is None:
        return _fail(SERVICE_STATE, f"cannot read the service's state: {facts.error or 'no state'}")
    state = facts.state
    found: list[tuple[Status, str]] = []
    if state.status is ServiceStatus.NEEDS_ATTENTION:
        incident = state.lock_holder or (facts.lock.incident_id if facts.lock else None) or "unknown"
        found.append(
            (
                Status.FAIL,
                f"{state.service} needs attention after incident {incident}: no automatic failover until an "
                "operator resets it (drctl reset)",
            )
        )
    found += _lock_findings(facts, state, now)
    found += _gate_findings(state, policy, now)
    figures: dict[str, Figure] = {
        "status": state.status.value,
        "active_site": state.active_site,
        "automation_enabled": state.automation_enabled,
        "lock_holder": facts.lock.holder if facts.lock else None,
    }
    if not found:
        return Check(
            name=SERVICE_STATE,
            status=Status.OK,
            reason=f"{state.service} is {state.status.value} on {state.active_site}, automation on, no lock "
            "held, no cooldown, daily cap not reached",
            figures=figures,
        )
    found.sort(key=lambda f: -_RANK[f[0]])
    return Check(
        name=SERVICE_STATE,
        status=found[0][0],
        reason="; ".join(sentence for _, sentence in found),
        figures=figures,
    )


def _lock_findings(facts: StateFacts, state: ServiceState, now: float) -> list[tuple[Status, str]]:
    lock = facts.lock
    if lock is None:
        if state.status is ServiceStatus.FAILING_OVER:
            return [
                (
                    Status.FAIL,
                    f"{state.service} is FAILING_OVER but no lock is held: an execution ended mid-failover "
                    "without recording its outcome (drctl status, drctl reset)",
                )
            ]
        return []
    incident = lock.incident_id or "(unknown)"
    who = f"incident {incident} (execution {lock.holder or incident})"
    until = _until(lock.lock_expires_at)
    if lock.kept:
        return [
            (
                Status.FAIL,
                f"{who} keeps the lock after an escalation: no execution can take it until an operator "
                "resets it (drctl reset)",
            )
        ]
    if lock.lock_expires_at is not None and lock.lock_expires_at < now:
        return [
            (
                Status.FAIL,
                f"the lock of {who} is stale: it expired at {utc_text(lock.lock_expires_at)} "
                f"({_seconds(now - lock.lock_expires_at)} ago) and is still there, so its execution ended "
                "without releasing it",
            )
        ]
    if facts.execution_status == "RUNNING":
        return [(Status.WARN, f"{who} holds the lock {until}: a failover or switchover is under way")]
    if facts.execution_status is not None:
        return [
            (
                Status.FAIL,
                f"the lock of {who} is stale: its execution is {facts.execution_status} but the lock stays "
                f"{until}",
            )
        ]
    return [
        (
            Status.WARN,
            f"{who} holds the lock {until}; whether its execution still runs was not checked "
            f"({facts.execution_unchecked or 'no state machine given'})",
        )
    ]


def _until(expires_at: float | None) -> str:
    """`until <UTC time>`, or `with no expiry` (none, or the kept lock's 2**53, beyond any calendar)."""
    try:
        return f"until {utc_text(expires_at)}" if expires_at is not None else "with no expiry"
    except (ValueError, OverflowError, OSError):
        return "with no expiry"


def _gate_findings(state: ServiceState, policy: FailoverPolicy, now: float) -> list[tuple[Status, str]]:
    found: list[tuple[Status, str]] = []
    if not state.automation_enabled:
        change = state.automation_changed
        by = (
            f" by {change.by} at {utc_text(change.at)} ({change.reason})"
            if change and not change.enabled
            else ""
        )
        found.append(
            (
                Status.WARN,
                f"automation is paused{by}: automatic triggers are refused at the gates until drctl resume "
                "(drctl failover still works)",
            )
        )
    if state.cooldown_until is not None and state.cooldown_until > now:
        found.append(
            (
                Status.WARN,
                f"in cooldown until {utc_text(state.cooldown_until)}: an automatic failover would be refused "
                "until then",
            )
        )
    used = state.failovers_on(utc_day(now))
    if used >= policy.daily_cap:
        found.append(
            (
                Status.WARN,
                f"{used} of the daily cap of {policy.daily_cap} automatic failovers used today: another "
                "would be refused until the next UTC day",
            )
        )
    return found


# ---------------------------------------------------------------------------------------------
# edge
# ---------------------------------------------------------------------------------------------

EDGE = "edge"


def edge_check(facts: EdgeFacts, *, state: StateFacts) -> Check:
    """The edge points at the site the state says is active. While a running execution holds the
    lock they may disagree for a moment (the switch comes before the record): WARN, not FAIL."""
    if facts.error:
        return _fail(EDGE, f"cannot read the edge: {facts.error}")
    if state.state is None:
        return _fail(
            EDGE,
            f"the edge serves {facts.site or 'no one known site'} ({facts.reason}), but the state could not "
            f"be read to compare: {state.error or 'no state'}",
            edge_site=facts.site,
        )
    active = state.state.active_site
    figures: dict[str, Figure] = {"edge_site": facts.site, "active_site": active}
    if facts.site is None:
        return _fail(
            EDGE,
            f"the edge does not point at one known site ({facts.reason}); the state says {active}",
            **figures,
        )
    if facts.site != active and state.lock is not None and state.execution_status == "RUNNING":
        incident = state.lock.incident_id or state.lock.holder or "(unknown)"
        return Check(
            name=EDGE,
            status=Status.WARN,
            reason=f"the edge serves {facts.site} ({facts.reason}) while the state still says {active}: "
            f"incident {incident} holds the lock and its execution runs, so a failover or switchover is "
            "between its switch and its record",
            figures=figures,
        )
    if facts.site != active:
        return _fail(
            EDGE,
            f"the edge serves {facts.site} ({facts.reason}) but the state says {active} is active: they "
            "disagree, find out which is right (drctl status)",
            **figures,
        )
    return Check(
        name=EDGE,
        status=Status.OK,
        reason=f"the edge serves {active}, as the state says ({facts.reason})",
        figures=figures,
    )


# ---------------------------------------------------------------------------------------------
# file sync
# ---------------------------------------------------------------------------------------------

FILE_SYNC = "file_sync"
# How far in the future (this clock against main's) a marker may be before the clocks are suspect.
MARKER_FUTURE_SLACK_SECONDS = 60.0


def parse_marker(text: str) -> float:
    """The epoch seconds a file-sync marker was written at: its first word
    (`deploy/systemd/quorum-dr-file-sync-marker.sh` writes `<epoch seconds> <UTC time> <host>`)."""
    words = text.split()
    if not words:
        raise ValueError("the marker is empty")
    try:
        written_at = float(words[0])
    except ValueError:
        raise ValueError(f"the marker does not start with epoch seconds: {words[0][:40]!r}") from None
    if not 946684800 <= written_at <= 32503680000:  # 2000 .. 3000
        raise ValueError(f"the marker's time {words[0][:40]} is not a plausible epoch time")
    return written_at


class FileSyncFacts(_Facts):
    url: str = Field(description="the marker's URL, redacted")
    written_at: float | None = Field(default=None, description="when main wrote the marker DR serves")
    error: str | None = Field(default=None, description="why the marker could not be read or understood")


def file_sync_check(facts: FileSyncFacts, *, max_lag_seconds: float, state: StateFacts, now: float) -> Check:
    """The marker main writes into the replicated tree, as DR serves it, is at most
    `max_lag_seconds` old. Main's clock writes it and the home region's reads it: a marker from
    the future is a clock problem, said as such."""
    active = state.state.active_site if state.state is not None else None
    if active is not None and active != "main":
        return Check(
            name=FILE_SYNC,
            status=Status.WARN,
            reason=f"not checked while {active} is active: the marker is written on main and read from DR "
            f"({facts.url}); check that files now replicate from {active}",
            figures={"active_site": active},
        )
    if facts.error or facts.written_at is None:
        return _fail(
            FILE_SYNC, f"cannot read the file-sync marker at {facts.url}: {facts.error or 'no time'}"
        )
    lag = now - facts.written_at
    figures: dict[str, Figure] = {"lag_seconds": round(lag, 1), "max_lag_seconds": max_lag_seconds}
    written = f"written by main at {utc_text(facts.written_at)}"
    if lag < -MARKER_FUTURE_SLACK_SECONDS:
        return Check(
            name=FILE_SYNC,
            status=Status.WARN,
            reason=f"the file-sync marker DR serves ({facts.url}) was {written}, {-lag:.0f} s in this "
            "clock's future: main's clock and the home region's disagree, so the lag cannot be told",
            figures=figures,
        )
    if lag > max_lag_seconds:
        return _fail(
            FILE_SYNC,
            f"file replication lags {_seconds(lag)}, over the limit {_seconds(max_lag_seconds)}: the marker "
            f"DR serves ({facts.url}) was {written}",
            **figures,
        )
    return Check(
        name=FILE_SYNC,
        status=Status.OK,
        reason=f"file replication lags {_seconds(max(lag, 0.0))}, within the limit "
        f"{_seconds(max_lag_seconds)} (the marker DR serves was {written})",
        figures=figures,
    )


# ---------------------------------------------------------------------------------------------
# backups (cold_site.wal_archive): the newest base backup and the newest archived WAL segment
# ---------------------------------------------------------------------------------------------

BASE_BACKUP = "base_backup"
WAL_ARCHIVE = "wal_archive"
BACKUP_ENCRYPTION = "backup_encryption"


class StoredObject(_Facts):
    """How S3 stores one object of the archive (HeadObject)."""

    key: str
    algorithm: str | None = Field(default=None, description="ServerSideEncryption: aws:kms, AES256 or none")
    kms_key_id: str | None = Field(default=None, description="SSEKMSKeyId: the key's ARN under SSE-KMS")


class BackupFacts(_Facts):
    archive: str = Field(description="s3://bucket/prefix/server")
    backup_id: str | None = None
    backup_finished_at: float | None = Field(default=None, description="when its backup.info was written")
    backup_error: str | None = None
    segment: str | None = None
    segment_archived_at: float | None = None
    segment_error: str | None = None
    stored: list[StoredObject] = Field(
        default_factory=list,
        description="how the newest backup.info is stored, read when a KMS key is configured",
    )
    encryption_error: str | None = None


def base_backup_check(facts: BackupFacts, *, max_age_seconds: float, now: float) -> Check:
    """The newest complete base backup in the archive is at most `max_age_seconds` old: the
    cold site restores it and replays the archive from its start, so an old one means a long
    replay, and a missing one means nothing to restore."""
    if facts.backup_error:
        return _fail(BASE_BACKUP, f"cannot list the base backups in {facts.archive}: {facts.backup_error}")
    if facts.backup_id is None or facts.backup_finished_at is None:
        return _fail(
            BASE_BACKUP,
            f"no complete base backup in {facts.archive}: the cold site has nothing to restore; start "
            "quorum-dr-base-backup.timer on the DR host (journalctl -u quorum-dr-base-backup)",
        )
    age = now - facts.backup_finished_at
    figures: dict[str, Figure] = {"age_seconds": round(age, 1), "max_age_seconds": max_age_seconds}
    if age > max_age_seconds:
        return _fail(
            BASE_BACKUP,
            f"the newest base backup {facts.backup_id} in {facts.archive} is "
            f"{span_text(age, over=max_age_seconds)} old, over the limit {span_text(max_age_seconds)}: "
            "the backup timer on the DR host has stopped or fails "
            "(journalctl -u quorum-dr-base-backup)",
            backup_id=facts.backup_id,
            **figures,
        )
    return Check(
        name=BASE_BACKUP,
        status=Status.OK,
        reason=f"the newest base backup {facts.backup_id} is {span_text(max(age, 0.0))} old, within the "
        f"limit {span_text(max_age_seconds)}",
        figures={"backup_id": facts.backup_id, **figures},
    )


def wal_archive_check(facts: BackupFacts, *, max_delay_seconds: float, now: float) -> Check:
    """The newest archived WAL segment is at most `max_delay_seconds` old: what the cold site
    would lose is about that much (main's archive_timeout closes a segment at least that often)."""
    if facts.segment_error:
        return _fail(WAL_ARCHIVE, f"cannot list the WAL archive in {facts.archive}: {facts.segment_error}")
    if facts.segment is None or facts.segment_archived_at is None:
        return _fail(
            WAL_ARCHIVE,
            f"no archived WAL segment in {facts.archive}: the cold site could restore a base backup but "
            "nothing after it; check DR's archive_mode = always and archive_command (pg_stat_archiver)",
        )
    delay = now - facts.segment_archived_at
    figures: dict[str, Figure] = {"delay_seconds": round(delay, 1), "max_delay_seconds": max_delay_seconds}
    if delay > max_delay_seconds:
        return _fail(
            WAL_ARCHIVE,
            f"the newest archived WAL segment {facts.segment} in {facts.archive} is "
            f"{span_text(delay, over=max_delay_seconds)} old, over the limit {span_text(max_delay_seconds)}: "
            "a cold restore would lose at least that much; "
            "DR's archive_command fails (pg_stat_archiver.last_failed_*) or main's archive_timeout is "
            "not set",
            segment=facts.segment,
            **figures,
        )
    return Check(
        name=WAL_ARCHIVE,
        status=Status.OK,
        reason=f"the newest archived WAL segment {facts.segment} is {span_text(max(delay, 0.0))} old, within "
        f"the limit {span_text(max_delay_seconds)}",
        figures={"segment": facts.segment, **figures},
    )


def backup_encryption_check(facts: BackupFacts, *, kms_key_arn: str) -> Check:
    """The newest base backup (its backup.info) is stored with SSE-KMS under the configured key:
    barman-cloud asks for aws:kms but cannot name a key, so S3 uses the bucket's default for every
    backup and segment, and only a stored object tells which key that was."""
    if facts.encryption_error:
        return _fail(
            BACKUP_ENCRYPTION,
            f"cannot read how the archive {facts.archive} is stored: {facts.encryption_error}",
        )
    if not facts.stored:
        return Check(
            name=BACKUP_ENCRYPTION,
            status=Status.WARN,
            reason=f"no base backup in {facts.archive} to inspect yet",
        )
    key_id = kms_key_arn.rsplit("/", 1)[-1]
    wrong = [o for o in facts.stored if o.algorithm != "aws:kms" or o.kms_key_id not in (kms_key_arn, key_id)]
    if wrong:
        first = wrong[0]
        how = (
            "unencrypted"
            if not first.algorithm
            else f"with {first.algorithm}"
            if first.algorithm != "aws:kms"
            else f"with SSE-KMS under another key ({first.kms_key_id})"
        )
        return _fail(
            BACKUP_ENCRYPTION,
            f"{first.key} is stored {how}, not with SSE-KMS under {kms_key_arn}: set the default "
            "encryption of the bucket to SSE-KMS with this key (barman-cloud cannot name one); what is "
            "already written keeps its encryption until the retention removes it",
            objects=len(facts.stored),
            wrong=len(wrong),
        )
    return Check(
        name=BACKUP_ENCRYPTION,
        status=Status.OK,
        reason=f"the newest base backup is encrypted with SSE-KMS under {kms_key_arn} (the bucket's "
        "default, which every backup and segment gets)",
        figures={"objects": len(facts.stored)},
    )


# ---------------------------------------------------------------------------------------------
# cold site
# ---------------------------------------------------------------------------------------------

COLD_SITE = "cold_site"
DRY_RUN_SUCCEEDED = "DryRunOperation"


def cold_site_check(facts: ColdSiteFacts) -> Check:
    """The AMI exists and is available, the launch template exists, and RunInstances with DryRun
    on it answers DryRunOperation (any other answer, e.g. UnauthorizedOperation, is FAIL)."""
    where = facts.region
    figures: dict[str, Figure] = {
        "region": where,
        "image_id": facts.image_id,
        "image_state": facts.image_state,
        "launch_template": facts.template,
        "dry_run": facts.dry_run_code,
    }
    problems: list[str] = []
    if facts.image_error:
        problems.append(f"the AMI from {facts.image_source} is unknown: {facts.image_error}")
    elif facts.image_state is None:
        problems.append(f"AMI {facts.image_id} (from {facts.image_source}) does not exist in {where}")
    elif facts.image_state != "available":
        problems.append(
            f"AMI {facts.image_id} (from {facts.image_source}) is {facts.image_state}, not available"
        )
    if facts.template_error:
        problems.append(f"the launch template {facts.template} could not be read: {facts.template_error}")
    elif not facts.template_found:
        problems.append(f"the launch template {facts.template} does not exist in {where}")
    if facts.dry_run_code is None:
        if facts.template_found:  # a missing template is said above
            problems.append(f"the RunInstances dry run was {facts.dry_run_message or 'not tried'}")
    elif facts.dry_run_code != DRY_RUN_SUCCEEDED:
        problems.append(f"a RunInstances dry run was refused: {facts.dry_run_code}: {facts.dry_run_message}")
    if problems:
        return _fail(COLD_SITE, "the cold site cannot launch: " + "; ".join(problems), **figures)
    return Check(
        name=COLD_SITE,
        status=Status.OK,
        reason=f"the cold site can launch: AMI {facts.image_id} (from {facts.image_source}) is available "
        f"and a RunInstances dry run of launch template {facts.template} in {where} succeeded",
        figures=figures,
    )


# ---------------------------------------------------------------------------------------------
# Cloudflare token
# ---------------------------------------------------------------------------------------------

CLOUDFLARE_TOKEN = "cloudflare_token"
TOKEN_EXPIRY_WARNING_SECONDS = 7 * 86_400


def cloudflare_token_check(facts: TokenFacts, *, now: float) -> Check:
    """The token verifies as active and reads what it must edit; one that expires within a week
    is a WARN."""
    figures: dict[str, Figure] = {
        "secret": facts.secret,
        "token_status": facts.status,
        "expires_on": facts.expires_on,
    }
    token = f"the API token from secret {facts.secret}"
    if facts.error:
        return _fail(CLOUDFLARE_TOKEN, f"{token} cannot be verified: {facts.error}", **figures)
    if facts.status != "active":
        return _fail(
            CLOUDFLARE_TOKEN, f"{token} is {facts.status or 'of unknown status'}, not active", **figures
        )
    if facts.read_error:
        return _fail(
            CLOUDFLARE_TOKEN, f"{token} verifies but cannot read {facts.reads}: {facts.read_error}", **figures
        )
    if facts.edit_error:
        return _fail(
            CLOUDFLARE_TOKEN,
            f"{token} verifies and reads {facts.reads} but may not edit it: {facts.edit_error}",
            **figures,
        )
    figures["edit_proven_at"] = facts.edit_proven_at
    sentence = (
        f"{token} verifies as active, reads {facts.reads} and may edit it ({facts.edit_proof})"
        if facts.edit_proven_at is not None
        else f"{token} verifies as active and reads {facts.reads} (its edit permission: "
        f"{facts.edit_proof or 'not tested'})"
    )
    if facts.expires_on is not None and facts.expires_on - now < TOKEN_EXPIRY_WARNING_SECONDS:
        gone = "expired" if facts.expires_on <= now else "expires"
        return Check(
            name=CLOUDFLARE_TOKEN,
            status=Status.WARN,
            reason=f"{sentence}; it {gone} at {utc_text(facts.expires_on)}: renew it",
            figures=figures,
        )
    return Check(name=CLOUDFLARE_TOKEN, status=Status.OK, reason=sentence, figures=figures)


# ---------------------------------------------------------------------------------------------
# secrets
# ---------------------------------------------------------------------------------------------

SECRETS = "secrets"


def secrets_check(facts: Sequence[SecretFact]) -> Check:
    """Every secret exists (and is not scheduled for deletion) in every region that reads it."""
    problems = []
    for fact in sorted(facts, key=lambda f: (f.region, f.name)):
        if fact.error:
            problems.append(f"{fact.name} in {fact.region} could not be checked: {fact.error}")
        elif not fact.exists:
            problems.append(f"{fact.name} is missing in {fact.region}")
        elif fact.deleted_at is not None:
            problems.append(
                f"{fact.name} in {fact.region} is scheduled for deletion at {utc_text(fact.deleted_at)}"
            )
    regions: dict[str, int] = {}
    for fact in facts:
        regions[fact.region] = regions.get(fact.region, 0) + 1
    figures: dict[str, Figure] = {"secrets": len(facts), "problems": len(problems)}
    if problems:
        return _fail(
            SECRETS,
            f"{len(problems)} of {len(facts)} secrets the functions read are not usable: "
            + "; ".join(problems),
            **figures,
        )
    per_region = ", ".join(f"{region}: {count}" for region, count in sorted(regions.items()))
    return Check(
        name=SECRETS,
        status=Status.OK,
        reason=f"all {len(facts)} secrets the functions read exist where they read them ({per_region})",
        figures=figures,
    )


# ---------------------------------------------------------------------------------------------
# the cold site's restore rehearsal (cold_site.rehearsal): the last one passed, recently
# ---------------------------------------------------------------------------------------------

COLD_REHEARSAL = "cold_rehearsal"


class RehearsalFacts(_Facts):
    latest: RehearsalResult | None = Field(default=None, description="the last recorded rehearsal")
    error: str | None = None


def cold_rehearsal_check(
    facts: RehearsalFacts, *, max_age_seconds: float, schedule_enabled: bool, now: float
) -> Check:
    """The last restore rehearsal passed and is at most `max_age_seconds` old: the backups the cold
    site would restore were restored and held what they recorded, recently.

    None recorded is a WARN, not a FAIL: a new deployment has had no rehearsal yet (the first
    scheduled one may be a week away), and a FAIL would raise the readiness alarm on every new
    deployment until then. Once one is recorded, a failed or an old one is a FAIL."""
    if facts.error:
        return _fail(COLD_REHEARSAL, f"cannot read the last restore rehearsal: {facts.error}")
    schedule = (
        "the weekly schedule (cold_site.rehearsal.schedule) should have run one"
        if schedule_enabled
        else "its schedule is off (cold_site.rehearsal.schedule_enabled)"
    )
    latest = facts.latest
    if latest is None:
        return Check(
            name=COLD_REHEARSAL,
            status=Status.WARN,
            reason="no restore rehearsal of the cold site was ever recorded: nothing shows that the backups "
            "restore; "
            f"run drctl rehearse cold-site ({schedule})",
        )
    age = now - latest.finished_at
    figures: dict[str, Figure] = {
        "rehearsal_id": latest.rehearsal_id,
        "outcome": latest.outcome,
        "age_seconds": round(age, 1),
        "max_age_seconds": max_age_seconds,
    }
    if not latest.passed:
        return _fail(
            COLD_REHEARSAL,
            f"the last restore rehearsal {latest.rehearsal_id} ({span_text(max(age, 0.0))} ago) failed: "
            f"{latest.reason}",
            **figures,
        )
    if age > max_age_seconds:
        return _fail(
            COLD_REHEARSAL,
            f"the last restore rehearsal {latest.rehearsal_id} passed "
            f"{span_text(age, over=max_age_seconds)} ago, over the limit {span_text(max_age_seconds)}: "
            f"{schedule}; run drctl rehearse cold-site",
            **figures,
        )
    upto = f", restored up to WAL {latest.restored_lsn}" if latest.restored_lsn else ""
    return Check(
        name=COLD_REHEARSAL,
        status=Status.OK,
        reason=f"the last restore rehearsal {latest.rehearsal_id} passed {span_text(max(age, 0.0))} ago "
        f"(base backup {latest.backup_id}{upto}), within the limit {span_text(max_age_seconds)}",
        figures=figures,
    )


# ---------------------------------------------------------------------------------------------
# All of them
# ---------------------------------------------------------------------------------------------


class ReadinessFacts(_Facts):
    """Everything the checks of one service read, gathered at `now` (the home region's clock)."""

    service: str
    now: float
    state: StateFacts
    results: ResultFacts
    edge: EdgeFacts
    token: TokenFacts
    cold: ColdSiteFacts | None = Field(default=None, description="None when the service has no cold site")
    secrets: list[SecretFact] = Field(default_factory=list)
    file_sync: FileSyncFacts | None = Field(default=None, description="None when no file_sync is configured")
    backups: BackupFacts | None = Field(default=None, description="None without cold_site.wal_archive")
    rehearsal: RehearsalFacts | None = Field(default=None, description="None without cold_site.wal_archive")


def postgres_check_names(service: Service) -> dict[str, list[str]]:
    """Site -> the names of its PostgreSQL checks (what the probes record the database's status by)."""
    sites = {"main": service.sites.main, "dr": service.sites.dr, "cold": service.sites.cold}
    return {
        name: [c.name for c in site.checks if isinstance(c, PostgresCheck)]
        for name, site in sites.items()
        if site is not None
    }


def assess(facts: ReadinessFacts, config: WatchdogConfig) -> Readiness:
    """Every check of the service, in the order an operator reads them."""
    service = config.service(facts.service)
    now = facts.now
    active = facts.state.state.active_site if facts.state.state is not None else None
    checks: list[Check] = []
    if service.database is not None:  # without a database there is no standby to promote
        checks.append(
            standby_check(
                facts.results,
                service=service.name,
                active_site=active,
                database=service.database,
                postgres_checks=postgres_check_names(service),
                now=now,
                freshness_seconds=config.probe.freshness_seconds,
            )
        )
    checks.append(
        probe_regions_check(
            facts.results,
            service=service.name,
            regions=config.probe_regions,
            quorum=config.quorum,
            interval_seconds=config.probe.interval_seconds,
            now=now,
        )
    )
    checks.append(service_state_check(facts.state, policy=service.failover, now=now))
    checks.append(edge_check(facts.edge, state=facts.state))
    checks.append(cloudflare_token_check(facts.token, now=now))
    if facts.cold is not None:
        checks.append(cold_site_check(facts.cold))
    archive = service.cold_site.wal_archive if service.cold_site else None
    if facts.backups is not None and archive is not None:
        checks.append(
            base_backup_check(facts.backups, max_age_seconds=archive.max_backup_age_seconds, now=now)
        )
        checks.append(
            wal_archive_check(facts.backups, max_delay_seconds=archive.max_archive_delay_seconds, now=now)
        )
        if archive.kms_key_arn:
            checks.append(backup_encryption_check(facts.backups, kms_key_arn=archive.kms_key_arn))
    if facts.rehearsal is not None and service.cold_site is not None and archive is not None:
        rehearsal = service.cold_site.rehearsal
        checks.append(
            cold_rehearsal_check(
                facts.rehearsal,
                max_age_seconds=rehearsal.max_age_seconds,
                schedule_enabled=rehearsal.schedule_enabled,
                now=now,
            )
        )
    checks.append(secrets_check(facts.secrets))
    if facts.file_sync is not None and service.file_sync is not None:
        checks.append(
            file_sync_check(
                facts.file_sync, max_lag_seconds=service.file_sync.max_lag_seconds, state=facts.state, now=now
            )
        )
    return Readiness(service=service.name, checked_at=now, checks=checks)


# ---------------------------------------------------------------------------------------------
# Changes between two evaluations (the scheduled function's ReadinessChanged event)
# ---------------------------------------------------------------------------------------------

READINESS_CHANGED = "ReadinessChanged"


def status_value(status: Status) -> int:
    """The metric's value of a status: 0 OK, 1 WARN, 2 FAIL (an alarm on >= 2 is a FAIL)."""
    return _RANK[status]


class CheckChange(BaseModel):
    """One check whose status differs from the previous evaluation's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check: str
    before: Status | None = Field(description="None: not evaluated before (first evaluation, new check)")
    after: Status | None = Field(description="None: no longer evaluated (say the cold site was removed)")
    reason: str = Field(description="the check's sentence now, or why it is no longer there")


class ReadinessChanged(BaseModel):
    """The detail of the `ReadinessChanged` event: one per evaluation in which a check changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    checked_at: float
    overall_before: Status | None
    overall: Status
    changes: list[CheckChange] = Field(min_length=1)
    reason: str


class ReadinessRecord(BaseModel):
    """What one evaluation leaves for the next: each check's status and sentence."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    service: str
    checked_at: float
    overall: Status
    checks: dict[str, Status]
    reasons: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, readiness: Readiness) -> ReadinessRecord:
        return cls(
            service=readiness.service,
            checked_at=readiness.checked_at,
            overall=readiness.overall,
            checks={c.name: c.status for c in readiness.checks},
            reasons={c.name: c.reason for c in readiness.checks},
        )


def readiness_changes(previous: ReadinessRecord | None, current: Readiness) -> ReadinessChanged | None:
    """What changed since `previous`, or None when nothing did. The first evaluation (no previous)
    reports every check that is not OK, and nothing when all are OK: a watchdog that starts on a
    healthy deployment has nothing to say."""
    if previous is None:
        changes = [
            CheckChange(check=c.name, before=None, after=c.status, reason=c.reason)
            for c in current.checks
            if c.status is not Status.OK
        ]
    else:
        changes = [
            CheckChange(check=c.name, before=previous.checks.get(c.name), after=c.status, reason=c.reason)
            for c in current.checks
            if previous.checks.get(c.name) is not c.status
        ]
        now = {c.name for c in current.checks}
        changes += [
            CheckChange(
                check=name,
                before=status,
                after=None,
                reason=f"{name} is no longer checked (it was {status.value}: "
                f"{previous.reasons.get(name, 'no reason recorded')})",
            )
            for name, status in sorted(previous.checks.items())
            if name not in now
        ]
    if not changes:
        return None
    overall_before = previous.overall if previous is not None else None
    said = "; ".join(
        f"{c.check} {c.before.value if c.before else 'new'} -> {c.after.value if c.after else 'gone'}"
        for c in changes
    )
    if overall_before is None or overall_before is current.overall:
        head = f"readiness of {current.service} is {current.overall.value}"
    else:
        head = f"readiness of {current.service} went from {overall_before.value} to {current.overall.value}"
    first = " (first evaluation)" if previous is None else ""
    return ReadinessChanged(
        service=current.service,
        checked_at=current.checked_at,
        overall_before=overall_before,
        overall=current.overall,
        changes=changes,
        reason=f"{head}{first}: {said}",
    )
