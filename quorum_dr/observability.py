"""Logger, Tracer and Metrics (Powertools), one of each for every function: service "quorum-dr".

The correlation id is the incident id: a handler that knows one calls
`logger.set_correlation_id(incident_id)`, so every line of one incident carries it.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "quorum-dr"
NAMESPACE = "QuorumDR"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
