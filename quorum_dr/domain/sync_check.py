"""The database sync check before a planned switch (DESIGN invariant 7), pure: do the two sites hold
the same data?

The case study's team checked it by hand before switching back. Here each site's database is
described by a `SideDigest` (taken by `quorum_dr/adapters/postgres_sync.py` in one read-only
REPEATABLE READ transaction): its WAL position, its timeline and timeline history, and per table the
row count and an ordered hash. `judge_sync` compares the active site's digest with the target's,
against the active site's final position (read once writes were frozen), and names the first
difference, in this order:

1. the active site must be a primary. Its digest is taken at the final position; if its position
   read after the check has moved, the check is inconclusive (writes were not frozen), unless the
   caller verified the freeze (`writes_frozen`, the switchover) and everything below agrees: then
   it is in sync at the final position, and the sentence says the WAL written after it (a frozen
   primary still writes some) was not compared;
2. both timeline histories must be known, and the target must be on the active site's line: its
   timeline is in the active site's history, every switch it knows happened at the same WAL
   position, and it is not past the point where the active site's history left its timeline;
   otherwise the sites diverged;
3. the target must have replayed the final position: short of it is "not replayed". Past it, on
   the active site's own line, is WAL the active site wrote after its digest: a frozen primary
   still writes some (autovacuum, checkpoints, standby snapshots, hint-bit page images); the
   sites are then in sync only if every table agrees (a change to a table there would show as a
   difference), else "beyond final". The exact final position is the switchover's own later
   check: after the clean stop the target must replay past the shutdown checkpoint;
4. every table must be on both sides with the same row count and, where both hashed it, the same
   ordered hash; a table over `max_table_bytes` is compared by its row count only, and the
   sentence says so.

When 2 or 3 fails and tables differ too, the sentence adds the first table that differs (what the
target is missing, in the operator's terms) and how many others do.

A timeline history is what PostgreSQL keeps in `pg_wal/<TLI>.history`: one `TimelineSwitch` per
earlier timeline, saying where it ended. Timeline 1 has no history.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from quorum_dr.domain.results import parse_lsn

SHORT_HASH = 12  # characters of a hash a person reads in a summary

SyncCode = Literal[
    "in_sync",
    "active_not_primary",
    "active_moved",
    "history_unknown",
    "timeline_diverged",
    "not_replayed",
    "beyond_final",
    "table_missing",
    "rows_differ",
    "hash_differs",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimelineSwitch(_Frozen):
    """One line of a timeline history: `timeline` ended at `switchpoint`, where the next began."""

    timeline: int = Field(ge=1)
    switchpoint: str


class TableDigest(_Frozen):
    """One table on one site: its row count, and the ordered hash of its rows unless `skipped`."""

    name: str = Field(description="schema.table")
    rows: int | None = Field(ge=0, description="None when the table cannot be read on a standby (unlogged)")
    bytes: int = Field(ge=0, description="pg_table_size: the heap and its TOAST, without indexes")
    digest: str | None = Field(default=None, description="hex SHA-256 over the ordered rows' hashes")
    ordered_by: str | None = Field(default=None, description="the order the rows were hashed in")
    skipped: str | None = Field(default=None, description="why the table was counted but not hashed")

    def short(self) -> str:
        return self.digest[:SHORT_HASH] if self.digest else "-"


class SideDigest(_Frozen):
    """One site's database as the check saw it, at one WAL position (one snapshot)."""

    site: str
    address: str = Field(description="host:port/dbname, never credentials")
    role: Literal["primary", "standby"]
    position: str = Field(description="WAL position of the snapshot: written (primary) or replayed (standby)")
    position_after: str | None = Field(
        default=None, description="the position read again once the check's digests were taken"
    )
    timeline: int = Field(ge=1)
    timeline_source: str = Field(description="where the timeline was read")
    timeline_history: list[TimelineSwitch] | None = Field(
        description="the switches that led to `timeline`, oldest first; None when it could not be read"
    )
    history_note: str = Field(description="where the history was read, or why it could not be")
    tables: list[TableDigest] = Field(default_factory=list)
    absent: list[str] = Field(default_factory=list, description="configured tables this side does not have")
    taken_at: float
    seconds: float = Field(ge=0, description="how long the digest took")

    def table(self, name: str) -> TableDigest | None:
        return next((t for t in self.tables if t.name == name), None)


