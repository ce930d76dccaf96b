"""Step 4: decide the driver's route from the label and publish the routing event."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.aws import client
from lambdas.config import parse_classes, parse_routes
from lambdas.events import ROUTE_INPUT, validate_event
from lambdas.observability import powertools, with_invocation_keys
from lambdas.route_driver.logic import (
    decide,
    make_publisher,
    publish_route,
    routed,
    routing_event,
)

logger, metrics, tracer = powertools("route_driver")


@with_invocation_keys(logger)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    routes = parse_routes(os.environ, parse_classes(os.environ))
    publish = make_publisher(os.environ, client)
    event = validate_event(event, ROUTE_INPUT, "route_driver")
    logger.thread_safe_append_keys(
        step="route_driver", s3_key=event["s3_key"], driver_id=event.get("driver_id")
    )
    decided = decide(event, routes)
    message_id = publish_route(publish, routing_event(event, decided))
    metrics.add_metric(name="Routed", unit=MetricUnit.Count, value=1)
    logger.info(
        "routed",
        extra={
            "route": decided["route"],
            "decided_by": decided["decided_by"],
            "message_id": message_id,
        },
    )
    return routed(event, decided)
