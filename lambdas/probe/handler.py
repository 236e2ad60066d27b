"""Probe Lambda: rounds from this region, scheduled or on demand, and the verify round.

Input: `{}` or a Scheduled Event (one scheduled round); `{"source": "schedule", "rounds": N,
"round_spacing_seconds": S}` (the minute's N rounds S seconds apart: with ROUND_QUEUE_URL it runs
the first and queues the second on the region's round queue, delay S; without it, N rounds in this
invocation, waiting between them, as the time left allows); an SQS event from the round queue (each
message one `QueuedRound`: run it unless it is late, queueing the minute's next first; a malformed
body is logged and runs nothing, and never fails the invocation); `{"round_id", "service"?,
"sites"?, "incident_id"?}` (on-demand round); or `{"action": "verify", "service", "expect_site",
...}` (what the public hostname answers from here). See `quorum_dr.probes.event`, whose models the
state machine's callers share.
Output: the round (results as JSON-able dicts, per-site round verdicts, events published); for
several rounds `{"rounds": [...], "reason"}`; for an SQS event `{"kind": "queued", "messages"}`;
for a verify round what this region saw.
Environment: QUORUM_DR_CONFIG_PATH, RESULTS_TABLE_NAME and STATE_TABLE_NAME (in the home region; the
state table holds the active site and the last thing said about the standby), EVENT_BUS_NAME,
ROUND_QUEUE_URL (only with an interval below 60 s), AWS_REGION (the probing region; the invoked
function's ARN names the same region and wins).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
from quorum_dr.adapters.dynamodb_state import DynamoStandbyWatch
from quorum_dr.adapters.eventbridge import EventBridgePublisher
from quorum_dr.adapters.secrets import SecretsManagerSecrets
from quorum_dr.adapters.sqs_rounds import SqsRoundQueue
from quorum_dr.config import WatchdogConfig, load_config
from quorum_dr.domain.results import Vote
from quorum_dr.observability import logger, metrics, tracer
from quorum_dr.probes.event import (
    InvalidProbeEvent,
    OnDemandRound,
    is_queue_event,
    is_verify_event,
    parse_probe_event,
    parse_queue_event,
    parse_verify_event,
)
from quorum_dr.probes.service import ProbeRoundOutcome, ProbeService, verify_round
from quorum_dr.settings import LambdaSettings

__all__ = ["OnDemandRound", "handler"]

SECRETS_MAX_AGE_SECONDS = 300
# The function's clock port: this region's wall clock. Everything the probe times (probe_time,
# round ids, the round's start and end) reads it; `received_at` does not: the results store
# stamps home-region time (adapters/dynamodb_results.py). The drill replaces it to play a
# region whose clock is off.
clock: Callable[[], float] = time.time
_secrets = SecretsManagerSecrets(max_age=SECRETS_MAX_AGE_SECONDS)  # its cache outlives one invocation


@lru_cache(maxsize=4)
def _config(path: str) -> WatchdogConfig:
    return load_config(path)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        if is_verify_event(event):
            return _verify(event, context)
        if is_queue_event(event):
            return _queued(event, context)
        outcomes, reason = _run(event, context)
    except InvalidProbeEvent as exc:
        logger.error(f"rejected probe event: {exc}")
        metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=1)
        raise
    for outcome in outcomes:
        _record(outcome)
    if reason:
        logger.info(reason)
    if len(outcomes) == 1:
        return {**outcomes[0].as_dict(), **({"schedule": reason} if reason else {})}
    return {"kind": "scheduled", "rounds": [o.as_dict() for o in outcomes], "reason": reason}


def _region(context: Any, settings: LambdaSettings) -> str:
    """The region this function runs in: its ARN's (arn:aws:lambda:REGION:...), else AWS_REGION."""
    arn = str(getattr(context, "invoked_function_arn", "") or "")
    parts = arn.split(":")
    if len(parts) > 3 and parts[0] == "arn" and parts[3]:
        return parts[3]
    settings.require("AWS_REGION")
    assert settings.AWS_REGION
    return settings.AWS_REGION