class SyncVerdict(_Frozen):
    in_sync: bool
    code: SyncCode
    reason: str

    @property
    def inconclusive(self) -> bool:
        return self.code == "active_moved"


class SyncEvidence(_Frozen):
    """What one sync check saw and decided: the contract of `drctl sync-check --json`, of the incident
    record's `sync_check` field and of a switchover's sync-check step."""

    service: str
    active: SideDigest
    target: SideDigest
    final_position: str
    verdict: SyncVerdict
    attempts: int = Field(default=1, ge=1, description="checks run: a moved active site is checked again")
    checked_at: float
    seconds: float = Field(ge=0)
    tables_omitted: int = Field(default=0, ge=0, description="tables left out of this copy (see for_record)")

    def for_record(self, max_tables: int = 200) -> SyncEvidence:
        """A copy small enough for a DynamoDB item (400 KB): at most `max_tables` tables per side,
        those that differ first; how many were left out is said in `tables_omitted`."""
        names = sorted({t.name for t in self.active.tables} | {t.name for t in self.target.tables})
        if len(names) <= max_tables:
            return self
        differing = [n for n in names if _table_difference(n, self.active, self.target)]
        kept = set((differing + [n for n in names if n not in differing])[:max_tables])

        def trim(side: SideDigest) -> SideDigest:
            return side.model_copy(update={"tables": [t for t in side.tables if t.name in kept]})

        return self.model_copy(
            update={
                "active": trim(self.active),
                "target": trim(self.target),
                "tables_omitted": len(names) - len(kept),
            }
        )


# ---------------------------------------------------------------------------------------------
# Timeline histories
# ---------------------------------------------------------------------------------------------


def parse_timeline_history(text: str) -> list[TimelineSwitch]:
    """The switches in the text of a `pg_wal/<TLI>.history` file: lines `parent-TLI<TAB>LSN<TAB>reason`;
    blank lines and `#` comments are skipped, as PostgreSQL's own reader does. ValueError when a line
    is not one."""
    switches: list[TimelineSwitch] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 2)
        try:
            timeline, switchpoint = int(fields[0]), fields[1]
            parse_lsn(switchpoint)
        except (IndexError, ValueError):
            raise ValueError(
                f"line {number} of the timeline history is not 'TLI LSN reason': {line[:80]!r}"
            ) from None
        switches.append(TimelineSwitch(timeline=timeline, switchpoint=switchpoint.upper()))
    return switches


def describe_history(timeline: int, history: list[TimelineSwitch] | None) -> str:
    """`timeline 1 -> 2 at 0/30441A8 -> 3 at 0/5000060`; `timeline 1 only`."""
    if history is None:
        return f"timeline {timeline} (history unknown)"
    if not history:
        return f"timeline {timeline} only"
    steps = [str(history[0].timeline)]
    for index, switch in enumerate(history):
        following = history[index + 1].timeline if index + 1 < len(history) else timeline
        steps.append(f"{following} at {switch.switchpoint}")
    return "timeline " + " -> ".join(steps)


