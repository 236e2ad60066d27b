"""Fakes of the ports (one per port) and of the probe's clock and check runners: small, thread-safe
where the failover needs it, and they remember every call."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from copy import deepcopy
from typing import Any

import yaml

from quorum_dr.agent.contract import DatabaseRole, Operation, OperationAnswer, SiteStatus, Upstream
from quorum_dr.config import WatchdogConfig, parse_config
from quorum_dr.domain.cold_report import ColdBootstrapReport, RestoreLine
from quorum_dr.domain.edge import EdgeUnavailableError
from quorum_dr.domain.results import DbRole, DbStatus, FailureClass, ProbeResult, Vote, format_lsn
from quorum_dr.failover.errors import SwitchFailed
from quorum_dr.ports import (
    ColdSiteLauncher,
    DatabaseUnreachableError,
    EdgeSwitch,
    EventPublisher,
    FenceReceipt,
    HookRunner,
    Notifier,
    ProbeInvoker,
    Promoter,
    PromotionError,
    PromotionReceipt,
    ResultStore,
    SiteAgent,
    SiteAgentError,
    SiteAgentUnreachable,
    SwitchVerifier,
    SyncDigester,
    WritableCheck,
)
from quorum_dr.probes.outcome import CheckOutcome
from tests.conftest import ROOT

REGIONS = ["eu-west-2", "us-east-1", "us-west-2"]


def make_config(**failover: Any) -> WatchdogConfig:
    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["probe"]["down_after_rounds"] = 1
    data["confirmation"] = {"max_rounds": 2, "wait_seconds": 1}
    service = data["services"][0]
    service["failover"].update({"veto_seconds": 1, "approval_timeout_seconds": 1, **failover})
    service["cold_site"]["ready_timeout_seconds"] = 30
    return parse_config(deepcopy(data))


def switchover_config(**failover: Any) -> WatchdogConfig:
    """make_config with a site agent on main's and dr's database hosts."""
    data = make_config(**failover).model_dump(mode="json", by_alias=True, exclude_none=True)
    for site, address in (("main", "203.0.113.10"), ("dr", "198.51.100.20")):
        data["services"][0]["sites"][site]["agent"] = {
            "url": f"https://{address}:8443",
            "signing_secret": f"quorum-dr/booking/{site}-agent-key",
        }
    return parse_config(data)


def cold_bootstrap_report(
    backup_age_seconds: float = 420, *, service: str = "booking", instance: str = "i-0123", now: float = 0.0
) -> ColdBootstrapReport:
    """What cold_site/bootstrap.sh sends with SendTaskSuccess, built from its contract."""
    restored_at = now or 1_800_000_000.0
    key = "postgres/20270115T030000Z-main.dump"
    return ColdBootstrapReport(
        ready=True,
        service=service,
        instance=instance,
        restore=RestoreLine(
            bucket="booking-backups",
            key=key,
            source="main",
            taken_at=restored_at - backup_age_seconds,
            lsn="0/3000060",
            restored_at=restored_at,
            backup_age_seconds=backup_age_seconds,
            target="booking on the cold site",
            reason=f"restored s3://booking-backups/{key} (taken {backup_age_seconds:.0f} s earlier)",
        ),
    )


class FakeResults(ResultStore):
    """The results table in memory. With a clock, `put_results` stamps `received_at` as the real
    store does; without one, results are kept as given (callers set `received_at` themselves)."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock
        self.items: list[ProbeResult] = []
        self._lock = threading.Lock()

    def put_results(self, results: Iterable[ProbeResult]) -> list[ProbeResult]:
        clock = self.clock
        stored = [r.model_copy(update={"received_at": clock()}) for r in results] if clock else list(results)
        with self._lock:
            self.items.extend(stored)
        return stored

    def recent_results(self, service: str, since: float) -> list[ProbeResult]:
        with self._lock:
            return [r for r in self.items if r.service == service and (r.received_at or 0) >= since]

    def home_time(self) -> float:
        return self.clock() if self.clock else super().home_time()


