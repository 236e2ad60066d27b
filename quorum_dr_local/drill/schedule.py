"""From a scenario's faults to a timed list of actions on the sandbox, and the loop that plays it.

`plan(scenario)` is pure: it expands every fault (a flap into its down/up cycles, a partition
into cut and heal, ...) into `Action`s sorted by time, each naming the `FaultTarget` method to
call and the ground truth it creates (`site_truth`: is main really up?). `play(...)` runs the plan
against any `FaultTarget` (the drill's sandbox), recording a `fault` event per action, and stops
early on a stop signal. The orchestrator owns the sandbox; this module owns "what, and when".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from quorum_dr_local.drill.scenario import (
    BackupStopParams,
    ClockSkewParams,
    CloudflareApiParams,
    DualOutageParams,
    Fault,
    FlapParams,
    LinkDownParams,
    OldPrimaryReturnsParams,
    PartitionParams,
    PauseTrafficParams,
    ReplicaLagParams,
    ReplicationCutParams,
    Scenario,
    SiteDownParams,
)
from quorum_dr_local.drill.timeline import EventLog


class FaultTarget(Protocol):
    """What the drill's sandbox must offer for the faults (methods named as the actions)."""

    def stop_site(self, site: str, parts: str) -> None: ...
    def start_site(self, site: str, parts: str) -> None: ...
    def partition(self, region: str, site: str) -> None: ...
    def heal(self, region: str, site: str) -> None: ...
    def link_down(self, region: str) -> None: ...
    def link_up(self, region: str) -> None: ...
    def lag_replica(self, extra_write_bytes: int, max_lag_bytes: int) -> None: ...
    def cut_replication(self, extra_write_bytes: int, max_lag_bytes: int) -> None: ...
    def inject_api_errors(self, status: int, count: int, retry_after_seconds: float | None) -> None: ...
    def skew_clock(self, region: str, seconds: float) -> None: ...
    def arm_old_primary_return(self, site: str, after_failover_seconds: float) -> None: ...
    def pause_traffic(self) -> None: ...
    def resume_traffic(self) -> None: ...
    def stop_backups(self) -> None: ...


@dataclass(frozen=True)
class Action:
    at: float  # seconds after the traffic starts
    fault: str  # the fault kind it belongs to
    phase: str  # "start" or "end"
    method: str  # FaultTarget method
    args: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, bool] = field(default_factory=dict)  # site -> really up after this action


def _site_down(fault: Fault, p: SiteDownParams) -> list[Action]:
    # whatever part stops, the site stops serving orders: it is really down
    actions = [
        Action(
            fault.at, fault.kind, "start", "stop_site", {"site": p.site, "parts": p.parts}, {p.site: False}
        )
    ]
    if p.restore_after_seconds:
        actions.append(
            Action(
                fault.at + p.restore_after_seconds,
                fault.kind,
                "end",
                "start_site",
                {"site": p.site, "parts": p.parts},
                {p.site: True},
            )
        )
    return actions


def _flap(fault: Fault, p: FlapParams) -> list[Action]:
    actions = []
    for cycle in range(p.cycles):
        down = fault.at + cycle * (p.down_seconds + p.up_seconds)
        args = {"site": p.site, "parts": "app"}
        actions.append(Action(down, fault.kind, "start", "stop_site", args, {p.site: False}))
        actions.append(Action(down + p.down_seconds, fault.kind, "end", "start_site", args, {p.site: True}))
    return actions


def _expand(fault: Fault) -> list[Action]:  # noqa: C901 - one branch per fault kind
    p = fault.typed
    kind = fault.kind
    if isinstance(p, SiteDownParams):
        return _site_down(fault, p)
    if isinstance(p, FlapParams):
        return _flap(fault, p)
    if isinstance(p, PartitionParams):
        cut = [Action(fault.at, kind, "start", "partition", {"region": p.region, "site": p.site})]
        if p.heal_after_seconds:
            cut.append(
                Action(
                    fault.at + p.heal_after_seconds, kind, "end", "heal", {"region": p.region, "site": p.site}
                )
            )
        return cut
    if isinstance(p, LinkDownParams):
        down = [Action(fault.at, kind, "start", "link_down", {"region": p.region})]
        if p.restore_after_seconds:
            down.append(
                Action(fault.at + p.restore_after_seconds, kind, "end", "link_up", {"region": p.region})
            )
        return down
    if isinstance(p, DualOutageParams):
        return [
            Action(fault.at, kind, "start", "stop_site", {"site": s, "parts": "all"}, {s: False})
            for s in p.sites
        ]
    if isinstance(p, ReplicaLagParams):
        return [Action(fault.at, kind, "start", "lag_replica", p.model_dump())]
    if isinstance(p, ReplicationCutParams):
        return [Action(fault.at, kind, "start", "cut_replication", p.model_dump())]
    if isinstance(p, CloudflareApiParams):
        return [Action(fault.at, kind, "start", "inject_api_errors", p.model_dump())]
    if isinstance(p, ClockSkewParams):
        return [Action(fault.at, kind, "start", "skew_clock", p.model_dump())]
    if isinstance(p, PauseTrafficParams):
        pause = [Action(fault.at, kind, "start", "pause_traffic")]
        if p.resume_after_seconds:
            pause.append(Action(fault.at + p.resume_after_seconds, kind, "end", "resume_traffic"))
        return pause
    if isinstance(p, BackupStopParams):
        return [Action(fault.at, kind, "start", "stop_backups")]
    if isinstance(p, OldPrimaryReturnsParams):
        return [Action(fault.at, kind, "start", "arm_old_primary_return", p.model_dump())]
    raise ValueError(f"no plan for fault kind {kind}")  # pragma: no cover - every kind has a branch


def plan(scenario: Scenario) -> list[Action]:
    """Every action of the scenario's timed faults, in time order (stable for equal times); a fault
    played `during_state` is the orchestrator's to trigger (`triggered`)."""
    actions = [action for fault in scenario.faults if not fault.during_state for action in _expand(fault)]
    return sorted(actions, key=lambda a: a.at)


def play(
    actions: list[Action],
    target: FaultTarget,
    log: EventLog,
    stop: threading.Event,
    started_monotonic: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Run the actions at their times; return how many ran. Ends early when `stop` is set."""
    begin = monotonic() if started_monotonic is None else started_monotonic
    done = 0
    for action in actions:
        delay = begin + action.at - monotonic()
        if delay > 0 and stop.wait(delay):
            break
        if stop.is_set():
            break
        # the fault is timed when it began to bite (a kill under load can take half a second), so
        # that a client order that failed meanwhile is put down to it (report.client_outages)
        began = log.now()
        getattr(target, action.method)(**action.args)
        log.record(
            "fault",
            at=began,
            fault=str(action.fault),
            phase=action.phase,
            action=action.method,
            **action.args,
        )
        for site, up in action.truth.items():
            log.record("site_truth", site=site, up=up)
        done += 1
    return done


def triggered(fault: Fault) -> list[Action]:
    """The actions of a fault played when a state is entered: at 0, then as planned after it."""
    actions = _expand(fault)
    start = min((a.at for a in actions), default=0.0)
    return [replace(action, at=action.at - start) for action in actions]