def _service(context: Any) -> ProbeService:
    settings = LambdaSettings.from_env()
    settings.require("RESULTS_TABLE_NAME", "STATE_TABLE_NAME", "EVENT_BUS_NAME")
    assert settings.RESULTS_TABLE_NAME and settings.STATE_TABLE_NAME and settings.EVENT_BUS_NAME
    config = _config(settings.QUORUM_DR_CONFIG_PATH)
    region = _region(context, settings)
    return ProbeService(
        config,
        region=region,
        results=DynamoDbResultStore.from_name(
            settings.RESULTS_TABLE_NAME,
            ttl_seconds=config.probe.result_ttl_seconds,
            region=config.home_region,
            clock=clock,
            home_clock=True,
        ),
        events=EventBridgePublisher.from_name(settings.EVENT_BUS_NAME, region=region),
        secrets=_secrets,
        clock=clock,
        standby=DynamoStandbyWatch(settings.STATE_TABLE_NAME, region=config.home_region),
    )


def _remaining_seconds(context: Any) -> Any:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return (lambda: remaining() / 1000.0) if callable(remaining) else None


def _round_queue(context: Any) -> SqsRoundQueue | None:
    settings = LambdaSettings.from_env()
    if not settings.ROUND_QUEUE_URL:
        return None
    return SqsRoundQueue.from_url(settings.ROUND_QUEUE_URL, region=_region(context, settings))


def _run(event: Any, context: Any) -> tuple[list[ProbeRoundOutcome], str]:
    request = parse_probe_event(event, now=clock())
    if request.incident_id:
        logger.set_correlation_id(request.incident_id)
    service = _service(context)
    if request.rounds == 1:
        return [service.run(request)], ""
    queue = _round_queue(context)
    if queue is not None:  # the deployment's way: nothing billed for waiting
        outcome, reason = service.run_first_of_minute(request, queue)
        return [outcome], reason
    return service.run_scheduled(request, remaining_seconds=_remaining_seconds(context))


def _queued(event: Any, context: Any) -> dict[str, Any]:
    """The round queue's messages (batch size 1: one). Nothing here raises for a message: a
    malformed body is logged and dropped, a late round is dropped, so SQS never redelivers a round
    (a redelivery would be late anyway: the visibility timeout is longer than half the spacing).
    A round that fails raises, as a scheduled one does: the Errors alarm sees it."""
    messages = parse_queue_event(event)
    queue = _round_queue(context)
    if queue is None:
        LambdaSettings.from_env().require("ROUND_QUEUE_URL")
    assert queue is not None
    service: ProbeService | None = None
    answers: list[dict[str, Any]] = []
    for message in messages:
        if message.queued is None:
            logger.error(
                f"rejected queued round message {message.message_id}: {message.problem}; nothing run, "
                "the message is dropped",
                extra={"message_id": message.message_id},
            )
            metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=1)
            answers.append({"message_id": message.message_id, "rejected": message.problem})
            continue
        service = service or _service(context)
        outcome, reason = service.run_queued(message.queued, queue)
        logger.info(reason, extra={"message_id": message.message_id, "round_id": message.queued.round_id})
        if outcome is not None:
            _record(outcome)
        answers.append(
            {
                "message_id": message.message_id,
                "round": outcome.as_dict() if outcome is not None else None,
                "reason": reason,
            }
        )
    return {"kind": "queued", "messages": answers}


def _verify(event: Any, context: Any) -> dict[str, Any]:
    request = parse_verify_event(event)
    if request.incident_id:
        logger.set_correlation_id(request.incident_id)
    # A verify round stores and publishes nothing: no store or bus client is built for it (their
    # three SDK clients cost more CPU than the round itself; issue 14).
    settings = LambdaSettings.from_env()
    outcome = verify_round(
        _config(settings.QUORUM_DR_CONFIG_PATH),
        request,
        region=_region(context, settings),
        secrets=_secrets,
        clock=clock,
    )
    logger.info(outcome.seen.reason, extra={"verified": outcome.seen.ok, "expect_site": request.expect_site})
    return outcome.as_dict()


def _record(outcome: ProbeRoundOutcome) -> None:
    report = outcome.report
    failed = [r for r in report.results if r.vote is Vote.DOWN]
    metrics.add_dimension(name="region", value=report.region)
    metrics.add_metric(name="ChecksRun", unit=MetricUnit.Count, value=len(report.results))
    metrics.add_metric(name="ChecksFailed", unit=MetricUnit.Count, value=len(failed))
    metrics.add_metric(name="RoundAbstained", unit=MetricUnit.Count, value=int(report.abstaining))
    metrics.add_metric(
        name="RoundSeconds", unit=MetricUnit.Seconds, value=report.finished_at - report.started_at
    )
    logger.info(
        report.reason,
        extra={
            "round_id": report.round_id,
            "kind": outcome.request.kind,
            "verdicts": [v.reason for v in outcome.verdicts],
            "events": [f"{e.detail_type} {e.service}/{e.site}" for e in outcome.events],
        },
    )
