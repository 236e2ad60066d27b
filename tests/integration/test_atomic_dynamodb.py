"""moto's conditional writes race between threads; `atomic_writes()` makes them atomic.

The race is made certain, not hoped for: every condition evaluation sleeps after it has read the
current item, so without the lock both writers see "no item" before either writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from quorum_dr.adapters.tables import create_table
from quorum_dr_local.standins import atomic_dynamodb

REGION = "eu-west-2"
TABLE = "quorum-dr-state"
WRITERS = 4


@pytest.fixture
def slow_conditions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Widen moto's check-then-write window: each condition sleeps after evaluating."""
    from moto.dynamodb.models import table as moto_table

    original = moto_table.get_filter_expression

    class Slow:
        def __init__(self, op: Any) -> None:
            self.op = op

        def expr(self, item: Any) -> Any:
            answer = self.op.expr(item)
            time.sleep(0.2)
            return answer

    monkeypatch.setattr(moto_table, "get_filter_expression", lambda *a, **k: Slow(original(*a, **k)))
    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
        yield


def race_for_the_lock(atomic: bool) -> list[str]:
    """WRITERS threads put the same LOCK item with `attribute_not_exists(pk)`; who succeeded."""
    client = boto3.client("dynamodb", region_name=REGION)
    start = threading.Barrier(WRITERS)
    winners: list[str] = []
    errors: list[BaseException] = []

    def write(name: str) -> None:
        start.wait(timeout=10)
        try:
            client.put_item(
                TableName=TABLE,
                Item={"pk": {"S": "booking"}, "sk": {"S": "LOCK"}, "holder": {"S": name}},
                ConditionExpression="attribute_not_exists(pk)",
            )
            winners.append(name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                errors.append(exc)

    with atomic_dynamodb.atomic_writes() if atomic else nullcontext():
        threads = [threading.Thread(target=write, args=(f"exec-{n}",)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    return winners


def test_without_the_lock_moto_lets_every_conditional_writer_win(slow_conditions: None) -> None:
    # What the harness must not rely on: this is moto's behaviour, not DynamoDB's.
    assert len(race_for_the_lock(atomic=False)) == WRITERS


def test_with_atomic_writes_exactly_one_conditional_writer_wins(slow_conditions: None) -> None:
    winners = race_for_the_lock(atomic=True)
    assert len(winners) == 1
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=TABLE, Key={"pk": {"S": "booking"}, "sk": {"S": "LOCK"}}
    )["Item"]
    assert item["holder"]["S"] == winners[0]


def test_installs_nest_and_the_last_uninstall_restores_moto() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.put_item
    with atomic_dynamodb.atomic_writes():
        with atomic_dynamodb.atomic_writes():
            assert DynamoDBBackend.put_item is not original
        assert atomic_dynamodb.installed() and DynamoDBBackend.put_item is not original
    assert not atomic_dynamodb.installed() and DynamoDBBackend.put_item is original


def test_reads_hand_back_copies_made_under_the_lock() -> None:
    """moto turns the item it returns into the response after the backend call, outside the lock:
    returning its live item let a concurrent write change the dict under that iteration (CI:
    "dictionary changed size during iteration"). Under atomic_writes() a read is a copy."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    with mock_aws(), atomic_dynamodb.atomic_writes():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, TABLE)
        key = {"pk": {"S": "booking"}, "sk": {"S": "STATE"}}
        client.put_item(TableName=TABLE, Item={**key, "version": {"N": "1"}})
        backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
        from moto.dynamodb.models.dynamo_type import DynamoType

        stored = backend.get_table(TABLE).get_item(DynamoType(key["pk"]), DynamoType(key["sk"]))
        assert stored is not None
        got = backend.get_item(TABLE, key)
        scanned = backend.scan(TABLE, {}, 10, None, None, {}, {}, None, False, None, (None, None))[0][0]
        for read in (got, scanned):
            assert read is not None and read is not stored and read.attrs == stored.attrs
        client.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="SET added = :a",
            ExpressionAttributeValues={":a": {"S": "x"}},
        )
        assert got is not None and "added" not in got.attrs  # a copy: the later write did not reach it
