"""The database sync check's verdict (`quorum_dr/domain/sync_check.py`, DESIGN invariant 7): the
target is in sync only at exactly the active site's final position, on its line of timelines, with
every table's rows and ordered hash equal; otherwise the sentence names the first difference."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quorum_dr.domain.results import parse_lsn
from quorum_dr.domain.sync_check import (
    SideDigest,
    SyncEvidence,
    TableDigest,
    TimelineSwitch,
    describe_history,
    judge_sync,
    parse_timeline_history,
)

FINAL = "0/30441A8"
HASH = "ab" * 32


def table(name: str = "public.orders", rows: int = 10, digest: str | None = HASH, **more: Any) -> TableDigest:
    return TableDigest(name=name, rows=rows, bytes=8192, digest=digest, ordered_by="primary key (id)", **more)


def side(site: str = "main", **changes: Any) -> SideDigest:
    fields: dict[str, Any] = {
        "site": site,
        "address": f"{site}.example:5432/booking",
        "role": "primary" if site == "main" else "standby",
        "position": FINAL,
        "position_after": FINAL if site == "main" else None,
        "timeline": 1,
        "timeline_source": "the current WAL file",
        "timeline_history": [],
        "history_note": "timeline 1 has no history file",
        "tables": [table("public.customers", 3, "cd" * 32), table()],
        "taken_at": 1_700_000_000.0,
        "seconds": 0.01,
    }
    fields.update(changes)
    return SideDigest(**fields)


def test_identical_sites_at_the_final_position_are_in_sync_and_the_sentence_says_what_was_compared() -> None:
    verdict = judge_sync(side("main"), side("dr"), final_position=FINAL)
    assert verdict.in_sync and verdict.code == "in_sync"
    assert verdict.reason == (
        "in sync: dr replayed main's final position 0/30441A8 on timeline 1, shares its timeline "
        "history (timeline 1 only), and 2 tables agree in rows and ordered hash"
    )


def test_a_table_over_the_size_limit_is_compared_by_rows_only_and_the_sentence_says_why() -> None:
    why = "pg_table_size 200 MiB is over max_table_bytes 64 MiB"
    big = table("public.events", 5_000_000, None, skipped=why)
    verdict = judge_sync(
        side("main", tables=[table(), big]), side("dr", tables=[table(), big]), final_position=FINAL
    )
    assert verdict.in_sync
    assert verdict.reason.endswith(
        f"1 table agrees in rows and ordered hash; 1 table compared by row count only (public.events: {why})"
    )
    fewer = big.model_copy(update={"rows": 4_999_999})
    verdict = judge_sync(side("main", tables=[big]), side("dr", tables=[fewer]), final_position=FINAL)
    assert (verdict.in_sync, verdict.code) == (False, "rows_differ")
    assert verdict.reason == (
        "dr is not in sync with main: table public.events has 5000000 rows on main but 4999999 on dr"
    )


@pytest.mark.parametrize(
    ("active", "target", "code", "reason"),
    [
        (
            side("main", role="standby"),
            side("dr"),
            "active_not_primary",
            "dr is not in sync with main: main's database is a standby, not the primary that takes the "
            "writes: check which site is active",
        ),
        (
            side("main", position_after="0/3044260", tables=[table()]),
            side("dr", tables=[table(rows=9)]),
            "active_moved",
            "inconclusive: the active site took writes during the check (main's WAL position moved from "
            "0/30441A8 to 0/3044260); freeze writes first (drctl switchover does)",
        ),
        (  # moved, but short of a position main surely reached: not in sync, whatever came after
            side("main", position="0/3044260", position_after="0/3044260"),
            side("dr", position="0/3000060"),
            "not_replayed",
            "dr is not in sync with main: it replayed up to 0/3000060 on timeline 1, short of main's final "
            "position 0/30441A8 on timeline 1",
        ),
        (
            side("main"),
            side("dr", position="0/3000060"),
            "not_replayed",
            "dr is not in sync with main: it replayed up to 0/3000060 on timeline 1, short of main's final "
            "position 0/30441A8 on timeline 1",
        ),
        (
            side("main", tables=[table()]),
            side("dr", position="0/3044260", tables=[table(rows=4)]),
            "beyond_final",
            "dr is not in sync with main: it replayed up to 0/3044260, past main's final position "
            "0/30441A8 on the same timeline 1: it holds WAL that main wrote after that position; the "
            "tables differ too: table public.orders has 10 rows on main but 4 on dr",
        ),
        (
            side("main"),
            side("dr", tables=[table()]),
            "table_missing",
            "dr is not in sync with main: table public.customers is on main but not on dr",
        ),
        (
            side("main", tables=[table()]),
            side("dr"),
            "table_missing",
            "dr is not in sync with main: table public.customers is on dr but not on main",
        ),
        (
            side("main", absent=["public.audit"]),
            side("dr", absent=["public.audit"]),
            "table_missing",
            "dr is not in sync with main: table public.audit is on neither main nor dr",
        ),
        (
            side("main"),
            side("dr", tables=[table("public.customers", 3, "cd" * 32), table(digest="ef" * 32)]),
            "hash_differs",
            "dr is not in sync with main: table public.orders has 10 rows on both sites but its ordered "
            "hash differs (main abababababab, dr efefefefefef): a row's content differs",
        ),
        (
            side(
                "main",
                timeline=2,
                timeline_history=None,
                history_note="pg_read_binary_file: permission denied",
            ),
            side("dr"),
            "history_unknown",
            "dr is not in sync with main: the timeline history of main could not be read "
            "(pg_read_binary_file: permission denied), so the check cannot show that the sites share it",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 25 else None,
)
def test_the_first_difference_is_named(
    active: SideDigest, target: SideDigest, code: str, reason: str
) -> None:
    verdict = judge_sync(active, target, final_position=FINAL)
    assert (verdict.in_sync, verdict.code, verdict.reason) == (False, code, reason)


def test_behind_or_diverged_the_sentence_adds_the_first_table_that_differs() -> None:
    behind = side("dr", position="0/3000060", tables=[table(rows=7)])
    verdict = judge_sync(side("main"), behind, final_position=FINAL)
    assert verdict.code == "not_replayed"
    assert verdict.reason == (
        "dr is not in sync with main: it replayed up to 0/3000060 on timeline 1, short of main's final "
        "position 0/30441A8 on timeline 1; the tables differ too: table public.customers is on main but "
        "not on dr and 1 other table"
    )
    promoted = side(
        "dr", role="primary", timeline=2, timeline_history=[sw(1, "0/3000060")], position="0/3000100"
    )
    verdict = judge_sync(side("main"), promoted, final_position=FINAL)
    assert verdict.code == "timeline_diverged"
    assert verdict.reason == (
        "dr is not in sync with main: the timelines diverged: dr is on timeline 2, which is not in "
        "main's timeline 1 only"
    )
    stopped_early = side("main", role="primary", position="0/3000060", position_after=None)
    verdict = judge_sync(
        side("dr", role="primary", timeline=2, timeline_history=[sw(1, "0/3000060")]),
        stopped_early,
        final_position=FINAL,
    )
    assert verdict.reason == (
        "main is not in sync with dr: it is a primary at 0/3000060 on timeline 1, short of dr's final "
        "position 0/30441A8 on timeline 2"
    )


def sw(timeline: int, switchpoint: str) -> TimelineSwitch:
    return TimelineSwitch(timeline=timeline, switchpoint=switchpoint)


# main was promoted twice: 1 -> 2 at 0/3000000, 2 -> 3 at 0/3040000; its final position is on 3.
MAIN_3 = {"timeline": 3, "timeline_history": [sw(1, "0/3000000"), sw(2, "0/3040000")]}


@pytest.mark.parametrize(
    ("target", "code", "fragment"),
    [
        ({"timeline": 3, "timeline_history": [sw(1, "0/3000000"), sw(2, "0/3040000")]}, "in_sync", "in sync"),
        (  # behind, still on timeline 2 before the switch: it can catch up
            {"timeline": 2, "timeline_history": [sw(1, "0/3000000")], "position": "0/3040000"},
            "not_replayed",
            "it replayed up to 0/3040000 on timeline 2, short of main's final position 0/30441A8 on "
            "timeline 3",
        ),
        (  # promoted on its own from main's timeline 3: the target moved to a timeline main never had
            {"timeline": 4, "timeline_history": [sw(1, "0/3000000"), sw(2, "0/3040000"), sw(3, "0/3044000")]},
            "timeline_diverged",
            "the timelines diverged: dr is on timeline 4, which is not in main's timeline 1 -> 2 at "
            "0/3000000 -> 3 at 0/3040000",
        ),
        (  # same timeline number, another switch point: both were promoted, at different places
            {"timeline": 3, "timeline_history": [sw(1, "0/3000000"), sw(2, "0/3042000")]},
            "timeline_diverged",
            "the timelines diverged: timeline 2 ended at 0/3040000 on main but at 0/3042000 on dr",
        ),
        (  # kept writing on timeline 2 past the point where main left it
            {"timeline": 2, "timeline_history": [sw(1, "0/3000000")], "position": "0/3041000"},
            "timeline_diverged",
            "dr is at 0/3041000 on timeline 2, past the point where main's history left timeline 2 "
            "(0/3040000): dr holds WAL main does not have",
        ),
        (  # its history skips a timeline main went through
            {"timeline": 3, "timeline_history": [sw(2, "0/3040000")]},
            "timeline_diverged",
            "main's history passes through timeline 1 but dr's (timeline 2 -> 3 at 0/3040000) does not",
        ),
    ],
    ids=["same-line", "behind-on-an-ancestor", "promoted", "other-switchpoint", "past-the-switch", "gap"],
)
def test_timeline_histories(target: dict[str, Any], code: str, fragment: str) -> None:
    verdict = judge_sync(side("main", **MAIN_3), side("dr", **target), final_position=FINAL)
    assert verdict.code == code
    assert fragment in verdict.reason
    if code == "in_sync":
        assert (
            "shares its timeline history (timeline 1 -> 2 at 0/3000000 -> 3 at 0/3040000)" in verdict.reason
        )


def test_a_history_file_is_parsed_as_postgresql_writes_it() -> None:
    text = "1\t0/30441A8\tno recovery target specified\n\n# a comment\n2\t0/5000060\tbefore 2024-01-01\n"
    assert parse_timeline_history(text) == [sw(1, "0/30441A8"), sw(2, "0/5000060")]
    assert (
        describe_history(3, parse_timeline_history(text)) == "timeline 1 -> 2 at 0/30441A8 -> 3 at 0/5000060"
    )
    with pytest.raises(ValueError, match="line 1 of the timeline history is not 'TLI LSN reason'"):
        parse_timeline_history("one\t0/1\n")
    with pytest.raises(ValueError, match="line 2"):
        parse_timeline_history("1\t0/1\tok\n2\tnot-an-lsn\n")


def test_the_evidence_for_the_record_keeps_the_differing_tables_first_and_says_how_many_it_left_out() -> None:
    tables = [table(f"public.t{i:03}") for i in range(300)]
    changed = [*tables[:250], table("public.t250", rows=9), *tables[251:]]
    active, target = side("main", tables=tables), side("dr", tables=changed)
    verdict = judge_sync(active, target, final_position=FINAL)
    evidence = SyncEvidence(
        service="booking",
        active=active,
        target=target,
        final_position=FINAL,
        verdict=verdict,
        checked_at=1.0,
        seconds=0.1,
    )
    small = evidence.for_record(max_tables=50)
    assert small.tables_omitted == 250
    assert [t.name for t in small.target.tables][:1] == ["public.t000"]
    assert "public.t250" in {t.name for t in small.target.tables}
    assert small.target.table("public.t250") == table("public.t250", rows=9)
    assert evidence.for_record(max_tables=300) is evidence
    assert len(small.model_dump_json()) < len(evidence.model_dump_json()) / 4


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).map(lambda n: f"public.{n}")
DIGESTS = st.binary(min_size=32, max_size=32).map(bytes.hex)
TABLES = st.lists(
    st.builds(table, name=NAMES, rows=st.integers(0, 10**9), digest=st.one_of(st.none(), DIGESTS)),
    max_size=12,
    unique_by=lambda t: t.name,
)
POSITIONS = st.integers(0x1000000, 0xFFFFFFFFFF).map(lambda p: f"{p >> 32:X}/{p & 0xFFFFFFFF:X}")


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, list[TimelineSwitch]]:
    points = sorted(draw(st.lists(st.integers(0x1000000, 0xFFFFFFFF), max_size=4, unique=True)))
    history = [sw(i + 1, f"0/{p:X}") for i, p in enumerate(points)]
    return len(points) + 1, history


@settings(max_examples=300, deadline=None)
@given(tables=TABLES, line=histories(), data=st.data())
def test_identical_sites_always_agree(
    tables: list[TableDigest], line: tuple[int, list[TimelineSwitch]], data: st.DataObject
) -> None:
    timeline, history = line
    end = max((int(s.switchpoint[2:], 16) for s in history), default=0x1000000)
    final = data.draw(st.integers(end, end + 0xFFFFFF).map(lambda p: f"0/{p:X}"))
    shared = {"tables": tables, "timeline": timeline, "timeline_history": history, "position": final}
    verdict = judge_sync(
        side("main", **shared, position_after=final), side("dr", **shared), final_position=final
    )
    assert verdict.in_sync, verdict.reason
    assert verdict.reason.startswith(
        f"in sync: dr replayed main's final position {final} on timeline {timeline}"
    )


@settings(max_examples=300, deadline=None)
@given(tables=TABLES.filter(bool), data=st.data())
def test_any_single_changed_or_missing_table_is_named(tables: list[TableDigest], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(tables) - 1))
    before = tables[index]
    change = data.draw(st.sampled_from(["rows", "digest", "drop", "absent"]))
    changed = list(tables)
    if change == "rows":
        changed[index] = before.model_copy(update={"rows": before.rows + data.draw(st.integers(1, 10))})
    elif change == "digest":
        other = data.draw(DIGESTS.filter(lambda d: d != before.digest))
        changed[index] = before.model_copy(update={"digest": other})
    else:
        del changed[index]
    target_changes: dict[str, Any] = {"tables": changed}
    if change == "absent":
        target_changes["absent"] = [before.name]
    on_target = data.draw(st.booleans())
    active, target = (
        (side("main", tables=tables), side("dr", **target_changes))
        if on_target
        else (side("main", **target_changes), side("dr", tables=tables))
    )
    verdict = judge_sync(active, target, final_position=FINAL)
    if change == "digest" and before.digest is None:  # a table counted only has no hash to differ
        assert verdict.in_sync, verdict.reason
        return
    assert not verdict.in_sync
    assert verdict.code in ("rows_differ", "hash_differs", "table_missing")
    assert f"table {before.name} " in verdict.reason


@settings(max_examples=200, deadline=None)
@given(final=POSITIONS, other=POSITIONS, moved=st.booleans())
def test_the_target_must_be_at_exactly_the_final_position_and_the_active_site_must_not_move(
    final: str, other: str, moved: bool
) -> None:
    if moved:
        verdict = judge_sync(
            side("main", position=final, position_after=other),
            side("dr", position=final),
            final_position=final,
            writes_frozen=True,
        )
        live = judge_sync(
            side("main", position=final, position_after=other),
            side("dr", position=final),
            final_position=final,
        )
        assert live.code == ("in_sync" if parse_lsn(final) == parse_lsn(other) else "active_moved")
    else:
        verdict = judge_sync(
            side("main", position=final, position_after=final),
            side("dr", position=other),
            final_position=final,
        )
    if parse_lsn(final) == parse_lsn(other):
        assert verdict.in_sync, verdict.reason
        assert "replayed further" not in verdict.reason
    elif moved and parse_lsn(other) < parse_lsn(final):
        assert verdict.code == "active_moved"  # it moved and something differs: no verdict
    elif moved:
        # every table agrees at the final position: in sync there, and the sentence says the WAL
        # after it was not compared
        assert verdict.in_sync and f"moved on to {other}" in verdict.reason, verdict.reason
    else:
        # past the final position on the active site's own line with every table agreeing: in sync
        assert verdict.in_sync if parse_lsn(other) > parse_lsn(final) else verdict.code == "not_replayed"
