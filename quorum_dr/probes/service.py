"""The probe function's work, behind its ports: run a round, record it, say what changed.

1. Check the request against the config (unknown service or site: refused before any probe).
2. Run the round (self-check first, then every check; see `round.py`).
3. Read this region's previous round verdict per site from the results store.
4. Write every result (the store stamps `received_at` and the TTL).
5. Publish `ProbeFailed` for a site with a failing voting check on the round it turns DOWN in
   this region, then again only every `probe.retrigger_rounds` consecutive failing rounds (the
   count rides on the stored results, see `domain/retrigger.py`); publish `VerdictChanged` for each
   site whose round verdict differs from this region's previous round. An abstaining round
   publishes neither: its results are recorded but they are not votes.
6. Publish `SplitBrainSuspected` for each service when a second PostgreSQL primary appears in
   this region's view (abstaining or not: a primary that answered is a primary), and again, with
   `change: resolved`, when it goes: once per change, not every round. The previous view is this
   region's stored results of each site's PostgreSQL check (see `domain/split_brain.py`); the
   evidence (role, WAL position) stays in the stored results of every round.
0. A scheduled round with a standby watch first reads each service's state item (the one read step
   7 uses too) and leaves out the checks of a cold site that is not launched (`domain/cold_probe.py`:
   the steady state on main or dr, no lock, no cooldown); a state it cannot read, or a round with no
   state to read, checks the cold site as before. On-demand rounds check exactly what they ask for.
7. With a standby watch (the state table): publish `StandbyDown` when the standby site (dr while
   main serves) turns DOWN by quorum across every region's results, and `StandbyRecovered` when it
   is back (see `domain/standby_health.py`, which also gives the timing). Once per change: the
   region that claims the change in the state table (a conditional write keyed per service)
   publishes it; another region seeing the same change loses the claim and says nothing. A
   failure here is logged and leaves the round's results and other events as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from quorum_dr.config import WatchdogConfig
from quorum_dr.domain.cold_probe import ColdProbe, scheduled_cold_probe
from quorum_dr.domain.results import CONTROL_SITE, ProbeResult, Vote
from quorum_dr.domain.retrigger import ProbeFailedDecision, decide_probe_failed
from quorum_dr.domain.split_brain import SPLIT_BRAIN_SUSPECTED, split_brain_change
from quorum_dr.domain.standby_health import StandbyRecord, evaluate_standby, standby_change
from quorum_dr.domain.state import ServiceState
from quorum_dr.observability import logger
from quorum_dr.ports import EventPublisher, ResultStore, RoundQueue, SecretSource, StandbyWatch
from quorum_dr.probes.event import InvalidProbeEvent, QueuedRound, RoundRequest, VerifyRequest
from quorum_dr.probes.round import CheckRunner, RoundReport, SiteRoundVerdict, run_round, site_round_verdicts
from quorum_dr.probes.verify import SiteSeen, see_public

PROBE_FAILED = "ProbeFailed"
VERDICT_CHANGED = "VerdictChanged"


@dataclass(frozen=True)
class PublishedEvent:
    detail_type: str
    service: str
    site: str
    reason: str


@dataclass(frozen=True)
class ProbeRoundOutcome:
    request: RoundRequest
    report: RoundReport
    stored: list[ProbeResult]
    verdicts: list[SiteRoundVerdict]
    events: list[PublishedEvent] = field(default_factory=list)
    cold: dict[str, ColdProbe] = field(default_factory=dict)  # per service: the scheduled round's rule

    @property
    def cold_left_out(self) -> dict[str, str]:
        """Per service whose cold site this round did not check: why."""
        return {service: rule.reason for service, rule in self.cold.items() if not rule.probe}

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.request.kind,
            "region": self.report.region,
            "round_id": self.report.round_id,
            "incident_id": self.request.incident_id,
            "abstaining": self.report.abstaining,
            "reason": self.report.reason,
            "started_at": self.report.started_at,
            "finished_at": self.report.finished_at,
            "results": [r.model_dump(mode="json") for r in self.stored],
            "verdicts": [v.as_dict() for v in self.verdicts],
            "events": [
                {"detail_type": e.detail_type, "service": e.service, "site": e.site} for e in self.events
            ],
            "cold_not_probed": self.cold_left_out,
        }


@dataclass(frozen=True)
class VerifyOutcome:
    request: VerifyRequest
    seen: SiteSeen

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "verify",
            "service": self.request.service,
            "incident_id": self.request.incident_id,
            "origin_only": self.request.origin_only,
            **self.seen.as_dict(),
        }


class ProbeService:
    def __init__(
        self,
        config: WatchdogConfig,
        *,
        region: str,
        results: ResultStore,
        events: EventPublisher,
        secrets: SecretSource,
        clock: Callable[[], float] = time.time,
        runners: Mapping[str, CheckRunner] | None = None,
        public_transport: Any = None,
        standby: StandbyWatch | None = None,
    ) -> None:
        self.config = config
        self.region = region
        self.results = results
        self.events = events
        self.secrets = secrets
        self.clock = clock
        self.runners = runners
        self.public_transport = public_transport  # an httpx transport for the verify round (tests)
        self.standby = standby  # None: the standby is not watched (tools that only probe)

    def run(self, request: RoundRequest) -> ProbeRoundOutcome:
        self._check_request(request)
        states, cold = self._cold_rule(request)
        leave_out = {service: ["cold"] for service, rule in cold.items() if not rule.probe}
        if leave_out:
            logger.info(
                f"round {request.round_id} leaves out the cold site of {', '.join(sorted(leave_out))}: "
                + "; ".join(cold[service].reason for service in sorted(leave_out)),
                extra={"round_id": request.round_id},
            )
        report = run_round(
            self.config,
            region=self.region,
            round_id=request.round_id,
            services=request.services,
            sites=request.sites,
            secrets=self.secrets,
            clock=self.clock,
            runners=self.runners,
            leave_out=leave_out,
        )
        verdicts = report.site_verdicts()
        services = sorted({r.service for r in report.results if r.site != CONTROL_SITE})
        recent = self._recent_results({v.service for v in verdicts} | set(services))
        earlier = {
            service: [r for r in results if r.region == self.region and r.round_id != report.round_id]
            for service, results in recent.items()
        }
        previous = self._previous_verdicts(earlier)
        decisions: dict[tuple[str, str], ProbeFailedDecision] = {}
        if not report.abstaining:
            for verdict in verdicts:
                before = previous.get((verdict.service, verdict.site))
                decisions[(verdict.service, verdict.site)] = decide_probe_failed(
                    site=verdict.site,
                    region=report.region,
                    down=verdict.vote is Vote.DOWN,
                    previous_failing_rounds=None if before is None else before[1],
                    retrigger_rounds=self.config.probe.retrigger_rounds,
                )
        stored = self.results.put_results(
            [
                r.model_copy(update={"failing_rounds": decisions[(r.service, r.site)].failing_rounds})
                if (r.service, r.site) in decisions
                else r
                for r in report.results
            ]
        )
        published: list[PublishedEvent] = []
        for verdict in verdicts if not report.abstaining else []:
            key = (verdict.service, verdict.site)
            before = previous.get(key)
            published += self._publish(
                verdict, None if before is None else before[0], decisions[key], report, request
            )
        for service in services:
            split = split_brain_change(
                earlier.get(service, []), report.results, service, region=report.region
            )
            if split.change is not None:
                detail = split.detail(region=report.region, round_id=report.round_id)
                self.events.publish(SPLIT_BRAIN_SUSPECTED, detail)
                sites = split.now.sites if split.change == "appeared" else split.before.sites
                published.append(
                    PublishedEvent(SPLIT_BRAIN_SUSPECTED, service, ",".join(sites), split.reason)
                )
            if self.standby is not None:
                published += self._watch_standby(
                    service, recent.get(service, []), stored, report.round_id, states.get(service)
                )
        return ProbeRoundOutcome(request, report, stored, verdicts, published, cold)

    def _cold_rule(self, request: RoundRequest) -> tuple[dict[str, ServiceState], dict[str, ColdProbe]]:
        """Step 0: for a scheduled round with a standby watch, each service's state item (read once,
        for the cold rule and step 7) and the cold rule of each service that has a cold site."""
        if request.kind != "scheduled" or self.standby is None:
            return {}, {}
        states: dict[str, ServiceState] = {}
        rules: dict[str, ColdProbe] = {}
        names = request.services or [s.name for s in self.config.services]
        # the cooldown is home-region time, as `received_at` is (the offset is measured once and
        # kept, so step 3's read does not measure it again)
        try:
            now = self.results.home_time()
        except Exception:
            now = self.clock()
        for service in (self.config.service(name) for name in names):
            error = None
            try:
                states[service.name] = self.standby.service_state(service.name)
            except Exception as exc:  # probe the cold site as before; step 7 tries its own read
                error = f"{type(exc).__name__}: {exc}"
            if service.sites.cold is not None:
                rules[service.name] = scheduled_cold_probe(
                    states.get(service.name), service=service.name, now=now, error=error
                )
        return states, rules

    def _watch_standby(
        self,
        service: str,
        recent: list[ProbeResult],
        stored: list[ProbeResult],
        round_id: str,
        state: ServiceState | None = None,
    ) -> list[PublishedEvent]:
        """Step 7: every region's recent results and this round's, judged by quorum; a change is
        claimed in the state table, then published. Never fails the round. `state`: the service's
        state item as step 0 read it (read here when it was not)."""
        assert self.standby is not None
        try:
            if state is None:
                state = self.standby.service_state(service)
            previous, version = self.standby.standby_record(service)
            now = self.results.home_time()
            this_round = {(r.region, r.round_id) for r in stored}
            pool = [r for r in recent if (r.region, r.round_id) not in this_round] + [
                r for r in stored if r.service == service
            ]
            view = evaluate_standby(
                pool, self.config, service, active_site=state.active_site, status=state.status, now=now
            )
            change = standby_change(
                view, previous, self.config, region=self.region, round_id=round_id, now=now
            )
            if change.change is None or change.record is None:
                return []
            if not self.standby.claim_standby_change(service, change.record, expected_version=version):
                logger.info(
                    f"{change.detail_type} for {service} already said by another region",
                    extra={"reason": change.reason},
                )
                return []
            try:
                self.events.publish(change.detail_type, change.detail().model_dump(mode="json"))
            except Exception:
                # Give the claim back, so that a later round says it: at most once would lose it.
                back = previous or StandbyRecord(
                    site=change.record.site, down=False, said_at=now, reason="", region="", round_id=""
                )
                self.standby.claim_standby_change(service, back, expected_version=version + 1)
                raise
            return [PublishedEvent(change.detail_type, service, change.record.site, change.reason)]
        except Exception as exc:  # the round's results and other events stand; say why, once
            logger.error(
                f"standby watch of {service} failed: {type(exc).__name__}: {exc}",
                extra={"round_id": round_id},
            )
            return []

    def round_budget_seconds(self) -> float:
        """What one round may take at most: the checks' timeouts run concurrently, the
        self-check first, plus the writes."""
        return 2 * self.config.probe.timeout_seconds + 5

    def run_scheduled(
        self,
        request: RoundRequest,
        *,
        remaining_seconds: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> tuple[list[ProbeRoundOutcome], str]:
        """`request.rounds` rounds, `round_spacing_seconds` apart from the first one's start.

        A round starts only if it can finish before the invocation ends (`remaining_seconds`, the
        Lambda context's clock): the rounds left are skipped and the sentence says so.
        """
        first = monotonic()
        outcomes: list[ProbeRoundOutcome] = []
        for index in range(request.rounds):
            wait = first + index * request.round_spacing_seconds - monotonic()
            if remaining_seconds is not None:
                left = remaining_seconds() - max(0.0, wait)
                if left < self.round_budget_seconds():
                    skipped = request.rounds - index
                    return outcomes, (
                        f"ran {index} of {request.rounds} rounds: {skipped} skipped, since "
                        f"{max(0.0, left):.0f} s would be left of the invocation and a round may take "
                        f"{self.round_budget_seconds():g} s"
                    )
            if wait > 0:
                sleep(wait)
            round_id = request.round_id if index == 0 else f"{request.round_id}-{index + 1}"
            outcomes.append(self.run(replace(request, round_id=round_id)))
        spacing = f", {request.round_spacing_seconds:g} s apart" if request.rounds > 1 else ""
        return outcomes, f"ran {request.rounds} of {request.rounds} round(s){spacing}"

    def run_first_of_minute(self, request: RoundRequest, queue: RoundQueue) -> tuple[ProbeRoundOutcome, str]:
        """The scheduled invocation with the round queue: queue the minute's second round (due one
        spacing from now), then run the first. Nothing waits in the invocation; a failed send loses
        that round (and the minute's later ones), never this one."""
        started = self.clock()
        queued = self._queue(QueuedRound.second_of(request, started), queue, now=started)
        outcome = self.run(replace(request, rounds=1))
        return outcome, f"ran round 1 of {request.rounds}; {queued}"

    def run_queued(self, message: QueuedRound, queue: RoundQueue) -> tuple[ProbeRoundOutcome | None, str]:
        """A round delivered by the round queue: dropped when late (more than half the spacing past
        due: its slot is gone, and a redelivery after the visibility timeout is always late, so one
        message never runs its round twice); else queue the next round of the minute, then run it."""
        now = self.clock()
        late = message.late_by(now)
        of = f"{message.index} of {message.index + message.remaining}"
        if message.is_late(now):
            return None, (
                f"dropped round {message.round_id} ({of} of its minute): due {late:.1f} s ago, more "
                f"than half the spacing ({message.spacing_seconds / 2:g} s); a late round is never caught up"
            )
        queued = self._queue(message.following(), queue, now=now)
        outcome = self.run(RoundRequest("scheduled", message.round_id))
        return outcome, f"ran round {of}, {late:+.1f} s from its due time; {queued}"

    def _queue(self, following: QueuedRound | None, queue: RoundQueue, *, now: float) -> str:
        if following is None:
            return "the minute has no round after it"
        delay = max(0, round(following.due_at - now))
        try:
            queue.send(following.model_dump_json(), delay_seconds=delay)
        except Exception as exc:  # this round still runs and stands; the next one is lost: say so
            logger.error(
                f"round {following.round_id} is lost: queueing it on {queue.name} failed: "
                f"{type(exc).__name__}: {exc}",
                extra={"queue": queue.name, "lost_round_id": following.round_id},
            )
            return f"round {following.round_id} is lost: queueing it on {queue.name} failed"
        return f"round {following.round_id} queued on {queue.name}, due in {delay} s"

    def verify(self, request: VerifyRequest) -> VerifyOutcome:
        """What this region sees of the switch (see `verify_round`)."""
        return verify_round(
            self.config,
            request,
            region=self.region,
            secrets=self.secrets,
            clock=self.clock,
            runners=self.runners,
            public_transport=self.public_transport,
        )

    def _check_request(self, request: RoundRequest) -> None:
        known = [s.name for s in self.config.services]
        for name in request.services or []:
            if name not in known:
                raise InvalidProbeEvent(f"service: no service named {name!r}; configured: {known}")
        for service in [self.config.service(n) for n in request.services or known]:
            for site in request.sites or []:
                if getattr(service.sites, site) is None:
                    raise InvalidProbeEvent(f"sites: service {service.name!r} has no {site} site configured")

    def _recent_results(self, services: Iterable[str]) -> dict[str, list[ProbeResult]]:
        """Every region's stored results of the recent window, per service (one read per service):
        this region's earlier rounds give the previous views, all of them the standby's quorum."""
        probe = self.config.probe
        # `received_at` is home-region time: so is the bound (this region's clock may be off)
        since = self.results.home_time() - max(probe.freshness_seconds, 3 * probe.interval_seconds)
        return {service: self.results.recent_results(service, since) for service in services}

    @staticmethod
    def _previous_verdicts(
        earlier: Mapping[str, list[ProbeResult]],
    ) -> dict[tuple[str, str], tuple[SiteRoundVerdict, int]]:
        """This region's latest earlier non-abstaining round, per site, as a round verdict and the
        count of consecutive failing rounds it carried."""
        previous: dict[tuple[str, str], tuple[SiteRoundVerdict, int]] = {}
        for service, results in earlier.items():
            rounds: dict[tuple[str, str], dict[str, list[ProbeResult]]] = {}
            for result in results:
                if result.abstaining or result.site == CONTROL_SITE:
                    continue
                rounds.setdefault((service, result.site), {}).setdefault(result.round_id, []).append(result)
            for key, by_round in rounds.items():
                latest = max(by_round.values(), key=lambda rs: max(r.received_at or 0.0 for r in rs))
                previous[key] = (site_round_verdicts(latest)[0], max(r.failing_rounds for r in latest))
        return previous

    def _publish(
        self,
        verdict: SiteRoundVerdict,
        before: SiteRoundVerdict | None,
        decision: ProbeFailedDecision,
        report: RoundReport,
        request: RoundRequest,
    ) -> list[PublishedEvent]:
        failing = [
            r.model_dump(mode="json")
            for r in report.results
            if r.service == verdict.service and r.site == verdict.site and r.counts and r.vote is Vote.DOWN
        ]
        detail: dict[str, Any] = {
            "service": verdict.service,
            "site": verdict.site,
            "region": report.region,
            "round_id": report.round_id,
            "incident_id": request.incident_id,
            "vote": verdict.vote.value,
            "reason": verdict.reason,
            "failing": failing,
        }
        sent = []
        if decision.publish:
            publish_detail = {**detail, "failing_rounds": decision.failing_rounds, "why": decision.reason}
            self.events.publish(PROBE_FAILED, publish_detail)
            sent.append(PublishedEvent(PROBE_FAILED, verdict.service, verdict.site, decision.reason))
        if before is not None and before.vote is not verdict.vote:
            reason = f"{verdict.site} went from {before.vote.value.upper()} to {verdict.vote.value.upper()} "
            reason += f"in {report.region}: {verdict.reason}"
            self.events.publish(
                VERDICT_CHANGED, {**detail, "previous_vote": before.vote.value, "change": reason}
            )
            sent.append(PublishedEvent(VERDICT_CHANGED, verdict.service, verdict.site, reason))
        return sent


def verify_round(
    config: WatchdogConfig,
    request: VerifyRequest,
    *,
    region: str,
    secrets: SecretSource,
    clock: Callable[[], float] = time.time,
    runners: Mapping[str, CheckRunner] | None = None,
    public_transport: Any = None,
) -> VerifyOutcome:
    """What this region sees of the switch: the public hostname's marker, or with `origin_only`
    the target site's own checks. Nothing is stored: a verify round is no vote, so it needs none
    of the stores (the probe function's verify path builds none: issue 14)."""
    known = [s.name for s in config.services]
    if request.service not in known:
        raise InvalidProbeEvent(f"service: no service named {request.service!r}; configured: {known}")
    service = config.service(request.service)
    site = request.expect_site
    if getattr(service.sites, site) is None:
        raise InvalidProbeEvent(f"expect_site: service {service.name!r} has no {site} site configured")
    if not request.origin_only:
        seen = see_public(
            service,
            site,
            region=region,
            timeout=config.probe.timeout_seconds,
            transport=public_transport,
        )
        return VerifyOutcome(request, seen)
    started = clock()
    report = run_round(
        config,
        region=region,
        round_id=request.round_id or f"verify-{int(started)}",
        services=[service.name],
        sites=[site],
        secrets=secrets,
        clock=clock,
        runners=runners,
    )
    verdict = next((v for v in report.site_verdicts() if v.site == site), None)
    ok = verdict is not None and verdict.vote is Vote.UP and not report.abstaining
    reason = report.reason if verdict is None or report.abstaining else verdict.reason
    latency = round((report.finished_at - report.started_at) * 1000, 1)
    return VerifyOutcome(request, SiteSeen(region, site, ok, None, None, reason, latency))
