"""What one check returns, before the round turns it into a `ProbeResult`."""

from __future__ import annotations

from dataclasses import dataclass

from quorum_dr.domain.results import DbStatus, FailureClass, Vote


@dataclass(frozen=True)
class CheckOutcome:
    vote: Vote
    latency_ms: float
    detail: str
    failure_class: FailureClass | None = None
    db: DbStatus | None = None

    @classmethod
    def up(cls, latency_ms: float, detail: str, db: DbStatus | None = None) -> CheckOutcome:
        return cls(Vote.UP, latency_ms, detail, None, db)

    @classmethod
    def down(cls, failure: FailureClass, latency_ms: float, detail: str) -> CheckOutcome:
        return cls(Vote.DOWN, latency_ms, detail, failure)
