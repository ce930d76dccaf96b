"""Send the image to the SageMaker endpoint and check the answer: the class probabilities
plus the safety gate's verdict (the endpoint's opt-in GATE_CONTENT_TYPE, docs/design.md)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from lambdas import capture_format
from lambdas.errors import (
    EndpointError,
    EndpointUnavailable,
    ImageTooLarge,
    InvalidEvent,
    InvalidImage,
)
from lambdas.image_format import detect_image_type

# SageMaker runtime error codes that another attempt can fix (throttling, cold model, outages).
_TRANSIENT_CODES = {
    "ThrottlingException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalDependencyException",
    "ModelNotReadyException",
}
_TRANSIENT_HTTP = {429, 502, 503, 504}
# The endpoint's opt-in answer type: {"probabilities": [...], "gate": {...}}. Its home is
# training/gate.py (the Lambda zip ships lambdas/ only); a test keeps the two equal. SageMaker
# passes Accept through to the container as "the desired MIME type of the inference response"
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html).
GATE_CONTENT_TYPE = "application/vnd.scones.gate+json"


@dataclass(frozen=True)
class Prediction:
    probabilities: list[float]
    body: str
    content_type: str
    variant: str
    gate: dict[str, Any] | None = None


def decode_image(event: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(event["image_data"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEvent(f"classify_image: image_data is not valid base64 ({exc})") from None


def parse_probabilities(body: str, classes: tuple[str, ...]) -> list[float]:
    """Check the endpoint's answer is a JSON list of len(classes) probabilities summing to 1."""
    try:
        return list(capture_format.parse_probabilities(body, len(classes)))
    except capture_format.ProbabilitiesError as exc:
        raise EndpointError(
            f"endpoint answered {body[:120]!r}: {exc} (expected a probability distribution "
            f"over the classes in order {list(classes)})"
        ) from None


def parse_gated(body: str, classes: tuple[str, ...]) -> tuple[list[float], dict[str, Any]]:
    """(probabilities, gate) from the gate answer; EndpointError when it is not that shape."""
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        raise EndpointError(f"endpoint answered non-JSON: {body[:120]!r}") from None
    gate = value.get("gate") if isinstance(value, dict) else None
    if (
        not isinstance(value, dict)
        or not isinstance(gate, dict)
        or not isinstance(gate.get("in_distribution"), bool)
        or not isinstance(gate.get("failed"), list)
    ):
        raise EndpointError(
            f"endpoint answered {body[:120]!r}; expected {GATE_CONTENT_TYPE} "
            '{"probabilities": [...], "gate": {"in_distribution", "failed", ...}}'
        )
    return parse_probabilities(json.dumps(value.get("probabilities")), classes), gate


def _client_error(exc: Any, endpoint_name: str) -> Exception:
    response = exc.response
    code = str(response.get("Error", {}).get("Code", ""))
    message = str(response.get("Error", {}).get("Message", ""))
    status = response.get("OriginalStatusCode") or response.get("ResponseMetadata", {}).get(
        "HTTPStatusCode"
    )
    status = int(status) if str(status).isdigit() else 0
    where = f"endpoint {endpoint_name!r}"
    if code in _TRANSIENT_CODES or status in _TRANSIENT_HTTP:
        return EndpointUnavailable(f"{where}: {code or status}: {message}")
    if code == "ModelError":
        # The container's own status: 400 = not a decodable image, 413 = body too big.
        if status == 400:
            return InvalidImage(f"{where} could not decode the image: {message}")
        if status == 413:
            return ImageTooLarge(f"{where} refused the image as too large: {message}")
        if status == 406:  # a model artifact without gate.json cannot answer the gate's type
            return EndpointError(f"{where} cannot answer {GATE_CONTENT_TYPE}: {message}")
    return EndpointError(f"{where}: {code or status}: {message}")


def invoke(runtime: Any, endpoint_name: str, data: bytes, classes: tuple[str, ...]) -> Prediction:
    """Call invoke_endpoint; map every failure to EndpointError/EndpointUnavailable/InvalidImage."""
    from botocore.exceptions import BotoCoreError, ClientError

    content_type = detect_image_type(data)
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType=content_type,
            Accept=GATE_CONTENT_TYPE,
            Body=data,
        )
        body = response["Body"].read().decode("utf-8", errors="replace")
    except ClientError as exc:
        raise _client_error(exc, endpoint_name) from None
    except BotoCoreError as exc:  # connection refused, timeouts: the endpoint may come back
        raise EndpointUnavailable(f"endpoint {endpoint_name!r} unreachable: {exc}") from None
    probs, gate = parse_gated(body, classes)
    return Prediction(
        probabilities=probs,
        body=body,
        content_type=content_type,
        variant=str(response.get("InvokedProductionVariant") or "AllTraffic"),
        gate=gate,
    )


def classified(event: dict[str, Any], prediction: Prediction) -> dict[str, Any]:
    """The event with the endpoint's probabilities as ``inferences``, its gate verdict as
    ``gate`` and ``image_data`` dropped."""
    out = {k: v for k, v in event.items() if k != "image_data"}
    out["inferences"] = prediction.probabilities
    if prediction.gate is not None:
        out["gate"] = prediction.gate
    return out
