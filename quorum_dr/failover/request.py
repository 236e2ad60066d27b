"""What starts a failover: an operator's request or the watchdog's event, and the incident
context both become. One model, `FailoverRequest`, validates a manual start in `drctl` and again
in the state machine's first step; unknown fields are errors."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from quorum_dr.config import NAME, WatchdogConfig, describe_errors
from quorum_dr.config_types import MAX_REASON_CHARS, clean_text
from quorum_dr.domain.decisions import choose_mode_action
from quorum_dr.failover.errors import InvalidInput

# Step Functions execution names: 1-80 characters of letters, digits, '-' and '_'.
INCIDENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
IncidentId = Annotated[str, Field(pattern=INCIDENT_ID.pattern)]
FOREVER = 100 * 365 * 86400


def operator_text(value: str) -> str:
    """A person's words (a reason, who asked), stored and echoed without control characters (ANSI
    escapes, right-to-left overrides); checked after the raw length bound, so a long input is refused
    before it is cleaned."""
    value = clean_text(value)
    if not value:
        raise ValueError("must not be blank")
    return value


def iso_epoch(text: str | None) -> float | None:
    """Epoch seconds of an ISO 8601 time (the execution's start), or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class FailoverRequest(BaseModel):
    """A manual start: `drctl failover` or `aws stepfunctions start-execution --input`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    service: Annotated[str, Field(pattern=NAME.pattern)]
    to: Literal["dr", "cold"]
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON_CHARS)]
    dry_run: StrictBool = False
    allow_data_loss: StrictBool = False
    skip_confirm: StrictBool = False
    requested_by: Annotated[str, Field(min_length=1, max_length=1000, description="caller ARN (local user)")]
    incident_id: IncidentId | None = None

    _not_blank = field_validator("reason", "requested_by")(operator_text)


class TriggerDetail(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    service: Annotated[str, Field(pattern=NAME.pattern)]
    site: str = Field(min_length=1)
    region: str = Field(min_length=1)
    round_id: str = Field(min_length=1)
    results: list[dict[str, Any]] = Field(default_factory=list)


class AutomaticTrigger(BaseModel):
    """The `ProbeFailed` / `VerdictChanged` event the EventBridge rule delivers."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    source: Literal["quorum-dr"]
    detail_type: Literal["ProbeFailed", "VerdictChanged"] = Field(alias="detail-type")
    time: str | None = None
    detail: TriggerDetail


class LockTimes(BaseModel):
    """Epoch seconds as decimal text: the ASL's DynamoDB write takes numbers as strings."""

    model_config = ConfigDict(frozen=True)

    now: str
    expires_at: str


class Incident(BaseModel):
    """The incident context every step receives as `$.incident`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    incident_id: IncidentId
    execution_name: IncidentId = Field(
        description="the execution's own name ($$.Execution.Name): the holder of the incident lock"
    )
    service: str
    trigger: Literal["auto", "manual"]
    target: Literal["dr", "cold"] | None = None
    trigger_site: str | None = Field(
        default=None, description="the site an automatic trigger's probes saw fail (None for a manual start)"
    )
    reason: str
    requested_by: str
    dry_run: bool = False
    shadow: bool = Field(
        default=False,
        description="mode shadow: an automatic execution that runs as a dry run and tells what auto would do",
    )
    allow_data_loss: bool = False
    skip_confirm: bool = False
    detected_at: float
    started_at: float
    mode_action: Literal["proceed", "wait_veto", "wait_approval", "alert_only"]
    mode_reason: str = ""
    veto_seconds: int
    approval_timeout_seconds: int
    max_rounds: int
    wait_seconds: int
    cold_configured: bool
    cold_ready_timeout_seconds: int
    lock: LockTimes


def parse_manual(data: Any) -> FailoverRequest:
    try:
        return FailoverRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("manual start rejected: " + "; ".join(describe_errors(exc))) from None


def start_incident(
    data: Any, *, execution_name: str, started_at: str | None, config: WatchdogConfig, now: float
) -> Incident:
    """Turn the execution input into the incident context, or raise InvalidInput with every problem."""
    if not isinstance(data, dict):
        raise InvalidInput("input rejected: expected a JSON object")
    if not INCIDENT_ID.match(execution_name or ""):
        raise InvalidInput(f"input rejected: execution name {execution_name!r} is not a valid incident id")
    if "detail-type" in data or "source" in data:
        try:
            event = AutomaticTrigger.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput("event rejected: " + "; ".join(describe_errors(exc))) from None
        service_name = event.detail.service
        received = [r.get("received_at") for r in event.detail.results]
        times = [float(t) for t in received if isinstance(t, int | float) and math.isfinite(t)]
        detected_at = min(times) if times else (iso_epoch(event.time) or now)
        fields: dict[str, Any] = dict(
            incident_id=execution_name,
            trigger="auto",
            target=None,
            trigger_site=event.detail.site,
            reason=f"{event.detail_type} from {event.detail.region} on {event.detail.site} "
            f"(round {event.detail.round_id})",
            requested_by="quorum-dr",
            detected_at=detected_at,
        )
    else:
        request = parse_manual(data)
        service_name = request.service
        fields = dict(
            incident_id=request.incident_id or execution_name,
            trigger="manual",
            target=request.to,
            reason=request.reason,
            requested_by=request.requested_by,
            dry_run=request.dry_run,
            allow_data_loss=request.allow_data_loss,
            skip_confirm=request.skip_confirm,
            detected_at=iso_epoch(started_at) or now,
        )
    try:
        service = config.service(service_name)
    except KeyError as exc:
        raise InvalidInput(f"input rejected: {exc.args[0]}") from None
    if fields["target"] == "cold" and service.cold_site is None:
        raise InvalidInput(f"input rejected: service {service.name} has no cold site configured")
    policy = service.failover
    mode = choose_mode_action(policy.mode, fields["trigger"])
    if mode.action == "shadow":
        # A shadow execution is a dry run of what auto would do, to its end, with its own lock
        # (one shadow decision per outage, never in the way of a real start) and a real notice.
        fields.update(dry_run=True, shadow=True)
    ready = service.cold_site.ready_timeout_seconds if service.cold_site else 900
    return Incident(
        service=service.name,
        started_at=iso_epoch(started_at) or now,
        mode_action="proceed" if mode.action == "shadow" else mode.action,
        mode_reason=mode.reason,
        veto_seconds=policy.veto_seconds,
        approval_timeout_seconds=policy.approval_timeout_seconds,
        max_rounds=config.confirmation.max_rounds,
        wait_seconds=config.confirmation.wait_seconds,
        cold_configured=service.cold_site is not None,
        cold_ready_timeout_seconds=ready,
        lock=LockTimes(now=str(int(now)), expires_at=str(int(now) + config.lock_ttl_seconds(service))),
        execution_name=execution_name,
        **fields,
    )
