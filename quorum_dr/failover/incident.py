"""The incident's bookkeeping: the lock holder, the gates, the record, the service state, escalation.

Every function takes the ports and the step's payload and returns a JSON-able answer with a
`reason` sentence; every one appends what it decided to the incident's timeline.
"""

from __future__ import annotations

import json
from typing import Any

from quorum_dr.domain.cold_report import read_cold_rpo
from quorum_dr.domain.decisions import check_gates as gates_decision
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr.domain.state import ServiceStatus, utc_day, utc_text
from quorum_dr.failover.holding import hold_for_a_person, read_state, release, write_state
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import entry
from quorum_dr.failover.request import Incident

STOP_OUTCOMES = (
    "refused",
    "false_alarm",
    "no_decision",
    "no_action",
    "vetoed",
    "approval_timeout",
    "alert_only",
)


# The task token of an approval or veto wait is a credential (it answers the wait): an incident
# that ends, however it ends (stopped, recorded, escalated, a wait that timed out), keeps none.
_NOT_WAITING = {"task_token": None, "awaiting": None}


def _record(ports: Ports, incident: Incident, step: str, reason: str, /, **fields: Any) -> IncidentRecord:
    if "finished_at" in fields:
        fields = {**fields, **_NOT_WAITING}
    return ports.store.update_incident(
        incident.service, incident.incident_id, fields, timeline=entry(step, reason, ports.clock())
    )


def describe_lock(ports: Ports, incident: Incident) -> dict[str, Any]:
    lock = ports.store.get_lock(incident.service) or {}
    holder = lock.get("incident_id", "unknown")
    execution = lock.get("holder")
    kept = bool(lock.get("kept"))
    reason = f"already handling incident {holder} for {incident.service}"
    if execution and execution != holder:
        reason += f" (execution {execution})"
    if kept:
        reason += f"; {holder} needs attention: an operator must run drctl reset"
    return {"holder": holder, "execution": execution, "kept": kept, "reason": reason}


def check_gates(ports: Ports, incident: Incident) -> dict[str, Any]:
    now = ports.clock()
    state = read_state(ports, incident.service)
    lock = ports.store.get_lock(incident.service)
    if lock and lock.get("holder") != incident.execution_name:
        state = state.model_copy(update={"lock_holder": lock.get("incident_id")})
    service = ports.service(incident.service)
    decision = gates_decision(
        state, service.failover, trigger=incident.trigger, target=incident.target or "dr", now=now
    )
    reason = decision.reason + (" (dry run)" if incident.dry_run else "")
    _record(
        ports,
        incident,
        "gates",
        reason,
        service=incident.service,
        trigger=incident.trigger,
        target=incident.target,
        reason=incident.reason,
        requested_by=incident.requested_by,
        dry_run=incident.dry_run,
        shadow=incident.shadow,
        allow_data_loss=incident.allow_data_loss,
        detected_at=incident.detected_at,
        started_at=incident.started_at,
        status="OPEN",
    )
    return {"proceed": decision.proceed, "code": decision.code, "reason": reason}


def stop(ports: Ports, incident: Incident, outcome: str, reason: str) -> dict[str, Any]:
    if outcome not in STOP_OUTCOMES:
        raise ValueError(f"unknown stop outcome {outcome!r}")
    released, lock_sentence = release(ports, incident)
    sentence = f"{outcome.replace('_', ' ')}: {reason}; {lock_sentence}"
    _record(ports, incident, outcome, sentence, outcome=outcome, status="CLOSED", finished_at=ports.clock())
    return {"outcome": outcome, "released": released, "reason": sentence}


def mark_failing_over(ports: Ports, incident: Incident, scenario: dict[str, Any]) -> dict[str, Any]:
    target = scenario.get("target")
    if incident.dry_run:
        reason = f"dry run: would set {incident.service} to FAILING_OVER towards {target}"
    else:
        write_state(ports, incident.service, status=ServiceStatus.FAILING_OVER.value)
        reason = f"{incident.service} is FAILING_OVER towards {target}: from here on a failure escalates"
    _record(ports, incident, "failing_over", reason, scenario=scenario)
    return {"reason": reason}


