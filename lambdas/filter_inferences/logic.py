"""Keep a prediction only when the safety gate passes and the model is confident enough;
otherwise ask for a person (docs/safety.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdas.errors import InvalidEvent, LowConfidence, OutOfDistribution

# training/gate.py's check kinds, in the order the detail names them: input quality first,
# "too dark" tells a reviewer (and the driver) more than a feature distance does.
_GATE_KINDS = (("input_quality", "input quality"), ("feature_distance", "feature distance"))


def gate_verdict(gate: Mapping[str, Any] | None) -> OutOfDistribution | None:
    """The OutOfDistribution the endpoint's gate verdict calls for, or None when it passed.

    ``gate`` is the ``gate`` object of the endpoint's gate answer (docs/design.md); None (an
    event without one) means no gate ran."""
    if gate is None or gate.get("in_distribution") is True:
        return None
    failed = [f for f in gate.get("failed") or [] if isinstance(f, Mapping)]
    for kind, words in _GATE_KINDS:
        details = [str(f.get("detail") or f.get("check")) for f in failed if f.get("kind") == kind]
        if details:
            return OutOfDistribution(f"{words}: " + "; ".join(details))
    return OutOfDistribution("the endpoint's gate did not pass the image")


def decide(
    inferences: list[float],
    classes: tuple[str, ...],
    threshold: float,
    gate: Mapping[str, Any] | None = None,
) -> tuple[str, float]:
    """(label, confidence) of the most probable class.

    Raises OutOfDistribution when the gate failed (its detail names the failed checks, input
    quality before feature distance), else LowConfidence below the threshold."""
    if len(inferences) != len(classes):
        raise InvalidEvent(
            f"filter_inferences: {len(inferences)} inferences for {len(classes)} classes "
            f"{list(classes)}"
        )
    best = max(range(len(inferences)), key=lambda i: inferences[i])
    confidence = float(inferences[best])
    label = classes[best]
    unlike = gate_verdict(gate)
    if unlike is not None:
        raise OutOfDistribution(
            f"{unlike.detail} (best class {label!r} at confidence {confidence:.4f})"
        )
    if confidence < threshold:
        raise LowConfidence(
            f"best class {label!r} has confidence {confidence:.4f}, below the threshold "
            f"{threshold:.4f}: needs human review"
        )
    return label, confidence


def filtered(event: dict[str, Any], label: str, confidence: float) -> dict[str, Any]:
    return {**event, "label": label, "confidence": confidence}
