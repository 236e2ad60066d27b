"""The probe function's input: a scheduled round, or an on-demand round asked for by the state machine.

Accepted shapes:
- `{}` (EventBridge Scheduler with no input) or an EventBridge "Scheduled Event" envelope: a
  scheduled round of every service and site, with a round id made here;
- `{"source": "schedule", "rounds": 2, "round_spacing_seconds": 30}` (what the CDK schedule sends):
  the minute's `rounds` scheduled rounds, `round_spacing_seconds` apart (with the region's round
  queue the invocation runs the first and queues the next; without one it runs them all, waiting);
- an SQS event (`{"Records": [...]}`, from the round queue's event source mapping): each record's
  body a `QueuedRound`, parsed by `parse_queued_round`;
- `{"round_id": "...", "service": "...", "sites": ["main", "dr"], "incident_id": "..."}`: an
  on-demand round with the caller's round id (unknown fields are refused);
- `{"action": "verify", "service": "...", "expect_site": "dr", ...}`: a verify round (see
  `quorum_dr.probes.verify`), parsed by `parse_verify_event`.
Anything else is refused with a message that says what was expected, before any side effect.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quorum_dr.config import describe_errors

# A round id ends up in the results table's sort key, where "#" separates the parts.
ROUND_ID_PATTERN = r"^[A-Za-z0-9._:@+=-]{1,128}$"
SCHEDULE_SOURCES = ("aws.events", "aws.scheduler")
_ON_DEMAND_FIELDS = {"round_id", "service", "sites", "incident_id"}


class InvalidProbeEvent(ValueError):
    pass


class OnDemandRound(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    round_id: str = Field(pattern=ROUND_ID_PATTERN, description="chosen by the caller, e.g. the incident's")
    service: str | None = Field(default=None, min_length=1, description="all services when absent")
    sites: list[Literal["main", "dr", "cold"]] | None = Field(
        default=None, min_length=1, description="all configured sites when absent"
    )
    incident_id: str | None = Field(default=None, min_length=1, max_length=256)


class ScheduleInput(BaseModel):
    """The input the CDK app's EventBridge Scheduler schedule sends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["schedule"]
    rounds: int = Field(default=1, ge=1, le=60)
    round_spacing_seconds: float = Field(default=0, ge=0, le=900)


class QueuedRound(BaseModel):
    """One of the minute's later scheduled rounds, waiting on the region's round queue (SQS, with
    `DelaySeconds` until `due_at`). Its round id is `{series}-{index}`: the minute's first round is
    `series` itself, as `ProbeService.run_scheduled` names them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    series: str = Field(pattern=ROUND_ID_PATTERN, max_length=120, description="the minute's first round id")
    index: int = Field(ge=2, le=60, description="this round's place in the minute, the first being 1")
    due_at: float = Field(gt=0, allow_inf_nan=False, description="when the round is due, epoch seconds")
    remaining: int = Field(ge=0, le=58, description="the minute's rounds after this one")
    spacing_seconds: float = Field(gt=0, le=900, allow_inf_nan=False, description="between two rounds")

    @property
    def round_id(self) -> str:
        return f"{self.series}-{self.index}"

    def late_by(self, now: float) -> float:
        return now - self.due_at

    def is_late(self, now: float) -> bool:
        """More than half the spacing past due: its slot is gone (never a catch-up round)."""
        return self.late_by(now) > self.spacing_seconds / 2

    def following(self) -> QueuedRound | None:
        """The next round of the minute, due one spacing after this one's due time (not after now:
        the rounds keep their slots however late an invocation starts), or None after the last."""
        if self.remaining == 0:
            return None
        return self.model_copy(
            update={
                "index": self.index + 1,
                "due_at": self.due_at + self.spacing_seconds,
                "remaining": self.remaining - 1,
            }
        )

    @classmethod
    def second_of(cls, request: RoundRequest, started_at: float) -> QueuedRound | None:
        """The round after a scheduled invocation's first one, or None when the minute has one."""
        if request.rounds < 2:
            return None
        return cls(
            series=request.round_id,
            index=2,
            due_at=started_at + request.round_spacing_seconds,
            remaining=request.rounds - 2,
            spacing_seconds=request.round_spacing_seconds,
        )


