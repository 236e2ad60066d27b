"""The steps of the restore rehearsal (`statemachines/rehearsal.asl.yaml`), over their ports.

begin      take in the request (`RehearsalRequest`, the same model as `drctl rehearse cold-site`):
           the service must have a cold site with `wal_archive` (the figures are recorded with its
           base backups); make the rehearsal id `rehearsal-<service>-<UTC stamp>`
launch     launch the cold site exactly as a failover would: the same `ColdSiteLaunch` (user data =
           the bundled `cold_site/<service>.sh` with the task token filled in, the same launch
           template / AMI resolution), ClientToken = the rehearsal id. Its bootstrap restores, starts
           the application and answers the task token with its ready report. Nothing here counts as
           a failover, locks, fences, promotes or touches the edge.
judge      compare the report with the figures recorded with the backup it restored
           (`quorum_dr.domain.rehearsal.judge`), record the result (state table, pk
           REHEARSAL#<service>: LATEST and RUN#<id>) and publish `RehearsalFinished`
terminate  terminate every instance tagged with the rehearsal id (and only a rehearsal's: the id
           must look like one); runs after judge, and after any failure (the ASL's Catch)
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quorum_dr.config import Service, WatchdogConfig
from quorum_dr.domain.backup_figures import BackupFigures
from quorum_dr.domain.cold_report import ColdReportInvalid, parse_cold_report
from quorum_dr.domain.rehearsal import (
    ID_PATTERN,
    REHEARSAL_FINISHED,
    RehearsalRefused,
    RehearsalResult,
    judge,
    refusal,
    rehearsal_id,
)
from quorum_dr.domain.state import ServiceState
from quorum_dr.failover.errors import InvalidInput
from quorum_dr.ports import ColdSiteLauncher, EventPublisher

TIMEOUT_ERROR = "States.Timeout"


class RehearsalRequest(BaseModel):
    """What starts a rehearsal (the schedule's input, or `drctl rehearse cold-site`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(min_length=1, max_length=63)
    requested_by: str = Field(default="schedule", min_length=1, max_length=128)


class RehearsalContext(BaseModel):
    """The rehearsal's context, `$.rehearsal` in the state machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rehearsal_id: str = Field(pattern=ID_PATTERN.pattern)
    service: str
    started_at: float
    timeout_seconds: int
    requested_by: str


class RehearsalStore(ABC):
    """Where rehearsal results are kept (the state table, pk REHEARSAL#<service>)."""

    @abstractmethod
    def put_result(self, result: RehearsalResult) -> None: ...

    @abstractmethod
    def mark_terminated(self, service: str, rehearsal_id: str, sentence: str) -> None: ...

    @abstractmethod
    def latest(self, service: str) -> RehearsalResult | None: ...

    @abstractmethod
    def history(self, service: str, limit: int = 10) -> list[RehearsalResult]: ...


class InstanceTerminator(ABC):
    @abstractmethod
    def terminate_tagged(self, incident_id: str, region: str) -> list[str]:
        """Terminate every live instance tagged with `incident_id` as a cold site; the ids."""


@dataclass
class RehearsalPorts:
    config: WatchdogConfig
    launcher: Callable[[Service], ColdSiteLauncher]
    figures: Callable[[Service, str], BackupFigures | None]  # the figures recorded with a backup id
    terminator: Callable[[], InstanceTerminator]
    store: RehearsalStore
    events: EventPublisher
    clock: Callable[[], float] = time.time
    # the service's state (the state table's STATE item); a rehearsal is refused while it says an
    # incident is under way (domain.rehearsal.refusal)
    service_state: Callable[[str], ServiceState] | None = None


def _service(ports: RehearsalPorts, name: str) -> Service:
    try:
        service = ports.config.service(name)
    except KeyError:
        known = ", ".join(s.name for s in ports.config.services)
        raise InvalidInput(f"service: no service {name!r} in the config (known: {known})") from None
    cold = service.cold_site
    if cold is None:
        raise InvalidInput(f"service: {name} has no cold site to rehearse")
    if cold.wal_archive is None:
        raise InvalidInput(
            f"service: {name}'s cold site restores a pg_dump; the rehearsal compares the restore with the "
            "figures recorded with base backups: configure cold_site.wal_archive"
        )
    return service


def begin(ports: RehearsalPorts, payload: Any) -> dict[str, Any]:
    try:
        request = RehearsalRequest.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"the rehearsal request is malformed: {problems}") from None
    service = _service(ports, request.service)
    assert service.cold_site is not None
    now = ports.clock()
    if ports.service_state is not None:
        why = refusal(ports.service_state(service.name), now)
        if why:
            raise RehearsalRefused(why)
    made = RehearsalContext(
        rehearsal_id=rehearsal_id(service.name, now),
        service=service.name,
        started_at=now,
        timeout_seconds=service.cold_site.rehearsal.timeout_seconds,
        requested_by=request.requested_by,
    )
    return made.model_dump()


def without_public_address(service: Service) -> Service:
    """The service as the rehearsal launches it: everything as a failover's launch but the cold
    site's Elastic IP, which stays where it is. Moving it would put the rehearsal where the probes
    and the edge's cold origin look, and, during an incident, take it from a live cold site."""
    cold = service.cold_site
    if cold is None or cold.elastic_ip_allocation_id is None:
        return service
    return service.model_copy(
        update={"cold_site": cold.model_copy(update={"elastic_ip_allocation_id": None})}
    )


def launch(ports: RehearsalPorts, event: Mapping[str, Any]) -> dict[str, Any]:
    rehearsal = RehearsalContext.model_validate(event["rehearsal"])
    service = without_public_address(_service(ports, rehearsal.service))
    receipt = ports.launcher(service).launch(
        incident_id=rehearsal.rehearsal_id, task_token=event.get("task_token"), dry_run=False
    )
    return dict(receipt) if isinstance(receipt, Mapping) else {"receipt": str(receipt)}


def _state(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The execution's state (`state.$: $`: a path that may be absent is read here, not in ASL)."""
    state = event.get("state")
    return state if isinstance(state, Mapping) else event


def judge_step(ports: RehearsalPorts, event: Mapping[str, Any]) -> dict[str, Any]:
    """Judge what came back (`report`, or the launch's `failure` as the Catch put it), record the
    result and publish it. The result is returned even when the bus refuses the event (said in
    `published`), so the terminate step always has what it needs."""
    event = _state(event)
    rehearsal = RehearsalContext.model_validate(event["rehearsal"])
    service = _service(ports, rehearsal.service)
    assert service.cold_site is not None
    report = event.get("report")
    failure = event.get("failure")
    failure_text, timed_out = None, None
    if isinstance(failure, Mapping):
        if failure.get("Error") == TIMEOUT_ERROR:
            timed_out = float(rehearsal.timeout_seconds)
        else:
            failure_text = _failure_text(failure)
    figures = None
    if isinstance(report, Mapping):
        try:
            backup_id = parse_cold_report(report).restore.backup_id
        except ColdReportInvalid:
            backup_id = None
        if backup_id:
            figures = ports.figures(service, backup_id)
    result = judge(
        rehearsal_id=rehearsal.rehearsal_id,
        service=service.name,
        started_at=rehearsal.started_at,
        finished_at=ports.clock(),
        report=report if isinstance(report, Mapping) else None,
        figures=figures,
        failure=failure_text,
        timed_out_after=timed_out,
        row_tolerance=service.cold_site.rehearsal.row_tolerance,
    )
    ports.store.put_result(result)
    published, why = True, f"{REHEARSAL_FINISHED} published"
    try:
        ports.events.publish(REHEARSAL_FINISHED, result.model_dump(mode="json"))
    except Exception as exc:  # noqa: BLE001 - recorded already; the event's loss is said, not fatal
        published, why = False, f"{REHEARSAL_FINISHED} could not be published: {type(exc).__name__}: {exc}"
    return {**result.model_dump(mode="json"), "passed": result.passed, "published": published, "said": why}


def _failure_text(failure: Mapping[str, Any]) -> str:
    """The Catch's {Error, Cause}: a bootstrap failure's cause is its sentence; a Lambda error's
    cause is JSON with errorMessage."""
    error, cause = str(failure.get("Error", "")), failure.get("Cause")
    if isinstance(cause, str):
        try:
            import json

            parsed = json.loads(cause)
            if isinstance(parsed, dict) and parsed.get("errorMessage"):
                return f"{parsed.get('errorType', error)}: {parsed['errorMessage']}"
        except ValueError:
            pass
        return cause if error in ("", "ColdSiteBootstrapFailed") else f"{error}: {cause}"
    return error or "the launch failed without a cause"


def terminate(ports: RehearsalPorts, event: Mapping[str, Any]) -> dict[str, Any]:
    event = _state(event)
    rehearsal = RehearsalContext.model_validate(event["rehearsal"])
    service = _service(ports, rehearsal.service)
    assert service.cold_site is not None
    if not ID_PATTERN.match(rehearsal.rehearsal_id):  # the model checks it too: never a failover's site
        raise InvalidInput(f"{rehearsal.rehearsal_id!r} is not a rehearsal id: refusing to terminate")
    gone = ports.terminator().terminate_tagged(rehearsal.rehearsal_id, service.cold_site.region)
    sentence = (
        f"terminated {', '.join(gone)} (the rehearsal's cold site)"
        if gone
        else f"no live instance tagged {rehearsal.rehearsal_id} to terminate"
    )
    result = event.get("result")
    if isinstance(result, Mapping) and result.get("rehearsal_id") == rehearsal.rehearsal_id:
        ports.store.mark_terminated(service.name, rehearsal.rehearsal_id, sentence)
    return {"terminated": gone, "reason": sentence}


ACTIONS: dict[str, Callable[[RehearsalPorts, Mapping[str, Any]], dict[str, Any]]] = {
    "begin": lambda ports, event: begin(ports, event.get("input")),
    "launch": launch,
    "judge": judge_step,
    "terminate": terminate,
}


def run(ports: RehearsalPorts, event: Mapping[str, Any]) -> dict[str, Any]:
    action = event.get("action") if isinstance(event, Mapping) else None
    if action not in ACTIONS:
        raise InvalidInput(f"action: one of {', '.join(ACTIONS)}, not {action!r}")
    return ACTIONS[str(action)](ports, event)
