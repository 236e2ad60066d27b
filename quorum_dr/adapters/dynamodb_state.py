"""The state table in DynamoDB: service state (sk STATE, versioned), the incident lock (sk LOCK,
conditional writes) and incident records (sk INCIDENT#<id>, with an appended timeline), all under
pk = the service; and the last readiness evaluation of each service under pk READINESS#<service>
(sk READINESS): a partition of its own, so the readiness function's role may write it and nothing
else (an IAM condition on `dynamodb:LeadingKeys`, stacks/readiness_function.py).

The lock item is the same one the state machine's `AcquireIncidentLock` step writes directly:
`incident_id`, `holder` (the execution's name), `acquired_at`, `lock_expires_at`, `kept`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

from quorum_dr.adapters.aws_sdk import sdk_config
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr.domain.readiness import ReadinessRecord
from quorum_dr.domain.standby_health import STANDBY_SK, StandbyRecord
from quorum_dr.domain.state import ServiceState
from quorum_dr.observability import logger
from quorum_dr.ports import ReadinessStore, StaleState, StandbyWatch, StateStore

STATE = "STATE"
LOCK = "LOCK"
# Mode shadow's own lock (the ASL's AcquireShadowLock): one shadow execution per service at a
# time, so an outage gives one shadow decision; it never blocks a real start, which takes LOCK.
SHADOW_LOCK = "SHADOW_LOCK"
INCIDENT = "INCIDENT#"
READINESS = "READINESS"
READINESS_PK_PREFIX = "READINESS#"
STATE_FIELDS = (
    "service",
    "active_site",
    "status",
    "automation_enabled",
    "lock_holder",
    "lock_expires_at",
    "cooldown_until",
    "failover_day",
    "failovers_today",
    "last_failover_at",
    "last_reset",
    "automation_changed",
    "counted_incident",
    "version",
)


def to_dynamo(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str), parse_float=Decimal)


def from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


def _conditional_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoStateStore(StateStore, ReadinessStore):
    def __init__(self, table_name: str, *, resource: Any = None) -> None:
        self._table = (resource or boto3.resource("dynamodb", config=sdk_config())).Table(table_name)

    def _get(self, service: str, sk: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": service, "sk": sk}, ConsistentRead=True).get("Item")
        return from_dynamo(item) if item else None

    # -- state ----------------------------------------------------------------------------------

    def get_state(self, service: str) -> dict[str, Any]:
        item = self._get(service, STATE) or {"service": service}
        return {k: v for k, v in item.items() if k in STATE_FIELDS}

    def put_state(self, state: Mapping[str, Any], *, expected_version: int) -> dict[str, Any]:
        new = {k: v for k, v in state.items() if k in STATE_FIELDS}
        new["version"] = expected_version + 1
        try:
            self._table.put_item(
                Item=to_dynamo({"pk": new["service"], "sk": STATE, **new}),
                ConditionExpression="attribute_not_exists(pk) OR version = :v",
                ExpressionAttributeValues={":v": expected_version},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                raise StaleState(
                    f"the state of {new['service']} changed since version {expected_version} was read"
                ) from None
            raise
        return new

    # -- lock -----------------------------------------------------------------------------------
    # The holder is the execution's own name ($$.Execution.Name in the ASL), never a field of the
    # input: a caller can choose an incident id, not another execution's name. Every write that
    # assumes the lock is ours says so in its ConditionExpression.

    def get_lock(self, service: str) -> dict[str, Any] | None:
        return self._get(service, LOCK)

    def acquire_lock(
        self, service: str, incident_id: str, *, holder: str, now: float, expires_at: float
    ) -> bool:
        try:
            self._table.put_item(
                Item=to_dynamo(
                    {
                        "pk": service,
                        "sk": LOCK,
                        "incident_id": incident_id,
                        "holder": holder,
                        "acquired_at": int(now),
                        "lock_expires_at": int(expires_at),
                        "kept": False,
                    }
                ),
                ConditionExpression="attribute_not_exists(pk) OR holder = :me "
                "OR (lock_expires_at < :now AND kept = :false)",
                ExpressionAttributeValues={":me": holder, ":now": int(now), ":false": False},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def release_lock(self, service: str, holder: str, *, shadow: bool = False) -> bool:
        return self._conditional(
            lambda: self._table.delete_item(
                Key={"pk": service, "sk": SHADOW_LOCK if shadow else LOCK},
                ConditionExpression="holder = :me AND kept = :false",
                ExpressionAttributeValues={":me": holder, ":false": False},
            ),
            lost="lock not released: not held by this execution",
            service=service,
            holder=holder,
        )

    def hold_shadow_lock(self, service: str, holder: str, *, until: float) -> bool:
        return self._conditional(
            lambda: self._table.update_item(
                Key={"pk": service, "sk": SHADOW_LOCK},
                UpdateExpression="SET lock_expires_at = :until",
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": holder, ":until": int(until)},
            ),
            lost="shadow lock not held: not held by this execution",
            service=service,
            holder=holder,
        )

    def keep_lock(self, service: str, incident_id: str, *, holder: str) -> bool:
        # Kept only if it is still ours (or gone): never over another execution's lock.
        item = {
            "pk": service,
            "sk": LOCK,
            "incident_id": incident_id,
            "holder": holder,
            "kept": True,
            "lock_expires_at": 2**53,
        }
        return self._conditional(
            lambda: self._table.put_item(
                Item=to_dynamo(item),
                ConditionExpression="attribute_not_exists(pk) OR holder = :me",
                ExpressionAttributeValues={":me": holder},
            ),
            lost="lock not kept: another execution holds it",
            service=service,
            holder=holder,
        )

    def _conditional(self, write: Callable[[], Any], *, lost: str, service: str, holder: str) -> bool:
        """Make a lock write whose condition is on the holder: False, logged with the lock as it is,
        when the condition failed (someone else holds it); any other error is raised."""
        try:
            write()
        except ClientError as exc:
            if _conditional_failed(exc):
                lock = self.get_lock(service)
                logger.warning(lost, extra={"service": service, "holder": holder, "lock": lock})
                return False
            raise
        return True

    def reset_state(
        self,
        state: Mapping[str, Any],
        *,
        expected_version: int,
        lock: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        new = {k: v for k, v in state.items() if k in STATE_FIELDS}
        new["version"] = expected_version + 1
        service = new["service"]
        client = self._table.meta.client
        put = {
            "Put": {
                "TableName": self._table.name,
                "Item": to_dynamo({"pk": service, "sk": STATE, **new}),
                "ConditionExpression": "attribute_not_exists(pk) OR version = :v",
                "ExpressionAttributeValues": {":v": expected_version},
            }
        }
        if lock is None:
            guard = {
                "ConditionCheck": {
                    "TableName": self._table.name,
                    "Key": {"pk": service, "sk": LOCK},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        elif lock.get("holder"):
            guard = {
                "Delete": {
                    "TableName": self._table.name,
                    "Key": {"pk": service, "sk": LOCK},
                    "ConditionExpression": "holder = :h",
                    "ExpressionAttributeValues": {":h": lock["holder"]},
                }
            }
        else:  # a lock written before holders existed: its incident id is all it has
            guard = {
                "Delete": {
                    "TableName": self._table.name,
                    "Key": {"pk": service, "sk": LOCK},
                    "ConditionExpression": "attribute_not_exists(holder) AND incident_id = :i",
                    "ExpressionAttributeValues": {":i": lock.get("incident_id")},
                }
            }
        try:
            client.transact_write_items(TransactItems=[put, guard])
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            failed = [r.get("Code") == "ConditionalCheckFailed" for r in reasons]
            if failed and failed[0]:
                raise StaleState(
                    f"the state of {service} changed since version {expected_version} was read"
                ) from None
            raise StaleState(f"the lock of {service} changed since it was read") from None
        return new

    # -- readiness ------------------------------------------------------------------------------

    def get_readiness(self, service: str) -> ReadinessRecord | None:
        item = self._get(READINESS_PK_PREFIX + service, READINESS)
        if not item:
            return None
        return ReadinessRecord.model_validate({k: v for k, v in item.items() if k not in ("pk", "sk")})

    def put_readiness(self, record: ReadinessRecord) -> None:
        key = {"pk": READINESS_PK_PREFIX + record.service, "sk": READINESS}
        self._table.put_item(Item=to_dynamo({**key, **record.model_dump(mode="json")}))

    # -- incidents ------------------------------------------------------------------------------

    def get_incident(self, service: str, incident_id: str) -> IncidentRecord | None:
        item = self._get(service, INCIDENT + incident_id)
        return _incident(item) if item else None

    def update_incident(
        self, service: str, incident_id: str, fields: Mapping[str, Any], *, timeline: Mapping[str, Any] | None
    ) -> IncidentRecord:
        IncidentRecord.check_update(incident_id, dict(fields))
        names: dict[str, str] = {"#tl": "timeline"}
        values: dict[str, Any] = {":empty": [], ":entry": [dict(timeline)] if timeline else []}
        sets = ["#tl = list_append(if_not_exists(#tl, :empty), :entry)"]
        for index, (key, value) in enumerate({"incident_id": incident_id, **fields}.items()):
            names[f"#f{index}"] = key
            values[f":f{index}"] = value
            sets.append(f"#f{index} = :f{index}")
        item = self._table.update_item(
            Key={"pk": service, "sk": INCIDENT + incident_id},
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_dynamo(values),
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return _incident(from_dynamo(item))

    def list_incidents(
        self, service: str, limit: int = 20, *, page_size: int | None = None
    ) -> list[IncidentRecord]:
        """The newest `limit` records by when they started. Their ids do not sort by time (`auto-`,
        `manual-`, `switchover-`, `rejoin-` ...), so every record's key and moments are read (a
        projection, page by page: DynamoDB's 1 MB pages, or `page_size` items), sorted, and only
        the newest are read whole."""
        from boto3.dynamodb.conditions import Key

        moments = ("started_at", "detected_at", "finished_at")
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(service) & Key("sk").begins_with(INCIDENT),
            "ProjectionExpression": ", ".join(f"#{m}" for m in ("sk", *moments)),
            "ExpressionAttributeNames": {f"#{m}": m for m in ("sk", *moments)},
        }
        if page_size is not None:
            query["Limit"] = page_size
        keys: list[tuple[float, str]] = []
        while True:
            page = self._table.query(**query)
            for item in page.get("Items", []):
                when = next((float(item[m]) for m in moments if item.get(m) is not None), 0.0)
                keys.append((when, str(item["sk"])))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        keys.sort(reverse=True)
        records = (self._get(service, sk) for _, sk in keys[: max(0, limit)])
        return [_incident(item) for item in records if item]


def _incident(item: Mapping[str, Any]) -> IncidentRecord:
    """The record without the table's keys (pk is the service, sk INCIDENT#<id>). The id comes
    from the key when the item has no attribute yet (moto shows an item between its creation and
    the update's SET; DynamoDB itself never does)."""
    fields = {k: v for k, v in item.items() if k not in ("pk", "sk")}
    fields.setdefault("incident_id", str(item["sk"]).removeprefix(INCIDENT))
    return IncidentRecord.model_validate(fields)


# -- the standby watch (the probe function's small view of the state table) ----------------------

STANDBY = STANDBY_SK  # its attributes: STANDBY_ATTRIBUTES, which the probe's IAM statement names


class DynamoStandbyWatch(StandbyWatch):
    """Reads the service state and the standby record (GetItem), claims a change (UpdateItem with
    a condition on `standby_version`): of two regions that see the same change, one writes it and
    says it, the other's write fails its condition and it says nothing."""

    def __init__(self, table_name: str, *, resource: Any = None, region: str | None = None) -> None:
        resource = resource or boto3.resource("dynamodb", region_name=region, config=sdk_config())
        self._table = resource.Table(table_name)

    def _get(self, service: str, sk: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": service, "sk": sk}, ConsistentRead=True).get("Item")
        return from_dynamo(item) if item else None

    def service_state(self, service: str) -> ServiceState:
        item = self._get(service, STATE) or {}
        return ServiceState.model_validate(
            {**{k: v for k, v in item.items() if k in STATE_FIELDS}, "service": service}
        )

    def standby_record(self, service: str) -> tuple[StandbyRecord | None, int]:
        item = self._get(service, STANDBY)
        if not item or "standby_record" not in item:
            return None, int((item or {}).get("standby_version", 0))
        return StandbyRecord.model_validate_json(item["standby_record"]), int(item["standby_version"])

    def claim_standby_change(self, service: str, record: StandbyRecord, *, expected_version: int) -> bool:
        condition = (
            "attribute_not_exists(standby_version)" if expected_version == 0 else "standby_version = :v"
        )
        values: dict[str, Any] = {":r": record.model_dump_json(), ":n": expected_version + 1}
        if expected_version:
            values[":v"] = expected_version
        try:
            self._table.update_item(
                Key={"pk": service, "sk": STANDBY},
                UpdateExpression="SET standby_record = :r, standby_version = :n",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="NONE",
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True
