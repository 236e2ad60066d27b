"""The edge switch, decided: what the edge points at now, and what to write to point it elsewhere.

Pure: no HTTP, no SDK. The Cloudflare adapter reads the records or pools, asks these functions
what to write and in which order, writes, and reads back. Every plan carries the sentence that
logs, the incident record and the tests use.

Two kinds of edge:
- proxied DNS records: each record's content is the origin of the site it serves; a switch sets
  every record's content to the target site's origin and touches nothing else;
- load-balancer pools, one per site: a switch enables the target pool first and only then disables
  the others, so at least one pool is enabled at every moment (invariant 8, docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# Errors: the class names are what the state machine's Retry / Catch match on.
# ---------------------------------------------------------------------------------------------


class EdgeSwitchError(Exception):
    """The edge could not be read or switched; the message says what and why."""


class EdgeAuthError(EdgeSwitchError):
    """Cloudflare refused the API token (401/403). Retrying cannot help; fix the token."""


class EdgeRateLimitedError(EdgeSwitchError):
    """Cloudflare kept answering 429 beyond the retry budget."""


class EdgeUnavailableError(EdgeSwitchError):
    """Cloudflare kept failing (5xx, connection errors) beyond the retry budget."""


class EdgeApiError(EdgeSwitchError):
    """Cloudflare answered but refused the request (4xx other than auth, or `success: false`)."""


class EdgeReadBackError(EdgeSwitchError):
    """What was read back after a write is not what was written."""


class EdgePlanError(EdgeSwitchError):
    """The switch asked for cannot be done safely (unknown site, no origin left enabled, ...)."""


# ---------------------------------------------------------------------------------------------
# What the edge looks like
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordState:
    """One DNS record as read from the API."""

    record_id: str
    name: str
    type: str
    content: str
    proxied: bool
    ttl: int
    comment: str | None = None  # the edit proof's marker lives here (quorum_dr/domain/edit_proof.py)

    def label(self) -> str:
        return f"{self.name} {self.type}"


@dataclass(frozen=True)
class PoolState:
    """One load-balancer pool as read from the API."""

    pool_id: str
    enabled: bool
    enabled_origins: int
    description: str | None = None  # the edit proof's marker lives here


@dataclass(frozen=True)
class SwitchReceipt:
    """What a switch did (or, on a dry run, would do)."""

    site: str
    changed: bool
    writes: int
    verified_read_back: bool
    reason: str
    dry_run: bool = False


def site_of_records(records: Sequence[RecordState], origins: Mapping[str, str]) -> tuple[str | None, str]:
    """The site every record points at, or None when they disagree or point at no known origin."""
    if not records:
        return None, "no edge record was found"
    by_origin = {origin: site for site, origin in origins.items()}
    sites = {by_origin.get(r.content) for r in records}
    if len(sites) == 1:
        (site,) = sites
        if site is not None:
            return site, f"every edge record points at {site} ({records[0].content})"
    described = ", ".join(
        f"{r.label()} -> {r.content} ({by_origin.get(r.content, 'unknown origin')})" for r in records
    )
    return None, f"the edge records do not point at one known site: {described}"


def site_of_pools(pools: Mapping[str, PoolState]) -> tuple[str | None, str]:
    """The site whose pool is the only enabled one, or None when zero or several are enabled."""
    enabled = sorted(site for site, pool in pools.items() if pool.enabled)
    if len(enabled) == 1:
        return enabled[0], f"only the {enabled[0]} pool is enabled"
    if not enabled:
        return None, "no load-balancer pool is enabled"
    return None, f"several load-balancer pools are enabled: {', '.join(enabled)}"


# ---------------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DnsPlan:
    site: str
    origin: str
    writes: tuple[RecordState, ...]  # the records as they must be after the write
    reason: str

    @property
    def changed(self) -> bool:
        return bool(self.writes)


def plan_dns_switch(records: Sequence[RecordState], site: str, origins: Mapping[str, str]) -> DnsPlan:
    """Which records to rewrite so that every one points at `site`'s origin.

    Only the content changes; name, type, ttl and proxied stay as they are.
    """
    if site not in origins:
        raise EdgePlanError(f"cannot switch the edge to {site}: no such site is configured")
    if not records:
        raise EdgePlanError(f"cannot switch the edge to {site}: no edge record was found")
    origin = origins[site]
    stale = [r for r in records if r.content != origin]
    writes = tuple(RecordState(r.record_id, r.name, r.type, origin, r.proxied, r.ttl) for r in stale)
    if not writes:
        names = ", ".join(r.label() for r in records)
        return DnsPlan(
            site, origin, (), f"the edge already points at {site} ({origin}): {names}; nothing to write"
        )
    moves = ", ".join(f"{r.label()} from {r.content} to {origin}" for r in stale)
    noun = "record" if len(writes) == 1 else "records"
    return DnsPlan(site, origin, writes, f"point {len(writes)} {noun} at {site}: {moves}")


@dataclass(frozen=True)
class PoolStep:
    pool_id: str
    site: str
    enabled: bool


@dataclass(frozen=True)
class PoolPlan:
    site: str
    steps: tuple[PoolStep, ...] = field(default_factory=tuple)  # in order: enable first, then disable
    reason: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.steps)


def plan_pool_switch(pools: Mapping[str, PoolState], site: str) -> PoolPlan:
    """Enable the target pool first, then disable the others; refuse a plan that leaves no origin."""
    if site not in pools:
        raise EdgePlanError(f"cannot switch the edge to {site}: no load-balancer pool is configured for it")
    target = pools[site]
    if target.enabled_origins < 1:
        raise EdgePlanError(
            f"cannot switch the edge to {site}: its pool {target.pool_id} has no enabled origin, "
            "so switching would leave nothing serving"
        )
    steps: list[PoolStep] = []
    if not target.enabled:
        steps.append(PoolStep(target.pool_id, site, True))
    others = sorted((s, p) for s, p in pools.items() if s != site and p.enabled)
    steps.extend(PoolStep(p.pool_id, s, False) for s, p in others)
    if not steps:
        return PoolPlan(
            site, (), f"the edge already points at {site}: only its pool {target.pool_id} is enabled"
        )
    parts = []
    if not target.enabled:
        parts.append(f"enable the {site} pool {target.pool_id} first")
    if others:
        parts.append(
            "then " * bool(parts) + "disable " + ", ".join(f"the {s} pool {p.pool_id}" for s, p in others)
        )
    return PoolPlan(site, tuple(steps), f"point the load balancer at {site}: " + ", ".join(parts))


def enabled_after(pools: Mapping[str, PoolState], steps: Sequence[PoolStep]) -> list[set[str]]:
    """The set of enabled sites after each step (used to prove a plan never reaches zero)."""
    enabled = {site for site, pool in pools.items() if pool.enabled}
    states = []
    for step in steps:
        if step.enabled:
            enabled = enabled | {step.site}
        else:
            enabled = enabled - {step.site}
        states.append(enabled)
    return states


def receipt_sentence(plan_reason: str, *, dry_run: bool, changed: bool, writes: int) -> str:
    """The receipt's sentence: what would be done, what was done, or why nothing was."""
    if not changed:
        return plan_reason
    if dry_run:
        return f"dry run: would {plan_reason}; nothing written"
    noun = "write" if writes == 1 else "writes"
    return f"did {plan_reason} ({writes} {noun}, read back and verified)"
