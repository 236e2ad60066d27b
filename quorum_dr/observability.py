"""Logger, Tracer and Metrics of every function (Powertools); the correlation id is the incident id."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="quorum-dr")
tracer = Tracer(service="quorum-dr")
metrics = Metrics(namespace="QuorumDR", service="quorum-dr")
