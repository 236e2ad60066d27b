"""The live view of a running drill: phase, each region's latest vote, clients' success rate.

Feed it events (`EventLog.subscribe(view.on_event)`) and phase changes (`view.phase(...)`).
On a terminal it redraws one status block in place (at most `refresh_seconds` apart); when the
output is not a terminal (CI, a pipe) it prints plain lines, only when the phase or a vote
changes, so logs stay short and readable.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

from quorum_dr_local.drill.timeline import Event

VOTE_SIGNS = {"up": "UP", "down": "DOWN", "abstain": "abstain"}


class ProgressView:
    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        window_seconds: float = 5.0,
        refresh_seconds: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.window_seconds = window_seconds
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.started_at: float | None = None
        self.current_phase = "starting"
        self.state: str | None = None
        self.votes: dict[str, str] = {}
        self.notes: deque[str] = deque(maxlen=3)
        self._recent: deque[tuple[float, bool]] = deque()
        self._lock = threading.Lock()
        self._drawn_lines = 0
        self._last_draw = 0.0
        self._last_plain = ""

    # -- input -----------------------------------------------------------------------------------

    def phase(self, name: str) -> None:
        with self._lock:
            self.current_phase = name
        self.render(force=True)

    def on_event(self, event: Event) -> None:
        important = self._absorb(event)
        self.render(force=important)

    def _absorb(self, event: Event) -> bool:
        with self._lock:
            if event.kind == "run_started":
                self.started_at = event.t
            elif event.kind == "attempt":
                self._recent.append((event.t, bool(event.data.get("ok"))))
                while self._recent and self._recent[0][0] < event.t - self.window_seconds:
                    self._recent.popleft()
                return False
            elif event.kind == "vote" and event.data.get("site", "main") == "main":
                region, vote = str(event.data.get("region")), str(event.data.get("vote"))
                changed = self.votes.get(region) != vote
                self.votes[region] = vote
                return changed
            elif event.kind == "state":
                self.state = str(event.data.get("state"))
            elif event.kind in (
                "fault",
                "promotion",
                "switch",
                "verify",
                "escalation",
                "split_brain_alert",
                "split_brain_resolved",
                "quorum",
                "readiness_changed",
                "readiness_alarm",
                "backup_failed",
            ):
                self.notes.append(self._note(event))
            else:
                return False
            return True

    def _note(self, event: Event) -> str:
        at = f"{event.t - self.started_at:6.1f}s " if self.started_at is not None else ""
        detail = (
            event.data.get("reason")
            or event.data.get("fault")
            or event.data.get("to")
            or event.data.get("site")
        )
        return f"{at}{event.kind}: {detail}" if detail else f"{at}{event.kind}"

    # -- output ----------------------------------------------------------------------------------

    def success_rate(self) -> float | None:
        with self._lock:
            if not self._recent:
                return None
            return sum(ok for _, ok in self._recent) / len(self._recent)

    def status_lines(self) -> list[str]:
        rate = self.success_rate()
        with self._lock:
            elapsed = f"{self.clock() - self.started_at:5.1f}s" if self.started_at is not None else "  --  "
            votes = (
                "  ".join(f"{r}={VOTE_SIGNS.get(v, v)}" for r, v in sorted(self.votes.items()))
                or "no votes yet"
            )
            clients = "--" if rate is None else f"{rate * 100:3.0f}%"
            state = f"  state {self.state}" if self.state else ""
            lines = [
                f"[{elapsed}] {self.current_phase}{state}",
                f"  votes on main: {votes}",
                f"  clients ok: {clients}",
            ]
            lines += [f"  {note}" for note in self.notes]
        return lines

    def render(self, force: bool = False) -> None:
        if self.tty:
            now = time.monotonic()
            if not force and now - self._last_draw < self.refresh_seconds:
                return
            self._last_draw = now
            lines = self.status_lines()
            out = "".join("\x1b[1A\x1b[2K" for _ in range(self._drawn_lines)) + "\n".join(lines) + "\n"
            self._drawn_lines = len(lines)
            self.stream.write(out)
            self.stream.flush()
        elif force:
            lines = self.status_lines()
            plain = " | ".join(line.strip() for line in lines[:3])
            key = plain.split("] ", 1)[-1]  # without the elapsed time
            if key != self._last_plain:
                self._last_plain = key
                self.stream.write(plain + "\n")
                self.stream.flush()

    def close(self) -> None:
        self.render(force=True)
