"""The results table (DynamoDB) behind the ResultStore port.

Item layout (shared convention): pk = service,
sk = f"{received_at:017.6f}#{site}#{check}#{region}#{round_id}", `result` = the ProbeResult as
JSON, `expires_at` = received_at + TTL (epoch int, the table's TTL attribute), plus a few plain
attributes for people reading the table in the console. The writer stamps `received_at` from its
own clock: decisions never trust a probe region's clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from boto3.dynamodb.conditions import Key

from quorum_dr.adapters.aws_sdk import sdk_config
from quorum_dr.domain.results import ProbeResult
from quorum_dr.ports import ResultStore


def sort_key(result: ProbeResult) -> str:
    if result.received_at is None:
        raise ValueError("a stored result needs received_at")
    return f"{result.received_at:017.6f}#{result.site}#{result.check}#{result.region}#{result.round_id}"


class DynamoDbResultStore(ResultStore):
    def __init__(
        self,
        table: Any,
        *,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`table` is a boto3 DynamoDB Table resource (`boto3.resource("dynamodb").Table(name)`)."""
        self.table = table
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    @classmethod
    def from_name(
        cls, name: str, *, ttl_seconds: int, clock: Callable[[], float] = time.time, region: str | None = None
    ) -> DynamoDbResultStore:
        import boto3

        table = boto3.resource("dynamodb", region_name=region, config=sdk_config()).Table(name)
        return cls(table, ttl_seconds=ttl_seconds, clock=clock)

    def put_results(self, results: Iterable[ProbeResult]) -> list[ProbeResult]:
        received_at = self.clock()
        stamped = [r.model_copy(update={"received_at": received_at}) for r in results]
        with self.table.batch_writer() as batch:  # 25 items a request, unprocessed items retried
            for result in stamped:
                batch.put_item(Item=self._item(result))
        return stamped

    def _item(self, result: ProbeResult) -> dict[str, Any]:
        assert result.received_at is not None
        return {
            "pk": result.service,
            "sk": sort_key(result),
            "result": result.model_dump_json(),
            "expires_at": int(result.received_at) + self.ttl_seconds,
            "site": result.site,
            "check": result.check,
            "region": result.region,
            "round_id": result.round_id,
            "vote": result.vote.value,
        }

    def recent_results(self, service: str, since: float) -> list[ProbeResult]:
        condition = Key("pk").eq(service) & Key("sk").gte(f"{since:017.6f}")
        query: dict[str, Any] = {
            "KeyConditionExpression": condition,
            "ProjectionExpression": "#r",
            "ExpressionAttributeNames": {"#r": "result"},
        }
        results: list[ProbeResult] = []
        for _ in range(10_000):  # bounded paging: 1 MB a page
            page = self.table.query(**query)
            results.extend(ProbeResult.model_validate_json(item["result"]) for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return results
