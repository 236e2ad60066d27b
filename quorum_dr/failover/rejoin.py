"""What `drctl rejoin` does: turn the old primary into a streaming standby of the active site.

The steps run through ports (the state store, the rejoined site's agent and the active site's,
the edge read through its adapter, the notifier, a clock and a sleep); every decision is
`quorum_dr.domain.rejoin`'s, and every step says its sentence as it goes (`progress`):

1. read the state (active site), the lock, the day's rejoin record, the edge's current target,
   the rejoined site's database and the active site's (through their agents);
2. plan: refuse / wait / rewind / rebuild, recorded with its sentence before anything acts;
3. freeze the old primary when it still takes writes, then rewind it against the active site
   (the agent stops it, runs pg_rewind and makes it follow); a rewind the agent says cannot work
   becomes a rebuild (a fresh pg_basebackup, the old data directory kept) only with
   `allow_rebuild`;
4. wait, bounded, until it streams from the active site with its lag within
   `database.max_lag_bytes`;
5. tell the alert topic that any split brain is over ("resolved"), once per attempt, and record
   the end in the rejoin record (`rejoin-<service>-<site>-<UTC day>`, an incident record).

Idempotent: the agent's operation ids derive from the record and its attempt, so a re-run the
same day continues (an operation that succeeded answers with its stored answer and does not act
again; a site that already streams is only waited for).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from quorum_dr.agent.contract import AgentCallError, Operation, OperationAnswer, SiteStatus, Upstream
from quorum_dr.config import Service
from quorum_dr.domain.edge import EdgeSwitchError
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr.domain.rejoin import (
    REJOINABLE,
    CatchUp,
    LockView,
    RejoinFacts,
    RejoinPlan,
    RejoinProgress,
    RejoinSite,
    RejoinStep,
    judge_caught_up,
    next_attempt,
    operation_id,
    plan_after_rewind,
    plan_rejoin,
    record_id,
)
from quorum_dr.domain.state import ServiceState
from quorum_dr.ports import Notifier, StateStore

POLL_SECONDS = 2.0
SAY_EVERY_SECONDS = 15.0  # while waiting, the same sentence again at most this often
MAX_TIMEOUT_SECONDS = 24 * 3600
SPLIT_BRAIN_RESOLVED = "split_brain_resolved"

Outcome = Literal["rejoined", "refused", "failed", "not_caught_up"]


class SiteAgentPort(Protocol):
    """A site's agent (`quorum_dr.adapters.site_agent.SiteAgentClient`): its calls raise the
    contract's `AgentCallError` when they do not succeed."""

    def status(self) -> SiteStatus: ...

    def run(
        self, operation: Operation, operation_id: str, *, primary: Upstream | None = None
    ) -> OperationAnswer: ...


class EdgeView(Protocol):
    """The edge read through its adapter (`CloudflareEdge.describe`): the site it points at (None
    when not one known site) and the sentence saying why; `EdgeSwitchError` when it cannot be read."""

    def describe(self) -> tuple[str | None, str]: ...


@dataclass
class RejoinPorts:
    store: StateStore
    agents: Callable[[str], SiteAgentPort | None]  # a site's agent; None when it has none configured
    edge: EdgeView
    notifier: Notifier
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    progress: Callable[[str], None] = field(default=lambda sentence: None)


class RejoinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    site: RejoinSite
    allow_rebuild: bool = False
    timeout_seconds: float = Field(default=300, gt=0, le=MAX_TIMEOUT_SECONDS, allow_inf_nan=False)
    requested_by: str = Field(min_length=1)


class RejoinResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    outcome: Outcome
    reason: str
    record_id: str
    lag_bytes: int | None = None
    notification: str | None = None


