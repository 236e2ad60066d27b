"""The results table (DynamoDB) behind the ResultStore port.

Item layout (shared convention): pk = service,
sk = f"{received_at:017.6f}#{site}#{check}#{region}#{round_id}", `result` = the ProbeResult as
JSON, `expires_at` = received_at + TTL (epoch int, the table's TTL attribute), plus a few plain
attributes for people reading the table in the console.

`received_at` is the home region's time, never a probe region's clock (DESIGN; domain/results.py).
A store in the home region (the failover functions) stamps with its own clock. A probe function
writes straight into the home table from its own region, so there is no home-side hop to stamp
for it; with `home_clock=True` the store stamps with `HomeRegionClock`: its clock plus the offset
to the HTTP `Date` of the table's DynamoDB responses. The Date comes from the service that takes
the write, in the home region, on AWS's clock, so a probe region whose clock runs 60 s ahead or
behind still stamps home time. Why this and not the alternatives:
- the Date of the write's own response comes too late (the item is written by then) and
  rewriting every item doubles the writes; DynamoDB has no server-side timestamp;
- the round's reads (its previous results, `recent_results`) come back first with a Date, so the
  offset is known before the write; a store that has not talked to the table yet, or whose
  measurement is older than `HomeRegionClock.max_age_seconds`, first makes one cheap Query
  (a key no result uses, Limit 1) to measure it.
Date has whole seconds and is set before the answer travels back, so the measured offset errs
low by up to 1 s plus the response's travel: a result looks up to about a second older than it
is, never fresher (a stale result must not look fresh). The store keeps the largest (tightest)
offset of its recent measurements. Two rounds less than a second apart could get stamps in the
wrong order (each errs low by a different part of a second), so a stamp is never below the
latest `received_at` the store has read or written plus 1 ms: that result was received before
now, so the stamp stays at or below the true home time and the rounds keep their order.
Without a Date header (a stand-in that sends none) it stamps with its own clock and says so in
`source`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from email.utils import parsedate_to_datetime
from typing import Any

from boto3.dynamodb.conditions import Key

from quorum_dr.adapters.aws_sdk import sdk_config
from quorum_dr.domain.results import ProbeResult
from quorum_dr.ports import ResultStore

CLOCK_PK = "_clock"  # no result is stored under this key: a Query on it only measures the clock


class HomeRegionClock:
    """This process's clock corrected to the home region's, from the HTTP `Date` of its responses."""

    max_age_seconds = 60.0

    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self.local = local
        self._measured: list[tuple[float, float]] = []  # (local time of the answer, offset)

    def observe(self, date_header: str | None, local_at: float | None = None) -> float | None:
        """Record one response's `Date` (RFC 7231) received at `local_at`; return its offset."""
        if not date_header:
            return None
        try:
            home = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError):
            return None
        at = self.local() if local_at is None else local_at
        offset = home - at
        self._measured = [m for m in self._measured if at - m[0] <= self.max_age_seconds] + [(at, offset)]
        return offset

    def offset(self) -> float | None:
        """The tightest offset measured within `max_age_seconds`, or None."""
        now = self.local()
        recent = [o for at, o in self._measured if 0 <= now - at <= self.max_age_seconds]
        return max(recent) if recent else None

    def now(self) -> float | None:
        offset = self.offset()
        return None if offset is None else self.local() + offset


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
        home_clock: bool = False,
    ) -> None:
        """`table` is a boto3 DynamoDB Table resource (`boto3.resource("dynamodb").Table(name)`).
        `home_clock`: this store runs outside the home region (a probe): stamp home time (above)."""
        self.table = table
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.home: HomeRegionClock | None = None
        self._latest_seen: float | None = None  # the latest received_at read or written
        self.source = "this process's clock (the home region)"
        if home_clock:
            self.home = HomeRegionClock(clock)
            table.meta.client.meta.events.register("after-call.dynamodb", self._after_call)

    @classmethod
    def from_name(
        cls,
        name: str,
        *,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
        region: str | None = None,
        home_clock: bool = False,
    ) -> DynamoDbResultStore:
        import boto3

        table = boto3.resource("dynamodb", region_name=region, config=sdk_config()).Table(name)
        return cls(table, ttl_seconds=ttl_seconds, clock=clock, home_clock=home_clock)

    def _after_call(self, http_response: Any = None, **_: Any) -> None:
        if self.home is not None and http_response is not None:
            self.home.observe(http_response.headers.get("date"))

    def home_time(self) -> float:
        """The home region's time now: this process's clock in the home region; outside it, that
        clock plus the offset to the table's `Date` (measured first when none is recent)."""
        if self.home is None:
            return self.clock()
        now = self.home.now()
        if now is None:
            self.table.query(KeyConditionExpression=Key("pk").eq(CLOCK_PK), Limit=1)
            now = self.home.now()
        if now is None:
            self.source = "this region's own clock: the results table sent no Date header"
            return self.clock()
        self.source = f"the results table's Date header (offset {self.home.offset():+.1f} s to this clock)"
        return now

    def put_results(self, results: Iterable[ProbeResult]) -> list[ProbeResult]:
        received_at = self.home_time()
        if self.home is not None and self._latest_seen is not None:
            received_at = max(received_at, self._latest_seen + 0.001)  # after what is already stored
        self._latest_seen = max(received_at, self._latest_seen or received_at)
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
        return self._query(Key("pk").eq(service) & Key("sk").gte(f"{since:017.6f}"))

    def results_between(self, service: str, since: float, until: float) -> list[ProbeResult]:
        """Every result of `service` received from `since` to `until` (epoch seconds, both included):
        what `drctl replay --table` reads."""
        # "~" sorts after the "#" that ends a sort key's time: a result received at `until` is in
        return self._query(Key("pk").eq(service) & Key("sk").between(f"{since:017.6f}", f"{until:017.6f}~"))

    def _query(self, condition: Any) -> list[ProbeResult]:
        query: dict[str, Any] = {
            "KeyConditionExpression": condition,
            "ProjectionExpression": "#r",
            "ExpressionAttributeNames": {"#r": "result"},
        }
        results: list[ProbeResult] = []
        for _ in range(10_000):  # bounded paging: 1 MB a page
            page = self.table.query(**query)
            results.extend(ProbeResult.model_validate_json(item["result"]) for item in page["Items"])
            seen = [r.received_at for r in results if r.received_at is not None]
            if seen:
                self._latest_seen = max([*seen, self._latest_seen or seen[0]])
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return results