def _at(progress: dict[str, Any], key: str) -> float | None:
    value = (progress.get(key) or {}).get("at") if isinstance(progress.get(key), dict) else None
    return float(value) if isinstance(value, int | float) else None


def _override_used(progress: dict[str, Any]) -> bool:
    """Did any step promote only because an operator gave allow_data_loss?"""
    return any(
        isinstance(progress.get(step), dict) and progress[step].get("code") == "data_loss_allowed"
        for step in ("replica", "replay", "final_position")
    )


def record(
    ports: Ports, incident: Incident, scenario: dict[str, Any], progress: dict[str, Any]
) -> dict[str, Any]:
    now = ports.clock()
    decided_at = _at(progress, "scenario") or now
    switched_at = _at(progress, "switch")
    verified_at = _at(progress, "verify") or now
    rto = round(verified_at - incident.detected_at, 3)
    detection = round(decided_at - incident.detected_at, 3)
    replica = progress.get("replica") or {}
    cold = progress.get("cold") or {}
    # The receipt taken after the fence, against main's final position, where there is one.
    data_loss = (progress.get("final_position") or {}).get("data_loss") or replica.get("data_loss") or {}
    backup_age: float | None = None
    if scenario.get("scenario") == "cold":
        # $.cold is the bootstrap's report (ColdBootstrapReport); a malformed one raises
        backup_age, loss_sentence = read_cold_rpo(
            cold, dry_run=incident.dry_run, health_fallback=bool(progress.get("cold_timeout"))
        )
    else:
        loss_sentence = data_loss.get("reason") or "data loss unknown: no replica report"
    # the replica check's file lag, evidence beside the database's loss (no file_sync: nothing)
    file_lag = replica.get("file_lag") or None
    evidence = (
        f"{loss_sentence}; {file_lag['reason']}" if file_lag and file_lag.get("reason") else loss_sentence
    )
    prefix = "dry run of a " if incident.dry_run else ""
    reason = (
        f"{prefix}failover of {incident.service} to {scenario.get('target')} done: "
        f"detected in {detection:.1f} s, "
        f"RTO {rto:.1f} s from the first failed probe to the verified switch; {evidence}"
    )
    if incident.shadow:
        reason = shadow_sentence(incident, scenario, progress, decided_at, detection, evidence)
    fields = {
        "outcome": "shadow" if incident.shadow else "dry_run" if incident.dry_run else "failed_over",
        "scenario": scenario,
        "decided_at": decided_at,
        "switched_at": switched_at,
        "verified_at": verified_at,
        "detection_seconds": detection,
        "rto_seconds": rto,
        "data_loss": data_loss,
        "data_loss_reason": loss_sentence,
        **({"file_lag": file_lag} if file_lag else {}),
        "allow_data_loss_used": _override_used(progress),
        "backup_age_seconds": backup_age,
        "status": "FAILED_OVER" if not incident.dry_run else "CLOSED",
        "finished_at": now,
    }
    if incident.shadow:
        fields.update(rto_seconds=None, verified_at=None, switched_at=None, shadow=True)
    _record(ports, incident, "recorded", reason, **fields)
    answer: dict[str, Any] = {
        "incident_id": incident.incident_id,
        "rto_seconds": None if incident.shadow else rto,
        "detection_seconds": detection,
        "reason": reason,
        "at": now,
    }
    if incident.shadow:
        answer["shadow_decision"] = True  # counted by the step's metrics (ShadowDecisions)
    return answer


def shadow_sentence(
    incident: Incident,
    scenario: dict[str, Any],
    progress: dict[str, Any],
    decided_at: float,
    detection: float,
    loss_sentence: str,
) -> str:
    """What auto would have done, when and why: every decision the shadow execution took for real."""
    why = [
        str(part.get("reason"))
        for part in (progress.get("confirm"), scenario, progress.get("replica"))
        if isinstance(part, dict) and part.get("reason")
    ]
    return (
        f"shadow: auto would have failed over {incident.service} to {scenario.get('target')} at "
        f"{utc_text(decided_at)} ({detection:.1f} s after the first failed probe) because "
        + "; ".join(why)
        + f"; {loss_sentence}. Nothing was changed: no fence, promotion, edge write or launch"
    )


