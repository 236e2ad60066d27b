"""Confirmation rounds and the scenario: on-demand probes from every region, then the quorum."""

from __future__ import annotations

import math
from typing import Any

from quorum_dr.config import Service
from quorum_dr.domain.cold_probe import ColdProbe, confirmation_cold_probe
from quorum_dr.domain.decisions import decide_scenario
from quorum_dr.domain.quorum import SiteVerdict, Verdict, evaluate_service
from quorum_dr.domain.settle import round_settled, tally
from quorum_dr.domain.state import ServiceState
from quorum_dr.failover.holding import read_state
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import entry
from quorum_dr.failover.request import Incident
from quorum_dr.observability import logger


class _SettleCheck:
    """Asked after each region's answer: a sentence once no late answer can change the decision
    (main's and dr's verdicts, cold's, and the database veto's evidence). Remembers who was left out."""

    def __init__(self, ports: Ports, service: Service, round_id: str, sites: list[str]) -> None:
        self.ports, self.service, self.round_id, self.sites = ports, service, round_id, sites
        self.regions = list(ports.config.probe_regions)
        self.has_dr_database = any(check.type == "postgres" for check in service.sites.dr.checks)
        self.silent: list[str] = []
        self.reason = ""

    def __call__(self, answered: frozenset[str]) -> str | None:
        ports, config = self.ports, self.ports.config
        outstanding = [region for region in self.regions if region not in answered]
        if not outstanding:
            return None
        now = ports.clock()
        results = ports.results().recent_results(self.service.name, now - config.probe.freshness_seconds)
        verdicts = evaluate_service(results, config, self.service.name, now)
        kinds = {
            site: {v.region: v.kind for v in verdict.votes}
            for site, verdict in verdicts.items()
            if site in self.sites  # a site the round does not check has no answer to wait for
        }
        dr_database_seen = any(
            r.site == "dr" and r.check_type == "postgres" and r.round_id == self.round_id and r.db is not None
            for r in results
            if r.region in answered
        )
        settlement = round_settled(
            tally(kinds, answered=sorted(answered), outstanding=len(outstanding), quorum=config.quorum),
            outstanding=outstanding,
            # a veto already found on the answers in hand: in doubt, wait for everyone
            veto_evidence_in_hand=(dr_database_seen or not self.has_dr_database)
            and not verdicts["main"].vetoed,
        )
        if not settlement.settled:
            logger.info(settlement.reason, extra={"round_id": self.round_id})
            return None
        self.silent, self.reason = outstanding, settlement.reason
        return settlement.reason


# What the state machine waited for before a re-confirmation (its `after`: the mode's action).
WAITS = {"wait_veto": "the veto window", "wait_approval": "the approval"}


