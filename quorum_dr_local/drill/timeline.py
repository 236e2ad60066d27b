"""The drill's event log, and the timeline picture drawn from it.

Everything the drill observes goes into one `EventLog` as `Event(t, kind, data)`: `t` is epoch
seconds, `kind` one of the names below, `data` a small JSON object. The log is kept in memory and
appended to `events.jsonl`; the report (`quorum_dr.drill.report`) is computed from it alone, so a
report can be rebuilt from the file of an earlier run.

Kinds and their data:
- `run_started`     {scenario, regions: [..], quorum: n}      the clock's zero
- `fault`           {fault: kind, phase: "start"|"end", ...params}
- `site_truth`      {site, up: bool}                            ground truth the drill itself caused
- `vote`            {region, site, vote: "up"|"down"|"abstain"} one region's vote in one round
- `quorum`          {site, verdict: "DOWN"|"UP"|"NO_DECISION", reason}
- `state`           {state, detail?}                            a state-machine state entered
- `attempt`         {ok, status, site, order_id, latency_ms, error}  one client order
- `promotion`       {site, reason?}
- `edge_write`      {target, detail?}                           a successful change of the edge record
- `api_error`       {status, path?}                             an injected Cloudflare API error served
- `switch`          {to}
- `verify`          {site, ok, reason?}
- `escalation`      {reason}
- `split_brain_alert` {reason}
- `dry_run_step`    {sentence}
- `loss_receipt`    {bytes, reason?}                            the watchdog's own data-loss figure
- `orders_present`  {site, order_ids: [..]}                     what the serving database holds at the end
- `backup_taken`    {order_ids: [..]}                           orders in the backup the cold site restores
- `restored`        {site, order_ids: [..]}                     orders found on the restored cold site
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
        "dry_run_step",
        "loss_receipt",
        "orders_present",
        "backup_taken",
        "restored",
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

    figure, axes = plt.subplots(4, 1, figsize=(11, 9), sharex=True, height_ratios=[2, 1.2, 1.6, 1.4])
    _plot_votes(axes[0], events, regions, start)
    _plot_quorum(axes[1], events, regions, quorum, start)
    _plot_states(axes[2], events, start)
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


def _plot_states(axis: Any, events: list[Event], start: float) -> None:
    states: list[str] = []
    xs, ys = [], []
    for e in events:
        if e.kind == "state":
            name = str(e.data.get("state"))
            if name not in states:
                states.append(name)
            xs.append(e.t - start)
            ys.append(states.index(name))
    if xs:
        axis.step(xs, ys, where="post", color="#1f77b4")
        axis.scatter(xs, ys, s=10, color="#1f77b4")
        axis.set_yticks(range(len(states)), states, fontsize=7)
    axis.set_title("state machine", fontsize=9, loc="left")


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
