"""What the drill watches while it runs, turned into events of the drill's log.

- `EventForwarder`: the control plane's EventBridge rule. It reads the events the probe regions
  put on their buses (delivered to an SQS queue, since moto's EventBridge does not deliver to
  Step Functions; read with long polling, which answers as soon as a message arrives) and, for a
  `ProbeFailed` on the main site, starts a failover execution with the event as its input, as the
  rule's Step Functions target does. A `SplitBrainSuspected`
  event becomes a `split_brain_alert` when its `detail.change` says a second primary appeared,
  a `split_brain_resolved` when it says it went (`split_brain_record`). A `ReadinessChanged`
  (the drill's readiness evaluation published it on the home bus) becomes a `readiness_changed`
  with the text the AlertOnReadinessChanged rule sends to the alert topic (`readiness_record`).
- `ResultWatcher`: reads the results table and records one `vote` per region, site and round
  (`quorum_dr.replay.recording.VoteEvent`: the vote and the round's results, which `drctl replay`
  reads back). It reads only the last `LATE_SECONDS` before the newest result it has seen.
- `ExecutionWatcher`: reads every execution's history and records the states entered, the
  quorum of each confirmation round, the data-loss receipt, promotions, switches, verifications
  and escalations, from the steps' own outputs.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
from quorum_dr.domain.readiness import READINESS_CHANGED, ReadinessChanged
from quorum_dr.domain.results import CONTROL_SITE, ProbeResult
from quorum_dr.replay.recording import VoteEvent
from quorum_dr_local.drill.timeline import EventLog

POLL_SECONDS = 0.5
TRIGGER_SITES = ("main",)
# The rig shares the drill's one process (and its GIL) with the handlers it watches: what it reads
# costs the watchdog's own steps time. A result is stamped before it is written, so one stamped
# earlier can land after a later one: the watcher reads back this far behind the newest it saw
# (a write that takes longer than this is a broken run, not a late vote). Reading from the run's
# start on every poll made each poll read the whole table, under moto's one DynamoDB lock.
LATE_SECONDS = 15.0
LONG_POLL_SECONDS = 1  # SQS long polling: the receive returns at once when a message arrives


class Watcher:
    """A polling thread: `poll()` every `interval` seconds until `stop()`; errors are counted, not fatal."""

    name = "watcher"

    def __init__(self, interval: float = POLL_SECONDS) -> None:
        self.interval = interval
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - a failed poll is retried on the next tick
                if len(self.errors) < 50:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)

    def start(self) -> Watcher:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.poll()  # a last look, so nothing that happened before the stop is missed
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"{type(exc).__name__}: {exc}")


class EventForwarder(Watcher):
    name = "event-forwarder"

    def __init__(
        self, sqs: Any, queue_url: str, start: Callable[[dict[str, Any], str], str], log: EventLog
    ) -> None:
        super().__init__(interval=0.0)
        self.sqs = sqs
        self.queue_url = queue_url
        self.start_execution = start
        self.log = log
        self.started: list[str] = []
        self.paused = False

    def poll(self) -> None:
        wait = 0 if self._stop.is_set() else LONG_POLL_SECONDS  # the last look after stop() waits for nothing
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
        )
        for message in answer.get("Messages", []):
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            self.handle(json.loads(message["Body"]))

    def handle(self, event: dict[str, Any]) -> None:
        detail = event.get("detail") or {}
        kind = event.get("detail-type")
        if kind == "SplitBrainSuspected":
            record, data = split_brain_record(detail)
            self.log.record(record, **data)
        elif kind == READINESS_CHANGED:
            self.log.record("readiness_changed", **readiness_record(detail))
        elif kind == "ProbeFailed" and detail.get("site") in TRIGGER_SITES and not self.paused:
            name = f"auto-{int(time.time())}-{uuid.uuid4().hex[:8]}"
            self.started.append(self.start_execution(event, name))


def split_brain_record(detail: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A `SplitBrainSuspected` event's detail as the drill's event: `split_brain_resolved` when
    its `change` is "resolved", else `split_brain_alert` (a detail without `change`, from an older
    probe, is an alert: an unknown change is not a resolution)."""
    if detail.get("change") not in (None, "appeared", "resolved"):
        raise ValueError(f"SplitBrainSuspected with an unknown change {detail.get('change')!r}")
    kind = "split_brain_resolved" if detail.get("change") == "resolved" else "split_brain_alert"
    sites = detail.get("previous_sites") if kind == "split_brain_resolved" else detail.get("sites")
    return kind, {
        "reason": str(detail.get("reason") or detail),
        "region": detail.get("region"),
        "sites": list(sites or []),
    }


def readiness_record(detail: dict[str, Any]) -> dict[str, Any]:
    """A `ReadinessChanged` event's detail (checked against its model) as the drill's event: its
    reason, each change, and the alert topic's message (the stack's rule sends
    `quorum-dr: <reason>`)."""
    change = ReadinessChanged.model_validate(detail)
    return {
        "reason": change.reason,
        "overall": change.overall.value,
        "overall_before": change.overall_before.value if change.overall_before else None,
        "changes": [c.model_dump(mode="json") for c in change.changes],
        "notification": f"quorum-dr: {change.reason}",
    }


