"""The scheduled readiness evaluation: every service, every 5 minutes, in the home region.

For each configured service: gather and judge readiness (`ReadinessGatherer.assess`, the same as
`drctl readiness`); emit one CloudWatch metric per check and one for the whole (EMF, namespace
QuorumDR, metric `ReadinessStatus`, dimensions `service` and `check`, the whole as check
`overall`; value 0 OK, 1 WARN, 2 FAIL); compare each check's status with the previous evaluation
(the readiness item of the state table) and, when one changed, put one `ReadinessChanged` event on
the home bus whose detail lists each changed check with its status before and after and its reason
(`quorum_dr.domain.readiness.ReadinessChanged`). Nothing changed: no event. The first evaluation
publishes only when a check is not OK.

The new evaluation is stored only after its event went out: when the bus refuses, the next
evaluation finds the same change and publishes it again. A service whose evaluation fails does not
stop the others; its error is in its outcome (the handler then fails the invocation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quorum_dr.adapters.eventbridge import PublishFailed
from quorum_dr.adapters.readiness import one_line
from quorum_dr.config import Service, WatchdogConfig
from quorum_dr.domain.readiness import (
    READINESS_CHANGED,
    Readiness,
    ReadinessChanged,
    ReadinessRecord,
    Status,
    readiness_changes,
    status_value,
)
from quorum_dr.ports import EventPublisher, ReadinessStore

METRIC = "ReadinessStatus"
OVERALL = "overall"

# (metric name, value, dimensions): the EMF emitter in production (quorum_dr.observability).
MetricSink = Callable[[str, float, Mapping[str, str]], None]
Assessor = Callable[[Service], Readiness]


class ReadinessOutcome(BaseModel):
    """One service's evaluation: its verdict, the event published (if any), and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    overall: Status | None = Field(default=None, description="None when the evaluation failed")
    changed: ReadinessChanged | None = None
    published: bool = False
    error: str | None = None
    reason: str


class ScheduledReadiness:
    """Evaluates every service of the config through its ports (see the module text)."""

    def __init__(
        self,
        config: WatchdogConfig,
        *,
        assess: Assessor,
        store: ReadinessStore,
        events: EventPublisher,
        metric: MetricSink,
    ) -> None:
        self.config = config
        self.assess = assess
        self.store = store
        self.events = events
        self.metric = metric

    def run(self) -> list[ReadinessOutcome]:
        return [self.evaluate(service) for service in self.config.services]

    def evaluate(self, service: Service) -> ReadinessOutcome:
        readiness = self.assess(service)
        self._emit(readiness)
        try:
            previous = self.store.get_readiness(service.name)
        except (BotoCoreError, ClientError, ValidationError) as exc:
            return self._failed(readiness, f"cannot read the previous readiness of {service.name}", exc)
        change = readiness_changes(previous, readiness)
        if change is not None:
            try:
                self.events.publish(READINESS_CHANGED, change.model_dump(mode="json"))
            except (BotoCoreError, ClientError, PublishFailed) as exc:
                return self._failed(readiness, f"cannot publish {READINESS_CHANGED}", exc, change=change)
        try:
            self.store.put_readiness(ReadinessRecord.of(readiness))
        except (BotoCoreError, ClientError) as exc:
            return self._failed(
                readiness, f"cannot store the readiness of {service.name}", exc, change=change, published=True
            )
        if change is None:
            said = f"readiness of {service.name} is {readiness.overall.value}, unchanged: no event"
        else:
            said = f"{READINESS_CHANGED} published: {change.reason}"
        return ReadinessOutcome(
            service=service.name,
            overall=readiness.overall,
            changed=change,
            published=change is not None,
            reason=said,
        )

    def _emit(self, readiness: Readiness) -> None:
        service = readiness.service
        for check in readiness.checks:
            self.metric(METRIC, status_value(check.status), {"service": service, "check": check.name})
        self.metric(METRIC, status_value(readiness.overall), {"service": service, "check": OVERALL})

    @staticmethod
    def _failed(
        readiness: Readiness,
        what: str,
        error: BaseException,
        *,
        change: ReadinessChanged | None = None,
        published: bool = False,
    ) -> ReadinessOutcome:
        line = f"{what}: {one_line(error)}"
        return ReadinessOutcome(
            service=readiness.service,
            overall=readiness.overall,
            changed=change,
            published=published,
            error=line,
            reason=line,
        )
