"""Ports: the small interfaces the domain talks through.

The domain and the handlers see these; production wires AWS / Cloudflare / PostgreSQL adapters
(`quorum_dr.adapters`), tests wire fakes or the real thing against local servers.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from quorum_dr.domain.results import DbStatus, ProbeResult


class SecretSource(ABC):
    """Reads secrets by name (Secrets Manager in production)."""

    @abstractmethod
    def get(self, name: str) -> str: ...

    def get_json(self, name: str) -> dict[str, Any]:
        value = json.loads(self.get(name))
        if not isinstance(value, dict):
            raise ValueError(f"secret {name!r} is not a JSON object")
        return value


class ResultStore(ABC):
    """Where probe results go (the results table)."""

    @abstractmethod
    def put_results(self, results: Iterable[ProbeResult]) -> list[ProbeResult]:
        """Store results, stamping `received_at`; return what was stored."""

    @abstractmethod
    def recent_results(self, service: str, since: float) -> list[ProbeResult]:
        """Every result of `service` received at or after `since` (epoch seconds)."""


class EventPublisher(ABC):
    """Puts events on the bus (EventBridge in production)."""

    @abstractmethod
    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None: ...


# ---------------------------------------------------------------------------------------------
# Database promoter (PostgreSQL in production: quorum_dr.adapters.postgres_promoter)
# ---------------------------------------------------------------------------------------------


class DatabaseActionError(Exception):
    """A database action failed; the message is the reason sentence. The state machine's
    Retry/Catch match the subclass names below."""


class DatabaseUnreachableError(DatabaseActionError):
    """The database could not be reached or would not let us in (transient: retry)."""


class ReplicaNotReadyError(DatabaseActionError):
    """The replica cannot be promoted yet (e.g. still starting up; transient: retry)."""


class PromotionError(DatabaseActionError):
    """Promotion was attempted and did not give a writable primary (escalate)."""


class PromotionReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: str
    promoted: bool  # this call promoted the replica
    already: bool  # it was a primary before this call
    writable: bool  # a write succeeded after promotion
    lsn: str | None = None  # pg_current_wal_lsn() after promotion
    promoted_by: str | None = None  # the incident recorded as having promoted it, if any
    at: float  # epoch seconds
    reason: str


class WritableCheck(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    writable: bool
    reason: str


class FenceReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reachable: bool
    fenced: bool
    terminated_sessions: int = 0
    reason: str


class DatabasePromoter(ABC):
    """Checks, promotes and verifies the DR replica; fences the old primary where it can."""

    @abstractmethod
    def replica_status(self) -> DbStatus:
        """Role and WAL figures of the DR database (DatabaseUnreachableError if unreachable)."""

    @abstractmethod
    def wait_for_replay(self, timeout_s: float) -> DbStatus:
        """Wait, at most `timeout_s`, until replay has applied all received WAL; the last status."""

    @abstractmethod
    def promote(self, incident_id: str) -> PromotionReceipt:
        """Promote once (idempotent), then verify it is a primary that accepts writes."""

    @abstractmethod
    def verify_writable(self) -> WritableCheck: ...

    @abstractmethod
    def fence_old_primary(self) -> FenceReceipt:
        """Best effort: make the old primary refuse writes if it is reachable; never raises."""
