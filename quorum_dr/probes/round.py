"""One probe round of one region: the self-check first, then every check of every site, concurrently.

The region first checks its control target. If every control check fails, the region cannot tell
"the site is down" from "my own network is down": it abstains. Its results are still produced
and recorded, marked `abstaining`, and are not votes.

Then all checks of the selected sites run concurrently, at most `probe.max_concurrency` at once.
Each check has its own timeout (the check's `timeout_seconds`, else `probe.timeout_seconds`) and a
hard deadline a little above it, so one hung endpoint never holds the round longer than that.

Check runners are looked up by check type ("http", "tcp", "postgres"). A runner is called as
`runner(check, timeout=..., secrets=...)` and returns a `CheckOutcome`, either directly (a blocking
function, run in a worker thread) or as a coroutine. Tests and tools pass their own `runners`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from quorum_dr.config import Check, HttpCheck, PostgresCheck, TcpCheck, WatchdogConfig
from quorum_dr.domain.redact import redact_text
from quorum_dr.domain.results import CONTROL_SITE, FailureClass, ProbeResult, Vote
from quorum_dr.ports import SecretSource
from quorum_dr.probes.http import TlsContexts, check_http
from quorum_dr.probes.outcome import CheckOutcome
from quorum_dr.probes.tcp import check_tcp

# How far past its own timeout a check may run before the round stops waiting for it.
HARD_DEADLINE_GRACE_SECONDS = 0.5

CheckRunner = Callable[..., CheckOutcome | Awaitable[CheckOutcome]]

_FALLBACK_FAILURE = {"http": FailureClass.HTTP_STATUS, "tcp": FailureClass.CONNECT_REFUSED}


@dataclass(frozen=True)
class SiteRoundVerdict:
    """One region's view of one site in one round: any failing voting check makes it DOWN."""

    service: str
    site: str
    vote: Vote
    reason: str
    abstaining: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "site": self.site,
            "vote": self.vote.value,
            "reason": self.reason,
            "abstaining": self.abstaining,
        }


@dataclass(frozen=True)
class RoundReport:
    region: str
    round_id: str
    started_at: float
    finished_at: float
    abstaining: bool
    reason: str
    results: list[ProbeResult] = field(default_factory=list)

    def site_verdicts(self) -> list[SiteRoundVerdict]:
        return site_round_verdicts(self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "round_id": self.round_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "abstaining": self.abstaining,
            "reason": self.reason,
            "results": [r.model_dump(mode="json") for r in self.results],
            "verdicts": [v.as_dict() for v in self.site_verdicts()],
        }


def site_round_verdicts(results: Iterable[ProbeResult]) -> list[SiteRoundVerdict]:
    """Per (service, site) of one round: DOWN if any voting check failed, with the reason."""
    grouped: dict[tuple[str, str], list[ProbeResult]] = {}
    for result in results:
        if result.site != CONTROL_SITE:
            grouped.setdefault((result.service, result.site), []).append(result)
    return [_site_verdict(service, site, rs) for (service, site), rs in grouped.items()]


def _site_verdict(service: str, site: str, results: list[ProbeResult]) -> SiteRoundVerdict:
    abstaining = any(r.abstaining for r in results)
    region = results[0].region
    voting = [r for r in results if r.counts]
    failed = [r for r in voting if r.vote is Vote.DOWN]
    note = f" (not a vote: {region} abstains this round)" if abstaining else ""
    if failed:
        what = "; ".join(f"{r.check} failed ({r.detail})" for r in failed)
        reason = f"{site} is DOWN from {region}: {what}{note}"
        return SiteRoundVerdict(service, site, Vote.DOWN, reason, abstaining)
    if voting:
        reason = f"{site} is UP from {region}: all {len(voting)} voting check(s) passed{note}"
    else:
        reason = f"{site} is UP from {region}: it has no voting check, {len(results)} informational{note}"
    return SiteRoundVerdict(service, site, Vote.UP, reason, abstaining)


# ---------------------------------------------------------------------------------------------
# Running a round
# ---------------------------------------------------------------------------------------------


