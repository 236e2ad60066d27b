"""Ports: the small interfaces the domain talks through.

The domain and the handlers see these; production wires AWS / Cloudflare / PostgreSQL adapters
(`quorum_dr.adapters`), tests wire fakes or the real thing against local servers.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quorum_dr.agent.contract import Operation, OperationAnswer, SiteStatus, Upstream
from quorum_dr.config import ColdSite, FileSync, Hook
from quorum_dr.domain.edge import SwitchReceipt
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr.domain.readiness import FileSyncFacts, ReadinessRecord
from quorum_dr.domain.results import DbStatus, ProbeResult
from quorum_dr.domain.standby_health import StandbyRecord
from quorum_dr.domain.state import ServiceState


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

    def home_time(self) -> float:
        """The home region's time now, on the scale of `received_at` (a store in the home region:
        the process's clock; a store written from a probe region overrides this)."""
        return time.time()


class EventPublisher(ABC):
    """Puts events on the bus (EventBridge in production)."""

    @abstractmethod
    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None: ...


class RoundQueue(ABC):
    """Where the probe puts the minute's next scheduled round, to come back after a delay (the
    region's SQS round queue in production, its event source mapping invoking the probe)."""

    name: str = "round queue"

    @abstractmethod
    def send(self, body: str, *, delay_seconds: int) -> None:
        """Queue `body`, delivered no sooner than `delay_seconds` (0-900) from now; raises on failure."""


class StandbyWatch(ABC):
    """What the probe reads and claims in the state table to say a change of the standby once
    (`domain/standby_health.py`): the service's state, and the last thing said about its standby."""

    @abstractmethod
    def service_state(self, service: str) -> ServiceState:
        """The service's state item (defaults when absent): which site is active, and its status."""

    @abstractmethod
    def standby_record(self, service: str) -> tuple[StandbyRecord | None, int]:
        """The last thing said about the standby (None when nothing was) and the record's version (0)."""

    @abstractmethod
    def claim_standby_change(self, service: str, record: StandbyRecord, *, expected_version: int) -> bool:
        """Write `record` as version `expected_version + 1` if the stored one is still
        `expected_version`: True when this caller made the change (and says it), False when
        another region already did."""


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


class NotificationChannel(ABC):
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


class ComputeLauncher(ABC):
    """Starts the cold site's compute, at most once per incident."""

    @abstractmethod
    def launch(
        self, incident_id: str, cold: ColdSite, user_data: str, *, launch_template_id: str | None = None
    ) -> LaunchReceipt:
        """At most one instance per incident; `launch_template_id` wins over the config's template name."""

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


# Ports of the failover actions (the state machine's Lambdas). Receipts are JSON-able mappings
# holding at least a `reason` sentence; adapters may return pydantic models (model_dump is used).
# ---------------------------------------------------------------------------------------------


class StaleState(Exception):
    """Someone else changed the service state since it was read (optimistic concurrency): what
    `StateStore.put_state` raises when the stored version is no longer the expected one."""