def _line_problem(active: SideDigest, target: SideDigest) -> str | None:
    """None when the target is on the active site's line of timelines (perhaps behind on it); else
    the first place where the two lines part, as a sentence."""
    assert active.timeline_history is not None and target.timeline_history is not None
    a, t = active.site, target.site
    ends: dict[int, int | None] = {s.timeline: parse_lsn(s.switchpoint) for s in active.timeline_history}
    ends[active.timeline] = None  # the active site's timeline has not ended
    if target.timeline not in ends:
        return (
            f"{t} is on timeline {target.timeline}, which is not in {a}'s "
            f"{describe_history(active.timeline, active.timeline_history)}"
        )
    mine = {s.timeline: s.switchpoint for s in target.timeline_history}
    for switch in active.timeline_history:
        if switch.timeline >= target.timeline:
            break
        if switch.timeline not in mine:
            return (
                f"{a}'s history passes through timeline {switch.timeline} but {t}'s "
                f"({describe_history(target.timeline, target.timeline_history)}) does not"
            )
        if parse_lsn(mine[switch.timeline]) != parse_lsn(switch.switchpoint):
            return (
                f"timeline {switch.timeline} ended at {switch.switchpoint} on {a} but at "
                f"{mine[switch.timeline]} on {t}"
            )
    extra = sorted(set(mine) - set(ends))
    if extra:
        return f"{t}'s history passes through timeline {extra[0]}, which is not in {a}'s history"
    end = ends[target.timeline]
    if end is not None and parse_lsn(target.position) > end:
        return (
            f"{t} is at {target.position} on timeline {target.timeline}, past the point where {a}'s "
            f"history left timeline {target.timeline} ({_lsn_text(end)}): {t} holds WAL {a} does not have"
        )
    return None


