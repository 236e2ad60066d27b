"""Fakes of the ports (one per port) and of the probe's clock and check runners: small, thread-safe
where the failover needs it, and they remember every call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from copy import deepcopy
from typing import Any

import yaml

from quorum_dr.config import WatchdogConfig, parse_config
from quorum_dr.domain.cold_report import ColdBootstrapReport, RestoreLine
from quorum_dr.domain.results import DbRole, DbStatus, FailureClass, ProbeResult, Vote
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
    SwitchVerifier,
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
