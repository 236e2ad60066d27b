"""The switchover's bookkeeping: the refusal, the cooldown its promotion starts, the active site,
the lock, the roll-back's record, the escalation, and the notifications.

Every function takes the ports and the step's payload, returns a JSON-able answer with a
`reason` sentence, and appends that sentence to the incident's timeline. The lock is the
failover's (one LOCK item per service): releasing and keeping it are conditional on this
execution holding it.
"""

from __future__ import annotations

from typing import Any

from quorum_dr.domain.state import ServiceStatus, utc_text
from quorum_dr.domain.switchover import (
    SwitchoverFigures,
    automation_sentence,
    follow_sentence,
    write_outage_seconds,
)
from quorum_dr.failover.holding import hold_for_a_person, read_state, release, write_state
from quorum_dr.failover.incident import error_sentence
from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import as_dict, entry
from quorum_dr.switchover.request import Switchover

NOTIFY_KINDS = ("refused", "rolled_back", "switched_over", "escalation")
# What each step's answer in the execution's state is called, for the escalation's list of what was done.
STEPS = (
    ("freeze", "writes frozen"),
    ("sync", "sync check"),
    ("stop", "active site stopped"),
    ("final", "final position"),
    ("cooldown", "cooldown"),
    ("promotion", "target promoted"),
    ("switch", "edge switched"),
    ("verify", "switch verified"),
    ("follow", "old active site follows"),
    ("rollback", "roll back"),
)