class StateStore(ABC):
    """Service state, incident lock and incident records (the state table)."""

    @abstractmethod
    def get_state(self, service: str) -> dict[str, Any]:
        """The service's state item (defaults when absent), with its `version`."""

    @abstractmethod
    def put_state(self, state: Mapping[str, Any], *, expected_version: int) -> dict[str, Any]:
        """Write the state if its stored version is still `expected_version`; raise StaleState if not."""

    @abstractmethod
    def get_lock(self, service: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def acquire_lock(
        self, service: str, incident_id: str, *, holder: str, now: float, expires_at: float
    ) -> bool:
        """True when execution `holder` holds the lock afterwards (the same write the ASL does)."""

    @abstractmethod
    def release_lock(self, service: str, holder: str, *, shadow: bool = False) -> bool:
        """Delete the lock (`shadow`: mode shadow's own lock) if execution `holder` holds it and it
        is not kept; True when released."""

    def hold_shadow_lock(self, service: str, holder: str, *, until: float) -> bool:
        """Mode shadow: after a shadow decision, hold its lock until `until` (the cooldown auto would
        start), if execution `holder` still holds it; True when held."""
        raise NotImplementedError(f"{type(self).__name__} keeps no shadow lock")

    @abstractmethod
    def keep_lock(self, service: str, incident_id: str, *, holder: str) -> bool:
        """Mark the lock as kept until an operator resets it, if `holder` still holds it (or no
        one does); False, and nothing written, when another execution holds it."""

    @abstractmethod
    def reset_state(
        self, state: Mapping[str, Any], *, expected_version: int, lock: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Operator reset, in one transaction: write the state if its version is still
        `expected_version` and delete `lock` if it is still the lock read (or check that there is
        still none); raise StaleState, writing nothing, if either changed."""

    @abstractmethod
    def get_incident(self, service: str, incident_id: str) -> IncidentRecord | None: ...

    @abstractmethod
    def update_incident(
        self, service: str, incident_id: str, fields: Mapping[str, Any], *, timeline: Mapping[str, Any] | None
    ) -> IncidentRecord:
        """Create or update the incident record: set `fields` (IncidentRecord's fields, checked
        with `IncidentRecord.check_update`) and append `timeline` to its timeline."""

    @abstractmethod
    def list_incidents(self, service: str, limit: int = 20) -> list[IncidentRecord]:
        """The service's latest incidents, newest first by when they started (not by id)."""


class ReadinessStore(ABC):
    """The last readiness evaluation of each service (the scheduled readiness function compares the
    next one with it)."""

    @abstractmethod
    def get_readiness(self, service: str) -> ReadinessRecord | None:
        """The previous evaluation, or None before the first."""

    @abstractmethod
    def put_readiness(self, record: ReadinessRecord) -> None: ...


class ProbeInvoker(ABC):
    """Runs one on-demand probe round in every probe region (their results reach the ResultStore)."""

    @abstractmethod
    def run_round(
        self,
        *,
        service: str,
        round_id: str,
        incident_id: str,
        sites: list[str],
        settled: Callable[[frozenset[str]], str | None] | None = None,
    ) -> dict[str, str]:
        """Invoke every region's probe; return region -> a sentence on how its invocation went.

        `settled(answered regions)` is asked after each answer; once it gives a sentence, the
        regions still out are not waited for (their sentence says they were silent)."""


class Notifier(ABC):
    """SNS and signed webhooks."""

    @abstractmethod
    def notify(self, subject: str, message: str, *, incident_id: str, detail: Mapping[str, Any]) -> Any: ...


class HookRunner(ABC):
    """Site-specific webhooks (fence_main, before_promote, after_promote)."""

    @abstractmethod
    def run(self, hook: str, *, incident_id: str, payload: Mapping[str, Any]) -> Any:
        """Call the configured hook (a no-op receipt when none is configured).

        Raise when a required hook fails.
        """


class ColdSiteLauncher(ABC):
    """The cold site: an EC2 instance from the AMI or launch template."""

    @abstractmethod
    def launch(self, *, incident_id: str, task_token: str | None, dry_run: bool) -> Any:
        """RunInstances with ClientToken = incident id (a retry never launches twice); a receipt."""


class SwitchVerifier(ABC):
    """Probes the public hostname (or an origin) and reports which site answered."""

    @abstractmethod
    def verify(self, *, service: str, expect_site: str, incident_id: str, origin_only: bool) -> Any:
        """Receipt with `verified` (bool), `reason`, and what each region saw."""


class MarkerReader(ABC):
    """Reads the file-sync marker the DR site serves (`services[].file_sync`)."""

    @abstractmethod
    def read(self, sync: FileSync) -> FileSyncFacts:
        """When main wrote the marker DR serves, or why it could not be read (bounded by the
        config's timeout; never raises for an unreachable or malformed marker)."""


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
    logins_restored: tuple[str, ...] = ()  # application roles given LOGIN back (main's fence replicated)


class WritableCheck(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    writable: bool
    reason: str


class FenceReceipt(BaseModel):
    """What fencing main's database did (invariant 4b: fenced, unreachable, or neither: block).

    - fenced: main is a standby, or its application roles may not log in and none of their
      sessions remain (a check query said so); `final_lsn` is main's WAL position after that.
    - unreachable (`reachable` False): connection refused or timed out, and nothing else;
      `failure_class` and `address` are the evidence.
    - reachable and not fenced: anything else (a refused privilege, a failed statement, a
      missing role, an unclassified connection error); the promotion must not go ahead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reachable: bool
    fenced: bool
    terminated_sessions: int = 0
    reason: str
    address: str | None = None  # host:port/dbname of main's database
    failure_class: str | None = None  # why it was not reachable (connect_refused, connect_timeout)
    roles: tuple[str, ...] = ()  # the application roles that may no longer log in
    final_lsn: str | None = None  # pg_current_wal_lsn() on main after the fence


class Promoter(ABC):
    """The DR database: its standby status, one promotion per incident, and fencing the old primary.

    The one database port (PostgreSQL in production: quorum_dr.adapters.postgres_promoter). Errors
    are DatabaseActionError subclasses: DatabaseUnreachableError and ReplicaNotReadyError are
    transient, PromotionError means the promotion did not give a writable primary.
    """

    @abstractmethod
    def replica_status(self) -> DbStatus:
        """Role and WAL figures of the DR database (DatabaseUnreachableError if unreachable)."""

    @abstractmethod
    def wait_for_replay(self, timeout_s: float) -> DbStatus:
        """Wait, at most `timeout_s`, until replay has applied all received WAL; the last status."""

    @abstractmethod
    def promote(self, incident_id: str) -> PromotionReceipt:
        """Promote once (idempotent: checks pg_is_in_recovery first), then verify it accepts writes."""

    @abstractmethod
    def verify_writable(self) -> WritableCheck: ...

    @abstractmethod
    def wait_for_position(self, lsn: str, timeout_s: float) -> DbStatus:
        """Wait, at most `timeout_s`, until the standby received and replayed `lsn`; the last status
        (DatabaseUnreachableError if not one status could be read)."""

    @abstractmethod
    def fence_old_primary(self, incident_id: str) -> FenceReceipt:
        """Fence main's database where it is reachable and prove it (see FenceReceipt); a failure
        to fence is a receipt with `reachable` True and `fenced` False, not an exception."""


# ---------------------------------------------------------------------------------------------
# Site agent and database sync check (the planned switchover's ports)
# ---------------------------------------------------------------------------------------------


class SiteAgentError(Exception):
    """A site agent refused an operation (401, 409 for the state it found) or it failed (500); the
    message is the agent's reason sentence. The switchover rolls back (before the promotion) or
    escalates (after it)."""


class SiteAgentUnreachable(SiteAgentError):
    """The agent did not answer (connection refused or timed out): worth retrying, since every
    operation is idempotent under its operation id."""


class SiteAgent(ABC):
    """The site agent on one database host (`drctl agent`; its client in production:
    quorum_dr.adapters.site_agent.SiteAgentClient). `quorum_dr.agent.contract` is the one contract:
    the answers are its models."""

    @abstractmethod
    def status(self) -> SiteStatus:
        """The local PostgreSQL as the agent sees it (role, running, LSNs, frozen, ...)."""

    @abstractmethod
    def run(
        self, operation: Operation, operation_id: str, primary: Upstream | None = None
    ) -> OperationAnswer:
        """Run one operation, idempotent under `operation_id` (a repeated id gets the stored answer
        back). Raises SiteAgentError (SiteAgentUnreachable when it could not be asked)."""


class SyncDigester(ABC):
    """The database sync check's two halves (PostgreSQL in production:
    quorum_dr.adapters.postgres_sync and quorum_dr.domain.sync_check).

    Digests travel through the state machine between steps, so they are JSON-able mappings (a
    pydantic model's dump); `judge` reads them back."""

    @abstractmethod
    def settle(self, site: str) -> str:
        """Make the site's current position one that another side can replay exactly (a primary:
        the WAL its reads write, then flushed to a record boundary) and return it: the position the
        other side must reach before its digest. Done before `digest(site)`, which settles
        nothing, so the two sides can be digested at the same time."""

    @abstractmethod
    def digest(self, site: str) -> Any:
        """One site's digest at its current position: WAL position, timeline, and per table the row
        count and an ordered hash (a pydantic model or a mapping)."""

    @abstractmethod
    def judge(self, active: Mapping[str, Any], target: Mapping[str, Any], final_position: str) -> Any:
        """Do the sites hold the same data at the active site's final position? A verdict with at
        least `in_sync` (bool) and `reason` (the sentence)."""
