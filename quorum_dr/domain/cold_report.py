"""The cold site's bootstrap report: the one contract between the cold instance and the watchdog.

`cold_site/bootstrap.sh` restores the latest backup (`python -m quorum_dr.adapters.postgres_backup
restore`, whose JSON line is a `RestoreLine`), starts the application and, once the local health
URL answers, sends `ColdBootstrapReport` as the output of `states:SendTaskSuccess`. The state
machine puts that output at `$.cold`; the incident record reads the RPO (the restored backup's
age) from it with `read_cold_rpo`.

The producer's real output is checked against these models in
`tests/integration/test_cold_site.py`, and every fake report is built from them: there is no
second shape of this message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class RestoreReceipt(BaseModel):
    """What `restore_latest` restored, and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    key: str
    source: str
    taken_at: float
    lsn: str | None
    restored_at: float
    # The age of the newest data restored, the most the cold site lost (RPO): restored_at - taken_at
    # for a dump; for a base backup + archived WAL, restored_at - the newest segment's archive time.
    backup_age_seconds: float = Field(ge=0)
    target: str
    reason: str
    method: Literal["pg_dump", "barman-cloud"] = "pg_dump"
    backup_id: str | None = None  # barman-cloud: the base backup restored
    restored_lsn: str | None = None  # barman-cloud: where WAL replay ended (the new timeline's switchpoint)
    wal_segment: str | None = None  # barman-cloud: the newest archived segment when the restore began
    wal_archived_at: float | None = None
    # barman-cloud: the figures recorded with the backup (`quorum_dr.domain.backup_figures`) and the
    # restored database's exact row counts of those tables, once replay ended
    figures_key: str | None = None  # None: no figures were recorded with this backup
    restored_rows: dict[str, int] | None = None
    rows_unavailable: dict[str, str] = Field(default_factory=dict)  # table -> why it was not counted
    rows_error: str | None = None  # the restored database could not be counted at all


class RestoreLine(RestoreReceipt):
    """The restore command's stdout: `{"ok": true, **RestoreReceipt}` (a failure exits non-zero)."""

    ok: Literal[True] = True


class ColdBootstrapReport(BaseModel):
    """The SendTaskSuccess output of `cold_site/bootstrap.sh`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ready: Literal[True]
    service: str = Field(min_length=1)
    instance: str = Field(min_length=1)
    restore: RestoreLine

    @property
    def backup_age_seconds(self) -> float:
        return self.restore.backup_age_seconds

    @property
    def rpo_sentence(self) -> str:
        age = self.backup_age_seconds
        if self.restore.method == "barman-cloud":
            upto = self.restore.restored_lsn or "the end of the archive"
            return (
                f"RPO {age:.0f} s: the cold site {self.instance} restored base backup "
                f"{self.restore.backup_id} and replayed archived WAL up to {upto} "
                f"(segment {self.restore.wal_segment}, archived {age:.0f} s before the restore ended)"
            )
        wal = f", taken at WAL {self.restore.lsn}" if self.restore.lsn else ""
        return (
            f"RPO {age:.0f} s: the cold site {self.instance} restored a backup {age:.0f} s old "
            f"({self.restore.key}{wal})"
        )


class ColdReportInvalid(ValueError):
    """The cold site's ready report does not match `ColdBootstrapReport`."""


def parse_cold_report(payload: Any) -> ColdBootstrapReport:
    """The bootstrap's report, or `ColdReportInvalid` saying which fields are wrong."""
    try:
        return ColdBootstrapReport.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'report'}: {error['msg']}" for error in exc.errors()
        )
        raise ColdReportInvalid(
            f"the cold site's ready report does not match the bootstrap contract "
            f"(quorum_dr.domain.cold_report.ColdBootstrapReport): {problems}"
        ) from None


def read_cold_rpo(
    cold: Mapping[str, Any], *, dry_run: bool, health_fallback: bool
) -> tuple[float | None, str]:
    """The cold path's RPO (the restored backup's age) and the sentence the record keeps.

    `cold` is what the state machine holds at `$.cold`: the bootstrap's report, or, on a dry run,
    the launcher's answer, or, when the ready report did not come in time (`health_fallback`),
    the cold origin's health check. Only those two cases may leave the RPO unknown, and they say
    why; a report that is there but malformed raises `ColdReportInvalid`.
    """
    if dry_run:
        return None, "RPO not measured: a dry run restores no backup"
    if health_fallback:
        return None, (
            "RPO unknown: the cold site's ready report did not arrive in time, so its health check "
            "decided and the restored backup's age was never reported"
        )
    report = parse_cold_report(cold)
    return report.backup_age_seconds, report.rpo_sentence
