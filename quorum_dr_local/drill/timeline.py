"""The drill's event log, and the timeline picture drawn from it.

Everything the drill observes goes into one `EventLog` as `Event(t, kind, data)`: `t` is epoch
seconds, `kind` one of the names below, `data` a small JSON object. The log is kept in memory and
appended to `events.jsonl`; the report (`quorum_dr_local.drill.report`) is computed from it alone, so a
report can be rebuilt from the file of an earlier run.

Kinds and their data:
- `run_started`     {scenario, regions: [..], quorum: n}      the clock's zero
- `fault`           {fault: kind, phase: "start"|"end", ...params}
- `site_truth`      {site, up: bool}                            ground truth the drill itself caused
- `vote`            {region, site, vote: "up"|"down"|"abstain", round: "scheduled"|"on-demand", results}
                    one region's vote on one site in one round, with that site's results and the
                    region's self-check results of the round (`quorum_dr.replay.recording.VoteEvent`)
- `quorum`          {site, verdict: "DOWN"|"UP"|"NO_DECISION", reason}
- `state`           {state, detail?}                            a state-machine state entered
- `attempt`         {ok, status, site, order_id, latency_ms, error}  one client order
- `promotion`       {site, reason?}
- `edge_write`      {target, detail?}                           a successful change of the edge record
- `api_error`       {status, path?}                             an injected Cloudflare API error served
- `switch`          {to}
- `verify`          {site, ok, reason?}
- `escalation`      {reason}
- `split_brain_alert` {reason, region, sites}                 a second primary appeared (or the set changed)
- `split_brain_resolved` {reason, region, sites}              it went: fewer than two primaries again
- `dry_run_step`    {sentence}
- `shadow_decision` {reason}                      mode shadow: auto would have failed over (t: decided)
- `loss_receipt`    {bytes, reason?, file_lag_seconds?, file_lag_reason?}  the watchdog's own data-loss
                    figure, and the file lag at promotion when the service has file_sync
- `readiness`       {overall, checks: [{name, status, reason}], published, error, duration_ms}
                    one readiness evaluation (quorum_dr_local.drill.readiness)
- `readiness_changed` {reason, overall, overall_before, changes, notification}  a ReadinessChanged
                    the home bus delivered: what the alert topic tells a person
- `readiness_alarm` {alarm, state, previous, failing, reason}  the readiness FAIL alarm changed state
- `backup_failed`   {reason}                                    a scheduled base backup failed
- `orders_present`  {site, order_ids: [..]}                     what the serving database holds at the end
- `backup_taken`    {order_ids: [..]} or {backup_id, lsn, ...}  a backup (a dump's orders, or a base backup)
- `restored`        {site, order_ids: [..]}                     orders found on the restored cold site
- `rejoin_step`     {site, reason}                              a sentence of an operator's rejoin
- `rejoin`          {site, ok, outcome, reason, lag_bytes}      an operator's rejoin ended
- `switchover`      {to, outcome, figures, started_at, ended_at, reason}  an operator's switchover ended
- `run_finished`    {}
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

KINDS = frozenset(
    {
        "run_started",
        "fault",
        "site_truth",
        "vote",
        "quorum",
        "state",
        "attempt",
        "promotion",
        "edge_write",
        "api_error",
        "switch",
        "verify",
        "escalation",
        "split_brain_alert",
        "split_brain_resolved",
        "dry_run_step",
        "shadow_decision",
        "loss_receipt",
        "orders_present",
        "backup_taken",
        "backup_failed",
        "restored",
        "readiness",
        "readiness_changed",
        "readiness_alarm",
        "rejoin_step",
        "rejoin",
        "switchover",
        "rehearsal",
        "run_finished",
    }
)


@dataclass(frozen=True)
class Event:
    t: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"t": self.t, "kind": self.kind, "data": self.data}, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, line: str) -> Event:
        raw = json.loads(line)
        return cls(float(raw["t"]), str(raw["kind"]), dict(raw.get("data") or {}))


class EventLog:
    """Thread-safe, append-only. Listeners (the progress view) see every event as it is recorded."""

    def __init__(self, path: str | Path | None = None, clock: Callable[[], float] | None = None) -> None:
        import time

        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._clock = clock or time.time
        self._listeners: list[Callable[[Event], None]] = []
        self.path = Path(path) if path else None
        self._sink: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._sink = self.path.open("a", encoding="utf-8")

    def now(self) -> float:
        """The log's clock (epoch seconds)."""
        return self._clock()

    def record(self, kind: str, at: float | None = None, **data: Any) -> Event:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}; known: {sorted(KINDS)}")
        event = Event(self._clock() if at is None else at, kind, data)
        with self._lock:
            self._events.append(event)
            if self._sink is not None:
                self._sink.write(event.to_json() + "\n")
                self._sink.flush()
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return event

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return sorted(self._events, key=lambda e: e.t)

    def close(self) -> None:
        with self._lock:
            if self._sink is not None:
                self._sink.close()
                self._sink = None


