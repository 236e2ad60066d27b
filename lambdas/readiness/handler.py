"""Readiness, scheduled: every 5 minutes in the home region, for every service of the config.

Input: anything (the schedule sends `{"source": "schedule"}`; nothing in it is read). Output: one
outcome per service (overall status, the ReadinessChanged event published, the reason); an
evaluation that could not read its previous record, publish its event or store its record fails
the invocation after every service was evaluated (the function's Errors metric says so).
Metrics: `ReadinessStatus` per service and check, and per service as check `overall` (0 OK,
1 WARN, 2 FAIL); see `quorum_dr.readiness_service`.
Environment: QUORUM_DR_CONFIG_PATH, STATE_TABLE_NAME, RESULTS_TABLE_NAME, EVENT_BUS_NAME,
STATE_MACHINE_ARN and SWITCHOVER_STATE_MACHINE_ARN (asked whether a lock's execution still runs).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.eventbridge import EventBridgePublisher
from quorum_dr.adapters.readiness import ReadinessGatherer
from quorum_dr.config import WatchdogConfig, load_config
from quorum_dr.observability import emit_metric, logger, metrics, tracer
from quorum_dr.readiness_service import ScheduledReadiness
from quorum_dr.settings import LambdaSettings


class ReadinessRoundFailed(RuntimeError):
    """At least one service's evaluation could not be completed; the message says which and why."""


@lru_cache(maxsize=4)
def _config(path: str) -> WatchdogConfig:
    return load_config(path)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    settings = LambdaSettings.from_env()
    settings.require("STATE_TABLE_NAME", "RESULTS_TABLE_NAME", "EVENT_BUS_NAME")
    assert settings.STATE_TABLE_NAME and settings.RESULTS_TABLE_NAME and settings.EVENT_BUS_NAME
    config = _config(settings.QUORUM_DR_CONFIG_PATH)
    gatherer = ReadinessGatherer(
        config,
        state_table=settings.STATE_TABLE_NAME,
        results_table=settings.RESULTS_TABLE_NAME,
        state_machine_arns={
            "failover": settings.STATE_MACHINE_ARN,
            "switchover": settings.SWITCHOVER_STATE_MACHINE_ARN,
        },
        prove_edit=True,  # the edit check's marker, when due (edge.edit_proof_interval_seconds)
    )
    watch = ScheduledReadiness(
        config,
        assess=gatherer.assess,
        store=DynamoStateStore(settings.STATE_TABLE_NAME, resource=_dynamodb(config.home_region)),
        events=EventBridgePublisher.from_name(settings.EVENT_BUS_NAME, region=config.home_region),
        metric=emit_metric,
    )
    outcomes = watch.run()
    for outcome in outcomes:
        log = logger.error if outcome.error else logger.info
        log(outcome.reason, extra={"service": outcome.service, "overall": outcome.overall})
    for line in dict.fromkeys(gatherer.unreachable):
        logger.warning(line)
    metrics.add_metric(name="ReadinessEvaluations", unit=MetricUnit.Count, value=len(outcomes))
    failed = [o.reason for o in outcomes if o.error]
    if failed:
        raise ReadinessRoundFailed("; ".join(failed))
    return {"outcomes": [o.model_dump(mode="json") for o in outcomes]}


def _dynamodb(region: str) -> Any:
    import boto3

    from quorum_dr.adapters.aws_sdk import sdk_config

    return boto3.resource("dynamodb", region_name=region, config=sdk_config())