def confirm_round(
    ports: Ports,
    incident: Incident,
    round_index: int,
    *,
    chosen: dict[str, Any] | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """One round of on-demand probes from every region, then the quorum's verdict on each site.

    With `chosen` (the scenario decided before a wait) the round is a re-confirmation (DESIGN
    invariant 10): the answer's `holds` says whether the fresh verdicts still give the same
    scenario, and its `reason` says why not (main UP again, DR no longer UP, ...)."""
    service = ports.service(incident.service)
    cold = _cold_rule(ports, incident) if service.sites.cold else None
    sites = ["main", "dr"] + (["cold"] if cold is not None and cold.probe else [])
    round_id = f"{incident.incident_id}-r{round_index + 1}"
    started = ports.clock()
    invocations = ports.probes().run_round(
        service=service.name,
        round_id=round_id,
        incident_id=incident.incident_id,
        sites=sites,
        settled=(settle := _SettleCheck(ports, service, round_id, sites)),
    )
    now = ports.clock()
    results = ports.results().recent_results(service.name, now - ports.config.probe.freshness_seconds)
    verdicts = {
        site: verdict
        for site, verdict in evaluate_service(results, ports.config, service.name, now).items()
        if site in sites
    }
    main = verdicts["main"]
    reason = f"round {round_index + 1}: {main.reason}"
    holds: bool | None = None
    if chosen is not None:
        holds, reason = _still_holds(ports, incident, verdicts, chosen, round_index, after or "the wait")
    if settle.silent:
        reason += f"; decided without {', '.join(settle.silent)} (silent): {settle.reason}"
    wait, why_wait = next_wait_seconds(main, incident.wait_seconds, max(0.0, now - started))
    if why_wait and chosen is None:
        reason += f"; {why_wait}"
    ports.store.update_incident(
        service.name,
        incident.incident_id,
        {},
        timeline=entry("confirm_round" if chosen is None else "reconfirm", reason, now, round_id=round_id),
    )
    answer: dict[str, Any] = {site: v.verdict.value for site, v in verdicts.items()}
    answer.update(
        reason=reason,
        round_id=round_id,
        invocations=invocations,
        silent=settle.silent,
        sites={site: v.model_dump(mode="json") for site, v in verdicts.items()},
        at=now,
        next_wait_seconds=wait,
    )
    if holds is not None:
        answer["holds"] = holds
    if cold is not None and not cold.probe:
        answer["cold_not_probed"] = cold.reason
    return answer


def next_wait_seconds(
    main: SiteVerdict | None, wait_seconds: float, round_seconds: float = 0.0
) -> tuple[int, str]:
    """The wait before the next confirmation round (the state machine's WaitBetweenRounds reads
    it), and a sentence when it is shorter than `confirmation.wait_seconds`.

    When the database veto alone holds main's DOWN back and its last witness lapses sooner, the
    next round comes one second after that lapse rather than a whole wait later. The veto is not
    loosened: that round reads the standby afresh, and a live main's keepalive holds it again.
    The lapse is counted from when the round's results were received; the standby was read
    earlier, within the round's `round_seconds` (a dead main's checks wait for their timeout), so
    the round's length is taken off: a round that comes a little early finds the veto holding and
    waits again, one that comes late only delays the failover."""
    full = max(1, math.ceil(wait_seconds))
    lapse = main.veto_lapses_in_seconds if main is not None and main.vetoed else None
    if lapse is None:
        return full, ""
    lapse = max(0.0, lapse - round_seconds)
    sooner = math.ceil(lapse) + 1
    if sooner >= full:
        return full, ""
    return sooner, (
        f"the next round in {sooner} s, not {full} s: the veto's last witness lapses in "
        f"{lapse:.1f} s unless the standby hears from main again"
    )


def _cold_rule(ports: Ports, incident: Incident) -> ColdProbe:
    """Does this confirmation round check the cold site (`domain/cold_probe.py`)? A state that
    cannot be read says yes."""
    try:
        state: ServiceState | None = read_state(ports, incident.service)
        error = None
    except Exception as exc:  # in doubt, probe: the round goes on as before
        state, error = None, f"{type(exc).__name__}: {exc}"
    rule = confirmation_cold_probe(
        state,
        service=incident.service,
        incident_id=incident.incident_id,
        target=incident.target,
        now=ports.clock(),
        error=error,
    )
    if not rule.probe:
        logger.info(rule.reason, extra={"incident_id": incident.incident_id})
    return rule


def _still_holds(
    ports: Ports,
    incident: Incident,
    verdicts: dict[str, SiteVerdict],
    chosen: dict[str, Any],
    round_index: int,
    after: str,
) -> tuple[bool, str]:
    """Does the scenario decided before the wait still follow from this round's verdicts?"""
    state = ports.store.get_state(incident.service)
    fresh = decide_scenario(
        verdicts, cold_configured=incident.cold_configured, active_site=state.get("active_site", "main")
    )
    was = str(chosen.get("scenario"))
    label = f"re-confirmation after {after} (round {round_index + 1})"
    if fresh.scenario == was and fresh.scenario != "none":
        return True, f"{label}: the {was} failover still holds: {fresh.reason}"
    main = verdicts.get("main")
    if main is not None and main.verdict is Verdict.UP:
        why = f"main is UP again ({main.reason})"
    elif fresh.scenario == "none":
        why = fresh.reason.removeprefix("no failover: ")
    else:
        why = f"the verdicts now call for a {fresh.scenario} failover, not the {was} one: {fresh.reason}"
    return False, f"{label}: the {was} failover no longer holds, {why}: called off as a false alarm"


def decide(ports: Ports, incident: Incident, confirm: dict[str, Any] | None) -> dict[str, Any]:
    now = ports.clock()
    if incident.trigger == "manual":
        scenario = "hot" if incident.target == "dr" else "cold"
        basis = (
            "without confirmation (skip_confirm)" if incident.skip_confirm else "after the quorum confirmed"
        )
        reason = (
            f"{incident.requested_by} asked for a failover to {incident.target} {basis}: {incident.reason}"
        )
        decision = {"scenario": scenario, "target": incident.target, "reason": reason}
    else:
        sites = (confirm or {}).get("sites") or {}
        verdicts = {site: SiteVerdict.model_validate(v) for site, v in sites.items()}
        state = ports.store.get_state(incident.service)
        chosen = decide_scenario(
            verdicts, cold_configured=incident.cold_configured, active_site=state.get("active_site", "main")
        )
        decision = chosen.model_dump(mode="json")
    ports.store.update_incident(
        incident.service,
        incident.incident_id,
        {"scenario": decision},
        timeline=entry("scenario", str(decision["reason"]), now),
    )
    return {**decision, "at": now}


def handle(ports: Ports, event: dict[str, Any]) -> dict[str, Any]:
    incident = Incident.model_validate(event["incident"])
    if event.get("action") == "round":
        chosen = event.get("scenario")
        if chosen is not None and not isinstance(chosen, dict):
            raise ValueError(f"confirm_outage: scenario must be an object, got {type(chosen).__name__}")
        after = WAITS.get(str(event.get("after")), str(event.get("after") or "the wait"))
        return confirm_round(ports, incident, int(event.get("round", 0)), chosen=chosen, after=after)
    if event.get("action") == "decide":
        return decide(ports, incident, event.get("confirm"))
    raise ValueError(f"confirm_outage: unknown action {event.get('action')!r}")
