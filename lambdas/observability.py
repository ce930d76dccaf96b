"""Powertools objects for a handler: structured logs, EMF metrics, X-Ray tracing.

Namespace and service come from POWERTOOLS_METRICS_NAMESPACE / POWERTOOLS_SERVICE_NAME when set
(the stack sets them); the defaults keep a handler usable with a bare environment.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

METRICS_NAMESPACE = "SconesUnlimited/Inference"


def powertools(step: str) -> tuple[Logger, Metrics, Tracer]:
    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "scones-workflow"
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE
    # No per-function key on the Logger itself: Loggers of one service share one formatter, so
    # when functions share a process (local mode) such a key would be the first one's. Handlers
    # put "step" on each line instead.
    logger = Logger(service=service)
    # Metrics() instances share one class-level metric set; a provider of its own per function
    # keeps two functions running in one process (local mode) from flushing each other's data.
    metrics = Metrics(provider=AmazonCloudWatchEMFProvider(namespace=namespace, service=service))
    tracer = Tracer(service=service)
    return logger, metrics, tracer
