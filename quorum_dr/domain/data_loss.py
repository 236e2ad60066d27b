"""The data-loss receipt (invariant 4, docs/architecture.md): what bounds the writes a promotion may lose.

Pure: reads probe results and the DR standby's status, compares no two clocks. Every time here is
on the home region's clock (`received_at` of a result, `now` of the decision); the standby's own
figures are ages it computed on its own clock (`last_msg_age_seconds`).

Main may have written until it failed. The loss is bounded only by evidence of how far the
standby kept up until then, taken up to `first_failure_at`, the first failed probe of main after
the last probe that saw it up (or `now` when no probe saw it fail):

- `synchronous`: main's latest probed view, within the freshness window before that failure,
  lists the DR standby as synchronous (`sync`, or `quorum` when every quorum standby must
  confirm) and its `synchronous_commit` waits for the standby: every acknowledged commit reached
  the standby. 0 bytes, 0 s.
- `wal_position`: a probe saw main's WAL position within the freshness window before the
  failure, and the standby received at least that. 0 bytes up to that view; the seconds between
  the view and the failure are the writes that may be missing.
- `heard_from_main`: the standby's WAL receiver last heard from main (data or keepalive) at a
  known time; main's WAL end as its sender then reported it, minus what the standby received, is
  the bytes; the time from that message to the failure is the seconds.

Without any of them the loss is unknown, and unknown is not zero: `evidence` is None, and no
automatic promotion follows (`decisions.check_replica`).

That receipt is taken before the fence; a main that is still alive may write until it is fenced.
So where main's database was reachable and fenced, the receipt is taken again after the fence
(`final_position_receipt`), against main's final WAL position read after the fence:

- `final_position`: the standby received and replayed main's final position after the fence:
  0 bytes, 0 s lost. Short of it, the bytes it is short are the loss.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from quorum_dr.domain.results import (
    WAITING_SYNCHRONOUS_COMMIT,
    DbRole,
    DbStatus,
    ProbeResult,
    Vote,
    format_lsn,
    parse_lsn,
)
from quorum_dr.domain.state import utc_text

Evidence = Literal["synchronous", "wal_position", "heard_from_main", "final_position"]


class LossReceipt(BaseModel):
    model_config = ConfigDict(frozen=True)

    last_main_lsn: str | None
    standby_receive_lsn: str | None
    loss_bytes: int | None  # known missing: main's last seen position minus what the standby received
    last_replay_at: float | None
    reason: str
    evidence: Evidence | None = None
    bound_bytes: int | None = None  # at most this many bytes of WAL lost (with `evidence`)
    bound_seconds: float | None = None  # at most the writes of this many seconds lost
    first_failure_at: float | None = None
    main_seen_at: float | None = None
    heard_from_main_at: float | None = None


class _Bound(NamedTuple):
    seconds: float
    order: int  # tie-break: synchronous first
    evidence: Evidence
    bytes: int
    sentence: str


_ANY = re.compile(r"^\s*ANY\s+(\d+)\s*\(", re.IGNORECASE)


def _first_failure(main: list[ProbeResult], now: float) -> tuple[float, bool]:
    """(when, seen): the first failed probe of main after the last probe that saw main up."""
    up = [r.received_at for r in main if r.vote is Vote.UP and r.received_at is not None]
    last_up = max(up, default=float("-inf"))
    failed = [
        r.received_at
        for r in main
        if r.vote is Vote.DOWN and not r.abstaining and r.received_at is not None and r.received_at > last_up
    ]
    return (min(failed), True) if failed else (now, False)


def _synchronous(view: DbStatus, name: str | None) -> str | None:
    """None when main's view makes the standby `name` synchronous; else why not."""
    if name is None:
        return "the DR standby's application name is unknown, so main's view of it cannot be found"
    if view.synchronous_commit not in WAITING_SYNCHRONOUS_COMMIT:
        return (
            f"main's synchronous_commit is {view.synchronous_commit or 'unknown'}: commits do not wait "
            f"for a standby"
        )
    peers = [p for p in view.standbys if p.application_name == name]
    if not peers:
        return f"main's view lists no standby named {name}"
    states = {p.sync_state for p in peers}
    if states == {"sync"}:
        return None
    if states == {"quorum"}:
        match = _ANY.match(view.synchronous_standby_names or "")
        voters = sum(1 for p in view.standbys if p.sync_state == "quorum")
        if match and int(match.group(1)) >= voters:
            return None
        return (
            f"main lists {name} in a quorum ({view.synchronous_standby_names}) that does not need "
            f"all of its {voters} standbys, so a commit may have skipped it"
        )
    return f"main lists the DR standby {name} as {', '.join(sorted(str(s) for s in states))}, not sync"


