"""The failover decisions, pure: gates, scenario, replica readiness, data loss, mode.

Each function returns a small model with a machine word (`code`) and a sentence (`reason`)
that logs, the incident record and tests use as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from quorum_dr.config import Database, FailoverMode, FailoverPolicy
from quorum_dr.domain.data_loss import LossReceipt, data_loss_receipt
from quorum_dr.domain.quorum import SiteVerdict, Verdict
from quorum_dr.domain.results import DbRole, DbStatus
from quorum_dr.domain.state import ServiceState, ServiceStatus, utc_day, utc_text

__all__ = ["LossReceipt", "data_loss_receipt"]  # the receipt lives in domain/data_loss.py

Trigger = Literal["auto", "manual"]
SITES = ("main", "dr", "cold")


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    proceed: bool
    code: str
    reason: str


# ---------------------------------------------------------------------------------------------
# Gates (docs/architecture.md: phase 3, invariant 7)
# ---------------------------------------------------------------------------------------------


def check_gates(
    state: ServiceState, policy: FailoverPolicy, *, trigger: Trigger, target: str, now: float
) -> Decision:
    """May a failover of `state.service` to `target` start now?

    A manual start passes the kill switch, the cooldown and the daily cap (an operator decided);
    an automatic one passes none of them, never fails back to main, and never acts on a service
    that needs attention.
    """
    service = state.service
    if target not in SITES:
        return Decision(proceed=False, code="bad_target", reason=f"{target!r} is not a site (main, dr, cold)")
    if target == state.active_site:
        return Decision(
            proceed=False,
            code="already_active",
            reason=f"{target} is already the active site of {service}: nothing to fail over",
        )
    if trigger == "manual":
        return Decision(
            proceed=True,
            code="manual",
            reason=f"manual start of a failover of {service} to {target}: kill switch, cooldown "
            f"and daily cap apply to automatic failovers only",
        )
    refusal = _automatic_refusal(state, policy, target, now)
    if refusal:
        return refusal
    return Decision(
        proceed=True,
        code="ok",
        reason=f"automatic failover of {service} to {target} may proceed: automation is enabled, "
        f"no cooldown, {state.failovers_on(utc_day(now))} of {policy.daily_cap} automatic "
        f"failovers used today",
    )


def trigger_applies(state: ServiceState, site: str) -> Decision:
    """Does an automatic trigger for `site` concern the site that serves?

    A failover moves traffic away from the active site. After one (DR serves, main stays dead),
    the probes keep reporting main every few rounds; those triggers end before the incident lock,
    so they never hold the lock an operator's rejoin or switchover needs, and they add no incident
    record per round. Read without the lock: the gates re-check the active site under it.
    """
    service = state.service
    if site != state.active_site:
        return Decision(
            proceed=False,
            code="not_active",
            reason=f"{site} is not the active site of {service} ({state.active_site} serves): "
            f"a probe failure there starts no failover; no lock taken, nothing recorded",
        )
    return Decision(
        proceed=True,
        code="active",
        reason=f"{site} is the active site of {service}: on to the lock and the gates",
    )


def _automatic_refusal(
    state: ServiceState, policy: FailoverPolicy, target: str, now: float
) -> Decision | None:
    service = state.service
    prefix = f"automatic failover of {service} to {target} refused"
    if state.status is ServiceStatus.NEEDS_ATTENTION:
        return Decision(
            proceed=False,
            code="needs_attention",
            reason=f"{prefix}: {service} needs attention after an earlier incident "
            f"({state.lock_holder or 'no incident id'}); an operator must reset it",
        )
    if not state.automation_enabled:
        return Decision(
            proceed=False,
            code="kill_switch",
            reason=f"{prefix}: automation is disabled for {service} (kill switch); "
            f"a manual start is still possible",
        )
    if target == "main":
        return Decision(
            proceed=False,
            code="failback",
            reason=f"{prefix}: there is no automatic failback to main; an operator must start it",
        )
    if state.cooldown_until is not None and now < state.cooldown_until:
        return Decision(
            proceed=False,
            code="cooldown",
            reason=f"{prefix}: in cooldown until {utc_text(state.cooldown_until)} "
            f"({state.cooldown_until - now:.0f} s left) after the last failover",
        )
    used = state.failovers_on(utc_day(now))
    if used >= policy.daily_cap:
        return Decision(
            proceed=False,
            code="daily_cap",
            reason=f"{prefix}: the daily cap of {policy.daily_cap} automatic "
            f"{'failover' if policy.daily_cap == 1 else 'failovers'} is reached "
            f"({used} on {utc_day(now)} UTC)",
        )
    return None


# ---------------------------------------------------------------------------------------------
# Scenario (docs/architecture.md: phase 5)
# ---------------------------------------------------------------------------------------------


class ScenarioDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: Literal["hot", "cold", "none"]
    target: str | None
    reason: str


def decide_scenario(
    verdicts: Mapping[str, SiteVerdict], *, cold_configured: bool, active_site: str
) -> ScenarioDecision:
    main, dr = verdicts.get("main"), verdicts.get("dr")
    if active_site != "main":
        return ScenarioDecision(
            scenario="none",
            target=None,
            reason=f"no failover: {active_site} is the active site, not main",
        )
    if main is None or dr is None:
        missing = " and ".join(s for s in ("main", "dr") if verdicts.get(s) is None)
        return ScenarioDecision(scenario="none", target=None, reason=f"no failover: no verdict on {missing}")
    if main.verdict is not Verdict.DOWN:
        return ScenarioDecision(scenario="none", target=None, reason=f"no failover: {main.reason}")
    if dr.verdict is Verdict.UP:
        return ScenarioDecision(
            scenario="hot",
            target="dr",
            reason=f"hot failover to dr: main is DOWN ({main.down_votes} regions vote DOWN, quorum "
            f"{main.quorum}) and dr is UP ({dr.up_votes} regions vote UP)",
        )
    if dr.verdict is Verdict.DOWN:
        if cold_configured:
            return ScenarioDecision(
                scenario="cold",
                target="cold",
                reason="cold failover: main and dr are both DOWN; launching the cold site",
            )
        return ScenarioDecision(
            scenario="none",
            target=None,
            reason="no failover: main and dr are both DOWN and no cold site is configured; "
            "an operator must act",
        )
    return ScenarioDecision(
        scenario="none",
        target=None,
        reason=f"no failover: main is DOWN but dr is not confirmed UP ({dr.reason})",
    )


# ---------------------------------------------------------------------------------------------
# Replica readiness (docs/architecture.md: invariant 4)
# ---------------------------------------------------------------------------------------------


def check_replica(
    status: DbStatus | None,
    limits: Database,
    *,
    allow_data_loss: bool,
    receipt: LossReceipt | None,
    status_age_seconds: float | None = None,
) -> Decision:
    """May the DR standby be promoted?

    No: when it is not a standby, when its status is unknown or older than `max_lag_seconds`, when
    replay is behind by more than the limits (bytes; seconds matter only while bytes are behind,
    since an idle primary makes the replay timestamp old without any lag), when `receipt` has no
    known bound on the loss (unknown is not zero: invariant 4), or when its bound exceeds
    `max_lag_bytes` or `max_lag_seconds`. `allow_data_loss` (manual only) turns every "no" except
    "not a standby" into a recorded yes.
    """
    if status is not None and status.role is not DbRole.STANDBY:
        return Decision(
            proceed=False,
            code="not_standby",
            reason=f"the DR database is a {status.role}, not a standby: there is nothing to promote",
        )
    problem = _replica_problem(status, limits, status_age_seconds, receipt)
    if problem is None:
        assert status is not None and receipt is not None
        return Decision(
            proceed=True,
            code="ok",
            reason=f"the DR standby may be promoted: replay is {status.replay_lag_bytes} bytes behind what "
            f"it received (limit {limits.max_lag_bytes}); the loss is bounded by {_evidence(receipt)} at "
            f"{receipt.bound_bytes} bytes and {receipt.bound_seconds:g} s (limits {limits.max_lag_bytes} "
            f"bytes, {limits.max_lag_seconds:g} s){_streaming(status)}",
        )
    code, sentence = problem
    if allow_data_loss:
        return Decision(
            proceed=True,
            code="data_loss_allowed",
            reason=f"promoting although {sentence}: data may be lost ({_loss_amount(status, receipt)}); "
            f"allow_data_loss was given by an operator",
        )
    return Decision(
        proceed=False,
        code=code,
        reason=f"no automatic promotion: {sentence}; only a manual start with allow_data_loss may proceed",
    )


_EVIDENCE = {
    "synchronous": "synchronous replication",
    "wal_position": "a probe's view of main's WAL position",
    "heard_from_main": "the standby's last message from main",
}


def _evidence(receipt: LossReceipt) -> str:
    return _EVIDENCE.get(receipt.evidence or "", "nothing")


def _replica_problem(
    status: DbStatus | None,
    limits: Database,
    status_age_seconds: float | None,
    receipt: LossReceipt | None,
) -> tuple[str, str] | None:
    if status is None:
        return "lag_unknown", "the DR standby's status is unknown"
    if status_age_seconds is not None and status_age_seconds > limits.max_lag_seconds:
        return (
            "status_stale",
            f"the DR standby's status is {status_age_seconds:.0f} s old "
            f"(more than {limits.max_lag_seconds:g} s)",
        )
    if status.replay_lag_bytes is None:
        return "lag_unknown", "the DR standby's replay lag in bytes is unknown"
    if status.replay_lag_bytes > limits.max_lag_bytes:
        return (
            "lag_bytes",
            f"replay is {status.replay_lag_bytes} bytes behind what the standby received "
            f"(limit {limits.max_lag_bytes})",
        )
    if status.replay_lag_bytes > 0:
        if status.replay_lag_seconds is None:
            return "lag_unknown", "replay is behind and its lag in seconds is unknown"
        if status.replay_lag_seconds > limits.max_lag_seconds:
            return (
                "lag_seconds",
                f"replay is {status.replay_lag_seconds:.1f} s behind (limit {limits.max_lag_seconds:g} s)",
            )
    return _loss_problem(limits, receipt)


def _loss_problem(limits: Database, receipt: LossReceipt | None) -> tuple[str, str] | None:
    if receipt is None:
        return "loss_unbounded", "the data loss was not assessed"
    if receipt.loss_bytes is not None and receipt.loss_bytes > limits.max_lag_bytes:
        return (
            "loss_bytes",
            f"the standby received {receipt.loss_bytes} bytes less than main was last seen writing "
            f"(limit {limits.max_lag_bytes})",
        )
    if receipt.evidence is None or receipt.bound_bytes is None or receipt.bound_seconds is None:
        return "loss_unbounded", receipt.reason
    if receipt.bound_bytes > limits.max_lag_bytes:
        return (
            "loss_bytes",
            f"up to {receipt.bound_bytes} bytes may be lost by {_evidence(receipt)} "
            f"(limit {limits.max_lag_bytes})",
        )
    if receipt.bound_seconds > limits.max_lag_seconds:
        return (
            "loss_seconds",
            f"up to {receipt.bound_seconds:g} s of main's writes may be lost by {_evidence(receipt)} "
            f"(limit {limits.max_lag_seconds:g} s)",
        )
    return None


def _streaming(status: DbStatus) -> str:
    if status.streaming is None:
        return ""
    return "; the WAL receiver is streaming" if status.streaming else "; the WAL receiver is not streaming"


def _loss_amount(status: DbStatus | None, receipt: LossReceipt | None) -> str:
    parts = []
    if receipt is not None:
        if receipt.loss_bytes:
            parts.append(f"{receipt.loss_bytes} bytes not received")
        if receipt.evidence is None or receipt.bound_bytes is None:
            parts.append("WAL loss unbounded")
        else:
            parts.append(f"WAL loss up to {receipt.bound_bytes} bytes and {receipt.bound_seconds:g} s")
    if status is None or status.replay_lag_bytes is None:
        parts.append("replay lag unknown")
    else:
        parts.append(f"replay {status.replay_lag_bytes} bytes behind")
        if status.replay_lag_seconds is not None:
            parts.append(f"{status.replay_lag_seconds:.1f} s")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# Mode (docs/architecture.md: phase 6)
# ---------------------------------------------------------------------------------------------


class ModeAction(BaseModel):
    model_config = ConfigDict(frozen=True)

    action: Literal["proceed", "wait_veto", "wait_approval", "alert_only", "shadow"]
    reason: str


def choose_mode_action(mode: FailoverMode, trigger: Trigger) -> ModeAction:
    if trigger == "manual":
        return ModeAction(action="proceed", reason="a manual start proceeds: the operator is the approval")
    actions: dict[FailoverMode, ModeAction] = {
        FailoverMode.AUTO: ModeAction(action="proceed", reason="mode auto: proceeding without waiting"),
        FailoverMode.VETO: ModeAction(
            action="wait_veto", reason="mode veto: notifying and proceeding unless an operator vetoes in time"
        ),
        FailoverMode.APPROVE: ModeAction(
            action="wait_approval", reason="mode approve: waiting for an operator's explicit approval"
        ),
        FailoverMode.MANUAL: ModeAction(
            action="alert_only", reason="mode manual: alerting only; an operator must start the failover"
        ),
        FailoverMode.SHADOW: ModeAction(
            action="shadow",
            reason="mode shadow: every check and decision runs for real; where auto would act, the decision "
            "is recorded and told, and nothing is changed (no fence, promotion, edge write or launch)",
        ),
    }
    return actions[mode]
