"""Does a scheduled round check the cold site? Only while it may be launched (issue 14, cost).

A cold site that is not launched never answers: its checks would hold every scheduled round for
their timeout and, every `retrigger_rounds` rounds, publish a ProbeFailed that starts an execution
which stops at a gate. So a scheduled round leaves the cold site's checks out while the service's
state says, beyond doubt, that the cold site is not launched: the steady state (HEALTHY, or
FAILED_OVER after a hot failover) on main or dr, no incident lock recorded, no cooldown running
(a failover, hot or cold, counted recently: a cold launch may have happened). In every other case,
and when the state could not be read, the cold site is checked as before: when in doubt, probe.

On-demand rounds (the state machine's confirmation rounds, `drctl probe`) are not ruled here: they
check exactly the sites they are asked for. Nothing that decides reads the cold site's scheduled
results while it is not launched: `decide_scenario` picks the cold scenario from main's and dr's
verdicts alone, and the confirmation rounds probe cold on demand. Pure: no I/O.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from quorum_dr.domain.quorum import SiteVerdict
from quorum_dr.domain.state import ServiceState, ServiceStatus, utc_text

# What a view shows for the cold site while scheduled rounds leave it out.
NOT_PROBED = "not launched: not probed"
STEADY = (ServiceStatus.HEALTHY, ServiceStatus.FAILED_OVER)


class ColdProbe(BaseModel):
    """The rule's verdict for one service: check the cold site in scheduled rounds, and why."""

    model_config = ConfigDict(frozen=True)

    probe: bool
    reason: str


def scheduled_cold_probe(
    state: ServiceState | None, *, service: str, now: float, error: str | None = None
) -> ColdProbe:
    """Check the cold site of `service` in a scheduled round? `state` None: it could not be read
    (`error` says why), so the cold site is checked."""
    doubt = _doubt(state, service=service, now=now, error=error, steady=STEADY)
    if doubt is not None:
        return doubt
    assert state is not None
    return ColdProbe(
        probe=False,
        reason=f"the cold site of {service} is not launched: {service} is {state.status.value} on "
        f"{state.active_site}, no incident holds the lock and no cooldown runs, so scheduled rounds "
        "leave its checks out (on-demand rounds still check it)",
    )


def cold_not_probed(
    verdict: SiteVerdict, state: ServiceState | None, *, service: str, now: float
) -> ColdProbe | None:
    """What a view says of a cold site with no fresh vote because scheduled rounds leave it out:
    the rule's verdict (its reason), rather than an UNKNOWN that reads like an outage. None when a
    region voted on it lately (an on-demand round's vote stands), the state is unknown, or the
    rule would check it."""
    if state is None or any(vote.kind in ("up", "down", "suspect") for vote in verdict.votes):
        return None
    rule = scheduled_cold_probe(state, service=service, now=now)
    return None if rule.probe else rule


# A confirmation round runs inside the execution that holds the lock and has set CONFIRMING: those
# are its own marks, not a sign that a cold launch may have happened.
CONFIRMING_STEADY = (ServiceStatus.HEALTHY, ServiceStatus.CONFIRMING, ServiceStatus.FAILED_OVER)


def confirmation_cold_probe(
    state: ServiceState | None,
    *,
    service: str,
    incident_id: str,
    target: str | None,
    now: float,
    error: str | None = None,
) -> ColdProbe:
    """Check the cold site of `service` in a confirmation round of `incident_id`? The same doubt as
    `scheduled_cold_probe`, less the incident's own lock and its CONFIRMING status, and the cold site
    is checked when the operator's start names it as the target. The scenario never needs the cold
    site's verdict (`decide_scenario` picks the cold failover from main's and dr's), so leaving an
    unlaunched cold site out only spares each round its checks' timeout."""
    if target == "cold" and state is not None:
        return ColdProbe(
            probe=True, reason="the cold site is checked: the operator asked for it as the target"
        )
    doubt = _doubt(
        state, service=service, now=now, error=error, steady=CONFIRMING_STEADY, own_incident=incident_id
    )
    if doubt is not None:
        return doubt
    assert state is not None
    return ColdProbe(
        probe=False,
        reason=f"the cold site is not launched ({service} is {state.status.value} on {state.active_site}, "
        "no cooldown runs): not checked, since no scenario needs its verdict",
    )


def _doubt(
    state: ServiceState | None,
    *,
    service: str,
    now: float,
    error: str | None,
    steady: tuple[ServiceStatus, ...],
    own_incident: str | None = None,
) -> ColdProbe | None:
    """Why the cold site may be launched, as the verdict to check it; None when nothing says so."""
    if state is None:
        why = f" ({error})" if error else ""
        return ColdProbe(
            probe=True,
            reason=f"the state of {service} could not be read{why}: the cold site is checked, "
            "since it may be launched",
        )
    if state.active_site == "cold":
        return ColdProbe(probe=True, reason=f"the cold site is checked: it is the active site of {service}")
    if state.status not in steady:
        return ColdProbe(
            probe=True,
            reason=f"the cold site is checked: {service} is {state.status.value}, not a steady state "
            "(a failover or a cold launch may be under way or half done)",
        )
    if state.lock_holder is not None and state.lock_holder != own_incident:
        not_this = ", not this one," if own_incident else ""
        return ColdProbe(
            probe=True,
            reason=f"the cold site is checked: incident {state.lock_holder}{not_this} holds the lock of "
            f"{service}",
        )
    if state.cooldown_until is not None and state.cooldown_until > now:
        who = f" (incident {state.counted_incident})" if state.counted_incident else ""
        return ColdProbe(
            probe=True,
            reason=f"the cold site is checked: a failover of {service}{who} counted recently and its "
            f"cooldown runs until {utc_text(state.cooldown_until)}, so a cold launch may have happened",
        )
    return None
