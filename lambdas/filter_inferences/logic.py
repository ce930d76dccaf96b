"""Keep a prediction only when the model is confident enough; otherwise ask for a person."""

from __future__ import annotations

from typing import Any

from lambdas.errors import InvalidEvent, LowConfidence


def decide(
    inferences: list[float], classes: tuple[str, ...], threshold: float
) -> tuple[str, float]:
    """(label, confidence) of the most probable class; LowConfidence below the threshold."""
    if len(inferences) != len(classes):
        raise InvalidEvent(
            f"filter_inferences: {len(inferences)} inferences for {len(classes)} classes "
            f"{list(classes)}"
        )
    best = max(range(len(inferences)), key=lambda i: inferences[i])
    confidence = float(inferences[best])
    label = classes[best]
    if confidence < threshold:
        raise LowConfidence(
            f"best class {label!r} has confidence {confidence:.4f}, below the threshold "
            f"{threshold:.4f}: needs human review"
        )
    return label, confidence


def filtered(event: dict[str, Any], label: str, confidence: float) -> dict[str, Any]:
    return {**event, "label": label, "confidence": confidence}
