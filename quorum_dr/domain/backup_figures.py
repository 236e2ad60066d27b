"""The figures recorded with a base backup: exact row counts of the backed-up database's tables.

The DR host counts them right after `barman-cloud-backup` finishes (`quorum_dr.adapters.wal_archive`,
`take_base_backup(..., figures_db=...)`) and stores them beside the backup, at
`<prefix>/<server>/quorum-dr-figures/<backup_id>.json` (outside barman's `base/` and `wals/`, so
barman's catalog and its retention never read or break them; `apply_retention` deletes the figures
of the backups it deleted). The cold site's restore counts the same tables once it has replayed the
archive and reports them in its `RestoreLine` (`restored_rows`); the restore rehearsal
(`quorum_dr.domain.rehearsal`) compares the two.

One model for the stored file, read by the restore and by the rehearsal: no second shape.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

FIGURES_FOLDER = "quorum-dr-figures/"
MAX_TABLES = 200  # counted per backup: the first this many user tables by schema and name
COUNT_TIMEOUT_MS = 60_000  # per count(*) (statement_timeout); a table that takes longer is skipped


class BackupFigures(BaseModel):
    """Exact `count(*)` per user table (`schema.table`), counted in one snapshot after the backup."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backup_id: str = Field(min_length=1)
    database: str = Field(min_length=1)
    counted_at: float = Field(description="epoch seconds, the DR host's clock")
    counted_lsn: str | None = Field(
        default=None, description="the standby's replay position (a primary's WAL position) when counted"
    )
    tables: dict[str, int] = Field(default_factory=dict)
    skipped: dict[str, str] = Field(
        default_factory=dict, description="table -> why it was not counted (its count timed out)"
    )
    truncated: bool = Field(default=False, description=f"more user tables than the {MAX_TABLES} counted")
