"""Logger, Tracer and Metrics (Powertools), one of each for every function: service "quorum-dr".

The correlation id is the incident id: a handler that knows one calls
`logger.set_correlation_id(incident_id)`, so every line of one incident carries it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = "quorum-dr"
NAMESPACE = "QuorumDR"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


@contextmanager
def measured_step(step: str, what: str) -> Iterator[None]:
    """A state machine step's metrics (dimension `step`): StepSeconds always, then StepSucceeded,
    or StepFailed with the error's name as metadata and a warning saying `what` failed and why."""
    metrics.add_dimension(name="step", value=step)
    started = time.monotonic()
    try:
        yield
    except Exception as exc:
        logger.warning(f"{what} failed: {type(exc).__name__}: {exc}")
        metrics.add_metric(name="StepFailed", unit=MetricUnit.Count, value=1)
        metrics.add_metadata(key="error", value=type(exc).__name__)
        raise
    finally:
        metrics.add_metric(name="StepSeconds", unit=MetricUnit.Seconds, value=time.monotonic() - started)
    metrics.add_metric(name="StepSucceeded", unit=MetricUnit.Count, value=1)


def emit_metric(
    name: str, value: float, dimensions: Mapping[str, str], unit: MetricUnit = MetricUnit.NoUnit
) -> None:
    """One metric with its own dimensions, printed at once as its own EMF record (the metrics of
    the decorated handler share one set of dimensions; a metric per service and check cannot)."""
    with single_metric(
        name=name, unit=unit, value=value, namespace=NAMESPACE, default_dimensions=dict(dimensions)
    ):
        pass
