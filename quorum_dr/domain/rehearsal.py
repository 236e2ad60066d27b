"""The cold site's restore rehearsal, judged: did the cold site restore what the backup held?

A rehearsal launches the cold site exactly as a failover would (same launch, same bootstrap), waits
for the bootstrap's ready report, compares the restored database's row counts with the figures
recorded with the base backup (`quorum_dr.domain.backup_figures`), records the result and
terminates the instance. This module is the judgement only: pure, no I/O.

It fails, each time with its own sentence, when:
- the cold site did not launch, its bootstrap reported a failure, or no report came in time;
- the report is not the bootstrap's contract, or restored a pg_dump (no figures to compare);
- no figures were recorded with the backup it restored, or they recorded no table;
- the restored database could not be counted;
- a recorded table is missing from the restored database;
- a table has fewer rows than recorded, by more than `row_tolerance` (default 0: the restore
  replays the archive to its newest point, so it holds at least what the backup held);
- the restore ended before the position where the figures were counted (the archive is behind).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quorum_dr.domain.backup_figures import BackupFigures
from quorum_dr.domain.cold_report import ColdBootstrapReport, ColdReportInvalid, parse_cold_report
from quorum_dr.domain.results import parse_lsn
from quorum_dr.domain.state import ServiceState, ServiceStatus

REHEARSAL_PK_PREFIX = "REHEARSAL#"  # the state table's partition of one service's rehearsals
LATEST_SK = "LATEST"
RUN_SK_PREFIX = "RUN#"
HISTORY_KEPT = 52  # a year of weekly rehearsals
REHEARSAL_FINISHED = "RehearsalFinished"
ID_PREFIX = "rehearsal-"
ID_PATTERN = re.compile(r"^rehearsal-[a-z0-9][a-z0-9-]{0,62}-\d{8}T\d{6}Z$")


class RehearsalRefused(Exception):
    """A rehearsal must not start now (the sentence says why); nothing was launched."""


def refusal(state: ServiceState, now: float) -> str | None:
    """Why a rehearsal must not start now, or None. It is refused while an execution holds the
    service's lock (a failover or switchover is under way: a second cold instance would only add to
    what a person must follow), while the service fails over or needs attention, and while the
    cold site itself serves (the rehearsal would launch a second one beside it)."""
    service = state.service
    if state.lock_holder and (state.lock_expires_at is None or state.lock_expires_at > now):
        return (
            f"not now: incident {state.lock_holder} holds the lock of {service} (a failover or switchover "
            "is under way); rehearse once it has ended"
        )
    if state.status in (ServiceStatus.FAILING_OVER, ServiceStatus.NEEDS_ATTENTION):
        return f"not now: {service} is {state.status.value}; rehearse once a person has dealt with it"
    if state.active_site == "cold":
        return f"not now: the cold site of {service} serves; a rehearsal would launch a second one beside it"
    return None


def rehearsal_id(service: str, now: float) -> str:
    """`rehearsal-<service>-<UTC stamp>`: the launch's incident id (its ClientToken and tag)."""
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{ID_PREFIX}{service}-{stamp}"


class TableFigure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    recorded: int
    restored: int | None = None  # None: missing or not counted in the restored database


