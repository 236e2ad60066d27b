"""What one probe saw: the record every check produces and every decision reads.

Pure data: no I/O. Times are UNIX epoch seconds (float, UTC). `probe_time` is the probing
region's clock and is informational only; decisions use `received_at`, stamped by the writer in
the home region, so a region with a skewed clock cannot make its results look fresh.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

CONTROL_SITE = "_control"  # site name of the self-check results


class Vote(StrEnum):
    UP = "up"
    DOWN = "down"


class FailureClass(StrEnum):
    DNS = "dns"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    BODY_MISMATCH = "body_mismatch"
    HEADER_MISMATCH = "header_mismatch"
    TIMEOUT = "timeout"
    DB_ERROR = "db_error"


class DbRole(StrEnum):
    PRIMARY = "primary"
    STANDBY = "standby"


class ReplicationPeer(BaseModel):
    """One row of a primary's `pg_stat_replication`: a standby as the primary sees it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    application_name: str
    state: str | None = None
    sync_state: str | None = Field(default=None, description="async, potential, sync or quorum")
    flush_lsn: str | None = None


WAITING_SYNCHRONOUS_COMMIT = ("on", "remote_write", "remote_apply")


class DbStatus(BaseModel):
    """What a PostgreSQL check learnt. LSNs are kept as PostgreSQL prints them (`16/B374D848`).

    Times named `*_at` are epoch seconds on the database host's clock, for people to read; the
    decisions use the `*_age_seconds` figures, which PostgreSQL computes on its own clock, so
    that no two clocks are ever compared.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: DbRole
    current_lsn: str | None = Field(default=None, description="pg_current_wal_lsn() on a primary")
    receive_lsn: str | None = Field(default=None, description="pg_last_wal_receive_lsn() on a standby")
    replay_lsn: str | None = Field(default=None, description="pg_last_wal_replay_lsn() on a standby")
    replay_lag_bytes: int | None = Field(default=None, description="receive minus replay, in bytes")
    replay_lag_seconds: float | None = Field(
        default=None, description="now() - pg_last_xact_replay_timestamp(); None until a transaction replays"
    )
    last_replay_at: float | None = None
    streaming: bool | None = Field(default=None, description="pg_stat_wal_receiver.status = 'streaming'")
    # -- a standby's WAL receiver (pg_stat_wal_receiver; None without pg_read_all_stats) --------
    last_msg_receipt_at: float | None = Field(
        default=None, description="last_msg_receipt_time: the last message from main, data or keepalive"
    )
    last_msg_age_seconds: float | None = Field(
        default=None, description="clock_timestamp() - last_msg_receipt_time, on the standby's clock"
    )
    latest_end_lsn: str | None = Field(
        default=None, description="main's WAL end as its WAL sender last reported it to the standby"
    )
    latest_end_at: float | None = Field(default=None, description="latest_end_time: when that end last moved")
    application_name: str | None = Field(
        default=None, description="the name the WAL receiver gives main (pg_stat_replication, sync names)"
    )
    wal_receiver_timeout_seconds: float | None = Field(
        default=None, description="the standby's wal_receiver_timeout; it pings an idle main at half of it"
    )
    # -- a primary's replication view -----------------------------------------------------------
    synchronous_commit: str | None = Field(
        default=None, description="the server's default synchronous_commit"
    )
    synchronous_standby_names: str | None = None
    standbys: tuple[ReplicationPeer, ...] = Field(default=(), description="pg_stat_replication")


class ProbeResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    site: str = Field(description="main, dr, cold, or _control for the self-check")
    check: str
    check_type: str
    region: str
    round_id: str
    vote: Vote
    failure_class: FailureClass | None = None
    latency_ms: float = Field(ge=0)
    detail: str = ""
    probe_time: float = Field(description="the probing region's clock, epoch seconds")
    received_at: float | None = Field(default=None, description="stamped by the result writer")
    abstaining: bool = Field(default=False, description="the region failed its self-check this round")
    counts: bool = Field(default=True, description="the check votes (config `vote`)")
    db: DbStatus | None = None
    failing_rounds: int = Field(
        default=0,
        ge=0,
        description="consecutive failing round verdicts of this site from this region, this round included "
        "(0 when UP); stamped by the probe service, see domain/retrigger.py",
    )


def parse_lsn(text: str) -> int:
    """`16/B374D848` -> the 64-bit WAL position as an integer."""
    high, _, low = text.partition("/")
    if not low:
        raise ValueError(f"not a PostgreSQL LSN: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"
