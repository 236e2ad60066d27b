"""Ports: the small interfaces the domain talks through.

The domain and the handlers see these; production wires AWS / Cloudflare / PostgreSQL adapters
(`quorum_dr.adapters`), tests wire fakes or the real thing against local servers.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

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
