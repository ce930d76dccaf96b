"""Step 3: accept the prediction when its confidence meets CONFIDENCE_THRESHOLD.

In safe mode (lambdas/safe_mode/flag.py, read before the model's answer is weighed) every
request raises SafeMode instead: the state machine sends it to review, probabilities and all.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from lambdas.config import parse_classes, parse_threshold
from lambdas.errors import LowConfidence
from lambdas.events import FILTER_INPUT, validate_event
from lambdas.filter_inferences.logic import decide, filtered
from lambdas.observability import powertools, with_invocation_keys
from lambdas.review_reasons import REASON_DIMENSION, REVIEW_METRIC, ReviewReason
from lambdas.safe_mode import flag as safe_mode
from lambdas.safe_mode.review import safe_mode_review

logger, metrics, tracer = powertools("filter_inferences")


@with_invocation_keys(logger)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    classes = parse_classes(os.environ)
    threshold = parse_threshold(os.environ)
    event = validate_event(event, FILTER_INPUT, "filter_inferences")
    logger.thread_safe_append_keys(
        step="filter_inferences", s3_key=event["s3_key"], driver_id=event.get("driver_id")
    )
    confidence = max(event["inferences"]) if event["inferences"] else 0.0
    metrics.add_metric(name="Confidence", unit=MetricUnit.NoUnit, value=float(confidence))
    state = safe_mode.current(os.environ)
    if state is not None and state.on:
        review = safe_mode_review(event["inferences"], classes, state)
        _review_metric(ReviewReason.SAFE_MODE)
        logger.info("safe mode: needs human review", extra={"safe_mode": state.reason})
        raise review
    try:
        label, confidence = decide(event["inferences"], classes, threshold)
    except LowConfidence:
        metrics.add_metric(name="LowConfidence", unit=MetricUnit.Count, value=1)
        _review_metric(ReviewReason.LOW_CONFIDENCE)
        logger.info("low confidence: needs human review", extra={"confidence": confidence})
        raise
    metrics.add_metric(name="LowConfidence", unit=MetricUnit.Count, value=0)
    metrics.add_metadata(key="label", value=label)
    # Per-label count as its own EMF document, so the label dimension does not split the others.
    with single_metric(
        name="Predictions", unit=MetricUnit.Count, value=1, namespace=metrics.provider.namespace
    ) as metric:
        metric.add_dimension(name="label", value=label)
    logger.info("accepted", extra={"label": label, "confidence": confidence})
    return filtered(event, label, confidence)


def _review_metric(reason: ReviewReason) -> None:
    # Its own EMF document, so the reason dimension does not split the step's other metrics.
    with single_metric(
        name=REVIEW_METRIC, unit=MetricUnit.Count, value=1, namespace=metrics.provider.namespace
    ) as metric:
        metric.add_dimension(name=REASON_DIMENSION, value=str(reason))
