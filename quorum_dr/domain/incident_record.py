"""What the state table keeps about one incident (sk `INCIDENT#<id>`): who started it and why,
what each step did, and how it ended. Every step adds its fields and one timeline entry.

The record is written field by field as the incident goes on, so every field but the id has a
default: a record read part-way (or one an older version wrote with fewer fields) still loads.
Unknown stored fields are kept as they are (extra="allow"), so a record read and written back
is unchanged; writes (`check_update`) accept only the fields named here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Number = int | float  # kept as stored: DynamoDB's integral numbers read back as int

IncidentStatus = Literal["OPEN", "CLOSED", "FAILED_OVER", "NEEDS_ATTENTION", "RESET"]


class TimelineEntry(BaseModel):
    """One step's sentence: when, which step, what it decided (some steps add fields: round_id)."""

    model_config = ConfigDict(extra="allow")

    at: Number
    step: str
    reason: str


class IncidentRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    incident_id: str
    timeline: list[TimelineEntry] = Field(default_factory=list)
    # the gates step (the start of the incident); a planned switchover's preconditions step
    kind: Literal["failover", "switchover"] | None = Field(
        default=None,
        description="what the incident is; absent: a failover (records written before switchovers)",
    )
    service: str | None = None
    trigger: str | None = Field(default=None, description="auto or manual")
    target: str | None = None
    reason: str | None = Field(default=None, description="why it was started (a manual request's reason)")
    requested_by: str | None = None
    dry_run: bool = False
    shadow: bool = Field(
        default=False, description="mode shadow: what auto would have done; nothing was changed"
    )
    allow_data_loss: bool = False
    detected_at: Number | None = None
    started_at: Number | None = None
    status: IncidentStatus | None = None
    # the decision and the actions
    scenario: dict[str, Any] | None = Field(default=None, description="the scenario decision")
    data_loss: dict[str, Any] | None = Field(default=None, description="the replica check's loss receipt")
    file_lag: dict[str, Any] | None = Field(
        default=None,
        description="the replica check's file-lag receipt (domain/file_lag.FileLagReceipt); absent: no "
        "file_sync configured",
    )
    fence: dict[str, Any] | None = None
    promoted_at: Number | None = None
    promotion: dict[str, Any] | None = None
    writable_verified_at: Number | None = None
    cold_launch: dict[str, Any] | None = None
    switched_to: str | None = None
    switched_at: Number | None = None
    switch: dict[str, Any] | None = None
    verified_at: Number | None = None
    sync_check: dict[str, Any] | None = Field(
        default=None, description="the last database sync check's evidence (domain/sync_check.SyncEvidence)"
    )
    # a planned switchover: its figures (quorum_dr.domain.switchover.SwitchoverFigures); its sync
    # check's evidence is `sync_check` above
    switchover: dict[str, Any] | None = None
    # a step waiting for an operator (veto window, approval request)
    task_token: str | None = None
    awaiting: str | None = None
    # how it ended
    outcome: str | None = None
    decided_at: Number | None = None
    detection_seconds: Number | None = None
    rto_seconds: Number | None = None
    data_loss_reason: str | None = None
    allow_data_loss_used: bool | None = None
    backup_age_seconds: Number | None = None
    error: dict[str, Any] | None = None
    progress: list[str] | None = None
    finished_at: Number | None = None
    # drctl rejoin (a record of its own, `rejoin-<service>-<site>-<day>`): its attempt, plan and end
    rejoin: dict[str, Any] | None = Field(
        default=None, description="quorum_dr.domain.rejoin.RejoinProgress: site, attempt, plan, lag"
    )

    @classmethod
    def check_update(cls, incident_id: str, fields: dict[str, Any]) -> None:
        """Raise ValueError unless `fields` are fields of the record, each of its type."""
        unknown = sorted(set(fields) - set(cls.model_fields) | ({"incident_id", "timeline"} & set(fields)))
        if unknown:
            raise ValueError(f"incident {incident_id}: not a field an update may set: {', '.join(unknown)}")
        cls.model_validate({"incident_id": incident_id, **fields})

    def as_item(self) -> dict[str, Any]:
        """The record as stored: only the fields it was read or built with."""
        return self.model_dump(mode="json", exclude_unset=True)