class RehearsalResult(BaseModel):
    """One rehearsal's outcome, as recorded (state table) and published (`RehearsalFinished`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rehearsal_id: str
    service: str
    started_at: float
    finished_at: float
    duration_seconds: float = Field(ge=0)
    outcome: Literal["PASSED", "FAILED"]
    reason: str = Field(description="one sentence: why it passed, or the first reason it failed")
    failures: list[str] = Field(default_factory=list, description="every reason it failed, one sentence each")
    instance_id: str | None = None
    backup_id: str | None = None
    restored_lsn: str | None = None
    wal_segment: str | None = None
    data_as_of: float | None = Field(default=None, description="the newest archived segment's time")
    tables: dict[str, TableFigure] = Field(default_factory=dict)
    terminated: str | None = Field(default=None, description="the termination's sentence, once done")

    @property
    def passed(self) -> bool:
        return self.outcome == "PASSED"


def judge(
    *,
    rehearsal_id: str,
    service: str,
    started_at: float,
    finished_at: float,
    report: Mapping[str, Any] | None,
    figures: BackupFigures | None,
    failure: str | None = None,
    timed_out_after: float | None = None,
    row_tolerance: int = 0,
    instance_id: str | None = None,
) -> RehearsalResult:
    """The verdict on one rehearsal. `report`: the bootstrap's ready report (its SendTaskSuccess
    output), None when none came; `failure`: the launch's or the bootstrap's failure sentence;
    `timed_out_after`: the seconds waited when no report came in time."""
    failures: list[str] = []
    base: dict[str, Any] = {
        "rehearsal_id": rehearsal_id,
        "service": service,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_seconds": max(0.0, finished_at - started_at),
        "instance_id": instance_id,
    }
    if timed_out_after is not None:
        failures.append(
            f"the cold site sent no ready report within {timed_out_after:.0f} s: its bootstrap hangs or "
            "cannot reach Step Functions (see /var/log/quorum-dr-bootstrap.log on the instance)"
        )
    if failure:
        failures.append(f"the cold site did not come up: {failure}")
    if report is None or failures:
        if not failures:
            failures.append("the cold site sent no ready report")
        return _result(base, failures, "")
    try:
        parsed = parse_cold_report(report)
    except ColdReportInvalid as exc:
        return _result(base, [str(exc)], "")
    restore = parsed.restore
    base.update(
        instance_id=parsed.instance,
        backup_id=restore.backup_id,
        restored_lsn=restore.restored_lsn,
        wal_segment=restore.wal_segment,
        data_as_of=restore.wal_archived_at,
    )
    tables, findings = _compare(parsed, figures, row_tolerance)
    base["tables"] = tables
    return _result(base, findings, _pass_sentence(parsed, tables, base["duration_seconds"], figures))


def _compare(
    report: ColdBootstrapReport, figures: BackupFigures | None, tolerance: int
) -> tuple[dict[str, TableFigure], list[str]]:
    restore = report.restore
    if restore.method != "barman-cloud":
        return {}, [
            f"the cold site restored a {restore.method} backup ({restore.key}), not a base backup with its "
            "recorded figures: nothing to compare (configure cold_site.wal_archive)"
        ]
    if figures is None:
        return {}, [
            f"no figures were recorded with base backup {restore.backup_id}: nothing to compare the restore "
            "with (the backup timer needs --figures-db, deploy/systemd/quorum-dr-base-backup.service)"
        ]
    if figures.backup_id != restore.backup_id:
        return {}, [
            f"the figures are those of base backup {figures.backup_id}, but the cold site restored "
            f"{restore.backup_id}"
        ]
    if not figures.tables:
        return {}, [
            f"the figures of base backup {figures.backup_id} count no table of {figures.database}: a restore "
            "that holds nothing would pass unseen"
        ]
    if restore.rows_error:
        return {name: TableFigure(recorded=n) for name, n in figures.tables.items()}, [
            f"the restored database could not be counted: {restore.rows_error}"
        ]
    restored = restore.restored_rows or {}
    tables: dict[str, TableFigure] = {}
    findings: list[str] = []
    for name, recorded in sorted(figures.tables.items()):
        count = restored.get(name)
        tables[name] = TableFigure(recorded=recorded, restored=count)
        if count is None:
            why = restore.rows_unavailable.get(name, "not counted")
            where = (
                "could not be counted in the restored database"
                if why.startswith("not counted") or "timeout" in why
                else "is missing from the restored database"
            )
            findings.append(f"table {name}, recorded with {recorded} rows, {where} ({why})")
        elif count < recorded - tolerance:
            allowed = f" (tolerance {tolerance})" if tolerance else ""
            findings.append(
                f"table {name} has {count} rows restored, {recorded - count} fewer than the {recorded} "
                f"recorded with base backup {figures.backup_id}{allowed}"
            )
    if figures.counted_lsn and restore.restored_lsn:
        try:
            behind = parse_lsn(restore.restored_lsn) < parse_lsn(figures.counted_lsn)
        except ValueError:
            behind = False
        if behind:
            findings.append(
                f"the restore ended at WAL {restore.restored_lsn}, before {figures.counted_lsn} where the "
                "figures were counted: the WAL archive is missing what came after"
            )
    return tables, findings


def _pass_sentence(
    report: ColdBootstrapReport,
    tables: Mapping[str, TableFigure],
    duration: float,
    figures: BackupFigures | None,
) -> str:
    restore = report.restore
    upto = restore.restored_lsn or "the end of the archive"
    recorded = sum(t.recorded for t in tables.values())
    restored = sum(t.restored or 0 for t in tables.values())
    notes = ""
    if figures is not None and figures.skipped:
        notes += f"; {len(figures.skipped)} table(s) were not counted at the backup and not compared"
    if figures is not None and figures.truncated:
        notes += "; only the first tables by name were counted at the backup"
    return (
        f"the cold site {report.instance} restored base backup {restore.backup_id} and replayed WAL up to "
        f"{upto} (segment {restore.wal_segment}) in {duration:.0f} s; all {len(tables)} recorded tables hold "
        f"at least their rows ({recorded} recorded, {restored} restored){notes}"
    )


def _result(base: dict[str, Any], failures: list[str], passed: str) -> RehearsalResult:
    if failures:
        return RehearsalResult(**base, outcome="FAILED", reason=failures[0], failures=failures)
    return RehearsalResult(**base, outcome="PASSED", reason=passed)


def summary_lines(result: RehearsalResult) -> list[str]:
    """What `drctl rehearse cold-site` prints last."""
    lines = [
        f"rehearsal {result.rehearsal_id}: {result.outcome} in {result.duration_seconds:.0f} s",
        f"  {result.reason}",
    ]
    for extra in result.failures[1:]:
        lines.append(f"  also: {extra}")
    if result.backup_id:
        lines.append(
            f"  backup {result.backup_id}, restored up to WAL {result.restored_lsn or '?'} "
            f"(segment {result.wal_segment or '?'}) on {result.instance_id or '?'}"
        )
    for name, figure in result.tables.items():
        restored = "missing" if figure.restored is None else str(figure.restored)
        lines.append(f"  {name}: {figure.recorded} recorded, {restored} restored")
    if result.terminated:
        lines.append(f"  {result.terminated}")
    return lines