def _record(ports: Ports, switchover: Switchover, step: str, reason: str, /, **fields: Any) -> None:
    ports.store.update_incident(
        switchover.service, switchover.incident_id, fields, timeline=entry(step, reason, ports.clock())
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------------------------
# Refused: nothing was changed
# ---------------------------------------------------------------------------------------------


def refusal_sentence(switchover: Switchover, refusal: dict[str, Any]) -> str:
    """A refusal's reason: a precondition's sentence, the lock's holder, or the error of a check
    that could not run."""
    if refusal.get("reason"):
        return str(refusal["reason"])
    holder = _dict(refusal.get("holder"))
    if refusal.get("code") == "lock_held":
        return str(holder.get("reason") or f"another incident holds the lock of {switchover.service}")
    error = error_sentence(_dict(refusal.get("error")))
    return f"the switchover of {switchover.service} could not be checked: {error}"


def describe_lock(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    lock = ports.store.get_lock(switchover.service) or {}
    holder = lock.get("incident_id", "unknown")
    kept = " and keeps it until drctl reset" if lock.get("kept") else ""
    reason = (
        f"switchover of {switchover.service} refused: incident {holder} holds the lock{kept}; a failover and "
        "a switchover never run together"
    )
    return {
        "holder": holder,
        "execution": lock.get("holder"),
        "kept": bool(lock.get("kept")),
        "reason": reason,
    }


def refuse(ports: Ports, switchover: Switchover, refusal: dict[str, Any]) -> dict[str, Any]:
    reason = f"nothing was changed: {refusal_sentence(switchover, refusal)}"
    _record(
        ports, switchover, "refused", reason, outcome="refused", status="CLOSED", finished_at=ports.clock()
    )
    return {"outcome": "refused", "reason": reason}


# ---------------------------------------------------------------------------------------------
# The promotion counts (invariant 7)
# ---------------------------------------------------------------------------------------------


def start_cooldown(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    """Any promotion counts: the cooldown starts before the target is promoted, so a switchover that
    escalates afterwards still holds it (a manual switch never counts in the automatic daily cap)."""
    policy = ports.service(switchover.service).failover
    now = ports.clock()
    if switchover.dry_run:
        reason = f"dry run: would start the cooldown of {switchover.service} ({policy.cooldown_seconds} s)"
        _record(ports, switchover, "cooldown", reason)
        return {"reason": reason}
    state = read_state(ports, switchover.service)
    until = max(state.cooldown_until or 0.0, now + policy.cooldown_seconds)
    if state.counted_incident != switchover.incident_id:
        write_state(
            ports,
            switchover.service,
            cooldown_until=until,
            last_failover_at=now,
            counted_incident=switchover.incident_id,
        )
    reason = (
        f"the promotion of {switchover.target} counts: no automatic failover of {switchover.service} before "
        f"{utc_text(until)} ({until - now:.0f} s)"
    )
    _record(ports, switchover, "cooldown", reason)
    return {"cooldown_until": until, "reason": reason}


# ---------------------------------------------------------------------------------------------
# Done: the figures, the active site, the lock
# ---------------------------------------------------------------------------------------------


def figures(
    switchover: Switchover, progress: dict[str, Any], *, rolled_back: bool = False
) -> SwitchoverFigures:
    """The switchover's figures from the steps' answers in the execution's state."""

    def at(step: str, key: str = "at") -> float | None:
        value = _dict(progress.get(step)).get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    frozen_at, switched_at = at("freeze", "frozen_at"), at("switch")
    sync = _dict(progress.get("sync"))
    return SwitchoverFigures(
        source=switchover.source,
        target=switchover.target,
        frozen_at=frozen_at,
        final_position=_dict(progress.get("stop")).get("final_position"),
        replayed_position=_dict(progress.get("final")).get("replay_lsn"),
        promoted_at=at("promotion", "promoted_at"),
        writable_at=at("promotion", "writable_at"),
        switched_at=switched_at,
        verified_at=at("verify"),
        write_outage_seconds=write_outage_seconds(frozen_at, switched_at),
        sync_check=sync.get("reason"),
        following=bool(_dict(progress.get("follow")).get("following")) if not rolled_back else None,
        rolled_back=rolled_back,
    )


def switched_over(ports: Ports, switchover: Switchover, progress: dict[str, Any]) -> dict[str, Any]:
    """The target is the active site: status HEALTHY, and automatic failover re-armed where it applies
    (main -> dr only; the cooldown the promotion started still holds)."""
    name, target = switchover.service, switchover.target
    now = ports.clock()
    numbers = figures(switchover, progress)
    failure = _dict(progress.get("follow_error"))
    followed = follow_sentence(
        name, switchover.source, _dict(progress.get("follow")), error_sentence(failure) if failure else None
    )
    if switchover.dry_run:
        reason = (
            f"dry run of a planned switchover of {name} from {switchover.source} to {target}: every check "
            f"passed; would set the active site to {target}, status HEALTHY"
        )
        _record(ports, switchover, "active_site", reason, outcome="dry_run", status="CLOSED", finished_at=now)
        return {"reason": reason, "figures": numbers.model_dump(mode="json")}
    state = write_state(
        ports,
        name,
        active_site=target,
        status=ServiceStatus.HEALTHY.value,
        lock_holder=None,
        lock_expires_at=None,
    )
    automation = automation_sentence(name, target, state.get("cooldown_until"), now)
    reason = f"{numbers.sentence(name)}; {followed}; {automation}"
    _record(
        ports,
        switchover,
        "active_site",
        reason,
        outcome="switched_over",
        status="CLOSED",
        switchover=numbers.model_dump(mode="json"),
        finished_at=now,
    )
    return {"active_site": target, "reason": reason, "figures": numbers.model_dump(mode="json")}


def release_lock(ports: Ports, switchover: Switchover) -> dict[str, Any]:
    released, sentence = release(ports, switchover)
    _record(ports, switchover, "lock_released", sentence)
    return {"released": released, "reason": sentence}


# ---------------------------------------------------------------------------------------------
# Rolled back: the active site writable again, nothing lost
# ---------------------------------------------------------------------------------------------


def rolled_back(
    ports: Ports, switchover: Switchover, error: dict[str, Any] | None, progress: dict[str, Any]
) -> dict[str, Any]:
    released, lock_sentence = release(ports, switchover)
    rollback = _dict(progress.get("rollback"))
    numbers = figures(switchover, progress, rolled_back=True)
    reason = (
        f"planned switchover of {switchover.service} from {switchover.source} to {switchover.target} rolled "
        f"back, nothing lost ({switchover.target} was never promoted): {error_sentence(error)}; "
        f"{rollback.get('reason') or 'nothing to roll back'}; {lock_sentence}"
    )
    _record(
        ports,
        switchover,
        "rolled_back",
        reason,
        outcome="rolled_back" if not switchover.dry_run else "dry_run",
        status="CLOSED",
        switchover=numbers.model_dump(mode="json"),
        error=error or {},
        finished_at=ports.clock(),
    )
    return {"outcome": "rolled_back", "released": released, "reason": reason}


# ---------------------------------------------------------------------------------------------
# Escalated: a person must act (after a promotion, or a roll back that failed)
# ---------------------------------------------------------------------------------------------


def done_sentences(progress: dict[str, Any]) -> list[str]:
    return [
        f"{label}: {_dict(progress.get(key)).get('reason', '')}".rstrip(": ")
        for key, label in STEPS
        if _dict(progress.get(key))
    ]


def escalate(
    ports: Ports, switchover: Switchover, error: dict[str, Any] | None, progress: dict[str, Any]
) -> dict[str, Any]:
    name, source, target = switchover.service, switchover.source, switchover.target
    what = error_sentence(error)
    done = done_sentences(progress)
    record = None if switchover.dry_run else ports.store.get_incident(name, switchover.incident_id)
    promoted = bool(record and record.promoted_at)
    switched_to = record.switched_to if record else None
    rollback_error = _dict(progress.get("rollback_error"))
    if switched_to:
        warning = f" Traffic is switched to {switched_to}; the active site says so."
    elif promoted:
        warning = (
            f" {target} is promoted but traffic is NOT switched, and {source} is stopped: writes go nowhere "
            "until a person acts."
        )
    elif rollback_error:
        warning = (
            f" Rolling back failed too ({error_sentence(rollback_error)}): {source} may be stopped or "
            "frozen, writes are down until a person acts."
        )
    else:
        warning = ""
    kept = False
    if switchover.dry_run:
        reason = f"dry run stopped: {what}; would set NEEDS_ATTENTION and keep the lock"
    else:
        kept, lock_sentence = hold_for_a_person(ports, switchover, switched_to)
        reason = (
            f"{name} NEEDS_ATTENTION after switchover {switchover.incident_id} from {source} to {target}: "
            f"{what}.{warning} {lock_sentence}"
        )
    _record(
        ports,
        switchover,
        "escalated",
        reason,
        status="NEEDS_ATTENTION" if not switchover.dry_run else "CLOSED",
        error=error or {},
        progress=done,
        finished_at=ports.clock(),
    )
    return {"reason": reason, "progress": done, "lock_kept": kept}


# ---------------------------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------------------------


def _message(switchover: Switchover, kind: str, event: dict[str, Any]) -> str:
    if kind == "refused":
        return f"nothing was changed: {refusal_sentence(switchover, _dict(event.get('refusal')))}"
    if kind == "rolled_back":
        return str(_dict(event.get("closed")).get("reason") or "rolled back")
    if kind == "switched_over":
        return str(_dict(event.get("state")).get("reason") or "switched over")
    escalation = _dict(event.get("escalation"))
    if escalation.get("reason"):
        return str(escalation["reason"])
    failure = escalation.get("Cause") or escalation.get("Error") or "no answer"
    return (
        f"{switchover.service} needs attention after switchover {switchover.incident_id}: "
        f"{error_sentence(_dict(event.get('error')))}. Recording the escalation ALSO failed "
        f"({escalation.get('Error', 'Error')}: {failure}): the state may not say NEEDS_ATTENTION; check "
        "drctl status and the incident, then drctl reset."
    )


def notify(ports: Ports, switchover: Switchover, event: dict[str, Any]) -> dict[str, Any]:
    kind = str(event.get("kind"))
    if kind not in NOTIFY_KINDS:
        raise ValueError(f"switchover_record: unknown notification kind {kind!r}")
    message = _message(switchover, kind, event)
    subject = (
        f"[quorum-dr] {switchover.service}: switchover {kind.replace('_', ' ')} ({switchover.incident_id})"
    )
    if switchover.dry_run:
        reason = f"dry run: would notify '{subject}': {message}"
        receipt: dict[str, Any] = {"dry_run": True}
    else:
        detail = {
            "incident_id": switchover.incident_id,
            "service": switchover.service,
            "kind": f"switchover_{kind}",
        }
        receipt = as_dict(
            ports.notifier().notify(subject, message, incident_id=switchover.incident_id, detail=detail)
        )
        reason = f"notified: {subject}"
    _record(ports, switchover, f"notify_{kind}", reason)
    return {"kind": kind, "reason": reason, "receipt": receipt, "at": ports.clock()}


def handle(ports: Ports, event: dict[str, Any]) -> dict[str, Any]:
    switchover = Switchover.model_validate(event["switchover"])
    action = event.get("action")
    progress = _dict(event.get("progress"))
    if action == "describe_lock":
        return describe_lock(ports, switchover)
    if action == "refuse":
        return refuse(ports, switchover, _dict(event.get("refusal")))
    if action == "start_cooldown":
        return start_cooldown(ports, switchover)
    if action == "switched_over":
        return switched_over(ports, switchover, progress)
    if action == "release_lock":
        return release_lock(ports, switchover)
    if action == "rolled_back":
        return rolled_back(ports, switchover, event.get("error"), progress)
    if action == "escalate":
        return escalate(ports, switchover, event.get("error"), progress)
    if action == "notify":
        return notify(ports, switchover, event)
    raise ValueError(f"switchover_record: unknown action {action!r}")