class FakeBus(EventPublisher):
    """The event bus in memory: every (detail type, detail) published, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        self.events.append((detail_type, dict(detail)))


class Clock:
    """A wall clock that moves only when a test sets `now`."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class SteppingClock:
    """Wall-clock time that a step's sleep moves forward (a bounded wait ends without waiting)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Endpoints:
    """Fake check runners: every check is UP unless its (site-less) name is in `down`."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.control_down = False

    async def run(self, check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:
        if check.name == "control" and self.control_down:
            return CheckOutcome.down(FailureClass.CONNECT_TIMEOUT, 1, "control unreachable")
        if check.name in self.down:
            return CheckOutcome.down(FailureClass.HTTP_STATUS, 1, f"HTTP 500 from {check.name}, expected 200")
        return CheckOutcome.up(1, "fine")


def probe_config() -> WatchdogConfig:
    """The example config with one TCP control target, for the probe service."""
    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["probe"]["control_target"] = {
        "checks": [{"name": "control", "type": "tcp", "host": "c.test", "port": 1}]
    }
    return parse_config(data)


class FakeProbes(ProbeInvoker):
    """Each round, every region reports each site as the script says ("up" / "down"; "silent":
    no result at all, so the quorum cannot tell). `before_round`, when set, is called with the
    round's index first (a test's way to change the world between rounds)."""

    def __init__(self, results: FakeResults, clock: Callable[[], float], sites: dict[str, str]) -> None:
        self.results, self.clock, self.sites = results, clock, dict(sites)
        self.rounds: list[str] = []
        self.before_round: Callable[[int], None] | None = None

    def run_round(
        self,
        *,
        service: str,
        round_id: str,
        incident_id: str,
        sites: list[str],
        settled: Callable[[frozenset[str]], str | None] | None = None,
    ) -> dict[str, str]:
        if self.before_round:
            self.before_round(len(self.rounds))
        self.rounds.append(round_id)
        now = self.clock()
        batch = []
        for region in REGIONS:
            for site in sites:
                if self.sites.get(site, "up") == "silent":
                    continue
                vote = Vote(self.sites.get(site, "up"))
                batch.append(
                    ProbeResult(
                        service=service,
                        site=site,
                        check="https-health",
                        check_type="http",
                        region=region,
                        round_id=round_id,
                        vote=vote,
                        latency_ms=1.0,
                        probe_time=now,
                        received_at=now,
                        failure_class="connect_timeout" if vote is Vote.DOWN else None,
                    )
                )
        self.results.put_results(batch)
        return {region: "invoked" for region in REGIONS}


class FakePromoter(Promoter):
    def __init__(
        self, *, lag_bytes: int | None = 0, known: bool = True, fail: bool = False, writable: bool = True
    ) -> None:
        self.lag_bytes, self.known, self.fail, self.writable = lag_bytes, known, fail, writable
        # The standby heard from main this long ago (None: unknown), when main's WAL ended where
        # the standby's received position is: the data-loss receipt's "heard from main" bound.
        self.heard_age: float | None = 1.0
        self.replay_seconds = 99.0  # replay lag in seconds while bytes are behind
        self.promotions: list[str] = []
        self.fenced: list[str] = []
        # What fencing main answers (an exception is raised): unreachable by default, as main is down.
        self.fence: FenceReceipt | BaseException = FenceReceipt(
            reachable=False,
            fenced=False,
            address="main-db:5432/booking",
            failure_class="connect_refused",
            reason="main's database at main-db:5432/booking is unreachable (connect_refused: Connection "
            "refused): it takes no writes from here, nothing to fence",
        )
        self.final_reached = True  # the standby reaches main's final position after the fence
        self.waited_for: list[str] = []
        self.in_recovery = True
        self._lock = threading.Lock()

    def _status(self) -> DbStatus:
        if not self.known:
            raise DatabaseUnreachableError("DR database at dr-db:5432 not reachable (connect_timeout)")
        return DbStatus(
            role=DbRole.STANDBY,
            receive_lsn="0/5000000",
            replay_lsn="0/5000000",
            replay_lag_bytes=self.lag_bytes,
            replay_lag_seconds=0.0 if self.lag_bytes == 0 else self.replay_seconds,
            streaming=False,
            last_msg_age_seconds=self.heard_age,
            latest_end_lsn="0/5000000",
        )

    def replica_status(self) -> DbStatus:
        return self._status()

    def wait_for_replay(self, timeout_s: float) -> DbStatus:
        return self._status()

    def promote(self, incident_id: str) -> PromotionReceipt:
        if self.fail:
            raise PromotionError("pg_promote failed: the standby is not in recovery")
        with self._lock:
            already = not self.in_recovery
            if not already:
                self.in_recovery = False
                self.promotions.append(incident_id)
        return PromotionReceipt(
            incident_id=incident_id,
            promoted=not already,
            already=already,
            writable=True,
            at=0.0,
            reason="already promoted" if already else f"promoted the DR standby for {incident_id}",
        )

    def verify_writable(self) -> WritableCheck:
        ok = self.writable and not self.in_recovery
        return WritableCheck(writable=ok, reason="a test write committed" if ok else "read-only")

    def wait_for_position(self, lsn: str, timeout_s: float) -> DbStatus:
        self.waited_for.append(lsn)
        status = self._status()
        if self.final_reached:
            return status.model_copy(update={"receive_lsn": lsn, "replay_lsn": lsn, "replay_lag_bytes": 0})
        return status

    def fence_old_primary(self, incident_id: str) -> FenceReceipt:
        self.fenced.append(incident_id)
        if isinstance(self.fence, BaseException):
            raise self.fence
        return self.fence


class FakeEdge(EdgeSwitch):
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.unreachable: str | None = None  # reading the edge raises EdgeUnavailableError with this
        self.site = "main"
        self.writes: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def switch_to(self, site: str, *, incident_id: str, dry_run: bool) -> dict[str, Any]:
        if dry_run:
            return {
                "changed": False,
                "writes": 0,
                "verified_read_back": False,
                "reason": f"dry run: would point app.example.com at {site}",
            }
        if self.fail:
            raise SwitchFailed("Cloudflare API answered 403: the token may not edit this zone")
        with self._lock:
            if self.site == site:
                return {
                    "changed": False,
                    "writes": 0,
                    "verified_read_back": True,
                    "reason": f"already on {site}",
                }
            self.site = site
            self.writes.append((incident_id, site))
        return {
            "changed": True,
            "writes": 1,
            "verified_read_back": True,
            "reason": f"app.example.com now points at {site} (read back)",
        }

    def current_site(self) -> str | None:
        if self.unreachable:
            raise EdgeUnavailableError(self.unreachable)
        return self.site


class FakeNotifier(Notifier):
    """Remembers what was sent; with `deliver = False` every channel fails (reported, not raised,
    as OperatorNotifier does)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.deliver = True

    def notify(self, subject: str, message: str, *, incident_id: str, detail: Any) -> dict[str, Any]:
        if not self.deliver:
            return {"delivered": 0, "reason": "NOT delivered on any of 1 channel(s): SNS down"}
        self.sent.append((incident_id, subject, message))
        return {"delivered": 1, "channels": [], "reason": "delivered on 1 of 1 channel(s)"}


class FakeHooks(HookRunner):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def run(self, hook: str, *, incident_id: str, payload: Any) -> dict[str, Any]:
        self.calls.append((hook, incident_id))
        return {"hook": hook, "called": True}


class FakeLauncher(ColdSiteLauncher):
    def __init__(self, on_launch: Callable[[str | None], None] | None = None) -> None:
        self.launches: list[str] = []
        self.on_launch = on_launch

    def launch(self, *, incident_id: str, task_token: str | None, dry_run: bool) -> dict[str, Any]:
        if dry_run:
            return {"reason": "dry run: would run an instance from the cold AMI (ClientToken = incident id)"}
        self.launches.append(incident_id)
        if self.on_launch:
            self.on_launch(task_token)
        return {"instance_id": "i-0123", "reason": f"launched i-0123 with ClientToken {incident_id}"}


class FakeVerifier(SwitchVerifier):
    def __init__(self, edge: FakeEdge) -> None:
        self.edge = edge
        self.checks: list[str] = []

    def verify(
        self, *, service: str, expect_site: str, incident_id: str, origin_only: bool
    ) -> dict[str, Any]:
        self.checks.append(expect_site)
        seen = expect_site if origin_only else self.edge.site
        ok = seen == expect_site
        return {"verified": ok, "reason": f"3 of 3 regions saw the {seen} marker (expected {expect_site})"}


# ---------------------------------------------------------------------------------------------
# The planned switchover: two sites' PostgreSQL behind their agents, and the sync check
# ---------------------------------------------------------------------------------------------

CHECKPOINT_RECORD_BYTES = 0x28  # a shutdown checkpoint record: what a standby replays past its start


class FakeSiteDatabase:
    """One site's PostgreSQL as its agent reports it (the contract's SiteStatus)."""

    def __init__(self, role: DatabaseRole, *, address: str, position: int, timeline: int = 1) -> None:
        self.role, self.address, self.timeline = role, address, timeline
        self.running = True
        self.frozen = False
        self.position = position  # primary: current; standby: received (and replayed unless `lag`)
        self.replay_lag = 0  # standby: bytes received and not replayed
        self.following: str | None = None
        self.streaming = role is DatabaseRole.STANDBY
        self.checkpoint: int | None = None
        self.clean: bool | None = None
        self.was: DatabaseRole = role

    def status(self) -> SiteStatus:
        if not self.running:
            return SiteStatus(
                role=DatabaseRole.STOPPED,
                running=False,
                timeline=self.timeline,
                checkpoint_lsn=format_lsn(self.checkpoint) if self.checkpoint is not None else None,
                shutdown_clean=self.clean,
                reason=f"stopped ({'shut down' if self.clean else 'in production'})",
            )
        if self.role is DatabaseRole.PRIMARY:
            return SiteStatus(
                role=DatabaseRole.PRIMARY,
                running=True,
                timeline=self.timeline,
                current_lsn=format_lsn(self.position),
                frozen=self.frozen,
                reason=f"primary at {format_lsn(self.position)}" + (", frozen" if self.frozen else ""),
            )
        return SiteStatus(
            role=DatabaseRole.STANDBY,
            running=True,
            timeline=self.timeline,
            receive_lsn=format_lsn(self.position),
            replay_lsn=format_lsn(self.position - self.replay_lag),
            lag_bytes=self.replay_lag,
            following=self.following,
            streaming=self.streaming,
            frozen=self.frozen,
            reason=f"standby of {self.following}, received {format_lsn(self.position)}",
        )


class FakeDatabases:
    """main (primary) and dr (a streaming standby of it), each behind a FakeSiteAgent.

    Operations act as the site agent's do: idempotent under their operation id (a repeated id gets
    the stored answer back, `replayed`), refused (SiteAgentError) when the state is wrong. What a
    test may change: `ships` (a clean stop's final position reaches the standby), `clean` (the stop
    is clean), `fail` ({(site, operation): exception or reason}: the operation raises it, or answers
    not ok), `unreachable` (sites whose agent does not answer)."""

    def __init__(self) -> None:
        self.sites = {
            # the addresses of the example config's database endpoints
            "main": FakeSiteDatabase(DatabaseRole.PRIMARY, address="203.0.113.10:5432", position=0x5000000),
            "dr": FakeSiteDatabase(DatabaseRole.STANDBY, address="198.51.100.20:5432", position=0x5000000),
        }
        self.sites["dr"].following = "203.0.113.10:5432"
        self.ships = True
        self.clean = True
        self.fail: dict[tuple[str, Operation], BaseException | str] = {}
        self.unreachable: set[str] = set()
        self.operations: list[tuple[str, str, str]] = []  # (site, operation, operation id), acted on
        self.calls: list[tuple[str, str]] = []  # (site, operation or "status"), every request
        self._answers: dict[str, OperationAnswer] = {}
        self._lock = threading.Lock()

    def agent(self, site: str) -> FakeSiteAgent:
        return FakeSiteAgent(self, site)

    def write(self, site: str, size: int = 0x100) -> None:
        """A committed write on `site` (a primary); its standbys receive it unless their link is cut."""
        database = self.sites[site]
        assert database.role is DatabaseRole.PRIMARY and database.running and not database.frozen
        database.position += size
        for other in self.sites.values():
            if (
                other is not database
                and other.role is DatabaseRole.STANDBY
                and other.running
                and other.streaming
            ):
                other.position = database.position

    def idle_wal(self, site: str, size: int = 0x40) -> None:
        """WAL that is no write (a standby snapshot, a checkpoint): a frozen primary writes it too."""
        database = self.sites[site]
        database.position += size
        for standby in self._standbys_of(site):
            if standby.running and standby.streaming:
                standby.position = database.position

    def status(self, site: str) -> SiteStatus:
        with self._lock:
            self.calls.append((site, "status"))
            if site in self.unreachable:
                raise SiteAgentUnreachable(f"{site}'s agent at {site}-agent:8443: connection refused")
            return self.sites[site].status()

    def run(
        self, site: str, operation: Operation, operation_id: str, primary: Upstream | None
    ) -> OperationAnswer:
        with self._lock:
            self.calls.append((site, operation.value))
            if site in self.unreachable:
                raise SiteAgentUnreachable(f"{site}'s agent at {site}-agent:8443: connection refused")
            if operation_id in self._answers:
                return self._answers[operation_id].model_copy(update={"replayed": True})
            failure = self.fail.get((site, operation))
            if isinstance(failure, BaseException):
                raise failure
            if isinstance(failure, str):
                return OperationAnswer(
                    ok=False,
                    operation=operation,
                    operation_id=operation_id,
                    reason=failure,
                    status=self.sites[site].status(),
                )
            reason = self._act(site, operation, primary)
            self.operations.append((site, operation.value, operation_id))
            answer = OperationAnswer(
                ok=True,
                operation=operation,
                operation_id=operation_id,
                reason=reason,
                status=self.sites[site].status(),
            )
            self._answers[operation_id] = answer
            return answer

    def _standbys_of(self, site: str) -> list[FakeSiteDatabase]:
        address = self.sites[site].address
        return [d for d in self.sites.values() if d.role is DatabaseRole.STANDBY and d.following == address]

    def _act(self, site: str, operation: Operation, primary: Upstream | None) -> str:
        act = getattr(self, f"_{operation.value}", None)
        if act is None:
            raise SiteAgentError(f"the fake does not do {operation.value}")
        return str(act(site, self.sites[site], primary))

    def _freeze(self, site: str, database: FakeSiteDatabase, _primary: Upstream | None) -> str:
        database.frozen = True
        for standby in self._standbys_of(site):  # role attributes are in the shared catalog
            standby.frozen = True
        return f"froze {site}: the application roles may not log in, 2 sessions ended"

    def _unfreeze(self, site: str, database: FakeSiteDatabase, _primary: Upstream | None) -> str:
        if not database.running:
            raise SiteAgentError(f"{site} is not running: nothing to unfreeze")
        database.frozen = False
        for standby in self._standbys_of(site):
            standby.frozen = False
        return f"unfroze {site}: the application roles may log in"

    def _stop(self, site: str, database: FakeSiteDatabase, _primary: Upstream | None) -> str:
        if not database.running:
            return f"{site} was already stopped"
        database.running, database.was, database.clean = False, database.role, self.clean
        database.checkpoint = database.position
        if database.role is DatabaseRole.PRIMARY and self.ships and self.clean:
            for standby in self._standbys_of(site):
                standby.position = database.position + CHECKPOINT_RECORD_BYTES
        return f"stopped {site} (fast)"

    def _start(self, site: str, database: FakeSiteDatabase, _primary: Upstream | None) -> str:
        if database.running:
            return f"{site} was already running"
        database.running, database.role = True, database.was
        if database.checkpoint is not None:
            database.position = database.checkpoint + CHECKPOINT_RECORD_BYTES
        if database.role is DatabaseRole.PRIMARY and self.ships:  # its standbys stream again
            for standby in self._standbys_of(site):
                standby.position = database.position
        return f"started {site} as {database.role.value}"

    def _promote(self, site: str, database: FakeSiteDatabase, _primary: Upstream | None) -> str:
        if database.role is DatabaseRole.PRIMARY:
            return f"{site} was already a primary"
        if not database.running or database.role is not DatabaseRole.STANDBY:
            raise SiteAgentError(f"{site} is not a running standby: cannot promote")
        database.role, database.timeline = DatabaseRole.PRIMARY, database.timeline + 1
        database.following, database.streaming = None, False
        database.position -= database.replay_lag
        database.replay_lag = 0
        return f"promoted {site} to a primary on timeline {database.timeline}"

    def _follow(self, site: str, database: FakeSiteDatabase, primary: Upstream | None) -> str:
        assert primary is not None
        if database.running:
            raise SiteAgentError(f"{site} is running: stop it before it follows {primary.address()}")
        new = next(d for d in self.sites.values() if d.address == primary.address())
        database.running, database.role = True, DatabaseRole.STANDBY
        database.following, database.streaming = primary.address(), True
        database.timeline, database.position, database.frozen = new.timeline, new.position, new.frozen
        return f"{site} follows {primary.address()} as a standby"


class FakeSiteAgent(SiteAgent):
    def __init__(self, databases: FakeDatabases, site: str) -> None:
        self.databases, self.site = databases, site

    def status(self) -> SiteStatus:
        return self.databases.status(self.site)

    def run(
        self, operation: Operation, operation_id: str, primary: Upstream | None = None
    ) -> OperationAnswer:
        return self.databases.run(self.site, operation, operation_id, primary)


class FakeSync(SyncDigester):
    """Row counts and a hash per table, per site; `tables[site]` is what that site holds. Each digest
    is taken at the site's position (a primary's current, a standby's replayed); `judge` compares
    as the real check does: both at the final position, then each table."""

    def __init__(self, databases: FakeDatabases) -> None:
        self.databases = databases
        self.tables: dict[str, dict[str, list[str]]] = {
            site: {"public.orders": ["o1", "o2", "o3"], "public.customers": ["c1"]} for site in ("main", "dr")
        }
        self.digests: list[str] = []
        self.before_digest: Callable[[str], None] | None = None  # a test's way to move a site

    def settle(self, site: str) -> str:
        status = self.databases.sites[site].status()
        return str(status.current_lsn or status.replay_lsn)

    def digest(self, site: str) -> dict[str, Any]:
        if self.before_digest is not None:
            self.before_digest(site)
        self.digests.append(site)
        status = self.databases.sites[site].status()
        return {
            "site": site,
            "role": status.role.value,
            "position": status.current_lsn or status.replay_lsn,
            "tables": [
                {
                    "name": name,
                    "rows": len(rows),
                    "digest": hashlib.sha256("|".join(rows).encode()).hexdigest(),
                }
                for name, rows in sorted(self.tables[site].items())
            ],
        }

    def judge(
        self, active: Mapping[str, Any], target: Mapping[str, Any], final_position: str
    ) -> dict[str, Any]:
        a, t = active["site"], target["site"]
        if active["position"] != final_position:
            return {"in_sync": False, "code": "active_moved", "reason": f"inconclusive: {a} moved"}
        if target["position"] != final_position:
            return {
                "in_sync": False,
                "code": "not_replayed",
                "reason": f"{t} is at {target['position']}, not {a}'s final position {final_position}",
            }
        theirs = {table["name"]: table for table in target["tables"]}
        for table in active["tables"]:
            other = theirs.get(table["name"])
            if other is None or other["rows"] != table["rows"]:
                rows = other["rows"] if other else "no"
                return {
                    "in_sync": False,
                    "code": "rows_differ",
                    "reason": f"table {table['name']} has {table['rows']} rows on {a} but {rows} on {t}",
                }
            if other["digest"] != table["digest"]:
                return {
                    "in_sync": False,
                    "code": "hash_differs",
                    "reason": f"table {table['name']} has {table['rows']} rows on both sites but its ordered "
                    "hash differs",
                }
        return {
            "in_sync": True,
            "code": "in_sync",
            "reason": f"in sync: {t} replayed {a}'s final position {final_position}; "
            f"{len(active['tables'])} tables agree (row counts and ordered hashes)",
        }
