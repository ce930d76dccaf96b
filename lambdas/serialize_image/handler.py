"""Step 1: read the image named by the event from S3 and base64 it into the state."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.aws import client
from lambdas.events import SERIALIZE_INPUT, validate_event
from lambdas.observability import powertools, with_invocation_keys
from lambdas.serialize_image.logic import fetch_object, serialize

logger, metrics, tracer = powertools("serialize_image")


@with_invocation_keys(logger)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    event = validate_event(event, SERIALIZE_INPUT, "serialize_image")
    logger.thread_safe_append_keys(
        step="serialize_image", s3_key=event["s3_key"], driver_id=event.get("driver_id")
    )
    data = fetch_object(client("s3"), event["s3_bucket"], event["s3_key"])
    result = serialize(event, data)
    metrics.add_metric(name="ImageBytes", unit=MetricUnit.Bytes, value=len(data))
    logger.info("image serialized", extra={"bytes": len(data)})
    return result
