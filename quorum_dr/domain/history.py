"""`drctl history`: a service's incidents as a person reads them, pure (records in, text out).

One line per incident (newest first, as the store lists them): when it started, what it was
(failover, switchover, rejoin), how it was triggered, where to, how it ended, and its figures
(detection, RTO, data loss, and the file lag at promotion where file_sync is configured). One
incident in full: its fields, then its timeline, one step a line.
Every text that reaches the terminal is cleaned of control characters: reasons quote databases,
APIs and operators.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quorum_dr.config_types import clean_text
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr.domain.state import utc_text

COLUMNS = (
    "started (UTC)",
    "incident",
    "kind",
    "trigger",
    "to",
    "ended",
    "detection",
    "RTO",
    "data loss",
    "file lag",
)


def _when(value: float | None) -> str:
    return utc_text(float(value)) if value is not None else "-"


def _seconds(value: float | None) -> str:
    return f"{float(value):.1f} s" if value is not None else "-"


def kind_of(record: IncidentRecord) -> str:
    """failover, shadow (mode shadow's: what auto would have done), switchover or rejoin (a
    rejoin's record carries `rejoin`)."""
    if record.rejoin is not None:
        return "rejoin"
    if record.shadow:
        return "shadow"
    return record.kind or "failover"


def started_of(record: IncidentRecord) -> float | None:
    """When it started; a record that has no start yet, when it was detected."""
    return record.started_at if record.started_at is not None else record.detected_at


def ended(record: IncidentRecord) -> str:
    """How it ended (the outcome), or where it is (the status) while it runs; a dry run says so."""
    word = record.outcome or (str(record.status) if record.status else "running")
    if record.shadow:
        return "would have failed over" if word == "shadow" else f"{word} (shadow)"
    return f"{word} (dry run)" if record.dry_run and "dry" not in word else word


def data_loss(record: IncidentRecord) -> str:
    """The loss figure in a few words, from the incident's loss receipt (`LossReceipt`): bytes known
    lost, or the bound and its evidence, or unknown; a planned switchover loses nothing by design
    (its figures say which final position the target replayed)."""
    receipt = record.data_loss or {}
    if not receipt:
        switchover = record.switchover or {}
        if switchover.get("replayed_position") and not switchover.get("rolled_back"):
            return "0 (final position replayed)"
        return "-"
    lost, bound_bytes, bound_seconds = (
        receipt.get("loss_bytes"),
        receipt.get("bound_bytes"),
        receipt.get("bound_seconds"),
    )
    if lost is not None and bound_bytes is not None and int(lost) == int(bound_bytes):
        return f"{int(lost)} B"
    if bound_bytes is not None or bound_seconds is not None:
        parts = [f"<= {int(bound_bytes)} B" if bound_bytes is not None else None]
        parts.append(f"<= {float(bound_seconds):.1f} s" if bound_seconds is not None else None)
        evidence = f" ({receipt['evidence']})" if receipt.get("evidence") else ""
        return ", ".join(p for p in parts if p) + evidence
    if lost is not None:
        return f"{int(lost)} B known lost (no bound)"
    return "unknown"


def file_lag(record: IncidentRecord) -> str:
    """The file lag at promotion in a few words, from the replica check's file-lag receipt
    (`FileLagReceipt`): its seconds, or unknown; "-" where no file_sync was configured."""
    receipt = record.file_lag or {}
    if not receipt:
        return "-"
    lag = receipt.get("lag_seconds")
    if lag is None:
        return "unknown"
    return f"{float(lag):.1f} s" + (" (over the limit)" if receipt.get("over_limit") else "")


def row(record: IncidentRecord) -> dict[str, Any]:
    """One incident's summary (what `--json` prints and the table shows)."""
    rto = record.rto_seconds
    if rto is None and record.switchover:
        rto = record.switchover.get("write_outage_seconds")
    return {
        "incident_id": record.incident_id,
        "kind": kind_of(record),
        "trigger": record.trigger,
        "requested_by": record.requested_by,
        "target": record.target or record.switched_to,
        "started_at": started_of(record),
        "finished_at": record.finished_at,
        "status": record.status,
        "outcome": record.outcome,
        "dry_run": record.dry_run,
        "detection_seconds": record.detection_seconds,
        "rto_seconds": rto,
        "data_loss": data_loss(record),
        "file_lag": file_lag(record),
        "last_step": clean_text(record.timeline[-1].reason) if record.timeline else None,
    }


def table(records: Sequence[IncidentRecord], service: str) -> str:
    """The incidents as aligned columns, newest first; an empty history says so."""
    if not records:
        return f"{service}: no incidents recorded"
    cells = [
        [
            _when(r["started_at"]),
            clean_text(r["incident_id"]),
            r["kind"],
            clean_text(r["trigger"] or "-"),
            clean_text(r["target"] or "-"),
            clean_text(ended(record)),
            _seconds(r["detection_seconds"]),
            _seconds(r["rto_seconds"]),
            r["data_loss"],
            r["file_lag"],
        ]
        for record, r in ((record, row(record)) for record in records)
    ]
    widths = [max(len(c[i]) for c in [list(COLUMNS), *cells]) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(text.ljust(widths[i]) for i, text in enumerate(line)).rstrip()
        for line in [list(COLUMNS), *cells]
    ]
    return "\n".join([f"{service}: {len(records)} incident(s), newest first", *lines])


def detail(record: IncidentRecord) -> str:
    """One incident in full: what it was, its figures, then every timeline step in order."""
    r = row(record)
    lines = [
        f"incident {clean_text(record.incident_id)} of {clean_text(record.service or '-')}: "
        f"{r['kind']}, {clean_text(r['trigger'] or 'trigger unknown')}, to {clean_text(r['target'] or '-')}",
        f"  started   {_when(r['started_at'])}",
        f"  ended     {clean_text(ended(record))} at {_when(record.finished_at)}",
    ]
    if record.requested_by:
        lines.append(f"  by        {clean_text(record.requested_by)}")
    if record.reason:
        lines.append(f"  reason    {clean_text(record.reason)}")
    lines.append(
        f"  figures   detection {_seconds(r['detection_seconds'])}, RTO {_seconds(r['rto_seconds'])}, "
        f"data loss {r['data_loss']}"
    )
    if record.data_loss_reason:
        lines.append(f"  loss      {clean_text(record.data_loss_reason)}")
    if record.file_lag and record.file_lag.get("reason"):
        lines.append(f"  file lag  {clean_text(str(record.file_lag['reason']))}")
    if record.error:
        cause = record.error.get("Cause") or record.error.get("Error") or record.error
        lines.append(f"  error     {clean_text(str(cause))[:500]}")
    lines.append("  timeline")
    for step in sorted(record.timeline, key=lambda e: float(e.at)):
        lines.append(f"    {_when(step.at)}  {clean_text(step.step)}: {clean_text(step.reason)}")
    if not record.timeline:
        lines.append("    (no step recorded)")
    return "\n".join(lines)