class _SqsRecord(BaseModel):
    """What the handler reads of one record of an SQS event (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    messageId: str = Field(min_length=1)
    body: str
    eventSource: Literal["aws:sqs"]


class _SqsEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    Records: list[_SqsRecord] = Field(min_length=1)


@dataclass(frozen=True)
class QueuedMessage:
    """One record of an SQS event: its message id and its round, or why its body is refused."""

    message_id: str
    queued: QueuedRound | None
    problem: str = ""


def is_queue_event(event: Any) -> bool:
    return isinstance(event, dict) and "Records" in event


def parse_queue_event(event: Any) -> list[QueuedMessage]:
    """The rounds of an SQS event. A malformed envelope raises InvalidProbeEvent; a malformed body
    is returned with its problem (the handler logs it and runs nothing for that message)."""
    try:
        envelope = _SqsEvent.model_validate(event)
    except ValidationError as exc:
        raise InvalidProbeEvent(_problems("SQS probe event", exc)) from None
    return [_queued_message(record) for record in envelope.Records]


def parse_queued_round(body: str) -> QueuedRound:
    try:
        return QueuedRound.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidProbeEvent(_problems("queued round", exc)) from None


def _queued_message(record: _SqsRecord) -> QueuedMessage:
    try:
        return QueuedMessage(record.messageId, parse_queued_round(record.body))
    except InvalidProbeEvent as exc:
        return QueuedMessage(record.messageId, None, str(exc))


class VerifyRequest(BaseModel):
    """`{"action": "verify", "service", "expect_site", "incident_id"?, "origin_only"?, "round_id"?}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["verify"]
    service: str = Field(min_length=1)
    expect_site: Literal["main", "dr", "cold"]
    incident_id: str | None = Field(default=None, min_length=1, max_length=256)
    origin_only: bool = False
    round_id: str | None = Field(default=None, pattern=ROUND_ID_PATTERN)


class ScheduledEvent(EventBridgeModel):
    """The envelope EventBridge (rules or Scheduler) wraps around a scheduled invocation."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


@dataclass(frozen=True)
class RoundRequest:
    kind: Literal["scheduled", "on-demand"]
    round_id: str
    services: list[str] | None = None
    sites: list[str] | None = None
    incident_id: str | None = None
    rounds: int = 1  # scheduled rounds in this invocation
    round_spacing_seconds: float = 0.0


def is_verify_event(event: Any) -> bool:
    return isinstance(event, dict) and event.get("action") == "verify"


def parse_verify_event(event: Any) -> VerifyRequest:
    try:
        return VerifyRequest.model_validate(event)
    except ValidationError as exc:
        raise InvalidProbeEvent(_problems("verify probe event", exc)) from None


def parse_probe_event(event: Any, *, now: float) -> RoundRequest:
    if not isinstance(event, dict):
        raise InvalidProbeEvent(f"the probe event must be a JSON object, got {type(event).__name__}")
    if not event:
        return RoundRequest("scheduled", _scheduled_round_id(now, None))
    if _ON_DEMAND_FIELDS & event.keys():
        try:
            on_demand = OnDemandRound.model_validate(event)
        except ValidationError as exc:
            raise InvalidProbeEvent(_problems("on-demand probe event", exc)) from None
        return RoundRequest(
            "on-demand",
            on_demand.round_id,
            [on_demand.service] if on_demand.service else None,
            list(on_demand.sites) if on_demand.sites else None,
            on_demand.incident_id,
        )
    if event.get("source") == "schedule":
        try:
            schedule = ScheduleInput.model_validate(event)
        except ValidationError as exc:
            raise InvalidProbeEvent(_problems("schedule probe event", exc)) from None
        return RoundRequest(
            "scheduled",
            _scheduled_round_id(now, None),
            rounds=schedule.rounds,
            round_spacing_seconds=schedule.round_spacing_seconds,
        )
    if "detail-type" in event or "source" in event:
        try:
            envelope = ScheduledEvent.model_validate(event)
        except ValidationError as exc:
            raise InvalidProbeEvent(_problems("scheduled probe event", exc)) from None
        if envelope.source not in SCHEDULE_SOURCES or envelope.detail_type != "Scheduled Event":
            raise InvalidProbeEvent(
                f"not a scheduled event: source {envelope.source!r}, detail-type {envelope.detail_type!r}; "
                f"expected source one of {list(SCHEDULE_SOURCES)} and detail-type 'Scheduled Event'"
            )
        return RoundRequest("scheduled", _scheduled_round_id(now, envelope.id))
    raise InvalidProbeEvent(
        f"unrecognised probe event with fields {sorted(event)}: expected {{}}, a Scheduled Event or "
        "{source: schedule, rounds, round_spacing_seconds} (scheduled rounds), or "
        "{round_id, service?, sites?, incident_id?} (on-demand round)"
    )


def _scheduled_round_id(now: float, event_id: str | None) -> str:
    suffix = event_id if event_id and len(event_id) <= 64 else uuid.uuid4().hex[:12]
    return f"sched-{int(now)}-{suffix}"


def _problems(what: str, exc: ValidationError) -> str:
    return f"invalid {what}: " + "; ".join(describe_errors(exc))