def run_round(
    config: WatchdogConfig,
    *,
    region: str,
    round_id: str,
    services: Sequence[str] | None = None,
    sites: Sequence[str] | None = None,
    secrets: SecretSource,
    clock: Callable[[], float] = time.time,
    runners: Mapping[str, CheckRunner] | None = None,
    leave_out: Mapping[str, Sequence[str]] | None = None,
) -> RoundReport:
    """Run one round from this process (blocking). See `run_round_async`.

    The event loop is run by hand rather than with `asyncio.run`, which would wait at the end for
    every thread of the loop's default executor: a `getaddrinfo` stuck on an unreachable resolver
    would then hold the round long past its checks' deadlines. Such threads are abandoned here.

    `leave_out`: per service, sites whose checks this round does not run (a scheduled round's cold
    site that is not launched, `domain/cold_probe.py`); they get no result at all, not a DOWN.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(
            run_round_async(
                config,
                region=region,
                round_id=round_id,
                services=services,
                sites=sites,
                secrets=secrets,
                clock=clock,
                runners=runners,
                leave_out=leave_out,
            )
        )
    finally:
        try:
            _cancel_leftover_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()  # shuts the default executor down without waiting for its threads


def _cancel_leftover_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


async def run_round_async(
    config: WatchdogConfig,
    *,
    region: str,
    round_id: str,
    services: Sequence[str] | None = None,
    sites: Sequence[str] | None = None,
    secrets: SecretSource,
    clock: Callable[[], float] = time.time,
    runners: Mapping[str, CheckRunner] | None = None,
    leave_out: Mapping[str, Sequence[str]] | None = None,
) -> RoundReport:
    selected = [config.service(name) for name in services] if services else list(config.services)
    started_at = clock()
    threads = ThreadPoolExecutor(max_workers=min(config.probe.max_concurrency, 32))
    try:
        async with TlsContexts() as contexts:
            run = _Runner(config, region, round_id, secrets, clock, threads, contexts, runners)
            control_checks = list(config.control_target(region).checks)
            control = await asyncio.gather(*(run.one(check) for check in control_checks))
            abstaining, reason = _self_check(region, control_checks, control)
            jobs = [
                (service.name, site_name, check)
                for service in selected
                for site_name, site in _sites(service.sites, sites)
                if site_name not in (leave_out or {}).get(service.name, ())
                for check in site.checks
            ]
            outcomes = await asyncio.gather(*(run.one(check) for _, _, check in jobs))
    finally:
        # A runner thread past its deadline is abandoned, never waited for.
        threads.shutdown(wait=False, cancel_futures=True)
    results = [
        _result(service, CONTROL_SITE, check, outcome, probe_time, run, abstaining)
        for service in (s.name for s in selected)
        for check, (outcome, probe_time) in zip(control_checks, control, strict=True)
    ]
    results += [
        _result(service, site, check, outcome, probe_time, run, abstaining)
        for (service, site, check), (outcome, probe_time) in zip(jobs, outcomes, strict=True)
    ]
    return RoundReport(region, round_id, started_at, clock(), abstaining, reason, results)


def _sites(all_sites: Any, wanted: Sequence[str] | None) -> list[tuple[str, Any]]:
    present = [(name, getattr(all_sites, name)) for name in ("main", "dr", "cold")]
    return [(n, s) for n, s in present if s is not None and (not wanted or n in wanted)]


def _self_check(
    region: str, checks: list[Check], control: list[tuple[CheckOutcome, float]]
) -> tuple[bool, str]:
    passed = [c.name for c, (o, _) in zip(checks, control, strict=True) if o.vote is Vote.UP]
    if passed:
        return False, f"{region} votes: control target reachable ({', '.join(passed)})"
    failures = "; ".join(f"{c.name}: {o.detail}" for c, (o, _) in zip(checks, control, strict=True))
    return True, f"{region} abstains: its control target is unreachable ({failures})"


def _result(
    service: str,
    site: str,
    check: Check,
    outcome: CheckOutcome,
    probe_time: float,
    run: _Runner,
    abstaining: bool,
) -> ProbeResult:
    return ProbeResult(
        service=service,
        site=site,
        check=check.name,
        check_type=check.type,
        region=run.region,
        round_id=run.round_id,
        vote=outcome.vote,
        failure_class=outcome.failure_class,
        latency_ms=round(outcome.latency_ms, 3),
        # whatever a runner said, an HTTP check's URL is stored redacted (credentials, query values)
        detail=redact_text(outcome.detail, [str(check.url)] if isinstance(check, HttpCheck) else []),
        probe_time=probe_time,
        abstaining=abstaining,
        counts=check.vote,
        db=outcome.db,
    )


class _Runner:
    """Runs one check under the round's concurrency bound and the check's hard deadline."""

    def __init__(
        self,
        config: WatchdogConfig,
        region: str,
        round_id: str,
        secrets: SecretSource,
        clock: Callable[[], float],
        threads: ThreadPoolExecutor,
        contexts: TlsContexts,
        runners: Mapping[str, CheckRunner] | None,
    ) -> None:
        self.config = config
        self.region = region
        self.round_id = round_id
        self.secrets = secrets
        self.clock = clock
        self.threads = threads
        self.contexts = contexts
        self.runners: dict[str, CheckRunner] = {
            "http": self._http,
            "tcp": self._tcp,
            "postgres": postgres_runner,
            **(runners or {}),
        }
        self.limit = asyncio.Semaphore(config.probe.max_concurrency)

    async def one(self, check: Check) -> tuple[CheckOutcome, float]:
        timeout = check.timeout_seconds or self.config.probe.timeout_seconds
        async with self.limit:
            probe_time = self.clock()
            started = time.perf_counter()
            try:
                outcome = await asyncio.wait_for(
                    self._call(check, timeout), timeout + HARD_DEADLINE_GRACE_SECONDS
                )
            except TimeoutError:
                waited = (time.perf_counter() - started) * 1000
                outcome = CheckOutcome.down(
                    FailureClass.TIMEOUT, waited, f"{check.name}: no outcome within {timeout:g} s"
                )
            except Exception as exc:  # a broken runner must not lose the round's other results
                waited = (time.perf_counter() - started) * 1000
                failure = _FALLBACK_FAILURE.get(check.type, FailureClass.DB_ERROR)
                outcome = CheckOutcome.down(
                    failure, waited, f"{check.name}: the probe failed: {type(exc).__name__}: {exc}"
                )
            return outcome, probe_time

    async def _http(self, check: HttpCheck, *, timeout: float, secrets: SecretSource) -> CheckOutcome:
        return await check_http(check, timeout=timeout, contexts=self.contexts)

    async def _tcp(self, check: TcpCheck, *, timeout: float, secrets: SecretSource) -> CheckOutcome:
        return await check_tcp(check, timeout=timeout)

    async def _call(self, check: Check, timeout: float) -> CheckOutcome:
        runner = self.runners[check.type]
        if inspect.iscoroutinefunction(runner):
            value = runner(check, timeout=timeout, secrets=self.secrets)
        else:  # a blocking runner gets a worker thread, so it cannot stall the event loop
            loop = asyncio.get_running_loop()
            call: Callable[[], Any] = functools.partial(runner, check, timeout=timeout, secrets=self.secrets)
            value = await loop.run_in_executor(self.threads, call)
        if inspect.isawaitable(value):
            return await value
        return value


def postgres_runner(check: PostgresCheck, *, timeout: float, secrets: SecretSource) -> CheckOutcome:
    """The PostgreSQL check (blocking, psycopg2), with its credentials from the secret it names."""
    try:
        credentials = secrets.get_json(check.credentials_secret)
    except Exception as exc:  # the message may not name the value; the type and the name are enough
        return CheckOutcome.down(
            FailureClass.DB_ERROR,
            0.0,
            f"cannot read the credentials secret {check.credentials_secret!r} ({type(exc).__name__})",
        )
    from quorum_dr.probes.postgres import check_postgres

    return check_postgres(check, credentials=credentials, timeout=timeout)