def _lsn_text(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def _table_difference(name: str, active: SideDigest, target: SideDigest) -> tuple[SyncCode, str] | None:
    a, t = active.table(name), target.table(name)
    if a is None and t is None:
        return "table_missing", f"table {name} is on neither {active.site} nor {target.site}"
    if a is None:
        return "table_missing", f"table {name} is on {target.site} but not on {active.site}"
    if t is None:
        return "table_missing", f"table {name} is on {active.site} but not on {target.site}"
    if a.rows != t.rows:
        return "rows_differ", f"table {name} has {a.rows} rows on {active.site} but {t.rows} on {target.site}"
    if a.digest is not None and t.digest is not None and a.digest != t.digest:
        return (
            "hash_differs",
            f"table {name} has {a.rows} rows on both sites but its ordered hash differs ({active.site} "
            f"{a.short()}, {target.site} {t.short()}): a row's content differs",
        )
    return None


def _table_names(active: SideDigest, target: SideDigest) -> list[str]:
    return sorted(
        {t.name for t in active.tables}
        | {t.name for t in target.tables}
        | set(active.absent)
        | set(target.absent)
    )


# ---------------------------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------------------------


def _verdict(code: SyncCode, reason: str) -> SyncVerdict:
    return SyncVerdict(in_sync=code == "in_sync", code=code, reason=reason)


def _not_in_sync(code: SyncCode, target: SideDigest, active: SideDigest, why: str) -> SyncVerdict:
    return _verdict(code, f"{target.site} is not in sync with {active.site}: {why}")


def _moved(active: SideDigest, final_position: str) -> str | None:
    final = parse_lsn(final_position)
    for seen in (active.position, active.position_after):
        if seen is not None and parse_lsn(seen) != final:
            return seen
    return None


def judge_sync(
    active: SideDigest, target: SideDigest, *, final_position: str, writes_frozen: bool = False
) -> SyncVerdict:
    """Is `target` in sync with `active` at the active site's `final_position`? The first difference,
    in the order the module text gives, as a sentence; or why they agree.

    `writes_frozen`: the caller verified that the application cannot write on the active site (the
    switchover's freeze, checked by the site agent). Then a position that moved during the check,
    with everything agreeing, is background WAL and the verdict holds at the final position; without
    it (`drctl sync-check` on a live site) a move makes an agreement inconclusive. A target short of
    the final position or off the active site's timelines is not in sync, moved or not."""
    a = active.site
    if active.role != "primary":
        return _not_in_sync(
            "active_not_primary",
            target,
            active,
            f"{a}'s database is a standby, not the primary that takes the writes: check which site is active",
        )
    moved_to = _moved(active, final_position)
    names = _table_names(active, target)
    differences = [d for d in (_table_difference(n, active, target) for n in names) if d is not None]
    first = _position_difference(active, target, final_position)
    backwards = moved_to is not None and parse_lsn(moved_to) < parse_lsn(final_position)
    # A target short of the final position, or on another line of timelines, is not in sync whatever
    # the active site wrote after that position: a move makes only an agreement inconclusive.
    conclusive = first is not None and first[0] != "beyond_final"
    if moved_to is not None and (backwards or (not conclusive and (not writes_frozen or differences))):
        return _verdict(
            "active_moved",
            f"inconclusive: the active site took writes during the check ({a}'s WAL position moved from "
            f"{final_position} to {moved_to}); freeze writes first (drctl switchover does)",
        )
    if moved_to is not None and not conclusive:  # every table agrees at the final position: it holds
        later = (
            f"; {a}'s WAL moved on to {moved_to} during the check (a frozen primary still writes some: "
            "checkpoints, standby snapshots, autovacuum): what it wrote after the final position is not "
            "compared here (a switchover's clean stop and its wait past the shutdown checkpoint carry it)"
        )
        extra = f"; {target.site} replayed further, to {target.position}" if first is not None else ""
        return _verdict("in_sync", _agreement(active, target, final_position, names) + extra + later)
    if first is not None and first[0] == "beyond_final" and not differences:
        later = (
            f"; {target.site} replayed further, to {target.position}: WAL {a} wrote after its digest, "
            "which changed none of the tables compared"
        )
        return _verdict("in_sync", _agreement(active, target, final_position, names) + later)
    if first is not None:
        code, why = first
        if differences:
            more = f" and {_count(len(differences) - 1, 'other table')}" if len(differences) > 1 else ""
            why += f"; the tables differ too: {differences[0][1]}{more}"
        return _not_in_sync(code, target, active, why)
    if differences:
        code, why = differences[0]
        return _not_in_sync(code, target, active, why)
    return _verdict("in_sync", _agreement(active, target, final_position, names))


def _position_difference(
    active: SideDigest, target: SideDigest, final_position: str
) -> tuple[SyncCode, str] | None:
    """Timeline histories, the line of timelines and the target's position, in that order."""
    a = active.site
    for side in (active, target):
        if side.timeline_history is None:
            return (
                "history_unknown",
                f"the timeline history of {side.site} could not be read ({side.history_note}), so the "
                "check cannot show that the sites share it",
            )
    parting = _line_problem(active, target)
    if parting is not None:
        return "timeline_diverged", f"the timelines diverged: {parting}"
    final, replayed = parse_lsn(final_position), parse_lsn(target.position)
    at = "it replayed up to" if target.role == "standby" else "it is a primary at"
    if target.timeline != active.timeline or replayed < final:
        return (
            "not_replayed",
            f"{at} {target.position} on timeline {target.timeline}, short of {a}'s final position "
            f"{final_position} on timeline {active.timeline}",
        )
    if replayed > final:
        return (
            "beyond_final",
            f"{at} {target.position}, past {a}'s final position {final_position} on the same timeline "
            f"{active.timeline}: it holds WAL that {a} wrote after that position",
        )
    return None


def _agreement(active: SideDigest, target: SideDigest, final_position: str, names: list[str]) -> str:
    a, t = active.site, target.site
    history = describe_history(active.timeline, active.timeline_history)
    if not names:
        tables = "there is no table to compare (only the positions and timelines were checked)"
    else:
        counted = [n for n in names if any(_digest(side, n) is None for side in (active, target))]
        hashed = len(names) - len(counted)
        tables = f"{_count(hashed, 'table')} {'agrees' if hashed == 1 else 'agree'} in rows and ordered hash"
        if counted:
            listed = ", ".join(counted[:5]) + (f" and {len(counted) - 5} more" if len(counted) > 5 else "")
            tables += (
                f"; {_count(len(counted), 'table')} compared by row count only ({listed}: "
                f"{_why(counted[0], active, target)})"
            )
    return (
        f"in sync: {t} replayed {a}'s final position {final_position} on timeline {active.timeline}, "
        f"shares its timeline history ({history}), and {tables}"
    )


def _digest(side: SideDigest, name: str) -> str | None:
    table = side.table(name)
    return table.digest if table else None


def _why(name: str, active: SideDigest, target: SideDigest) -> str:
    for side in (active, target):
        table = side.table(name)
        if table is not None and table.skipped:
            return table.skipped
    return "not hashed"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