def count_failover(ports: Ports, incident: Incident, what: str) -> str:
    """Start the cooldown and count an automatic failover in the daily cap, at the incident's
    first irreversible step (`what`: the promotion, the cold launch), once per incident.

    Counted before the step runs, so a step that half-happened still counts, and a run that
    escalates afterwards still holds the cooldown: an operator's `reset` clears the lock and
    NEEDS_ATTENTION, not the cooldown, so no second automatic failover follows at once
    (invariant 7, docs/architecture.md: any promotion counts)."""
    state = read_state(ports, incident.service)
    if state.counted_incident == incident.incident_id:
        return f"{what} of incident {incident.incident_id} already counted in the cooldown and daily cap"
    now = ports.clock()
    policy = ports.service(incident.service).failover
    day = utc_day(now)
    count = state.failovers_on(day) + (1 if incident.trigger == "auto" else 0)
    until = max(state.cooldown_until or 0.0, now + policy.cooldown_seconds)
    write_state(
        ports,
        incident.service,
        cooldown_until=until,
        failover_day=day,
        failovers_today=count,
        last_failover_at=now,
        counted_incident=incident.incident_id,
    )
    reason = (
        f"{what} of {incident.service} counted: no automatic failover before the cooldown ends in "
        f"{until - now:.0f} s; {count} of {policy.daily_cap} automatic failovers used on {day}"
    )
    _record(ports, incident, "cooldown", reason)
    return reason


def set_active_site(ports: Ports, incident: Incident, scenario: dict[str, Any]) -> dict[str, Any]:
    target = scenario.get("target")
    now = ports.clock()
    policy = ports.service(incident.service).failover
    if incident.dry_run:
        reason = (
            f"dry run: would set the active site of {incident.service} to {target} and start the cooldown"
        )
        _record(ports, incident, "active_site", reason)
        return {"reason": reason}
    state = read_state(ports, incident.service)
    day = utc_day(now)
    counted = state.counted_incident == incident.incident_id  # at its promotion or cold launch
    count = state.failovers_on(day) + (1 if incident.trigger == "auto" and not counted else 0)
    write_state(
        ports,
        incident.service,
        active_site=target,
        status=ServiceStatus.FAILED_OVER.value,
        cooldown_until=now + policy.cooldown_seconds,
        failover_day=day,
        failovers_today=count,
        last_failover_at=now,
        counted_incident=incident.incident_id,
        lock_holder=None,
        lock_expires_at=None,
    )
    reason = (
        f"{incident.service} now serves from {target}; no automatic failover before the cooldown ends "
        f"in {policy.cooldown_seconds} s"
    )
    _record(ports, incident, "active_site", reason)
    return {"active_site": target, "reason": reason}


def release_lock(ports: Ports, incident: Incident) -> dict[str, Any]:
    if incident.shadow:
        return hold_shadow_lock(ports, incident)
    released, sentence = release(ports, incident)
    _record(ports, incident, "lock_released", sentence)
    return {"released": released, "reason": sentence}


def hold_shadow_lock(ports: Ports, incident: Incident) -> dict[str, Any]:
    """After a shadow decision, auto would serve from the target and main's triggers would end
    before the lock (not the active site) until someone switches back. So the shadow lock is held
    for the cooldown auto would start: the same outage gives one shadow decision, not one per
    trigger; a main still down after the cooldown gives the next."""
    until = ports.clock() + ports.service(incident.service).failover.cooldown_seconds
    if ports.store.hold_shadow_lock(incident.service, incident.execution_name, until=until):
        sentence = (
            f"shadow lock held until {utc_text(until)} (the cooldown auto would start): "
            "no second shadow decision for this outage before then"
        )
        held = True
    else:
        sentence = "the shadow lock could not be held: it expired or another shadow execution holds it"
        held = False
    _record(ports, incident, "lock_released", sentence)
    return {"released": False, "held": held, "reason": sentence}