def read_events(path: str | Path) -> list[Event]:
    with Path(path).open(encoding="utf-8") as lines:
        return sorted((Event.from_json(line) for line in lines if line.strip()), key=lambda e: e.t)


# ---------------------------------------------------------------------------------------------
# The picture
# ---------------------------------------------------------------------------------------------

VOTE_COLOURS = {"up": "#2ca02c", "down": "#d62728", "abstain": "#999999"}
MARKS = (("fault", "black", "fault"), ("promotion", "#9467bd", "promoted"), ("switch", "#1f77b4", "switched"))


def render_timeline(events: Iterable[Event], path: str | Path, title: str = "") -> Path:
    """Write timeline.png: votes per region, DOWN votes vs quorum, states, client success rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = sorted(events, key=lambda e: e.t)
    start = _start(events)
    started = next((e for e in events if e.kind == "run_started"), None)
    regions: list[str] = list(started.data.get("regions", [])) if started else []
    for e in events:
        if e.kind == "vote" and e.data.get("region") not in regions:
            regions.append(str(e.data.get("region")))
    quorum = int(started.data.get("quorum", 0)) if started else 0

    figure, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True, height_ratios=[2, 1.2, 3.4, 1.4])
    _plot_votes(axes[0], events, regions, start)
    _plot_quorum(axes[1], events, regions, quorum, start)
    spans = _plot_states(axes[2], events, start)
    _plot_clients(axes[3], events, start)
    for axis in axes:
        for kind, colour, label in MARKS:
            for index, e in enumerate(
                x for x in events if x.kind == kind and x.data.get("phase", "start") == "start"
            ):
                axis.axvline(
                    e.t - start,
                    color=colour,
                    linestyle="--",
                    linewidth=1,
                    label=label if index == 0 else None,
                )
        axis.grid(True, alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("seconds since the drill started")
    figure.suptitle(title or "quorum-dr drill timeline")
    figure.tight_layout()
    _label_states(axes[2], spans)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _start(events: list[Event]) -> float:
    started = next((e for e in events if e.kind == "run_started"), None)
    if started is not None:
        return started.t
    return events[0].t if events else 0.0


def _plot_votes(axis: Any, events: list[Event], regions: list[str], start: float) -> None:
    for row, region in enumerate(regions):
        for vote, colour in VOTE_COLOURS.items():
            times = [
                e.t - start
                for e in events
                if e.kind == "vote"
                and e.data.get("region") == region
                and e.data.get("site", "main") == "main"
                and e.data.get("vote") == vote
            ]
            axis.scatter(times, [row] * len(times), c=colour, s=18, label=vote if row == 0 else None)
    axis.set_yticks(range(len(regions)), regions)
    axis.set_ylim(-0.6, max(len(regions), 1) - 0.4)
    axis.set_title("probe votes on main, per region", fontsize=9, loc="left")


def _plot_quorum(axis: Any, events: list[Event], regions: list[str], quorum: int, start: float) -> None:
    latest: dict[str, str] = {}
    xs, ys = [], []
    for e in events:
        if e.kind == "vote" and e.data.get("site", "main") == "main":
            latest[str(e.data.get("region"))] = str(e.data.get("vote"))
            xs.append(e.t - start)
            ys.append(sum(1 for v in latest.values() if v == "down"))
    if xs:
        axis.step(xs, ys, where="post", color="#d62728", label="regions voting DOWN")
    if quorum:
        axis.axhline(quorum, color="black", linewidth=1, label=f"quorum ({quorum})")
    for e in events:
        if e.kind == "quorum" and e.data.get("verdict") == "DOWN":
            axis.scatter([e.t - start], [quorum], marker="*", s=120, color="#d62728", zorder=3)
    axis.set_ylim(-0.2, max(len(regions), quorum, 1) + 0.3)
    axis.set_title("DOWN votes against the quorum", fontsize=9, loc="left")
    axis.legend(loc="upper left", fontsize=7)


# In a phase's row (height 1, centred on its index): the bars low, up to three lanes of labels above.
_BAR = 0.27
_LANES = (0.05, -0.14, -0.33)


@dataclass(frozen=True)
class _StateSpan:
    name: str
    execution: str
    row: int
    begin: float
    end: float
    last: bool  # the last state its execution entered (an end state, or where it still is)


def _state_spans(events: list[Event], start: float) -> tuple[list[str], list[_StateSpan]]:
    """Rows (the runbook's phases, then `other` for names the phase table does not know) and one
    span per state entered: from its entry to the next state entered by the same execution."""
    from quorum_dr.state_machines import PHASES, phase_of

    entered = [e for e in events if e.kind == "state"]
    rows = list(PHASES)
    if any(phase_of(str(e.data.get("state"))) is None for e in entered):
        rows.append("other")
    spans: list[_StateSpan] = []
    by_execution: dict[str, list[Event]] = {}
    for e in entered:
        by_execution.setdefault(str(e.data.get("execution", "")), []).append(e)
    for execution, run in by_execution.items():
        for here, after in zip(run, [*run[1:], None], strict=True):
            name = str(here.data.get("state"))
            row = rows.index(phase_of(name) or "other")
            end = here.t if after is None else after.t
            spans.append(_StateSpan(name, execution, row, here.t - start, end - start, after is None))
    return rows, sorted(spans, key=lambda span: span.begin)


def _plot_states(axis: Any, events: list[Event], start: float) -> list[_StateSpan]:
    """One row per phase (detect at the top); each state a bar in its phase's row, a last state a
    diamond, and a faint line following the execution from row to row. Labels come later
    (`_label_states`), once the figure's layout fixes how much room a second takes."""
    rows, spans = _state_spans(events, start)
    colours = ("#1f77b4", "#ff7f0e", "#9467bd", "#d62728", "#2ca02c", "#8c564b", "#7f7f7f")
    for index, span in enumerate(spans):
        colour = colours[span.row % len(colours)]
        if span.last:
            axis.scatter([span.begin], [span.row + _BAR], marker="D", s=22, color=colour, zorder=3)
        else:
            axis.broken_barh(
                [(span.begin, span.end - span.begin)],
                (span.row + _BAR - 0.11, 0.22),
                facecolors=colour,
                edgecolors="white",
                linewidth=0.6,
                alpha=0.55 if index % 2 else 0.85,
            )
    for execution in dict.fromkeys(span.execution for span in spans):
        run = [span for span in spans if span.execution == execution]
        xs, ys = [s.begin for s in run], [s.row + _BAR for s in run]
        axis.step(xs, ys, where="post", color="#555555", linewidth=0.6, alpha=0.4)
    axis.set_yticks([row + _BAR for row in range(len(rows))], rows, fontsize=8)
    for row in range(len(rows) - 1):
        axis.axhline(row + 0.5, color="#bbbbbb", linewidth=0.6)
    axis.set_ylim(len(rows) - 0.5, -0.5)
    axis.set_title("state machine, one row per phase", fontsize=9, loc="left")
    return spans


def _label_states(axis: Any, spans: list[_StateSpan]) -> None:
    """Name each state above its bar, in the first of the row's lanes where no other label is; a
    label that would overlap is left out. Where an execution ended is placed first, then the
    first entry of each state, then repeats."""
    renderer = axis.figure.canvas.get_renderer()
    left, right = axis.get_xlim()
    pixels = axis.get_window_extent(renderer).width or 1.0
    per_pixel = (right - left) / pixels
    placed: dict[tuple[int, int], list[tuple[float, float]]] = {}  # (row, lane) -> label extents
    lasts = [span for span in spans if span.last]
    firsts: list[_StateSpan] = []
    repeats: list[_StateSpan] = []
    for span in spans:
        if not span.last:
            (repeats if span.name in {f.name for f in firsts} else firsts).append(span)
    gap = 4 * per_pixel
    for span in lasts + firsts + repeats:
        text = axis.text(span.begin, span.row, span.name, fontsize=6, va="center", ha="left", clip_on=True)
        extent = (span.begin - gap, span.begin + text.get_window_extent(renderer).width * per_pixel + gap)
        for lane, offset in enumerate(_LANES):
            taken = placed.setdefault((span.row, lane), [])
            if all(extent[1] <= x0 or x1 <= extent[0] for x0, x1 in taken):
                text.set_y(span.row + offset)
                taken.append(extent)
                break
        else:
            text.remove()


def _plot_clients(axis: Any, events: list[Event], start: float) -> None:
    buckets: dict[int, list[bool]] = {}
    for e in events:
        if e.kind == "attempt":
            buckets.setdefault(int(e.t - start), []).append(bool(e.data.get("ok")))
    xs = sorted(buckets)
    axis.step(xs, [100 * sum(buckets[x]) / len(buckets[x]) for x in xs], where="post", color="#2ca02c")
    axis.set_ylim(-5, 105)
    axis.set_ylabel("%")
    axis.set_title("client orders succeeding through the edge (per second)", fontsize=9, loc="left")
