"""Logger, Tracer and Metrics (Powertools), one of each for every function: service "quorum-dr".

The correlation id is the incident id: a handler that knows one calls
`logger.set_correlation_id(incident_id)`, so every line of one incident carries it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = "quorum-dr"
NAMESPACE = "QuorumDR"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def emit_metric(
    name: str, value: float, dimensions: Mapping[str, str], unit: MetricUnit = MetricUnit.NoUnit
) -> None:
    """One metric with its own dimensions, printed at once as its own EMF record (the metrics of
    the decorated handler share one set of dimensions; a metric per service and check cannot)."""
    with single_metric(
        name=name, unit=unit, value=value, namespace=NAMESPACE, default_dimensions=dict(dimensions)
    ):
        pass
