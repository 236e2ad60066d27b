"""The file lag at promotion: how far DR's replicated file tree was behind main, read by the
failover's replica check from the file-sync marker DR serves (`services[].file_sync`), and recorded
beside the database's loss receipt (`quorum_dr.domain.data_loss`).

Evidence, not a gate: the receipt never stops a failover, and a marker that cannot be read or
understood is recorded as "file lag unknown" with the reason. Pure: the marker is read by the
MarkerReader port (`quorum_dr.adapters.file_sync`) and handed here as `FileSyncFacts`.

Main's clock writes the marker and the home region's clock reads it (`now`): a marker from more
than MARKER_FUTURE_SLACK_SECONDS in the future is a clock problem, and the lag is unknown; a
smaller difference reads as 0 s. Main is down when the check runs, so the marker no longer moves:
the lag is the age of the newest marker main replicated to DR: files main wrote after it may be
missing at DR.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from quorum_dr.domain.readiness import MARKER_FUTURE_SLACK_SECONDS, FileSyncFacts, seconds_text
from quorum_dr.domain.state import utc_text


class FileLagReceipt(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str = Field(description="the marker's URL, redacted")
    read_at: float = Field(description="when the replica check read it (home region's clock)")
    lag_seconds: float | None = Field(default=None, description="None: unknown (see `unknown_because`)")
    marker_written_at: float | None = Field(default=None, description="when main wrote the marker DR serves")
    max_lag_seconds: float = Field(description="file_sync.max_lag_seconds, the limit readiness holds it to")
    over_limit: bool = False
    unknown_because: str | None = None
    reason: str


def file_lag_receipt(facts: FileSyncFacts, *, now: float, max_lag_seconds: float) -> FileLagReceipt:
    """The file lag at `now` from the marker DR serves (see the module text)."""
    common = dict(url=facts.url, read_at=now, max_lag_seconds=max_lag_seconds)
    if facts.error or facts.written_at is None:
        why = f"cannot read the file-sync marker at {facts.url}: {facts.error or 'no time'}"
        return FileLagReceipt(**common, unknown_because=why, reason=f"file lag unknown: {why}")
    written = f"written by main at {utc_text(facts.written_at)}"
    lag = now - facts.written_at
    if lag < -MARKER_FUTURE_SLACK_SECONDS:
        why = (
            f"the file-sync marker DR serves ({facts.url}) was {written}, {-lag:.0f} s in this clock's "
            "future: main's clock and the home region's disagree"
        )
        return FileLagReceipt(
            **common,
            marker_written_at=facts.written_at,
            unknown_because=why,
            reason=f"file lag unknown: {why}",
        )
    lag = round(max(lag, 0.0), 1)
    over = lag > max_lag_seconds
    beyond = (
        f"; over the limit {seconds_text(max_lag_seconds)}: files main wrote after it may be missing at DR"
        if over
        else ""
    )
    return FileLagReceipt(
        **common,
        lag_seconds=lag,
        marker_written_at=facts.written_at,
        over_limit=over,
        reason=f"file lag at promotion {seconds_text(lag)}: the newest file-sync marker DR serves "
        f"({facts.url}) was {written}{beyond}",
    )
