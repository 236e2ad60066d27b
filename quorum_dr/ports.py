"""Ports: the small interfaces the domain talks through.

The domain and the handlers see these; production wires AWS / Cloudflare / PostgreSQL adapters
(`quorum_dr.adapters`), tests wire fakes or the real thing against local servers.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quorum_dr.config import ColdSite, Hook
from quorum_dr.domain.edge import SwitchReceipt
from quorum_dr.domain.results import ProbeResult


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
# Notifier, hooks, cold site (appended by the domain helper)
# ---------------------------------------------------------------------------------------------

HookName = Literal["fence_main", "before_promote", "after_promote"]


class Notification(BaseModel):
    """One message to the operators; `incident_id` is the correlation id everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: str
    service: str
    event: str = Field(description="short machine word, e.g. failed_over, escalated, false_alarm")
    subject: str
    summary: str = Field(description="readable text: what happened, what was decided and why")
    details: dict[str, Any] = Field(default_factory=dict)


class NotifyReceipt(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel: str = Field(description="sns:<topic arn> or webhook:<url without query>")
    delivered: bool
    attempts: int
    reason: str


class Notifier(ABC):
    """Sends a notification on every channel it knows; one failing channel never stops another."""

    @abstractmethod
    def notify(self, message: Notification) -> list[NotifyReceipt]: ...


class HookResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    hook: str
    ok: bool
    blocking: bool = Field(description="a required hook failed: the failover must stop")
    skipped: bool = False
    status_code: int | None = None
    attempts: int = 0
    reason: str
    response: dict[str, Any] | None = None


class HookCaller(ABC):
    """Calls a site-specific hook (fence main, before/after promote)."""

    @abstractmethod
    def call(
        self,
        name: HookName,
        hook: Hook | None,
        *,
        incident_id: str,
        service: str,
        payload: Mapping[str, Any] | None = None,
    ) -> HookResult: ...


class LaunchReceipt(BaseModel):
    model_config = ConfigDict(frozen=True)

    instance_id: str
    already_existed: bool
    reason: str
    image_id: str | None = None
    elastic_ip: str | None = None


class InstanceView(BaseModel):
    model_config = ConfigDict(frozen=True)

    instance_id: str
    state: str
    public_ip: str | None = None
    private_ip: str | None = None


class ColdSiteLauncher(ABC):
    """Starts the cold site's compute, at most once per incident."""

    @abstractmethod
    def launch(self, incident_id: str, cold: ColdSite, user_data: str) -> LaunchReceipt: ...

    @abstractmethod
    def describe(self, instance_id: str, region: str | None = None) -> InstanceView: ...


class EdgeSwitch(ABC):
    """Points the public hostname at a site (Cloudflare proxied records or load-balancer pools).

    Errors are `quorum_dr.domain.edge.EdgeSwitchError` subclasses; their class names are what the
    state machine's Retry / Catch match on.
    """

    @abstractmethod
    def current_site(self) -> str | None:
        """The site the edge points at now, or None when it points at no single known site."""

    @abstractmethod
    def switch_to(self, site: str, *, incident_id: str, dry_run: bool = False) -> SwitchReceipt:
        """Point the edge at `site`, idempotently, and read it back; a dry run writes nothing."""
