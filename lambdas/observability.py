"""Powertools objects for a handler: structured logs, EMF metrics, X-Ray tracing.

Namespace and service come from POWERTOOLS_METRICS_NAMESPACE / POWERTOOLS_SERVICE_NAME when set
(the stack sets them); the defaults keep a handler usable with a bare environment.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

from lambdas.defaults import METRICS_NAMESPACE


def powertools(step: str) -> tuple[Logger, Metrics, Tracer]:
    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "scones-workflow"
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE
    # Loggers of one service share one formatter, so per-invocation keys go on as thread-local
    # keys (with_invocation_keys, thread_safe_append_keys), never onto the shared formatter.
    logger = Logger(service=service)
    # Metrics() instances share one class-level metric set; a provider of its own per function
    # keeps two functions running in one process (local mode) from flushing each other's data.
    metrics = Metrics(provider=AmazonCloudWatchEMFProvider(namespace=namespace, service=service))
    tracer = Tracer(service=service)
    return logger, metrics, tracer


Handler = Callable[[Any, Any], Any]


def with_invocation_keys(logger: Logger) -> Callable[[Handler], Handler]:
    """Decorate a handler so each log line of an invocation carries the Lambda context (function
    name and ARN, memory, request id) and cold_start, as Logger.inject_lambda_context does, but
    as thread-local keys that are cleared when the invocation ends.

    Why not inject_lambda_context: it writes those keys (and clear_state wipes them) on the
    formatter that all Loggers of one service share. In AWS each execution environment runs one
    invocation at a time, so that is harmless; local mode runs the four functions in one process,
    concurrently, where one function's keys (or its clear_state) landed on another's log lines,
    and a formatter mutated mid-format lost lines. cold_start is tracked per handler, not per
    process, for the same reason.
    """

    def decorator(handler: Handler) -> Handler:
        cold = [True]

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            cold_start, cold[0] = cold[0], False
            logger.thread_safe_clear_keys()
            logger.thread_safe_append_keys(
                cold_start=cold_start, **build_lambda_context_model(context).__dict__
            )
            try:
                return handler(event, context)
            finally:
                logger.thread_safe_clear_keys()

        return wrapper

    return decorator