class ResultWatcher(Watcher):
    """One `vote` event per (region, site, round), timed at the round's receive time."""

    name = "result-watcher"

    def __init__(self, store: DynamoDbResultStore, service: str, log: EventLog, since: float) -> None:
        super().__init__(interval=1.0)  # each vote is timed by its results, not by this poll
        self.store = store
        self.service = service
        self.log = log
        self.since = since
        self.newest: float | None = None
        self.seen: set[tuple[str, str, str]] = set()

    def poll(self) -> None:
        since = self.since - 1
        if self.newest is not None:
            since = max(since, self.newest - LATE_SECONDS)
        results = self.store.recent_results(self.service, since)
        received = [r.received_at for r in results if r.received_at is not None]
        if received:
            self.newest = max([*received, self.newest or received[0]])
        rounds: dict[tuple[str, str, str], list[ProbeResult]] = {}
        control: dict[tuple[str, str], list[ProbeResult]] = {}
        for result in results:
            key = (result.region, result.site, result.round_id)
            if result.site == CONTROL_SITE:
                control.setdefault((result.region, result.round_id), []).append(result)
            elif key not in self.seen:
                rounds.setdefault(key, []).append(result)
        for (region, site, round_id), found in sorted(rounds.items(), key=lambda kv: _received(kv[1])):
            self.seen.add((region, site, round_id))
            # the results as the table holds them (URLs redacted by the probe), for `drctl replay`
            event = VoteEvent.of_round(found, control.get((region, round_id), []))
            self.log.record("vote", at=_received(found), **event.model_dump(mode="json"))


def _received(results: list[ProbeResult]) -> float:
    return max(r.received_at or 0.0 for r in results)


class ExecutionWatcher(Watcher):
    """Reads every execution's history once it has news; records the steps' outcomes."""

    name = "execution-watcher"

    def __init__(self, sfn: Any, machine_arn: str, log: EventLog) -> None:
        super().__init__()
        self.sfn = sfn
        self.machine_arn = machine_arn
        self.log = log
        self.done: set[str] = set()
        self.seen_events: dict[str, int] = {}
        self.statuses: dict[str, str] = {}
        self.on_switch: list[Callable[[str], None]] = []

    def running(self) -> int:
        return sum(1 for s in self.statuses.values() if s == "RUNNING")

    def poll(self) -> None:
        page = self.sfn.list_executions(stateMachineArn=self.machine_arn, maxResults=1000)
        for execution in sorted(page.get("executions", []), key=lambda e: e["startDate"]):
            arn = execution["executionArn"]
            if arn in self.done:
                continue
            status = execution["status"]
            self.statuses[arn] = status
            self._read(arn, execution["name"])
            if status != "RUNNING":
                self.done.add(arn)

    def _read(self, arn: str, name: str) -> None:
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        start = self.seen_events.get(arn, 0)
        for event in events[start:]:
            at = event["timestamp"].timestamp()
            entered = event.get("stateEnteredEventDetails")
            if entered:
                self.log.record("state", at=at, state=entered["name"], execution=name)
            exited = event.get("stateExitedEventDetails")
            if exited:
                self._exited(exited["name"], json.loads(exited.get("output") or "{}"), at, name)
        self.seen_events[arn] = len(events)

    def _exited(self, state: str, output: dict[str, Any], at: float, execution: str) -> None:  # noqa: C901
        if state == "ConfirmOutageRound":
            confirm = output.get("confirm") or {}
            self.log.record(
                "quorum",
                at=confirm.get("at", at),
                site="main",
                verdict=confirm.get("main"),
                reason=confirm.get("reason"),
                execution=execution,
            )
        elif state == "CheckDrReplica":
            replica = output.get("replica") or {}
            loss = replica.get("data_loss") or {}
            lag = replica.get("file_lag") or {}
            file_lag = {"file_lag_seconds": lag.get("lag_seconds"), "file_lag_reason": lag.get("reason")}
            self.log.record(
                "loss_receipt",
                at=replica.get("at", at),
                bytes=loss.get("loss_bytes"),
                reason=loss.get("reason") or replica.get("reason"),
                code=replica.get("code"),
                proceed=replica.get("proceed"),
                execution=execution,
                **(file_lag if lag else {}),
            )
        elif state == "WaitForFinalPosition" and (output.get("final_position") or {}).get("data_loss"):
            final = output["final_position"]  # the receipt taken after the fence replaces the check's
            self.log.record(
                "loss_receipt",
                at=final.get("at", at),
                bytes=final["data_loss"].get("loss_bytes"),
                reason=final["data_loss"].get("reason") or final.get("reason"),
                code=final.get("code"),
                proceed=final.get("proceed"),
                execution=execution,
            )
        elif state == "PromoteDrDatabase":
            promotion = output.get("promotion") or {}
            if promotion.get("promoted"):
                self.log.record(
                    "promotion", at=promotion.get("at", at), site="dr", reason=promotion.get("reason")
                )
        elif state in ("SwitchEdgeToDr", "SwitchEdgeToCold"):
            switch = output.get("switch") or {}
            if switch.get("changed"):
                target = "dr" if state.endswith("Dr") else "cold"
                self.log.record("switch", at=switch.get("at", at), to=target, reason=switch.get("reason"))
                for callback in self.on_switch:
                    callback(target)
        elif state in ("VerifyThroughPublicHostname", "VerifyColdSite"):
            verify = output.get("verify") or {}
            if not verify.get("dry_run"):
                self.log.record(
                    "verify",
                    at=verify.get("at", at),
                    site="dr" if state.endswith("Hostname") else "cold",
                    ok=bool(verify.get("verified")),
                    reason=verify.get("reason"),
                )
        elif state == "Escalate":
            escalation = output.get("escalation") or {}
            self.log.record("escalation", at=at, reason=escalation.get("reason"), execution=execution)
