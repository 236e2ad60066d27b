"""Split brain: more than one of a service's sites has a PostgreSQL primary at the same time.

After a failover the DR database is the primary. If the old main database comes back as a
writable primary (a restarted server, a fence that could not reach it), clients that still reach
main write into a second history. quorum-dr never fixes that by itself (which side's writes win is
a person's decision); it says so at once. Pure: reads the results of one probe round.
"""

from __future__ import annotations

from collections.abc import Iterable

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
