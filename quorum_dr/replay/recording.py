"""Recorded probe results, as `drctl replay` reads them.

One file, one line a record; each line may be any of:
- a ProbeResult as JSON (`quorum_dr.domain.results`), e.g. `ProbeResult.model_dump_json()`;
- an item of the results table (`quorum_dr.adapters.dynamodb_results`): its `result` attribute is the
  ProbeResult as JSON text, plain (`{"pk": ..., "result": "{...}"}`) or typed as DynamoDB JSON
  (`{"result": {"S": "{...}"}}`), also wrapped in `{"Item": ...}` as a DynamoDB export to S3 writes it;
- a line of a drill's `events.jsonl` (`{"t", "kind", "data"}`): a `vote` event (`VoteEvent`) carries
  its round's results; `run_started` gives the drill's zero; other kinds are passed over.
A file that is one JSON document instead (`aws dynamodb scan` output, `{"Items": [...]}`, or a list)
is read too. Nothing here touches AWS; the table is read by the CLI through the results store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quorum_dr.config import describe_errors
from quorum_dr.config_types import clean_text
from quorum_dr.domain.results import ProbeResult, Vote

SCHEDULED_PREFIX = "sched-"  # scheduled rounds' ids (quorum_dr.probes.event); on-demand rounds: the caller's


class VoteEvent(BaseModel):
    """The data of a drill's `vote` event: one region's vote on one site in one round, with the
    round's evidence. The drill writes it (`quorum_dr_local.drill.observe.ResultWatcher`) and
    `drctl replay` reads it: one model for both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str
    site: str
    vote: Literal["up", "down", "abstain"]
    round: Literal["scheduled", "on-demand"]
    results: list[ProbeResult] = Field(
        default_factory=list,
        description="the site's results of the round and the region's self-check results of the round, "
        "as the results table holds them (URLs already redacted); empty in drills recorded before replay",
    )

    @classmethod
    def of_round(cls, site_results: list[ProbeResult], control: Iterable[ProbeResult] = ()) -> VoteEvent:
        """The event of one (region, site, round): abstain when the region failed its self-check,
        down when a voting check failed, else up."""
        first = site_results[0]
        if any(r.abstaining for r in site_results):
            vote: Literal["up", "down", "abstain"] = "abstain"
        elif any(r.counts and r.vote is Vote.DOWN for r in site_results):
            vote = "down"
        else:
            vote = "up"
        kind: Literal["scheduled", "on-demand"] = (
            "scheduled" if first.round_id.startswith(SCHEDULED_PREFIX) else "on-demand"
        )
        return cls(
            region=first.region, site=first.site, vote=vote, round=kind, results=[*site_results, *control]
        )


class RecordingError(Exception):
    """The recording cannot be read; the message is one line naming the file and the line."""


@dataclass
class Recording:
    results: list[ProbeResult]
    source: str  # what the input was, in a few words
    origin: float | None = None  # the drill's zero (run_started), when the input is a drill's events
    notes: list[str] = field(default_factory=list)


def _name(path: Path) -> str:
    return clean_text(str(path))[:200]


def _problem(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "not a probe result: " + "; ".join(describe_errors(error))[:300]
    return clean_text(str(error))[:300]


class _Reader:
    def __init__(self) -> None:
        self.results: list[ProbeResult] = []
        self.kinds: set[str] = set()
        self.origin: float | None = None
        self.votes = 0

    def record(self, value: Any) -> None:
        """One record: a ProbeResult, a results-table item, or a drill event."""
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        if "kind" in value and "t" in value:
            self._event(value)
        elif "Item" in value and isinstance(value["Item"], dict):
            self.record(value["Item"])
        elif "result" in value:
            stored = value["result"]
            if isinstance(stored, dict) and isinstance(stored.get("S"), str):
                stored = stored["S"]
            if not isinstance(stored, str):
                raise ValueError("a results-table item's `result` must be the ProbeResult as JSON text")
            self.kinds.add("results-table items")
            self.results.append(ProbeResult.model_validate_json(stored))
        else:
            self.kinds.add("probe results")
            self.results.append(ProbeResult.model_validate(value))

    def _event(self, value: dict[str, Any]) -> None:
        self.kinds.add("a drill's events")
        if value["kind"] == "run_started" and self.origin is None:
            self.origin = float(value["t"])
        elif value["kind"] == "vote":
            self.votes += 1
            self.results.extend(VoteEvent.model_validate(value.get("data") or {}).results)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def read_recording(path: Path) -> Recording:
    """Every probe result the file holds, deduplicated (a drill's vote events of one round each
    carry the region's self-check results), or RecordingError naming the line."""
    name = _name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordingError(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{name}: cannot be read ({clean_text(str(exc))[:160]})") from None
    reader = _Reader()
    lines = list(_lines(text))
    if not lines:
        raise RecordingError(f"{name}: the file is empty")
    document = _whole_document(lines)
    if document is not None:
        for index, item in enumerate(document, start=1):
            try:
                reader.record(item)
            except (ValueError, ValidationError) as exc:
                raise RecordingError(f"{name}: item {index}: {_problem(exc)}") from None
    else:
        for number, line in lines:
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise RecordingError(f"{name} line {number}: not JSON ({_problem(exc)})") from None
            try:
                reader.record(value)
            except (ValueError, ValidationError) as exc:
                raise RecordingError(f"{name} line {number}: {_problem(exc)}") from None
    if reader.votes and not reader.results:
        raise RecordingError(
            f"{name}: its {reader.votes} vote events carry no results (a drill recorded before `drctl "
            "replay` existed): nothing to replay; run the drill again"
        )
    results = _unique(reader.results)
    missing = sum(1 for r in results if r.received_at is None)
    if missing:
        raise RecordingError(
            f"{name}: {missing} of {len(results)} results have no received_at; the quorum judges "
            "freshness by receive time, so they cannot be replayed (export the results table's items)"
        )
    return Recording(results, " and ".join(sorted(reader.kinds)), reader.origin)


def _whole_document(lines: list[tuple[int, str]]) -> list[Any] | None:
    """The items of a file that is one JSON document (a scan's `{"Items": [...]}` or a list), or
    None when it is JSON lines (its first line is JSON on its own)."""
    try:
        json.loads(lines[0][1])
        return None
    except ValueError:
        pass
    try:
        document = json.loads("\n".join(line for _, line in lines))
    except ValueError:
        return None  # the first line's error is the one to report
    if isinstance(document, dict) and isinstance(document.get("Items"), list):
        return list(document["Items"])
    if isinstance(document, list):
        return document
    return [document]


def _unique(results: Iterable[ProbeResult]) -> list[ProbeResult]:
    seen: dict[tuple[str, str, str, str, str], ProbeResult] = {}
    for result in results:
        seen.setdefault((result.service, result.region, result.round_id, result.site, result.check), result)
    return list(seen.values())
