"""The live progress view: plain lines when not a terminal, an in-place block on a terminal."""

from __future__ import annotations

import io

from quorum_dr_local.drill.progress import ProgressView
from quorum_dr_local.drill.timeline import Event

T0 = 1_700_000_000.0


def feed(view: ProgressView) -> None:
    view.on_event(Event(T0, "run_started", {"scenario": "main-outage"}))
    view.phase("traffic running")
    for i in range(4):
        view.on_event(Event(T0 + i * 0.5, "attempt", {"ok": i < 3}))
    view.on_event(Event(T0 + 2, "vote", {"region": "eu-west-2", "site": "main", "vote": "down"}))
    view.on_event(Event(T0 + 2.1, "vote", {"region": "eu-west-2", "site": "main", "vote": "down"}))
    view.on_event(Event(T0 + 3, "promotion", {"site": "dr"}))


def test_plain_output_is_one_line_per_change_without_escape_codes():
    out = io.StringIO()
    view = ProgressView(out, tty=False, clock=lambda: T0 + 3)
    feed(view)
    lines = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue()
    assert lines[-1] == "[  3.0s] traffic running | votes on main: eu-west-2=DOWN | clients ok:  75%"
    # the repeated DOWN vote and the attempts printed nothing of their own
    assert sum("eu-west-2=DOWN" in line for line in lines) == 1
    assert view.success_rate() == 0.75


def test_terminal_output_redraws_the_block_in_place():
    out = io.StringIO()
    view = ProgressView(out, tty=True, refresh_seconds=0, clock=lambda: T0 + 3)
    feed(view)
    text = out.getvalue()
    assert "\x1b[1A\x1b[2K" in text
    last_block = view.status_lines()
    assert last_block[0] == "[  3.0s] traffic running"
    assert last_block[-1].strip() == "3.0s promotion: dr"
