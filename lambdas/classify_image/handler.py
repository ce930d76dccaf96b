"""Step 2: classify the image with the SageMaker endpoint (boto3 sagemaker-runtime only)."""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.aws import client
from lambdas.capture_format import write_capture
from lambdas.classify_image.logic import (
    GATE_CONTENT_TYPE,
    classified,
    decode_image,
    invoke,
)
from lambdas.config import parse_classes
from lambdas.env import require
from lambdas.errors import ConfigurationError
from lambdas.events import CLASSIFY_INPUT, validate_event
from lambdas.observability import powertools, with_invocation_keys
from lambdas.s3_uri import S3Location, S3UriError, parse_s3_uri

logger, metrics, tracer = powertools("classify_image")


def capture_location(uri: str) -> S3Location:
    """CAPTURE_S3_URI as a location; ConfigurationError when it is not s3://bucket/prefix."""
    try:
        return parse_s3_uri(uri)
    except S3UriError as exc:
        raise ConfigurationError(f"CAPTURE_S3_URI must be s3://bucket/prefix: {exc}") from exc


@with_invocation_keys(logger)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    env = os.environ
    endpoint = require(env, "ENDPOINT_NAME")
    classes = parse_classes(env)
    capture_uri = env.get("CAPTURE_S3_URI", "").strip()
    capture_target = capture_location(capture_uri) if capture_uri else None
    event = validate_event(event, CLASSIFY_INPUT, "classify_image")
    logger.thread_safe_append_keys(
        step="classify_image", s3_key=event["s3_key"], driver_id=event.get("driver_id")
    )
    data = decode_image(event)
    started = time.perf_counter()
    prediction = invoke(client("sagemaker-runtime"), endpoint, data, classes)
    latency_ms = (time.perf_counter() - started) * 1000.0
    metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
    if capture_target is not None:
        # Monitoring must not stop routing: a failed capture is logged and counted, not raised.
        try:
            write_capture(
                client("s3"),
                capture_target,
                endpoint,
                prediction.variant,
                data,
                prediction.content_type,
                prediction.body,
                response_type=GATE_CONTENT_TYPE,
            )
            metrics.add_metric(name="CaptureWritten", unit=MetricUnit.Count, value=1)
        except Exception:
            logger.exception("data capture write failed")
            metrics.add_metric(name="CaptureFailed", unit=MetricUnit.Count, value=1)
    logger.info("classified", extra={"inferences": prediction.probabilities, "ms": latency_ms})
    return classified(event, prediction)
