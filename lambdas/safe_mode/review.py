"""The filter step's answer in safe mode: a SafeMode error that carries the model's view."""

from __future__ import annotations

from lambdas.errors import InvalidEvent, SafeMode
from lambdas.safe_mode.flag import SafeModeState


def safe_mode_review(
    inferences: list[float], classes: tuple[str, ...], state: SafeModeState
) -> SafeMode:
    """The SafeMode error for one request (raise it). Its message starts with the reason
    ``safe_mode`` and names the model's best class and confidence (the case keeps the
    probabilities themselves: the state machine's Catch keeps the step's input)."""
    if len(inferences) != len(classes):
        raise InvalidEvent(
            f"filter_inferences: {len(inferences)} inferences for {len(classes)} classes "
            f"{list(classes)}"
        )
    best = max(range(len(inferences)), key=lambda i: inferences[i])
    since = f" since {state.changed_at}" if state.changed_at else ""
    return SafeMode(
        f"safe_mode: the workflow is in safe mode{since} ({state.reason}; set by "
        f"{state.changed_by}); best class {classes[best]!r} has confidence "
        f"{float(inferences[best]):.4f}: needs human review"
    )
