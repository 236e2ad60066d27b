"""Probe Lambda: one round from this region, scheduled or on demand.

Input: `{}` or a Scheduled Event (scheduled round), or
`{"round_id", "service"?, "sites"?, "incident_id"?}` (on-demand round); see
`quorum_dr.probes.event`, whose `OnDemandRound` model the state machine's callers share.
Output: the round (results as JSON-able dicts, per-site round verdicts, events published).
Environment: QUORUM_DR_CONFIG_PATH, RESULTS_TABLE_NAME (in the home region), EVENT_BUS_NAME,
AWS_REGION (the probing region).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
from quorum_dr.adapters.eventbridge import EventBridgePublisher
from quorum_dr.adapters.secrets import SecretsManagerSecrets
from quorum_dr.config import WatchdogConfig, load_config
from quorum_dr.domain.results import Vote
from quorum_dr.observability import logger, metrics, tracer
from quorum_dr.probes.event import InvalidProbeEvent, OnDemandRound, parse_probe_event
from quorum_dr.probes.service import ProbeRoundOutcome, ProbeService
from quorum_dr.settings import LambdaSettings

__all__ = ["OnDemandRound", "handler"]

SECRETS_MAX_AGE_SECONDS = 300
_secrets = SecretsManagerSecrets(max_age=SECRETS_MAX_AGE_SECONDS)  # its cache outlives one invocation


@lru_cache(maxsize=4)
def _config(path: str) -> WatchdogConfig:
    return load_config(path)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        outcome = _run(event)
    except InvalidProbeEvent as exc:
        logger.error(f"rejected probe event: {exc}")
        metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=1)
        raise
    _record(outcome)
    return outcome.as_dict()


def _run(event: Any) -> ProbeRoundOutcome:
    request = parse_probe_event(event, now=time.time())
    if request.incident_id:
        logger.set_correlation_id(request.incident_id)
    settings = LambdaSettings.from_env()
    settings.require("RESULTS_TABLE_NAME", "EVENT_BUS_NAME", "AWS_REGION")
    assert settings.RESULTS_TABLE_NAME and settings.EVENT_BUS_NAME and settings.AWS_REGION
    config = _config(settings.QUORUM_DR_CONFIG_PATH)
    service = ProbeService(
        config,
        region=settings.AWS_REGION,
        results=DynamoDbResultStore.from_name(
            settings.RESULTS_TABLE_NAME,
            ttl_seconds=config.probe.result_ttl_seconds,
            region=config.home_region,
        ),
        events=EventBridgePublisher.from_name(settings.EVENT_BUS_NAME, region=settings.AWS_REGION),
        secrets=_secrets,
    )
    return service.run(request)


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
