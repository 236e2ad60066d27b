"""Is the DR standby safe to promote? Lag limits, unknown lag, the bounded wait for replay, and,
after the fence, the bounded wait for main's final position (the loss receipt taken then).

The check also reads the file lag (where the service has `file_sync`): evidence recorded beside
the loss receipt, never a gate (`quorum_dr.domain.file_lag`)."""

from __future__ import annotations

from typing import Any

from quorum_dr.config import Service
from quorum_dr.domain.data_loss import final_position_receipt
from quorum_dr.domain.decisions import check_replica, data_loss_receipt
from quorum_dr.domain.file_lag import file_lag_receipt
from quorum_dr.domain.readiness import FileSyncFacts
from quorum_dr.domain.redact import error_line, redact_url
from quorum_dr.domain.results import DbStatus
from quorum_dr.failover.errors import PortNotWired
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import entry
from quorum_dr.failover.request import Incident
from quorum_dr.ports import DatabaseActionError

LOSS_WINDOW_SECONDS = 3600.0


def _note(ports: Ports, incident: Incident, step: str, reason: str, **fields: Any) -> None:
    ports.store.update_incident(
        incident.service, incident.incident_id, fields, timeline=entry(step, reason, ports.clock())
    )


def file_lag(ports: Ports, service: Service) -> dict[str, Any] | None:
    """The file-lag receipt (None without file_sync). Evidence, not a gate: whatever goes wrong
    reading the marker is its "file lag unknown" reason, never this step's failure."""
    sync = service.file_sync
    if sync is None:
        return None
    try:
        facts = ports.markers().read(sync)
    except Exception as exc:  # an unwired port, a broken adapter: recorded, the failover goes on
        facts = FileSyncFacts(url=redact_url(str(sync.url)), error=error_line(exc, [str(sync.url)]))
    receipt = file_lag_receipt(facts, now=ports.clock(), max_lag_seconds=sync.max_lag_seconds)
    return receipt.model_dump(mode="json")


def _with_file_lag(reason: str, lag: dict[str, Any] | None) -> str:
    return f"{reason}; {lag['reason']}" if lag else reason


def check(ports: Ports, incident: Incident) -> dict[str, Any]:
    service = ports.service(incident.service)
    now = ports.clock()
    if service.database is None:
        reason = f"{service.name} has no database configured: nothing to promote"
        lag = file_lag(ports, service)
        receipt_fields = {"file_lag": lag} if lag else {}
        _note(ports, incident, "replica", _with_file_lag(reason, lag), **receipt_fields)
        return {"proceed": True, "code": "no_database", "reason": reason, "at": now, **receipt_fields}
    unreadable = ""
    try:
        status: DbStatus | None = ports.promoter(service).replica_status()
    except DatabaseActionError as exc:  # lag unknown: invariant 4 (docs/architecture.md) refuses
        status, unreadable = None, f" ({exc})"
    try:
        results = ports.results().recent_results(service.name, now - LOSS_WINDOW_SECONDS)
    except PortNotWired:
        results = []
    receipt = data_loss_receipt(
        results,
        service=service.name,
        standby_status=status,
        now=now,
        freshness_seconds=ports.config.probe.freshness_seconds,
    )
    decision = check_replica(
        status, service.database, allow_data_loss=incident.allow_data_loss, receipt=receipt
    )
    reason = decision.reason + unreadable
    lag = file_lag(ports, service)  # after the database's figures: its read never delays them
    extra: dict[str, Any] = {"file_lag": lag} if lag else {}
    if decision.code == "data_loss_allowed":
        extra["allow_data_loss_used"] = True
    _note(
        ports,
        incident,
        "replica",
        _with_file_lag(reason, lag),
        data_loss=receipt.model_dump(mode="json"),
        **extra,
    )
    return {
        **decision.model_dump(mode="json"),
        "reason": reason,
        "status": status.model_dump(mode="json") if status else None,
        "data_loss": receipt.model_dump(mode="json"),
        **({"file_lag": lag} if lag else {}),
        "at": now,
    }


