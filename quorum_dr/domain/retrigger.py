"""When a region publishes `ProbeFailed` for a site: on the round its verdict turns DOWN, then again
only every `probe.retrigger_rounds` consecutive failing rounds.

Every `ProbeFailed` starts a failover execution. A site that stays down (main after a failover, an
unlaunched cold site) would otherwise start one execution per region per round, each stopping at
the cooldown gate. The count of consecutive failing rounds is carried by the results themselves
(`ProbeResult.failing_rounds`): this round's count is the previous round's plus one, and the previous
round is read anyway for `VerdictChanged`; nothing else is stored. A previous round that is missing
(outside the look-back) counts as none: the round triggers, which is the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProbeFailedDecision:
    publish: bool
    failing_rounds: int  # consecutive failing rounds of the site from this region, this one included
    reason: str


def decide_probe_failed(
    *, site: str, region: str, down: bool, previous_failing_rounds: int | None, retrigger_rounds: int
) -> ProbeFailedDecision:
    """`previous_failing_rounds`: the count carried by this region's previous round of the site
    (0 when it was UP, None when there is no previous round)."""
    if retrigger_rounds < 1:
        raise ValueError(f"retrigger_rounds must be at least 1, got {retrigger_rounds}")
    if not down:
        reason = f"{site} is UP from {region}: no ProbeFailed; its next failing round triggers at once"
        return ProbeFailedDecision(False, 0, reason)
    count = (previous_failing_rounds or 0) + 1
    if count == 1:
        before = "no previous round" if previous_failing_rounds is None else "UP the round before"
        reason = f"{site} turns DOWN from {region} ({before}): ProbeFailed"
        return ProbeFailedDecision(True, count, reason)
    if count % retrigger_rounds == 0:
        reason = (
            f"{site} is DOWN from {region} for {count} consecutive rounds: ProbeFailed again "
            f"(every {retrigger_rounds} consecutive failing rounds)"
        )
        return ProbeFailedDecision(True, count, reason)
    following = (count // retrigger_rounds + 1) * retrigger_rounds
    reason = (
        f"{site} is still DOWN from {region} ({count} consecutive rounds): no ProbeFailed, it was "
        f"published when it turned DOWN or on a multiple of {retrigger_rounds}; next at round {following}"
    )
    return ProbeFailedDecision(False, count, reason)
