"""When a confirmation round may stop waiting: the answers in hand settle it.

A round invokes every probe region at once. A region that is dark (its network down) never
answers, and waiting for its invocation to time out only delays the decision. A round may decide
as soon as no answer still outstanding can change any verdict the decision uses:

- per site, `settled_verdict`: the site's verdict (DOWN at `quorum` DOWN votes, UP at `quorum` UP
  votes, UNKNOWN otherwise) is the same whatever each outstanding region votes;
- the database veto (main only) turns a quorum of DOWN votes into UNKNOWN when the DR standby
  still streams from the primary. Its evidence is the DR database's own state, which every region
  reads alike; so main settles DOWN only once an answered region has reported the DR database in
  this round (the veto has looked at it), or when no DR database check exists at all. Otherwise
  the round waits: in doubt, wait.

Pure code: no I/O, no clock. A late region's results, when they come, are still written by its
probe; the round's record names it as silent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from quorum_dr.domain.quorum import Verdict


def verdict_of(down: int, up: int, quorum: int) -> Verdict:
    """The quorum rule on vote counts (the veto aside)."""
    if down >= quorum:
        return Verdict.DOWN
    if up >= quorum:
        return Verdict.UP
    return Verdict.UNKNOWN


def settled_verdict(down: int, up: int, outstanding: int, quorum: int) -> Verdict | None:
    """The verdict no outstanding region can change any more, or None while one still can.

    `down` and `up` count the answered regions' votes; the others answered without a vote
    (suspect, abstaining, stale, missing). Each outstanding region may still vote DOWN, UP or
    neither.
    """
    if min(down, up, outstanding) < 0 or quorum < 1:
        raise ValueError(f"bad tally: down={down} up={up} outstanding={outstanding} quorum={quorum}")
    if down >= quorum:
        return Verdict.DOWN
    if up >= quorum:
        return Verdict.UP
    if down + outstanding < quorum and up + outstanding < quorum:
        return Verdict.UNKNOWN
    return None


class SiteTally(BaseModel):
    """One site's votes from the regions that answered, and how many regions are still out."""

    model_config = ConfigDict(frozen=True)

    site: str
    down: int = Field(ge=0)
    up: int = Field(ge=0)
    outstanding: int = Field(ge=0)
    quorum: int = Field(ge=1)


class Settlement(BaseModel):
    model_config = ConfigDict(frozen=True)

    settled: bool
    verdicts: dict[str, Verdict | None]
    reason: str

    @model_validator(mode="after")
    def _settled_means_every_verdict(self) -> Settlement:
        if self.settled and any(v is None for v in self.verdicts.values()):
            raise ValueError("a settled round has a verdict on every site")
        return self


def round_settled(
    tallies: Sequence[SiteTally], *, outstanding: Sequence[str], veto_evidence_in_hand: bool
) -> Settlement:
    """Whether the round may decide now, with the sentence that says why (or what it waits for).

    `tallies` must cover every site the decision reads (main, dr, cold); `veto_evidence_in_hand`
    says the DR database was reported in this round by an answered region, or has no check at all.
    """
    verdicts = {t.site: settled_verdict(t.down, t.up, t.outstanding, t.quorum) for t in tallies}
    waiting_for = ", ".join(outstanding) or "nobody"
    if not outstanding:
        return Settlement(
            settled=True,
            verdicts={t.site: verdict_of(t.down, t.up, t.quorum) for t in tallies},
            reason="every region answered",
        )
    open_sites = [site for site, verdict in verdicts.items() if verdict is None]
    if open_sites:
        return Settlement(
            settled=False,
            verdicts=verdicts,
            reason=f"waiting for {waiting_for}: the verdict on {', '.join(open_sites)} may still change",
        )
    if verdicts.get("main") is Verdict.DOWN and not veto_evidence_in_hand:
        return Settlement(
            settled=False,
            verdicts=verdicts,
            reason=f"waiting for {waiting_for}: no answered region reported the DR database in this "
            "round, so the database veto may still apply",
        )
    summary = ", ".join(f"{site} {verdict}" for site, verdict in verdicts.items())
    return Settlement(
        settled=True,
        verdicts=verdicts,
        reason=f"settled without {waiting_for}: no late answer can change {summary}",
    )


def tally(
    votes: Mapping[str, Mapping[str, str]], *, answered: Sequence[str], outstanding: int, quorum: int
) -> list[SiteTally]:
    """Site -> region -> vote kind ("down", "up", ...) of the answered regions, as tallies."""
    return [
        SiteTally(
            site=site,
            down=sum(1 for region in answered if by_region.get(region) == "down"),
            up=sum(1 for region in answered if by_region.get(region) == "up"),
            outstanding=outstanding,
            quorum=quorum,
        )
        for site, by_region in votes.items()
    ]
