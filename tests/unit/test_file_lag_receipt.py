"""The file lag at promotion: the receipt's fields and sentence (domain/file_lag.py), the replica
check that records it beside the database's loss receipt without ever being gated by it, the
incident's closing sentence, and what `drctl history` shows of it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from quorum_dr.config import FileSync, WatchdogConfig, parse_config
from quorum_dr.domain.file_lag import file_lag_receipt
from quorum_dr.domain.history import detail, file_lag, row
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr.domain.readiness import FileSyncFacts
from quorum_dr.failover import incident as incident_step
from quorum_dr.failover import replica
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.request import start_incident
from quorum_dr.ports import MarkerReader, StateStore
from tests.fakes import FakePromoter, FakeResults, make_config

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00Z
URL = "https://dr.example.com/.sync-marker?token=***"


def facts(written_at: float | None = None, error: str | None = None) -> FileSyncFacts:
    return FileSyncFacts(url=URL, written_at=written_at, error=error)


# -- the receipt --------------------------------------------------------------------------------


def test_a_marker_read_gives_the_lag_and_the_marker_time() -> None:
    receipt = file_lag_receipt(facts(NOW - 42), now=NOW, max_lag_seconds=300)

    assert (receipt.lag_seconds, receipt.marker_written_at, receipt.over_limit) == (42.0, NOW - 42, False)
    assert receipt.unknown_because is None and receipt.read_at == NOW
    assert receipt.reason == (
        f"file lag at promotion 42 s: the newest file-sync marker DR serves ({URL}) was written by main "
        "at 2027-01-15 07:59:18Z"
    )


def test_a_lag_over_the_limit_says_which_files_may_be_missing() -> None:
    receipt = file_lag_receipt(facts(NOW - 900), now=NOW, max_lag_seconds=300)

    assert receipt.lag_seconds == 900.0 and receipt.over_limit is True
    assert receipt.reason.endswith(
        "; over the limit 300 s: files main wrote after it may be missing at DR"
    ), receipt.reason


def test_an_unreadable_marker_is_file_lag_unknown_with_the_reason() -> None:
    receipt = file_lag_receipt(facts(error="HTTP 404"), now=NOW, max_lag_seconds=300)

    assert receipt.lag_seconds is None and receipt.marker_written_at is None
    assert receipt.reason == f"file lag unknown: cannot read the file-sync marker at {URL}: HTTP 404"
    assert receipt.unknown_because == f"cannot read the file-sync marker at {URL}: HTTP 404"


def test_a_marker_from_the_future_is_a_clock_problem_not_a_lag() -> None:
    far = file_lag_receipt(facts(NOW + 600), now=NOW, max_lag_seconds=300)
    near = file_lag_receipt(facts(NOW + 5), now=NOW, max_lag_seconds=300)

    assert far.lag_seconds is None and far.marker_written_at == NOW + 600
    assert far.reason.startswith("file lag unknown: the file-sync marker DR serves")
    assert "600 s in this clock's future: main's clock and the home region's disagree" in far.reason
    assert near.lag_seconds == 0.0, "a few seconds of clock difference read as no lag"


# -- the replica check --------------------------------------------------------------------------


class Incidents(StateStore):
    """The incident records in memory (all the replica and record steps write)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def get_incident(self, service: str, incident_id: str) -> IncidentRecord | None:
        item = self.items.get(incident_id)
        return IncidentRecord.model_validate(copy.deepcopy(item)) if item else None

    def update_incident(
        self, service: str, incident_id: str, fields: Mapping[str, Any], *, timeline: Mapping[str, Any] | None
    ) -> IncidentRecord:
        IncidentRecord.check_update(incident_id, dict(fields))
        item = self.items.setdefault(incident_id, {"incident_id": incident_id, "timeline": []})
        item.update(copy.deepcopy(dict(fields)))
        if timeline:
            item["timeline"].append(dict(timeline))
        return IncidentRecord.model_validate(copy.deepcopy(item))

    def _unused(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the replica check and the record step touch only the incident")

    get_state = put_state = get_lock = acquire_lock = release_lock = keep_lock = _unused
    reset_state = list_incidents = _unused


class Markers(MarkerReader):
    def __init__(self, answer: FileSyncFacts | BaseException) -> None:
        self.answer, self.read_for = answer, []

    def read(self, sync: FileSync) -> FileSyncFacts:
        self.read_for.append(str(sync.url))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def with_file_sync() -> WatchdogConfig:
    data = make_config().model_dump(mode="json", by_alias=True, exclude_none=True)
    data["services"][0]["file_sync"] = {"url": "https://dr.example.com/.sync-marker?token=s3cr3t"}
    return parse_config(data)


def ports(config: WatchdogConfig, markers: Markers | None = None, **promoter: Any) -> Ports:
    built = Ports(
        config=config,
        store=Incidents(),
        results=lambda: FakeResults(),
        promoter=lambda s: FakePromoter(**promoter),
        clock=lambda: NOW,
    )
    if markers is not None:
        built.markers = lambda: markers
    return built


INCIDENT = start_incident(
    {"service": "booking", "to": "dr", "reason": "London is dark", "requested_by": "alice"},
    execution_name="inc-1",
    started_at=None,
    config=make_config(),
    now=NOW - 30,
)


def check(p: Ports) -> tuple[dict[str, Any], IncidentRecord]:
    answer = replica.check(p, INCIDENT)
    record = p.store.get_incident("booking", "inc-1")
    assert record is not None
    return answer, record


def test_the_replica_check_records_the_file_lag_beside_the_database_receipt() -> None:
    markers = Markers(facts(NOW - 42))
    answer, record = check(ports(with_file_sync(), markers))
    without, _ = check(ports(make_config()))

    assert markers.read_for == ["https://dr.example.com/.sync-marker?token=s3cr3t"]
    assert answer["file_lag"]["lag_seconds"] == 42.0
    assert answer["file_lag"]["reason"].startswith("file lag at promotion 42 s: ")
    assert answer["data_loss"] == without["data_loss"], "the database's receipt is as it was"
    assert (answer["proceed"], answer["code"], answer["reason"]) == (
        without["proceed"],
        without["code"],
        without["reason"],
    ), "the file lag decides nothing"
    assert record.file_lag == answer["file_lag"] and record.data_loss == answer["data_loss"]
    assert record.timeline[-1].reason == f"{answer['reason']}; {answer['file_lag']['reason']}"


def test_without_file_sync_the_receipt_says_nothing_new() -> None:
    answer, record = check(ports(make_config()))

    assert "file_lag" not in answer and record.file_lag is None
    assert "file lag" not in record.timeline[-1].reason


@pytest.mark.parametrize(
    ("markers", "why"),
    [
        (
            Markers(facts(error="ConnectionError: connection refused")),
            ": ConnectionError: connection refused",
        ),
        (Markers(RuntimeError("the reader broke")), ": RuntimeError: the reader broke"),
        (None, ": PortNotWired: no adapter is wired for the MarkerReader port in this deployment"),
    ],
    ids=["unreachable", "reader_raises", "not_wired"],
)
def test_an_unknown_file_lag_is_recorded_and_never_stops_the_check(markers: Markers | None, why: str) -> None:
    answer, record = check(ports(with_file_sync(), markers))

    assert answer["proceed"] is True and answer["code"] == "ok", answer["reason"]
    assert answer["file_lag"]["lag_seconds"] is None
    assert answer["file_lag"]["reason"].startswith("file lag unknown: cannot read the file-sync marker at ")
    assert answer["file_lag"]["reason"].endswith(why)
    assert "s3cr3t" not in str(answer) and "s3cr3t" not in record.model_dump_json()
    assert record.file_lag == answer["file_lag"]


def test_a_refused_promotion_still_records_the_file_lag() -> None:
    answer, record = check(ports(with_file_sync(), Markers(facts(NOW - 42)), known=False))

    assert answer["proceed"] is False
    assert record.file_lag is not None and record.file_lag["lag_seconds"] == 42.0


# -- the incident's record and drctl history -----------------------------------------------------


def recorded(p: Ports, replica_answer: dict[str, Any]) -> IncidentRecord:
    scenario = {"scenario": "hot", "target": "dr", "at": NOW - 20}
    incident_step.record(p, INCIDENT, scenario, {"scenario": scenario, "replica": replica_answer})
    record = p.store.get_incident("booking", "inc-1")
    assert record is not None
    return record


def test_the_incident_record_says_the_file_lag_beside_the_data_loss() -> None:
    p = ports(with_file_sync(), Markers(facts(NOW - 42)))
    record = recorded(p, replica.check(p, INCIDENT))

    assert record.file_lag is not None and record.file_lag["lag_seconds"] == 42.0
    loss = record.data_loss_reason or ""
    assert loss.startswith("data loss") and "file lag" not in loss, "the database's sentence stays its own"
    assert record.timeline[-1].reason.endswith(f"; {loss}; {record.file_lag['reason']}")
    assert row(record)["file_lag"] == "42.0 s"
    assert f"\n  file lag  {record.file_lag['reason']}\n" in detail(record)


def test_without_file_sync_the_incident_record_and_history_say_nothing_new() -> None:
    p = ports(make_config())
    record = recorded(p, replica.check(p, INCIDENT))

    assert record.file_lag is None
    assert "file lag" not in record.timeline[-1].reason
    assert row(record)["file_lag"] == "-" and "file lag  " not in detail(record)


@pytest.mark.parametrize(
    ("receipt", "said"),
    [
        (None, "-"),
        ({"lag_seconds": 42.0, "reason": "file lag at promotion 42 s"}, "42.0 s"),
        ({"lag_seconds": 900.0, "over_limit": True, "reason": "..."}, "900.0 s (over the limit)"),
        ({"lag_seconds": None, "reason": "file lag unknown: HTTP 404"}, "unknown"),
    ],
)
def test_the_file_lag_in_a_few_words(receipt: dict[str, Any] | None, said: str) -> None:
    record = IncidentRecord.model_validate({"incident_id": "inc-1", "file_lag": receipt})
    assert file_lag(record) == said
