"""Batch step: count the batch's results per route and per named failure (logic.run)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.aws import client
from lambdas.observability import powertools, with_invocation_keys
from lambdas.summarize_batch.logic import run

logger, metrics, tracer = powertools("summarize_batch")


@with_invocation_keys(logger)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    summary = run(client("s3"), event)
    metrics.add_metric(name="BatchItems", unit=MetricUnit.Count, value=summary["items"])
    metrics.add_metric(
        name="BatchUnaccounted", unit=MetricUnit.Count, value=len(summary["unaccounted"])
    )
    logger.info(
        "batch summarised",
        extra={k: summary[k] for k in ("prefix", "items", "routes", "failures", "complete")},
    )
    return summary
