"""The state of one protected service: which site serves, and what automation may do next."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SiteName = Literal["main", "dr", "cold"]


class ServiceStatus(StrEnum):
    HEALTHY = "HEALTHY"
    CONFIRMING = "CONFIRMING"
    FAILING_OVER = "FAILING_OVER"
    FAILED_OVER = "FAILED_OVER"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"


class ResetRecord(BaseModel):
    """The last operator reset, kept in the state item: who, why, and whether it was forced past a
    running execution's lock."""

    model_config = ConfigDict(extra="forbid")

    at: float
    by: str
    reason: str
    forced: bool = False
    holder: str | None = Field(default=None, description="the execution whose lock was cleared")
    holder_status: str | None = Field(default=None, description="that execution's status when cleared")


class AutomationChange(BaseModel):
    """The last time an operator paused or resumed automatic failover (`drctl pause|resume`)."""

    model_config = ConfigDict(extra="forbid")

    at: float
    by: str
    reason: str
    enabled: bool


class ServiceState(BaseModel):
    """One item per service in the state table (sk "STATE"); `version` guards concurrent writes."""

    model_config = ConfigDict(extra="forbid")

    service: str
    active_site: SiteName = "main"
    status: ServiceStatus = ServiceStatus.HEALTHY
    automation_enabled: bool = True
    lock_holder: str | None = Field(default=None, description="the incident id holding the lock")
    lock_expires_at: float | None = None
    cooldown_until: float | None = None
    failover_day: str | None = Field(default=None, description="UTC day (YYYY-MM-DD) of failovers_today")
    failovers_today: int = Field(default=0, ge=0)
    last_failover_at: float | None = None
    last_reset: ResetRecord | None = None
    automation_changed: AutomationChange | None = None
    counted_incident: str | None = Field(
        default=None,
        description="the incident whose promotion or cold launch last started the cooldown and counted in "
        "the daily cap: counted once, at its first irreversible step, whatever happens after",
    )
    version: int = Field(default=0, ge=0)

    def failovers_on(self, day: str) -> int:
        """Automatic failovers counted on `day`; the counter belongs to `failover_day` only."""
        return self.failovers_today if self.failover_day == day else 0


def utc_day(now: float) -> str:
    """The UTC calendar day of an epoch time, as the daily cap counts it."""
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%d")


def utc_text(now: float) -> str:
    """An epoch time as readable UTC text for reason sentences."""
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
