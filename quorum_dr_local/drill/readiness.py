"""Readiness inside the drill: the scheduled function's evaluation every few seconds, recorded.

`ReadinessWatch` runs `ScheduledReadiness.evaluate` (`quorum_dr.readiness_service`, what
lambdas/readiness/handler.py runs every 5 minutes in a deployment) for the drill's service with
the real adapters against the drill's own parts: `ReadinessGatherer` reads moto (in this process:
the state and results tables, Secrets Manager, EC2, the backup bucket), the Cloudflare emulator and
the file-sync marker DR serves; the readiness item goes to the state table and a
`ReadinessChanged` onto the home bus, as in a deployment. Each evaluation is a `readiness` event
(every check's status and reason, how long the evaluation took); the event on the bus is recorded
when the bus delivers it (`readiness_changed`, by `observe.EventForwarder`: what the
AlertOnReadinessChanged rule sends to the alert topic).

`FailAlarm` stands in for the CloudWatch alarm the stack puts on each service's overall metric
(stacks/readiness_function.py: `ReadinessStatus`, check `overall`, >= 2 over one period, missing
data not breaching, alarm and OK actions on the alert topic). moto stores metrics but evaluates no
alarm, so the drill applies the alarm's rule to the values the evaluation emits and records each
change of the alarm's state as `readiness_alarm` (the notification its action would send).

Bounded and cheap: one evaluation at a time (the watcher's one thread), a short look back at the
probe results (`results_lookback_seconds`), the edge's retry budget as in production.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from quorum_dr.config import WatchdogConfig
from quorum_dr.domain.readiness import Readiness, Status, status_value
from quorum_dr.functions import PREFIX
from quorum_dr.readiness_service import METRIC, OVERALL, ScheduledReadiness
from quorum_dr_local.drill.observe import Watcher
from quorum_dr_local.drill.timeline import EventLog

INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


def alarm_name(service: str) -> str:
    """The name the stack gives the service's readiness FAIL alarm."""
    return f"{PREFIX}-readiness-fail-{service}"


class FailAlarm:
    """The readiness FAIL alarm's rule on the emitted metric values (see the module text)."""

    threshold = status_value(Status.FAIL)

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.states: dict[str, str] = {}
        self.last: Readiness | None = None  # the evaluation whose metrics are being emitted

    def metric(self, name: str, value: float, dimensions: Mapping[str, str]) -> None:
        if name != METRIC or dimensions.get("check") != OVERALL:
            return
        service = dimensions.get("service", "?")
        state = "ALARM" if value >= self.threshold else "OK"
        before = self.states.get(service, INSUFFICIENT_DATA)
        if state == before:
            return
        self.states[service] = state
        failing = [c.name for c in self.last.checks if c.status is Status.FAIL] if self.last else []
        why = f"{METRIC} (overall) is {value:g}, " + (
            f">= {self.threshold}: FAIL {', '.join(failing) or '?'}"
            if state == "ALARM"
            else f"below {self.threshold}: no check is FAIL"
        )
        self.log.record(
            "readiness_alarm",
            alarm=alarm_name(service),
            state=state,
            previous=before,
            failing=failing,
            reason=f"{alarm_name(service)}: {before} -> {state}: {why}",
        )


class ReadinessWatch(Watcher):
    """One readiness evaluation of the drill's service every `interval` seconds (the first at once)."""

    name = "readiness"

    def __init__(
        self,
        config: WatchdogConfig,
        service: str,
        log: EventLog,
        *,
        interval: float,
        state_table: str,
        results_table: str,
        event_bus: str,
        state_machine_arns: Mapping[str, str],
        results_lookback_seconds: float,
    ) -> None:
        from quorum_dr.adapters.dynamodb_state import DynamoStateStore
        from quorum_dr.adapters.eventbridge import EventBridgePublisher
        from quorum_dr.adapters.readiness import ReadinessGatherer

        super().__init__(interval=interval)
        self.service = config.service(service)
        self.log = log
        self.alarm = FailAlarm(log)
        self.gatherer = ReadinessGatherer(
            config,
            state_table=state_table,
            results_table=results_table,
            state_machine_arns=dict(state_machine_arns),
            results_lookback_seconds=results_lookback_seconds,
        )
        self.scheduled = ScheduledReadiness(
            config,
            assess=self._assess,
            store=DynamoStateStore(state_table),
            events=EventBridgePublisher.from_name(event_bus, region=config.home_region),
            metric=self.alarm.metric,
        )
        self.evaluations = 0

    def warm_up(self) -> None:
        """One gather before the run, neither recorded nor published: the first evaluation's
        one-time costs (clients, the edge's SDK, moto's first answers) are paid before the clock
        starts, not during the scenario."""
        try:
            self.gatherer.gather(self.service)
        except Exception as exc:  # noqa: BLE001 - said by the first real evaluation, if it lasts
            self.errors.append(f"warm-up: {type(exc).__name__}: {exc}")

    def _assess(self, service: Any) -> Readiness:
        readiness = self.gatherer.assess(service)
        self.alarm.last = readiness
        return readiness

    def poll(self) -> None:
        self.gatherer.unreachable.clear()
        self.alarm.last = None
        at, began, cpu = self.log.now(), time.monotonic(), time.thread_time()
        outcome = self.scheduled.evaluate(self.service)
        took, used = time.monotonic() - began, time.thread_time() - cpu
        readiness: Readiness | None = self.alarm.last
        checks = readiness.checks if readiness is not None else []
        self.evaluations += 1
        self.log.record(
            "readiness",
            at=at,  # when the evaluation began: its facts are of that moment, give or take its duration
            overall=outcome.overall.value if outcome.overall else None,
            checked_at=readiness.checked_at if readiness is not None else None,
            checks=[{"name": c.name, "status": c.status.value, "reason": c.reason} for c in checks],
            published=outcome.published,
            error=outcome.error,
            unreachable=list(dict.fromkeys(self.gatherer.unreachable)),
            duration_ms=round(took * 1000, 1),
            cpu_ms=round(used * 1000, 1),  # this thread's CPU: what the evaluation took from the drill
        )