def data_loss_receipt(
    results: Iterable[ProbeResult],
    *,
    service: str,
    standby_status: DbStatus | None,
    now: float,
    freshness_seconds: float,
) -> LossReceipt:
    """Bound the loss of promoting the DR standby now; see the module text for the evidence."""
    mine = [r for r in results if r.service == service and r.received_at is not None]
    main = [r for r in mine if r.site == "main"]
    failure_at, failure_seen = _first_failure(main, now)
    failure_text = "the first failed probe of main" if failure_seen else "now (no probe saw main fail)"

    views = [r for r in main if r.db is not None and r.db.role is DbRole.PRIMARY and r.db.current_lsn]
    main_lsn = max((parse_lsn(r.db.current_lsn) for r in views if r.db and r.db.current_lsn), default=None)
    latest_view = max(views, key=lambda r: r.received_at or 0.0, default=None)
    receive_text = standby_status.receive_lsn if standby_status else None
    received = parse_lsn(receive_text) if receive_text else None
    last_replay_at = standby_status.last_replay_at if standby_status else None
    replay = f"; last replayed transaction at {utc_text(last_replay_at)}" if last_replay_at else ""
    known_missing = max(0, main_lsn - received) if main_lsn is not None and received is not None else None

    bounds: list[_Bound] = []
    gaps: list[str] = []

    # (a) and (b): main's own latest view, if it is recent enough before the failure
    main_seen_at = latest_view.received_at if latest_view else None
    if latest_view is None or latest_view.db is None or main_seen_at is None:
        gaps.append("no probe saw main's WAL position")
    elif failure_at - main_seen_at > freshness_seconds:
        gaps.append(
            f"the last probe view of main's WAL position is {failure_at - main_seen_at:.1f} s older than "
            f"{failure_text} (freshness window {freshness_seconds:g} s)"
        )
    else:
        view, view_lsn = latest_view.db, main_lsn or 0
        before = max(0.0, failure_at - main_seen_at)
        name = _standby_name(standby_status, mine)
        not_sync = _synchronous(view, name)
        if not_sync is None:
            peer = next(p for p in view.standbys if p.application_name == name)
            bounds.append(
                _Bound(
                    0.0,
                    0,
                    "synchronous",
                    0,
                    f"main's last probed view, {before:.1f} s before {failure_text}, lists the DR standby "
                    f"{name} as {peer.sync_state} with synchronous_commit={view.synchronous_commit}: every "
                    f"commit main acknowledged had reached it; at most 0 bytes and 0 s of acknowledged "
                    f"writes lost",
                )
            )
        else:
            gaps.append(not_sync)
        if received is None:
            gaps.append("the standby's received position is unknown")
        elif received < view_lsn:
            gaps.append(
                f"the standby received up to {format_lsn(received)}, short of main's WAL position "
                f"{format_lsn(view_lsn)} seen {before:.1f} s before {failure_text}"
            )
        else:
            bounds.append(
                _Bound(
                    before,
                    1,
                    "wal_position",
                    0,
                    f"the standby received up to {format_lsn(received)}, at or past main's WAL position "
                    f"{format_lsn(view_lsn)} seen {before:.1f} s before {failure_text}: at most the "
                    f"writes of those {before:.1f} s are lost",
                )
            )

    # (c): the standby's last message from main
    heard_at, heard = _heard_from_main(standby_status, mine, now)
    if heard is None or heard_at is None:
        gaps.append("the standby's last message from main is unknown")
    elif heard.latest_end_lsn is None or (received is None and not heard.receive_lsn):
        gaps.append("main's WAL end as the standby last heard it is unknown")
    else:
        end = parse_lsn(heard.latest_end_lsn)
        got = received if received is not None else parse_lsn(heard.receive_lsn or "0/0")
        short = max(0, end - got)
        before = max(0.0, failure_at - heard_at)
        bounds.append(
            _Bound(
                before,
                2,
                "heard_from_main",
                short,
                f"the standby last heard from main {before:.1f} s before {failure_text}, when main's WAL "
                f"ended at {format_lsn(end)} and the standby has received up to {format_lsn(got)} "
                f"({short} bytes short): at most those bytes and the writes of those {before:.1f} s are lost",
            )
        )

    missing = (
        f"at least {known_missing} bytes of WAL lost: main was last seen at {format_lsn(main_lsn or 0)} "
        f"and the standby received up to {format_lsn(received or 0)}; "
        if known_missing
        else ""
    )
    common = dict(
        last_main_lsn=format_lsn(main_lsn) if main_lsn is not None else None,
        standby_receive_lsn=format_lsn(received) if received is not None else receive_text,
        loss_bytes=known_missing,
        last_replay_at=last_replay_at,
        first_failure_at=failure_at,
        main_seen_at=main_seen_at,
        heard_from_main_at=heard_at,
    )
    if not bounds:
        return LossReceipt(
            **common,
            reason=f"{missing}data loss unknown, no known bound: " + "; ".join(gaps) + replay,
        )
    best = min(bounds)
    return LossReceipt(
        **common,
        evidence=best.evidence,
        bound_bytes=max(best.bytes, known_missing or 0) if best.evidence != "synchronous" else 0,
        bound_seconds=round(best.seconds, 3),
        reason=f"{missing}data loss bounded ({best.evidence.replace('_', ' ')}): {best.sentence}{replay}",
    )


