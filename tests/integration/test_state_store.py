"""The state table's incident record and its version check, against DynamoDB in moto: what is
stored keeps its exact shape through `IncidentRecord`, and a stale write is the port's StaleState,
which the incident step turns into the TransientError the state machine retries."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from quorum_dr.adapters.dynamodb_state import INCIDENT, DynamoStateStore, from_dynamo
from quorum_dr.failover import holding
from quorum_dr.failover.errors import TransientError
from quorum_dr.failover.ports import Ports
from quorum_dr.ports import StaleState
from tests.fakes import make_config

REGION = "eu-west-2"
TABLE = "quorum-dr-state"

# One update per step, with the fields and values the steps really write (a hot failover that
# waited for an approval, then was reset), in the order they write them.
STEPS: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
    (
        {
            "service": "booking",
            "trigger": "auto",
            "target": None,
            "reason": None,
            "requested_by": None,
            "dry_run": False,
            "allow_data_loss": False,
            "detected_at": 1000.25,
            "started_at": 1001,
            "status": "OPEN",
        },
        {"at": 1001.5, "step": "gates", "reason": "gates pass: automation enabled, no cooldown"},
    ),
    ({}, {"at": 1002, "step": "confirm_round", "reason": "round 1: main is DOWN", "round_id": "r-1"}),
    (
        {"scenario": {"scenario": "hot", "target": "dr", "reason": "main is DOWN and dr is UP"}},
        {"at": 1003, "step": "scenario", "reason": "main is DOWN and dr is UP"},
    ),
    (
        {"task_token": "token-1", "awaiting": "approval_request"},
        {"at": 1004, "step": "notify", "reason": "x"},
    ),
    ({"task_token": None, "awaiting": None}, {"at": 1005, "step": "operator_approve", "reason": "ok"}),
    (
        {"data_loss": {"lost_bytes": 0, "reason": "no data lost"}},
        {"at": 1006, "step": "replica", "reason": "ok"},
    ),
    ({"fence": {"hook": {"ok": True}}}, None),
    ({"promoted_at": 1007.125, "promotion": {"writable": True, "lsn": "0/3000060"}}, None),
    ({"writable_verified_at": 1008}, None),
    ({"switched_to": "dr", "switched_at": 1009.5, "switch": {"verified_read_back": True}}, None),
    ({"verified_at": 1010}, {"at": 1010, "step": "verify", "reason": "dr answers"}),
    (
        {
            "outcome": "failed_over",
            "decided_at": 1003,
            "detection_seconds": 2.75,
            "rto_seconds": 9.75,
            "data_loss_reason": "no data lost",
            "allow_data_loss_used": False,
            "backup_age_seconds": None,
            "status": "FAILED_OVER",
            "finished_at": 1011,
        },
        {"at": 1011, "step": "recorded", "reason": "failover of booking to dr done"},
    ),
    ({"status": "RESET"}, {"at": 1012, "step": "reset", "reason": "ops reset booking"}),
]


@pytest.fixture
def store(moto_state_store: DynamoStateStore) -> DynamoStateStore:
    return moto_state_store


def stored(incident_id: str) -> dict[str, Any]:
    """The raw item, as DynamoDB holds it (no model in between)."""
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    item = table.get_item(Key={"pk": "booking", "sk": INCIDENT + incident_id})["Item"]
    return dict(from_dynamo(item))


def test_an_incident_record_reads_back_as_stored_field_for_field(store: DynamoStateStore) -> None:
    for fields, timeline in STEPS:
        store.update_incident("booking", "inc-1", fields, timeline=timeline)

    raw = stored("inc-1")
    record = store.get_incident("booking", "inc-1")

    assert record is not None
    assert record.as_item() == {k: v for k, v in raw.items() if k not in ("pk", "sk")}
    assert record.switched_to == "dr" and record.status == "RESET" and record.task_token is None
    assert [e.step for e in record.timeline][:2] == ["gates", "confirm_round"]
    assert record.timeline[1].model_extra == {"round_id": "r-1"}
    assert type(record.started_at) is int, "an integral number stays an int, as stored"
    assert [i.incident_id for i in store.list_incidents("booking")] == ["inc-1"]


@pytest.mark.parametrize("page_size", [None, 2])
def test_incidents_are_listed_newest_first_by_when_they_started_not_by_id(
    store: DynamoStateStore, page_size: int | None
) -> None:
    """Ids do not sort by time: a switchover's id sorts after every automatic failover's, so an id
    order would show last month's switchover above tonight's failover."""
    records = {
        "switchover-booking-20261101T100000Z-aaaaaa": {"started_at": 1_793_527_200},
        "auto-1796270496-a7f31b85": {"started_at": 1_796_270_496, "detected_at": 1_796_270_490},
        "rejoin-booking-main-2026-11-20": {"started_at": 1_795_132_800},
        "manual-20261203-0400": {"detected_at": 1_796_270_800},  # no started_at yet: when detected
        "inc-without-moments": {},
    }
    for incident_id, fields in records.items():
        store.update_incident("booking", incident_id, fields, timeline=None)

    listed = store.list_incidents("booking", limit=3, page_size=page_size)
    assert [i.incident_id for i in listed] == [
        "manual-20261203-0400",
        "auto-1796270496-a7f31b85",
        "rejoin-booking-main-2026-11-20",
    ]
    assert listed[1].detected_at == 1_796_270_490, "the newest are read whole"
    everything = store.list_incidents("booking", limit=10, page_size=page_size)
    assert [i.incident_id for i in everything][-2:] == [
        "switchover-booking-20261101T100000Z-aaaaaa",
        "inc-without-moments",
    ]
    assert store.list_incidents("booking", limit=0) == []


def test_a_record_with_only_what_an_early_step_wrote_loads_with_defaults(store: DynamoStateStore) -> None:
    store.update_incident("booking", "inc-2", {}, timeline=None)

    record = store.get_incident("booking", "inc-2")

    assert record is not None and record.incident_id == "inc-2" and record.timeline == []
    assert record.status is None and record.dry_run is False and record.promoted_at is None
    assert record.as_item() == {"incident_id": "inc-2", "timeline": []}


def test_a_field_an_older_version_stored_is_kept_on_read(store: DynamoStateStore) -> None:
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    table.put_item(Item={"pk": "booking", "sk": INCIDENT + "inc-old", "incident_id": "inc-old", "note": "x"})

    record = store.get_incident("booking", "inc-old")

    assert record is not None and record.as_item() == {"incident_id": "inc-old", "note": "x"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"swtiched_to": "dr"}, "swtiched_to"),
        ({"timeline": []}, "timeline"),
        ({"status": "DONE"}, "status"),
        ({"promoted_at": "soon"}, "promoted_at"),
    ],
)
def test_an_update_with_an_unknown_field_or_a_wrong_type_writes_nothing(
    store: DynamoStateStore, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.update_incident("booking", "inc-3", fields, timeline={"at": 1, "step": "x", "reason": "y"})

    assert store.get_incident("booking", "inc-3") is None


def test_a_stale_state_write_is_the_ports_error(store: DynamoStateStore) -> None:
    state = store.get_state("booking")
    store.put_state({**state, "status": "CONFIRMING"}, expected_version=0)

    with pytest.raises(StaleState, match="changed since version 0"):
        store.put_state({**state, "status": "FAILING_OVER"}, expected_version=0)

    assert store.get_state("booking")["status"] == "CONFIRMING"


class RacingStore(DynamoStateStore):
    """Another writer bumps the version between this step's read and its write."""

    def get_state(self, service: str) -> dict[str, Any]:
        state = super().get_state(service)
        super().put_state({**state, "service": service}, expected_version=state.get("version", 0))
        return state


def test_the_incident_step_turns_a_stale_write_into_a_retried_transient_error(
    store: DynamoStateStore,
) -> None:
    racing = RacingStore(TABLE, resource=boto3.resource("dynamodb", region_name=REGION))
    ports = Ports(config=make_config(), store=racing, clock=lambda: 1000.0)

    with pytest.raises(TransientError, match="changed since version"):
        holding.write_state(ports, "booking", status="FAILING_OVER")


def test_an_item_seen_before_its_first_update_landed_still_reads_as_that_incident(
    store: DynamoStateStore,
) -> None:
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    table.put_item(Item={"pk": "booking", "sk": INCIDENT + "inc-new"})

    record = store.get_incident("booking", "inc-new")

    assert record is not None and record.incident_id == "inc-new" and record.task_token is None
