"""Pick the driver's route from the label and publish it as a routing event.

The publisher is pluggable: an SNS topic (ROUTING_TOPIC_ARN) or an EventBridge bus
(ROUTING_EVENT_BUS); exactly one must be configured.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from lambdas.config import NOT_A_VEHICLE, REJECTED_ROUTE
from lambdas.errors import ConfigurationError, InvalidEvent, RoutingError

EVENT_SOURCE = "scones.routing"
EVENT_DETAIL_TYPE = "DriverRouted"
REJECTION_MESSAGE = (
    "We could not see a vehicle in your photo. Please send a new photo of your vehicle."
)


def choose_route(label: str, routes: Mapping[str, str]) -> str:
    route = routes.get(label)
    if route is None:
        raise InvalidEvent(f"route_driver: label {label!r} has no route (known: {sorted(routes)})")
    return route


def decide(event: dict[str, Any], routes: Mapping[str, str]) -> dict[str, Any]:
    """Who decided what: the model (``label``/``confidence`` from the filter step) or a person
    (``decision`` from the review queue, which wins when present). Returns ``label``,
    ``confidence`` (None for a person), ``route``, ``decided_by`` and, for a person, ``reviewer``
    and ``decided_at``. A person's ``none`` rejects the photo (route REJECTED_ROUTE); any other
    label must be a class with a route, else InvalidEvent."""
    decision = event.get("decision")
    if decision is None:
        return {
            "label": event["label"],
            "confidence": event["confidence"],
            "route": choose_route(event["label"], routes),
            "decided_by": "model",
        }
    label = decision["label"]
    route = REJECTED_ROUTE if label == NOT_A_VEHICLE else choose_route(label, routes)
    return {
        "label": label,
        "confidence": None,
        "route": route,
        "decided_by": "person",
        "reviewer": decision["reviewer"],
        "decided_at": decision["decided_at"],
    }


def routing_event(event: dict[str, Any], decided: dict[str, Any]) -> dict[str, Any]:
    """The routing event the driver's side receives (one shape for model and person)."""
    message = {
        "driver_id": event.get("driver_id"),
        **decided,
        "image": f"s3://{event['s3_bucket']}/{event['s3_key']}",
    }
    if decided["route"] == REJECTED_ROUTE:
        message["message"] = REJECTION_MESSAGE
    return message


def sns_publisher(sns: Any, topic_arn: str) -> Callable[[dict[str, Any]], str]:
    def publish(message: dict[str, Any]) -> str:
        response = sns.publish(
            TopicArn=topic_arn,
            Subject="Driver routed",
            Message=json.dumps(message),
            MessageAttributes={
                "route": {"DataType": "String", "StringValue": message["route"]},
                "label": {"DataType": "String", "StringValue": message["label"]},
            },
        )
        return str(response["MessageId"])

    return publish


def eventbridge_publisher(events: Any, bus: str) -> Callable[[dict[str, Any]], str]:
    def publish(message: dict[str, Any]) -> str:
        response = events.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": EVENT_DETAIL_TYPE,
                    "Detail": json.dumps(message),
                    "EventBusName": bus,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise RoutingError(f"EventBridge refused the routing event: {response['Entries']}")
        return str(response["Entries"][0]["EventId"])

    return publish


def make_publisher(
    env: Mapping[str, str], client_for: Callable[[str], Any]
) -> Callable[[dict[str, Any]], str]:
    topic = env.get("ROUTING_TOPIC_ARN", "").strip()
    bus = env.get("ROUTING_EVENT_BUS", "").strip()
    if bool(topic) == bool(bus):
        raise ConfigurationError("set exactly one of ROUTING_TOPIC_ARN or ROUTING_EVENT_BUS")
    if topic:
        return sns_publisher(client_for("sns"), topic)
    return eventbridge_publisher(client_for("events"), bus)


def publish_route(publish: Callable[[dict[str, Any]], str], message: dict[str, Any]) -> str:
    """Publish; a refusal (missing topic, no permission) becomes a named RoutingError."""
    from botocore.exceptions import ClientError

    try:
        return publish(message)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise RoutingError(
            f"routing event not published: {error.get('Code')}: {error.get('Message')}"
        ) from None


def routed(event: dict[str, Any], decided: dict[str, Any]) -> dict[str, Any]:
    """The step's output: the event plus the decision (label, route, who decided)."""
    return {**event, **decided}