def error_sentence(error: dict[str, Any] | None) -> str:
    """A state machine error ({Error, Cause}; a Lambda's Cause is its JSON errorType/errorMessage)
    as one sentence."""
    if not error:
        return "unknown error"
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            cause = f"{parsed.get('errorType', 'Error')}: {parsed['errorMessage']}"
    except (TypeError, ValueError):
        pass
    return (
        f"{error.get('Error', 'Error')}: {cause}"
        if cause and not cause.startswith(str(error.get("Error")))
        else (cause or str(error.get("Error")))
    )


def progress_sentences(progress: dict[str, Any]) -> list[str]:
    done = []
    for key, label in (
        ("replica", "replica checked"),
        ("fence", "fence of the old primary"),
        ("final_position", "main's final position"),
        ("promotion", "DR database promoted"),
        ("cold", "cold site launched"),
        ("switch", "edge switched"),
        ("verify", "switch verified"),
    ):
        value = progress.get(key)
        if isinstance(value, dict) and value:
            done.append(f"{label}: {value.get('reason', '')}".rstrip(": "))
    return done


def escalate(
    ports: Ports, incident: Incident, error: dict[str, Any] | None, progress: dict[str, Any]
) -> dict[str, Any]:
    what = error_sentence(error)
    done = progress_sentences(progress)
    # What happened comes from the incident record (written by the step that did it), not only
    # from the execution's $: a step that promoted and then failed leaves no $.promotion.
    record = None
    if not incident.dry_run:
        record = ports.store.get_incident(incident.service, incident.incident_id)
    raw_promotion = progress.get("promotion")
    promotion: dict[str, Any] = raw_promotion if isinstance(raw_promotion, dict) else {}
    promoted = bool(record and record.promoted_at) or (
        not incident.dry_run and bool(promotion.get("writable") or promotion.get("promoted"))
    )
    switched_to = record.switched_to if record else None
    warning = ""
    if promoted and not switched_to:
        warning = " The DR database is promoted but traffic is NOT switched."
    elif switched_to:
        warning = f" Traffic is switched to {switched_to}; the active site says so."
    kept = False
    if incident.shadow:
        _, lock_sentence = release(ports, incident)
        reason = (
            f"shadow: auto would have escalated {incident.service} (NEEDS_ATTENTION, the lock kept): "
            f"{what}; nothing was changed; {lock_sentence}"
        )
    elif incident.dry_run:
        reason = f"dry run stopped: {what}; would set NEEDS_ATTENTION and keep the lock"
    else:
        kept, lock_sentence = hold_for_a_person(ports, incident, switched_to)
        reason = (
            f"{incident.service} NEEDS_ATTENTION after incident {incident.incident_id}: {what}.{warning} "
            + lock_sentence
        )
    _record(
        ports,
        incident,
        "escalated",
        reason,
        status="NEEDS_ATTENTION" if not incident.dry_run else "CLOSED",
        error=error or {},
        progress=done,
        finished_at=ports.clock(),
    )
    return {"reason": reason, "progress": done, "lock_kept": kept}


def handle(ports: Ports, event: dict[str, Any]) -> dict[str, Any]:
    incident = Incident.model_validate(event["incident"])
    action = event.get("action")
    if action == "describe_lock":
        return describe_lock(ports, incident)
    if action == "check_gates":
        return check_gates(ports, incident)
    if action == "stop":
        return stop(ports, incident, str(event.get("outcome")), str(event.get("reason") or ""))
    if action == "mark_failing_over":
        return mark_failing_over(ports, incident, event.get("scenario") or {})
    if action == "record":
        return record(ports, incident, event.get("scenario") or {}, event.get("progress") or {})
    if action == "set_active_site":
        return set_active_site(ports, incident, event.get("scenario") or {})
    if action == "release_lock":
        return release_lock(ports, incident)
    if action == "escalate":
        return escalate(ports, incident, event.get("error"), event.get("progress") or {})
    raise ValueError(f"incident_state: unknown action {action!r}")