class _Stop(Exception):
    """The rejoin ends here; `outcome` and the sentence say how."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome: Outcome = outcome
        self.reason = reason


class Rejoin:
    """One run of `drctl rejoin` for one service and site."""

    def __init__(self, service: Service, request: RejoinRequest, ports: RejoinPorts) -> None:
        if service.database is None:
            raise ValueError(f"{service.name} has no database section: there is nothing to rejoin")
        self.service = service
        self.database = service.database
        self.request = request
        self.ports = ports
        self.site = request.site
        self.record = record_id(service.name, request.site, ports.clock())
        self.progress = RejoinProgress(site=request.site)
        self._had_record = False

    # -- saying and recording ------------------------------------------------------------------

    def say(self, sentence: str) -> None:
        self.ports.progress(sentence)

    def _record(self, step: str, sentence: str, **fields: Any) -> IncidentRecord:
        entry = {"at": self.ports.clock(), "step": step, "reason": sentence}
        return self.ports.store.update_incident(
            self.service.name,
            self.record,
            {"rejoin": self.progress.model_dump(mode="json"), **fields},
            timeline=entry,
        )

    def _advance(self, **changes: Any) -> None:
        self.progress = self.progress.model_copy(update=changes)

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> RejoinResult:
        started = self.ports.clock()
        try:
            plan, facts = self._plan()
        except _Stop as stop:  # nothing read was enough to plan: nothing is recorded, nothing changed
            self.say(stop.reason)
            return RejoinResult(ok=False, outcome=stop.outcome, reason=stop.reason, record_id=self.record)
        self.say(plan.reason)
        opening: dict[str, Any] = {
            "service": self.service.name,
            "trigger": "manual",
            "target": self.site,
            "reason": f"drctl rejoin of {self.site} as a standby of {facts.active_site}",
            "requested_by": self.request.requested_by,
            "status": "OPEN",
            "outcome": None,
        }
        if not self._had_record:
            opening["started_at"] = started
        self._record("rejoin_plan", plan.reason, **opening)
        try:
            if plan.step == RejoinStep.REFUSE:
                raise _Stop("refused", plan.reason)
            self._act(plan, facts)
            caught = self._wait(facts)
            notification = self._notify(facts, caught)
        except _Stop as stop:
            status = "CLOSED" if stop.outcome == "refused" and plan.step == RejoinStep.REFUSE else "OPEN"
            self._record(
                f"rejoin_{stop.outcome}",
                stop.reason,
                status=status,
                outcome=stop.outcome,
                finished_at=self.ports.clock(),
            )
            return RejoinResult(ok=False, outcome=stop.outcome, reason=stop.reason, record_id=self.record)
        reason = f"rejoined: {caught.reason}"
        self._record(
            "rejoin_done", reason, status="CLOSED", outcome="rejoined", finished_at=self.ports.clock()
        )
        return RejoinResult(
            ok=True,
            outcome="rejoined",
            reason=reason,
            record_id=self.record,
            lag_bytes=caught.lag_bytes,
            notification=notification,
        )

    # -- 1 and 2: read, plan ---------------------------------------------------------------------

    def _plan(self) -> tuple[RejoinPlan, RejoinFacts]:
        store, name, now = self.ports.store, self.service.name, self.ports.clock()
        state = ServiceState.model_validate({**store.get_state(name), "service": name})
        lock = store.get_lock(name)
        record = store.get_incident(name, self.record)
        self._had_record = record is not None
        previous = (
            RejoinProgress.model_validate(record.rejoin) if record is not None and record.rejoin else None
        )
        active = state.active_site
        self.say(f"{name}: the state table says the active site is {active} (status {state.status.value})")
        try:
            edge_site, edge_reason = self.ports.edge.describe()
        except EdgeSwitchError as exc:
            raise _Stop("refused", f"not rejoined, nothing changed: cannot read the edge: {exc}") from None
        self.say(f"the edge: {edge_reason}")
        site_status = self._status(self.site, required=True)
        assert site_status is not None
        self.say(f"{self.site}'s database: {site_status.reason}")
        active_status = self._status(active, required=False) if active in REJOINABLE else None
        if active_status is not None:
            self.say(f"{active}'s database: {active_status.reason}")
        endpoint = getattr(self.database, active, None) if active in REJOINABLE else None
        upstream = Upstream(host=endpoint.host, port=endpoint.port) if endpoint is not None else None
        carried = previous if previous is not None and not previous.finished else None
        facts = RejoinFacts(
            service=name,
            site=self.site,
            active_site=active,
            now=now,
            lock=LockView.model_validate(lock) if lock else None,
            edge_site=edge_site,
            edge_reason=edge_reason,
            site_status=site_status,
            active_status=active_status,
            upstream=upstream,
            allow_rebuild=self.request.allow_rebuild,
            rebuild_needed=carried.rebuild_needed if carried is not None else None,
        )
        plan = plan_rejoin(facts)
        attempt = next_attempt(previous, plan) or self.progress
        self.progress = attempt.model_copy(
            update={
                "active_site": active,
                "upstream": upstream.address() if upstream else None,
                "plan": plan.step,
                "allow_rebuild": self.request.allow_rebuild,
            }
        )
        if previous is not None and attempt.attempt != previous.attempt:
            self.say(
                f"attempt {attempt.attempt} of the day: the previous one finished and there is work again"
            )
        return plan, facts

    def _status(self, site: str, *, required: bool) -> SiteStatus | None:
        agent = self.ports.agents(site)
        if agent is None:
            if required:
                raise _Stop(
                    "refused",
                    f"not rejoined, nothing changed: {site} has no site agent (sites.{site}.agent): rejoin "
                    "acts through it",
                )
            self.say(f"{site} has no site agent: its database's own position is not read")
            return None
        try:
            return agent.status()
        except AgentCallError as exc:
            raise _Stop(
                "refused", f"not rejoined, nothing changed: cannot read {site}'s database: {exc.reason}"
            ) from None

    # -- 3: act ----------------------------------------------------------------------------------

    def _agent(self) -> SiteAgentPort:
        agent = self.ports.agents(self.site)
        assert agent is not None  # _plan read its status
        return agent

    def _operation(
        self, step: Operation, facts: RejoinFacts, primary: Upstream | None = None
    ) -> OperationAnswer:
        op_id = operation_id(self.record, self.progress.attempt, step.value)
        answer = self._agent().run(step, op_id, primary=primary)
        said = "the agent's stored answer" if answer.replayed else "done"
        self.say(f"{step.value} of {self.site} ({op_id}), {said}: {answer.reason}")
        self._record(f"rejoin_{step.value}", answer.reason)
        return answer

    def _act(self, plan: RejoinPlan, facts: RejoinFacts) -> None:
        upstream = facts.upstream
        assert upstream is not None  # every plan that acts has one
        if plan.freeze_first:
            try:
                self._operation(Operation.FREEZE, facts)
            except AgentCallError as exc:
                raise _Stop(
                    "failed", f"not rejoined: the freeze of {self.site} failed: {exc.reason}"
                ) from None
        step = plan.step
        if step == RejoinStep.REWIND:
            try:
                self._operation(Operation.REWIND, facts, upstream)
                return
            except AgentCallError as exc:
                needed = exc.answer is not None and exc.answer.rebuild_needed
                after = plan_after_rewind(facts, _agent_said(exc), rebuild_needed=needed)
                if needed:
                    self._advance(rebuild_needed=_agent_said(exc))
                self.say(after.reason)
                if after.step != RejoinStep.REBUILD:
                    raise _Stop("refused" if needed else "failed", after.reason) from None
                self._advance(plan=RejoinStep.REBUILD)
                self._record("rejoin_plan", after.reason)
                step = RejoinStep.REBUILD
        if step == RejoinStep.REBUILD:
            try:
                self._operation(Operation.REBUILD, facts, upstream)
            except AgentCallError as exc:
                raise _Stop(
                    "failed", f"not rejoined: the rebuild of {self.site} failed: {exc.reason}"
                ) from None

    # -- 4: wait ---------------------------------------------------------------------------------

    def _wait(self, facts: RejoinFacts) -> CatchUp:
        assert facts.upstream is not None
        limit = self.database.max_lag_bytes
        timeout = self.request.timeout_seconds
        deadline = self.ports.clock() + timeout
        active_agent = self.ports.agents(facts.active_site)
        said, said_at = "", float("-inf")
        self.say(
            f"waiting at most {timeout:g} s until {self.site} streams from {facts.active_site} with a lag "
            f"within {limit} bytes"
        )
        while True:
            caught = self._look(facts, active_agent, limit)
            now = self.ports.clock()
            if caught.ok:
                self.say(caught.reason)
                self._advance(finished=True, lag_bytes=caught.lag_bytes)
                return caught
            if caught.reason != said or now - said_at >= SAY_EVERY_SECONDS:
                self.say(caught.reason)
                said, said_at = caught.reason, now
            if now >= deadline:
                self._advance(lag_bytes=caught.lag_bytes)
                raise _Stop(
                    "not_caught_up",
                    f"not rejoined within {timeout:g} s: {caught.reason}; run drctl rejoin again to keep "
                    "waiting (it continues, nothing is redone)",
                )
            self.ports.sleep(min(POLL_SECONDS, max(0.0, deadline - now)))

    def _look(self, facts: RejoinFacts, active_agent: SiteAgentPort | None, limit: int) -> CatchUp:
        assert facts.upstream is not None
        try:
            status = self._agent().status()
            active_status = active_agent.status() if active_agent is not None else None
        except AgentCallError as exc:
            return CatchUp(ok=False, reason=f"cannot read the databases yet: {exc.reason}")
        return judge_caught_up(self.site, facts.active_site, status, active_status, facts.upstream, limit)

    # -- 5: tell ---------------------------------------------------------------------------------

    def _notify(self, facts: RejoinFacts, caught: CatchUp) -> str:
        name, active = self.service.name, facts.active_site
        if self.progress.notified:
            sentence = "the 'resolved' notification of this attempt was already delivered: not sent again"
            self.say(sentence)
            return sentence
        subject = f"{name}: split brain resolved, {self.site} rejoined as a standby of {active}"
        message = (
            f"{self.site}'s database is a standby streaming from {active}, the active site: {active} has the "
            f"only primary of {name}, so any split-brain alert about {name} is over. {caught.reason}. "
            f"Rejoined by {self.request.requested_by}; the record is {self.record}."
        )
        detail: Mapping[str, Any] = {
            "service": name,
            "kind": SPLIT_BRAIN_RESOLVED,
            "change": "resolved",
            "site": self.site,
            "active_site": active,
            "lag_bytes": caught.lag_bytes,
            "record": self.record,
        }
        receipt = self.ports.notifier.notify(subject, message, incident_id=self.record, detail=detail)
        delivered, said = _delivery(receipt)
        self._advance(notified=delivered)
        sentence = f"'resolved' notification: {said}"
        self.say(sentence)
        self._record("rejoin_notify", sentence)
        return sentence


def _agent_said(exc: AgentCallError) -> str:
    return exc.answer.reason if exc.answer is not None else exc.reason


def _delivery(receipt: Any) -> tuple[bool, str]:
    """Whether a notifier's receipt (a mapping or a model with `delivered` and `reason`) says it
    reached at least one channel, and its sentence."""
    data = receipt.model_dump() if isinstance(receipt, BaseModel) else receipt
    if not isinstance(data, Mapping):
        return False, f"the notifier answered {type(receipt).__name__}, not a receipt"
    delivered = data.get("delivered")
    count = (
        delivered if isinstance(delivered, int) and not isinstance(delivered, bool) else int(bool(delivered))
    )
    return count > 0, str(data.get("reason") or ("delivered" if count else "NOT delivered"))


def rejoin(service: Service, request: RejoinRequest, ports: RejoinPorts) -> RejoinResult:
    """Run one rejoin; the result says whether the site streams within the limit, and why."""
    return Rejoin(service, request, ports).run()
