"""Scheduled drift detection: read the last window of captured traffic, compare it with the
training baseline, publish the drift metrics (EMF) and store a JSON report in S3.

A thin shell: settings come from the environment (see ``lambdas/detect_drift/settings.py``),
the work is ``detector.detect``; this module only wires boto3, Powertools and the clock.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Tracer

from lambdas.aws import client
from lambdas.defaults import METRICS_NAMESPACE
from lambdas.detect_drift.detector import detect, window_bounds, write_report
from lambdas.detect_drift.publish import emit, metric_points
from lambdas.detect_drift.settings import load_settings

_SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "scones-drift"
logger = Logger(service=_SERVICE)
tracer = Tracer(service=_SERVICE)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    settings = load_settings(os.environ)
    start, end = window_bounds(
        event if isinstance(event, dict) else {}, datetime.now(UTC), settings.window_minutes
    )
    logger.append_keys(endpoint=settings.endpoint, window_start=start.isoformat(),
                       window_end=end.isoformat())
    s3 = client("s3")
    report = detect(s3, settings, start, end)
    key = write_report(s3, settings.report, settings.endpoint, report, end)
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE
    emit(metric_points(report, settings.stack, settings.endpoint), namespace)
    summary = {
        "status": report["status"],
        "drift": report["drift"],
        "reasons": report["reasons"],
        "counts": report["counts"],
        "report": f"s3://{settings.report.bucket}/{key}",
    }
    log = logger.warning if report["drift"] else logger.info
    log("drift window analysed", extra={**summary, "metrics": report["metrics"]})
    return summary