def _standby_name(status: DbStatus | None, results: list[ProbeResult]) -> str | None:
    if status is not None and status.application_name:
        return status.application_name
    names = [
        (r.received_at or 0.0, r.db.application_name)
        for r in results
        if r.site == "dr" and r.db is not None and r.db.application_name
    ]
    return max(names)[1] if names else None


def _heard_from_main(
    status: DbStatus | None, results: list[ProbeResult], now: float
) -> tuple[float | None, DbStatus | None]:
    """The latest time (home clock) the standby is known to have heard from main, and the status
    that says so: the decision's own reading at `now`, or a DR check's at its receive time."""
    seen: list[tuple[float, int, DbStatus]] = []
    if status is not None and status.role is DbRole.STANDBY and status.last_msg_age_seconds is not None:
        seen.append((now - status.last_msg_age_seconds, 1, status))
    for r in results:
        db = r.db
        if (
            r.site == "dr"
            and r.received_at is not None
            and db is not None
            and db.role is DbRole.STANDBY
            and db.last_msg_age_seconds is not None
        ):
            seen.append((r.received_at - db.last_msg_age_seconds, 0, db))
    if not seen:
        return None, None
    at, _, db = max(seen, key=lambda s: (s[0], s[1]))
    return at, db


def reached_position(status: DbStatus, lsn: str) -> bool:
    """Has the standby received AND replayed WAL up to `lsn`?"""
    if status.role is not DbRole.STANDBY or not status.receive_lsn or not status.replay_lsn:
        return False
    target = parse_lsn(lsn)
    return parse_lsn(status.receive_lsn) >= target and parse_lsn(status.replay_lsn) >= target


def final_position_receipt(
    final_lsn: str, standby_status: DbStatus | None, *, waited_seconds: float
) -> LossReceipt:
    """The loss receipt after the fence: main's final position (read after the fence) against
    what the standby received and replayed after waiting at most `waited_seconds`."""
    where = f"main's final position after the fence, {final_lsn}"
    status = standby_status
    last_replay_at = status.last_replay_at if status else None
    common = dict(last_main_lsn=final_lsn, last_replay_at=last_replay_at)
    if status is None:
        return LossReceipt(
            **common,
            standby_receive_lsn=None,
            loss_bytes=None,
            reason=f"data loss unknown, no known bound: the DR standby's position could not be read "
            f"within {waited_seconds:g} s to compare with {where}",
        )
    if status.role is not DbRole.STANDBY:
        return LossReceipt(
            **common,
            standby_receive_lsn=None,
            loss_bytes=None,
            reason=f"data loss unknown, no known bound: the DR database is already a primary, so its "
            f"position cannot be compared with {where}",
        )
    if reached_position(status, final_lsn):
        return LossReceipt(
            **common,
            standby_receive_lsn=status.receive_lsn,
            loss_bytes=0,
            evidence="final_position",
            bound_bytes=0,
            bound_seconds=0.0,
            reason=f"no data lost: {where}, reached by the standby (received up to "
            f"{status.receive_lsn}, replayed up to {status.replay_lsn})",
        )
    target = parse_lsn(final_lsn)
    received = parse_lsn(status.receive_lsn) if status.receive_lsn else None
    replayed = parse_lsn(status.replay_lsn) if status.replay_lsn else None
    short = None if received is None else max(0, target - received)
    unreplayed = None if replayed is None else max(0, target - replayed)
    if short is None:
        got = "the standby's received position is unknown"
    elif short:
        got = f"the standby received only up to {status.receive_lsn}: {short} bytes of WAL lost"
    else:
        got = (
            f"the standby received it but replayed only up to {status.replay_lsn or 'an unknown position'} "
            f"({unreplayed if unreplayed is not None else 'unknown'} bytes not replayed)"
        )
    return LossReceipt(
        **common,
        standby_receive_lsn=status.receive_lsn,
        loss_bytes=short,
        reason=f"{where}, not reached by the standby within {waited_seconds:g} s: {got}",
    )
