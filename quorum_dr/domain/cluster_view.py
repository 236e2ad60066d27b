"""`drctl list`: one service at a glance, the way `patronictl list` shows a cluster.

Built from the facts `drctl readiness` gathers (one read of the state table, the results table,
the edge and the rest; see `quorum_dr/adapters/readiness.py`) and from its checks, so the two
commands never disagree. Per site: the database as the newest PostgreSQL check of any region saw
it (role, WAL positions, replay lag, streaming), each probe region's vote on the application and
the quorum's verdict (the quorum engine's own `evaluate_service`: main's with the database veto,
as the watchdog would decide); a cold site that scheduled rounds leave out (not launched,
`domain/cold_probe.py`) and no region voted on lately reads "not launched: not probed". Per
service: the active site, the site the edge serves, the state, automation, the lock, the cooldown
and the readiness verdict with every check that is not OK.
Pure: no I/O.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from quorum_dr.config import Service, WatchdogConfig
from quorum_dr.domain.cold_probe import NOT_PROBED, cold_not_probed
from quorum_dr.domain.quorum import SiteVerdict, evaluate_service
from quorum_dr.domain.readiness import Readiness, ReadinessFacts, Status
from quorum_dr.domain.results import ProbeResult
from quorum_dr.domain.state import utc_text

NONE = "-"


class SiteRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str
    role: str | None = Field(
        default=None, description="primary / standby, as the newest PostgreSQL check saw it"
    )
    current_lsn: str | None = None
    receive_lsn: str | None = None
    replay_lsn: str | None = None
    replay_lag_bytes: int | None = None
    replay_lag_seconds: float | None = None
    streaming: bool | None = None
    db_seen_at: float | None = Field(default=None, description="when that check's result was received")
    db_seen_by: str | None = Field(default=None, description="the region whose check it was")
    votes: dict[str, str] = Field(default_factory=dict, description="region -> UP / DOWN / SUSPECT / ...")
    verdict: str = Field(description="the quorum's verdict on the site's application")


class ClusterView(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    at: float
    active_site: str | None
    edge_site: str | None
    edge_note: str = ""
    status: str | None
    automation: str
    lock: str
    cooldown: str
    readiness: Status
    not_ok: list[str] = Field(default_factory=list, description="`STATUS name: reason` of each check not OK")
    regions: list[str]
    sites: list[SiteRow]

    def lines(self) -> list[str]:
        """The table and the lines around it, as an operator reads them at 3 a.m."""
        header = [
            "site",
            "role",
            "WAL (current / receive / replay)",
            "lag",
            "streaming",
            *self.regions,
            "quorum",
        ]
        rows = [header] + [_cells(row, self.regions, self.active_site, self.edge_site) for row in self.sites]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        table = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
        table.insert(1, "  ".join("-" * w for w in widths))
        edge = self.edge_site or f"unknown ({self.edge_note})"
        head = (
            f"{self.service} at {utc_text(self.at)}: active site {self.active_site or 'unknown'}, "
            f"edge serves {edge}, state {self.status or 'unknown'}, automation {self.automation}"
        )
        tail = [
            "(* the active site, @ the site the edge serves)",
            f"lock: {self.lock}; cooldown: {self.cooldown}",
            f"readiness: {self.readiness.value}",
        ]
        tail += [f"  {line}" for line in self.not_ok]
        return [head, *table, *tail]


def _cells(row: SiteRow, regions: list[str], active: str | None, edge: str | None) -> list[str]:
    marks = "".join(m for m, on in (("*", row.site == active), ("@", row.site == edge)) if on)
    positions = " / ".join(p or NONE for p in (row.current_lsn, row.receive_lsn, row.replay_lsn))
    lag = NONE
    if row.replay_lag_bytes is not None or row.replay_lag_seconds is not None:
        parts = []
        if row.replay_lag_bytes is not None:
            parts.append(f"{row.replay_lag_bytes} B")
        if row.replay_lag_seconds is not None:
            parts.append(f"{row.replay_lag_seconds:.1f} s")
        lag = ", ".join(parts)
    streaming = NONE if row.streaming is None else ("yes" if row.streaming else "NO")
    return [
        f"{row.site}{marks}",
        row.role or NONE,
        positions if row.role else NONE,
        lag,
        streaming,
        *(row.votes.get(region, NONE) for region in regions),
        row.verdict,
    ]


def _site_row(results: list[ProbeResult], service: Service, site: str, verdict: SiteVerdict) -> SiteRow:
    mine = [r for r in results if r.service == service.name and r.site == site]
    votes = {vote.region: vote.kind.upper() for vote in verdict.votes}
    seen = [r for r in mine if r.db is not None and r.received_at is not None]
    newest = max(seen, key=lambda r: r.received_at or 0.0, default=None)
    if newest is None or newest.db is None:
        return SiteRow(site=site, votes=votes, verdict=verdict.verdict.value)
    db = newest.db
    return SiteRow(
        site=site,
        role=db.role.value,
        current_lsn=db.current_lsn,
        receive_lsn=db.receive_lsn,
        replay_lsn=db.replay_lsn,
        replay_lag_bytes=db.replay_lag_bytes,
        replay_lag_seconds=db.replay_lag_seconds,
        streaming=db.streaming,
        db_seen_at=newest.received_at,
        db_seen_by=newest.region,
        votes=votes,
        verdict=verdict.verdict.value,
    )


def cluster_view(facts: ReadinessFacts, config: WatchdogConfig, readiness: Readiness) -> ClusterView:
    service = config.service(facts.service)
    now = facts.now
    state = facts.state.state
    # the engine's own verdicts (main's with the database veto), as the watchdog would decide now
    verdicts = evaluate_service(facts.results.results, config, service.name, now)
    rows = [_site_row(facts.results.results, service, site, verdict) for site, verdict in verdicts.items()]
    # a cold site that scheduled rounds leave out, and no region voted on lately: not an outage
    if "cold" in verdicts and cold_not_probed(verdicts["cold"], state, service=service.name, now=now):
        rows = [
            r.model_copy(update={"votes": {}, "verdict": NOT_PROBED}) if r.site == "cold" else r for r in rows
        ]
    if state is None:
        automation = lock = cooldown = f"unknown ({facts.state.error or 'no state item'})"
        status = active = None
    else:
        status, active = state.status.value, state.active_site
        automation = "on" if state.automation_enabled else "PAUSED"
        if not state.automation_enabled and state.automation_changed is not None:
            automation += f" ({state.automation_changed.reason})"
        holder = facts.state.lock.incident_id if facts.state.lock else state.lock_holder
        expires = facts.state.lock.lock_expires_at if facts.state.lock else state.lock_expires_at
        lock = "free" if holder is None else f"held by {holder}"
        if holder is not None and expires is not None:
            lock += f" until {utc_text(expires)}"
        if holder is not None and facts.state.execution_status:
            lock += f" (its execution: {facts.state.execution_status})"
        cooldown = "none"
        if state.cooldown_until is not None and state.cooldown_until > now:
            cooldown = f"until {utc_text(state.cooldown_until)} ({state.cooldown_until - now:.0f} s)"
    return ClusterView(
        service=service.name,
        at=now,
        active_site=active,
        edge_site=facts.edge.site,
        edge_note=facts.edge.error or facts.edge.reason,
        status=status,
        automation=automation,
        lock=lock,
        cooldown=cooldown,
        readiness=readiness.overall,
        not_ok=[
            f"{c.status.value} {c.name}: {c.reason}" for c in readiness.checks if c.status is not Status.OK
        ],
        regions=list(config.probe_regions),
        sites=rows,
    )
