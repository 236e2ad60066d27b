"""Split brain: more than one of a service's sites has a PostgreSQL primary at the same time.

After a failover the DR database is the primary. If the old main database comes back as a
writable primary (a restarted server, a fence that could not reach it), clients that still reach
main write into a second history. quorum-dr never fixes that by itself (which side's writes win is
a person's decision); it says so at once, and once: a probe region alerts when a second primary
appears (or the set of primaries changes) and when it goes, not every round. The probe keeps no
memory between invocations, so "changed" is read from the region's previous stored results of
each site's PostgreSQL check (`split_brain_change`). Pure: reads results, does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from quorum_dr.domain.results import CONTROL_SITE, DbRole, ProbeResult

SPLIT_BRAIN_SUSPECTED = "SplitBrainSuspected"


class SplitBrainVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str
    suspected: bool
    sites: list[str]  # the sites whose database answered as a primary, in site order
    lsns: dict[str, str | None]  # site -> pg_current_wal_lsn() it reported
    reason: str

    def detail(self, *, region: str, round_id: str) -> dict[str, object]:
        """The event detail: who, where, and the sentence a person reads."""
        return {
            "service": self.service,
            "region": region,
            "round_id": round_id,
            "sites": self.sites,
            "lsns": self.lsns,
            "reason": self.reason,
        }


_ORDER = {"main": 0, "dr": 1, "cold": 2}


def detect_split_brain(results: Iterable[ProbeResult], service: str) -> SplitBrainVerdict:
    """Suspected when, in these results (one round of one region), the PostgreSQL checks of more
    than one site of `service` report the role primary. Abstaining rounds still count: a
    primary that answered is a primary, whatever the region's control target did."""
    primaries: dict[str, str | None] = {}
    for result in results:
        if result.service != service or result.site == CONTROL_SITE:
            continue
        if result.check_type != "postgres" or result.db is None or result.db.role is not DbRole.PRIMARY:
            continue
        primaries.setdefault(result.site, result.db.current_lsn)
    sites = sorted(primaries, key=lambda site: (_ORDER.get(site, 9), site))
    lsns = {site: primaries[site] for site in sites}
    if len(sites) < 2:
        only = f"only {sites[0]} has a primary" if sites else "no site reported a primary"
        return SplitBrainVerdict(service=service, suspected=False, sites=sites, lsns=lsns, reason=only)
    listed = ", ".join(f"{site} (WAL {lsns[site] or 'unknown'})" for site in sites)
    reason = (
        f"split brain suspected for {service}: {len(sites)} sites have a PostgreSQL primary at once: "
        f"{listed}. Writes may be going to more than one; fence or stop the one that must not take "
        f"writes (e.g. the old main) and decide which writes to keep: quorum-dr does not do this itself"
    )
    return SplitBrainVerdict(service=service, suspected=True, sites=sites, lsns=lsns, reason=reason)


class SplitBrainChange(BaseModel):
    """What one region's round changed about split brain: `change` is None when nothing did."""

    model_config = ConfigDict(frozen=True)

    service: str
    change: Literal["appeared", "resolved"] | None
    now: SplitBrainVerdict
    before: SplitBrainVerdict
    reason: str

    def detail(self, *, region: str, round_id: str) -> dict[str, object]:
        """The event detail: the current verdict's fields, what changed, and what it was before."""
        return {
            **self.now.detail(region=region, round_id=round_id),
            "reason": self.reason,
            "change": self.change,
            "previous_sites": self.before.sites,
            "previous_lsns": self.before.lsns,
        }


def _latest_per_check(results: Iterable[ProbeResult], service: str) -> dict[tuple[str, str], ProbeResult]:
    latest: dict[tuple[str, str], ProbeResult] = {}
    for result in results:
        if result.service != service or result.site == CONTROL_SITE or result.check_type != "postgres":
            continue
        key = (result.site, result.check)
        seen = latest.get(key)
        when = (result.received_at or result.probe_time, result.round_id)
        if seen is None or when >= (seen.received_at or seen.probe_time, seen.round_id):
            latest[key] = result
    return latest


def split_brain_change(
    previous: Iterable[ProbeResult], current: Iterable[ProbeResult], service: str, *, region: str
) -> SplitBrainChange:
    """Compare this round with what the region saw before.

    `previous`: this region's earlier stored results (any round but this one); the latest result
    of each site's PostgreSQL check stands for that site. `current`: this round's results; a site
    this round did not check keeps its previous result. A split brain "appeared" when this round
    has two or more primaries and the previous view had not these same ones; it is "resolved"
    when the previous view had two or more and this one has fewer.
    """
    before_view = _latest_per_check(previous, service)
    now_view = {**before_view, **_latest_per_check(current, service)}
    before = detect_split_brain(before_view.values(), service)
    now = detect_split_brain(now_view.values(), service)
    if now.suspected and (not before.suspected or before.sites != now.sites):
        return SplitBrainChange(service=service, change="appeared", now=now, before=before, reason=now.reason)
    if before.suspected and not now.suspected:
        was = ", ".join(f"{site} (WAL {before.lsns[site] or 'unknown'})" for site in before.sites)
        reason = (
            f"split brain over for {service}, seen from {region}: {now.reason}; before, {was} each had "
            f"a PostgreSQL primary. Check which writes each one took while both were primaries"
        )
        return SplitBrainChange(service=service, change="resolved", now=now, before=before, reason=reason)
    return SplitBrainChange(service=service, change=None, now=now, before=before, reason=now.reason)
