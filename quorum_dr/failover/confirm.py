"""Confirmation rounds and the scenario: on-demand probes from every region, then the quorum."""

from __future__ import annotations

from typing import Any

from quorum_dr.domain.decisions import decide_scenario
from quorum_dr.domain.quorum import SiteVerdict, evaluate_service
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import entry
from quorum_dr.failover.request import Incident


def confirm_round(ports: Ports, incident: Incident, round_index: int) -> dict[str, Any]:
    service = ports.service(incident.service)
    sites = ["main", "dr"] + (["cold"] if service.sites.cold else [])
    round_id = f"{incident.incident_id}-r{round_index + 1}"
    invocations = ports.probes().run_round(
        service=service.name, round_id=round_id, incident_id=incident.incident_id, sites=sites
    )
    now = ports.clock()
    results = ports.results().recent_results(service.name, now - ports.config.probe.freshness_seconds)
    verdicts = evaluate_service(results, ports.config, service.name, now)
    main = verdicts["main"]
    reason = f"round {round_index + 1}: {main.reason}"
    ports.store.update_incident(
        service.name,
        incident.incident_id,
        {},
        timeline=entry("confirm_round", reason, now, round_id=round_id),
    )
    answer: dict[str, Any] = {site: v.verdict.value for site, v in verdicts.items()}
    answer.update(
        reason=reason,
        round_id=round_id,
        invocations=invocations,
        sites={site: v.model_dump(mode="json") for site, v in verdicts.items()},
        at=now,
    )
    return answer


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
        return confirm_round(ports, incident, int(event.get("round", 0)))
    if event.get("action") == "decide":
        return decide(ports, incident, event.get("confirm"))
    raise ValueError(f"confirm_outage: unknown action {event.get('action')!r}")
