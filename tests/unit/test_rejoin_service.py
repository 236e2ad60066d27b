"""The rejoin's steps through its ports (`quorum_dr.failover.rejoin`), with fakes built from the
agent's contract: what runs, in which order, under which operation ids, what is recorded and told,
and that a re-run continues instead of redoing. The real databases: tests/integration/test_rejoin.py."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from quorum_dr.agent.contract import (
    AgentCallError,
    DatabaseRole,
    Operation,
    OperationAnswer,
    SiteStatus,
    Upstream,
)
from quorum_dr.domain.incident_record import IncidentRecord, TimelineEntry
from quorum_dr.failover.rejoin import RejoinPorts, RejoinRequest, RejoinResult, rejoin
from quorum_dr.ports import StateStore
from tests.fakes import FakeNotifier, make_config

NOW = 1_800_000_000.0  # 2027-01-15
RECORD = "rejoin-booking-main-2027-01-15"
SERVICE = make_config().service("booking")
assert SERVICE.database is not None
DR_ADDRESS = f"{SERVICE.database.dr.host}:{SERVICE.database.dr.port}"


class MemoryStore(StateStore):
    """The state table's items in memory (only what a rejoin uses)."""

    def __init__(self, state: Mapping[str, Any], lock: Mapping[str, Any] | None = None) -> None:
        self.state = dict(state)
        self.lock = dict(lock) if lock else None
        self.incidents: dict[str, dict[str, Any]] = {}

    def get_state(self, service: str) -> dict[str, Any]:
        return {"service": service, **copy.deepcopy(self.state)}

    def put_state(self, state: Mapping[str, Any], *, expected_version: int) -> dict[str, Any]:
        raise AssertionError("a rejoin does not write the state item")

    def get_lock(self, service: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.lock)

    def acquire_lock(self, *args: Any, **kwargs: Any) -> bool:
        raise AssertionError("a rejoin takes no lock")

    release_lock = keep_lock = acquire_lock

    def reset_state(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("a rejoin resets nothing")

    def get_incident(self, service: str, incident_id: str) -> IncidentRecord | None:
        item = self.incidents.get(incident_id)
        return IncidentRecord.model_validate(copy.deepcopy(item)) if item else None

    def update_incident(
        self, service: str, incident_id: str, fields: Mapping[str, Any], *, timeline: Mapping[str, Any] | None
    ) -> IncidentRecord:
        IncidentRecord.check_update(incident_id, dict(fields))
        item = self.incidents.setdefault(incident_id, {"incident_id": incident_id, "timeline": []})
        item.update(copy.deepcopy(dict(fields)))
        if timeline:
            item["timeline"].append(dict(timeline))
        return IncidentRecord.model_validate(copy.deepcopy(item))

    def list_incidents(self, service: str, limit: int = 20) -> list[IncidentRecord]:
        return [IncidentRecord.model_validate(i) for i in self.incidents.values()][:limit]


def primary(timeline: int, lsn: str = "0/6000000", frozen: bool = False) -> SiteStatus:
    return SiteStatus(
        role=DatabaseRole.PRIMARY,
        running=True,
        timeline=timeline,
        current_lsn=lsn,
        frozen=frozen,
        reason=f"primary on timeline {timeline} at WAL {lsn}" + (", frozen" if frozen else ""),
    )


def standby(replay: str = "0/6000000") -> SiteStatus:
    return SiteStatus(
        role=DatabaseRole.STANDBY,
        running=True,
        timeline=2,
        receive_lsn=replay,
        replay_lsn=replay,
        lag_bytes=0,
        following=DR_ADDRESS,
        streaming=True,
        reason=f"standby on timeline 2, streaming from {DR_ADDRESS}, replayed up to {replay}",
    )


STOPPED = SiteStatus(role=DatabaseRole.STOPPED, running=False, timeline=1, reason="stopped cleanly")


class FakeAgent:
    """A site agent: `effects[operation](primary)` gives the status after it, or raises; an
    operation id that succeeded answers with its stored answer again (`replayed`), like the agent."""

    def __init__(self, status: SiteStatus, effects: dict[Operation, Callable[[Upstream | None], SiteStatus]]):
        self.current = status
        self.effects = effects
        self.calls: list[str] = []  # the operation ids that acted
        self.stored: dict[str, OperationAnswer] = {}

    def status(self) -> SiteStatus:
        return self.current

    def run(
        self, operation: Operation, operation_id: str, *, primary: Upstream | None = None
    ) -> OperationAnswer:
        if operation_id in self.stored:
            return self.stored[operation_id].model_copy(update={"replayed": True})
        self.current = self.effects[operation](primary)
        self.calls.append(operation_id)
        answer = OperationAnswer(
            ok=True,
            operation=operation,
            operation_id=operation_id,
            reason=f"{operation.value} done: {self.current.reason}",
            status=self.current,
        )
        self.stored[operation_id] = answer
        return answer


def rewind_impossible(agent: FakeAgent) -> Callable[[Upstream | None], SiteStatus]:
    """pg_rewind stopped the cluster and failed: the agent's 500 says a rebuild is needed."""

    def effect(primary: Upstream | None) -> SiteStatus:
        agent.current = STOPPED
        answer = OperationAnswer(
            ok=False,
            operation=Operation.REWIND,
            operation_id="x",
            reason="pg_rewind against the primary failed: target server needs wal_log_hints",
            status=STOPPED,
            rebuild_needed=True,
        )
        raise AgentCallError("the agent answered HTTP 500: pg_rewind ... failed", 500, answer)

    return effect


class Edge:
    def __init__(self, site: str | None) -> None:
        self.site = site

    def describe(self) -> tuple[str | None, str]:
        return self.site, f"app.example.com points at {self.site}"


class Time:
    def __init__(self) -> None:
        self.now = NOW
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class World:
    def __init__(self, main: FakeAgent, *, edge: str | None = "dr", lock: Mapping[str, Any] | None = None):
        self.store = MemoryStore({"active_site": "dr", "status": "FAILED_OVER", "version": 3}, lock)
        self.main = main
        self.dr = FakeAgent(primary(timeline=2), {})
        self.edge = Edge(edge)
        self.notifier = FakeNotifier()
        self.time = Time()
        self.said: list[str] = []

    def rejoin(self, *, allow_rebuild: bool = False, timeout: float = 60) -> RejoinResult:
        ports = RejoinPorts(
            store=self.store,
            agents={"main": self.main, "dr": self.dr}.get,
            edge=self.edge,
            notifier=self.notifier,
            clock=self.time.clock,
            sleep=self.time.sleep,
            progress=self.said.append,
        )
        request = RejoinRequest(
            service="booking",
            site="main",
            allow_rebuild=allow_rebuild,
            timeout_seconds=timeout,
            requested_by="arn:aws:sts::123456789012:assumed-role/Operator/alice",
        )
        return rejoin(SERVICE, request, ports)

    def record(self) -> IncidentRecord:
        record = self.store.get_incident("booking", RECORD)
        assert record is not None
        return record


def steps(timeline: list[TimelineEntry]) -> list[str]:
    return [entry.step for entry in timeline]


def test_an_old_primary_is_frozen_rewound_waited_for_told_once_and_a_rerun_redoes_nothing() -> None:
    main = FakeAgent(
        primary(timeline=1, lsn="0/5000000"),
        {Operation.FREEZE: lambda _: primary(timeline=1, frozen=True), Operation.REWIND: lambda _: standby()},
    )
    world = World(main)

    result = world.rejoin()

    assert result.ok and result.outcome == "rejoined" and result.lag_bytes == 0
    assert result.reason == (
        f"rejoined: main streams from dr ({DR_ADDRESS}) on timeline 2, 0 bytes behind dr's WAL 0/6000000 "
        "(replayed up to 0/6000000): within the limit of 16777216 bytes (database.max_lag_bytes)"
    )
    assert main.calls == [f"{RECORD}:1:freeze", f"{RECORD}:1:rewind"]
    record = world.record()
    assert steps(record.timeline) == [
        "rejoin_plan",
        "rejoin_freeze",
        "rejoin_rewind",
        "rejoin_notify",
        "rejoin_done",
    ]
    assert record.timeline[0].reason.startswith("main is not a standby streaming from dr's database")
    assert (record.status, record.outcome, record.target, record.started_at) == (
        "CLOSED",
        "rejoined",
        "main",
        NOW,
    )
    assert record.rejoin is not None and record.rejoin["finished"] and record.rejoin["notified"]
    assert record.rejoin["plan"] == "rewind" and record.rejoin["upstream"] == DR_ADDRESS
    ((incident, subject, message),) = world.notifier.sent
    assert incident == RECORD
    assert subject == "booking: split brain resolved, main rejoined as a standby of dr"
    assert message.startswith(
        "main's database is a standby streaming from dr, the active site: dr has the only primary of "
        "booking, so any split-brain alert about booking is over."
    )
    assert world.said[:2] == [
        "booking: the state table says the active site is dr (status FAILED_OVER)",
        "the edge: app.example.com points at dr",
    ]
    assert any(line.startswith(f"rewind of main ({RECORD}:1:rewind), done: ") for line in world.said)

    again = world.rejoin()

    assert again.ok and again.outcome == "rejoined"
    assert main.calls == [f"{RECORD}:1:freeze", f"{RECORD}:1:rewind"]  # nothing acted again
    assert len(world.notifier.sent) == 1
    assert "main is already a standby streaming from dr's database" in world.said[-4]
    assert world.record().started_at == NOW and world.record().rejoin["attempt"] == 1  # type: ignore[index]


def test_a_rewind_that_cannot_work_is_refused_without_the_flag_then_rebuilt_without_a_second_rewind() -> None:
    main = FakeAgent(primary(timeline=1, frozen=True), {Operation.REBUILD: lambda _: standby()})
    main.effects[Operation.REWIND] = rewind_impossible(main)
    world = World(main)

    refused = world.rejoin()

    assert not refused.ok and refused.outcome == "refused"
    assert refused.reason == (
        "not rejoined: a rewind cannot make main a standby of dr: pg_rewind against the primary failed: "
        "target server needs wal_log_hints. Only a fresh base backup of dr can (pg_basebackup; main's data "
        "directory is moved aside and kept, never deleted): run it again with --allow-rebuild"
    )
    assert main.calls == [] and world.notifier.sent == []
    record = world.record()
    assert (record.status, record.outcome) == ("OPEN", "refused")
    assert record.rejoin is not None and record.rejoin["rebuild_needed"].startswith("pg_rewind against")

    rebuilt = world.rejoin(allow_rebuild=True)

    assert rebuilt.ok and rebuilt.outcome == "rejoined"
    assert main.calls == [f"{RECORD}:1:rebuild"]  # the same attempt, and no second rewind
    assert world.record().rejoin["plan"] == "rebuild"  # type: ignore[index]
    assert len(world.notifier.sent) == 1


def test_a_standby_that_does_not_catch_up_in_time_ends_not_caught_up_and_a_rerun_keeps_waiting() -> None:
    behind = standby(replay="0/1000000")
    main = FakeAgent(primary(timeline=1, frozen=True), {Operation.REWIND: lambda _: behind})
    world = World(main)
    world.dr.current = primary(timeline=2, lsn="0/3000000")  # 32 MiB ahead: above the 16 MiB limit

    late = world.rejoin(timeout=10)

    assert not late.ok and late.outcome == "not_caught_up"
    assert late.reason.startswith("not rejoined within 10 s: main streams from dr")
    assert "33554432 bytes behind dr's WAL 0/3000000" in late.reason
    assert late.reason.endswith("run drctl rejoin again to keep waiting (it continues, nothing is redone)")
    assert sum(world.time.slept) == pytest.approx(10) and max(world.time.slept) <= 2
    assert world.notifier.sent == [] and world.record().status == "OPEN"

    main.current = standby(replay="0/3000000")
    done = world.rejoin()

    assert done.ok and main.calls == [f"{RECORD}:1:rewind"]
    assert len(world.notifier.sent) == 1


@pytest.mark.parametrize(
    ("edge", "lock", "said"),
    [
        ("main", None, "the edge still serves main"),
        (
            "dr",
            {"incident_id": "inc-9", "holder": "inc-9", "lock_expires_at": NOW + 60, "kept": False},
            "inc-9",
        ),
    ],
    ids=["edge-serves-main", "lock-held"],
)
def test_a_refusal_acts_on_nothing_and_is_recorded(edge: str, lock: dict[str, Any] | None, said: str) -> None:
    main = FakeAgent(primary(timeline=1), {})
    world = World(main, edge=edge, lock=lock)

    result = world.rejoin()

    assert not result.ok and result.outcome == "refused"
    assert result.reason.startswith("not rejoined, nothing changed: ") and said in result.reason
    assert main.calls == [] and world.notifier.sent == [] and main.current == primary(timeline=1)
    record = world.record()
    assert (record.status, record.outcome, steps(record.timeline)) == (
        "CLOSED",
        "refused",
        ["rejoin_plan", "rejoin_refused"],
    )


def test_an_unreadable_agent_refuses_before_anything_is_recorded() -> None:
    class Down(FakeAgent):
        def status(self) -> SiteStatus:
            raise AgentCallError("cannot connect to the agent at http://10.0.1.5:8443: ConnectionError")

    world = World(Down(primary(timeline=1), {}))

    result = world.rejoin()

    assert result.outcome == "refused" and result.reason == (
        "not rejoined, nothing changed: cannot read main's database: cannot connect to the agent at "
        "http://10.0.1.5:8443: ConnectionError"
    )
    assert world.store.incidents == {}
