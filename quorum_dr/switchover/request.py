"""What starts a planned switchover: an operator's request (`drctl switchover` or
`aws stepfunctions start-execution --input`), and the context every step receives as
`$.switchover`. One model, `SwitchoverRequest`, validates the request in `drctl` and again in the
state machine's first step; unknown fields are errors and bad input changes nothing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from quorum_dr.config import NAME, WatchdogConfig, describe_errors
from quorum_dr.config_types import MAX_REASON_CHARS
from quorum_dr.failover.errors import InvalidInput
from quorum_dr.failover.longest_path import longest_switchover
from quorum_dr.failover.request import INCIDENT_ID, IncidentId, LockTimes, iso_epoch, operator_text

SwitchoverSite = Literal["main", "dr"]


class SwitchoverRequest(BaseModel):
    """A planned switchover of one service to `to` (main or dr)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    service: Annotated[str, Field(pattern=NAME.pattern)]
    to: SwitchoverSite
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON_CHARS)]
    requested_by: Annotated[str, Field(min_length=1, max_length=1000, description="caller ARN (local user)")]
    dry_run: StrictBool = False
    incident_id: IncidentId | None = None

    _not_blank = field_validator("reason", "requested_by")(operator_text)


class Switchover(BaseModel):
    """The switchover context every step receives as `$.switchover`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    incident_id: IncidentId
    execution_name: IncidentId = Field(
        description="the execution's own name ($$.Execution.Name): the holder of the incident lock"
    )
    service: str
    source: SwitchoverSite = Field(description="the active site the switchover leaves")
    target: SwitchoverSite
    reason: str
    requested_by: str
    dry_run: bool = False
    started_at: float
    replay_wait_seconds: float = Field(
        description="how long the target may take to receive and replay the source's final position"
    )
    lock: LockTimes


def parse_request(data: Any) -> SwitchoverRequest:
    try:
        return SwitchoverRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("switchover request rejected: " + "; ".join(describe_errors(exc))) from None


def start_switchover(
    data: Any, *, execution_name: str, started_at: str | None, config: WatchdogConfig, now: float
) -> Switchover:
    """The execution input as the switchover context, or InvalidInput with every problem."""
    if not isinstance(data, dict):
        raise InvalidInput("switchover request rejected: expected a JSON object")
    if not INCIDENT_ID.match(execution_name or ""):
        raise InvalidInput(
            f"switchover request rejected: execution name {execution_name!r} is not a valid id"
        )
    request = parse_request(data)
    try:
        service = config.service(request.service)
    except KeyError as exc:
        raise InvalidInput(f"switchover request rejected: {exc.args[0]}") from None
    if service.database is None:
        raise InvalidInput(
            f"switchover request rejected: service {service.name} has no database configured: a planned "
            "switchover moves a primary"
        )
    # The lock must outlast this execution: the failover's TTL, or the switchover's own longest
    # path where that is longer (quorum_dr/failover/longest_path.py).
    ttl = max(config.lock_ttl_seconds(service), longest_switchover(config, service).seconds)
    return Switchover(
        incident_id=request.incident_id or execution_name,
        execution_name=execution_name,
        service=service.name,
        source="main" if request.to == "dr" else "dr",
        target=request.to,
        reason=request.reason,
        requested_by=request.requested_by,
        dry_run=request.dry_run,
        started_at=iso_epoch(started_at) or now,
        replay_wait_seconds=float(service.database.replay_wait_seconds),
        lock=LockTimes(now=str(int(now)), expires_at=str(int(now) + ttl)),
    )