def wait_for_replay(ports: Ports, incident: Incident) -> dict[str, Any]:
    service = ports.service(incident.service)
    if service.database is None:
        return {"proceed": True, "reason": "no database: no replay to wait for", "at": ports.clock()}
    limit = service.database.replay_wait_seconds
    try:
        status: DbStatus | None = ports.promoter(service).wait_for_replay(limit)
    except DatabaseActionError:  # not one status within the bound: the lag is unknown
        status = None
    caught_up = status is not None and status.replay_lag_bytes == 0
    lag = "unknown" if status is None else f"{status.replay_lag_bytes} bytes"
    if caught_up:
        proceed, code, reason = True, "ok", "replay caught up with everything the standby received"
    elif incident.allow_data_loss:
        proceed, code, reason = (
            True,
            "data_loss_allowed",
            f"replay did not catch up within {limit:g} s (lag {lag}); promoting anyway: "
            f"allow_data_loss was given by an operator",
        )
    else:
        proceed, code, reason = (
            False,
            "replay_behind",
            f"no automatic promotion: replay did not catch up within {limit:g} s (lag {lag}); "
            f"only a manual start with allow_data_loss may proceed",
        )
    audit = {"allow_data_loss_used": True} if code == "data_loss_allowed" else {}
    _note(ports, incident, "replay", reason, **audit)
    return {
        "proceed": proceed,
        "code": code,
        "reason": reason,
        "status": status.model_dump(mode="json") if status else None,
        "at": ports.clock(),
    }


def final_position(ports: Ports, incident: Incident, fence: dict[str, Any]) -> dict[str, Any]:
    """After the fence: wait (bounded by replay_wait_seconds) for the standby to receive and
    replay main's final position, and take the loss receipt then. Writes main took between the
    replica check and the fence are either on the standby (0 lost) or reported; short of the
    position only allow_data_loss proceeds (audited)."""
    service = ports.service(incident.service)
    db = service.database
    if db is None:
        return {
            "proceed": True,
            "code": "no_database",
            "reason": "no database: no final position",
            "at": ports.clock(),
        }
    if incident.dry_run:
        reason = (
            "dry run: would read main's final WAL position after the fence and wait up to "
            f"{db.replay_wait_seconds:g} s for the standby to receive and replay it"
        )
        _note(ports, incident, "final_position", reason)
        return {"proceed": True, "code": "dry_run", "reason": reason, "at": ports.clock()}
    fenced = fence.get("database") or {}
    final_lsn = fenced.get("final_lsn")
    if not final_lsn:
        why = (
            "main's database was unreachable at the fence"
            if fence.get("unreachable")
            else "main's database was a standby at the fence"
        )
        reason = f"no final position of main to wait for: {why}; the loss receipt of the replica check stands"
        _note(ports, incident, "final_position", reason)
        return {"proceed": True, "code": "no_final_position", "reason": reason, "at": ports.clock()}
    limit = db.replay_wait_seconds
    try:
        status: DbStatus | None = ports.promoter(service).wait_for_position(final_lsn, limit)
    except DatabaseActionError:
        status = None
    receipt = final_position_receipt(final_lsn, status, waited_seconds=limit)
    if receipt.evidence == "final_position":
        proceed, code, reason = True, "ok", receipt.reason
    elif incident.allow_data_loss:
        proceed, code, reason = (
            True,
            "data_loss_allowed",
            f"{receipt.reason}; promoting anyway: allow_data_loss was given by an operator",
        )
    else:
        proceed, code, reason = (
            False,
            "final_position_not_reached",
            f"no automatic promotion: {receipt.reason}; only a manual start with allow_data_loss may proceed",
        )
    audit = {"allow_data_loss_used": True} if code == "data_loss_allowed" else {}
    data_loss = receipt.model_dump(mode="json")
    _note(ports, incident, "final_position", reason, data_loss=data_loss, **audit)
    return {
        "proceed": proceed,
        "code": code,
        "reason": reason,
        "status": status.model_dump(mode="json") if status else None,
        "data_loss": data_loss,
        "at": ports.clock(),
    }


def handle(ports: Ports, event: dict[str, Any]) -> dict[str, Any]:
    incident = Incident.model_validate(event["incident"])
    if event.get("action") == "check":
        return check(ports, incident)
    if event.get("action") == "wait_for_replay":
        return wait_for_replay(ports, incident)
    if event.get("action") == "final_position":
        return final_position(ports, incident, event.get("fence") or {})
    raise ValueError(f"check_replica: unknown action {event.get('action')!r}")
