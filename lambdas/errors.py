"""Named errors of the workflow.

The exception class name IS the Lambda error type Step Functions sees (``errorType`` in the
function's error payload), so the state machine catches on these names. Do not rename a class
without changing ``lambdas/workflow_definition.py`` and docs/design.md together.
"""

from __future__ import annotations

from lambdas.review_reasons import ReviewReason


class WorkflowError(Exception):
    """Base of the terminal, named errors: retrying cannot fix them."""


class InvalidEvent(WorkflowError):
    """The state input is missing a key, has a wrong type or an unexpected field."""


class ImageNotFound(WorkflowError):
    """The bucket or the object named by the event does not exist (or cannot be read)."""


class InvalidImage(WorkflowError):
    """The object is not a complete PNG or JPEG (checked by content, not by extension)."""


class ImageTooLarge(WorkflowError):
    """The image would push the state payload over Step Functions' 256 KiB limit."""


class EndpointError(WorkflowError):
    """The model endpoint refused the request or answered something that is not a prediction."""


class ReviewNeeded(WorkflowError):
    """Base of the outcomes that hand the case to a person: the message is
    ``"<reason>: <detail>"`` (a ``ReviewReason`` value, then words for the reviewer), which the
    review message, the review list and the page show."""

    default_reason: ReviewReason = ReviewReason.LOW_CONFIDENCE

    def __init__(self, detail: str, reason: ReviewReason | None = None) -> None:
        self.reason = ReviewReason(reason or self.default_reason)
        self.detail = detail
        super().__init__(f"{self.reason}: {detail}")


class LowConfidence(ReviewNeeded):
    """The best class probability is below the threshold: a person has to look at the image."""

    default_reason = ReviewReason.LOW_CONFIDENCE


class OutOfDistribution(ReviewNeeded):
    """The endpoint's safety gate judged the photo unlike the training photos (too dark,
    blurred, flat, noise, or content the network does not know): a person has to look."""

    default_reason = ReviewReason.OUT_OF_DISTRIBUTION


class SafeMode(WorkflowError):
    """The workflow is in safe mode (a drift alarm fired): every request goes to a person until
    someone clears it (lambdas/safe_mode/, docs/monitoring.md#safe-mode)."""


class ConfigurationError(WorkflowError):
    """The function's environment is missing or has a malformed setting (a deploy bug)."""


class RoutingError(WorkflowError):
    """The routing event could not be published (the topic or bus refused it)."""


class TransientError(Exception):
    """Base of the retryable errors: the state machine retries these with backoff and jitter."""


class EndpointUnavailable(TransientError):
    """The endpoint throttled, timed out or answered 5xx; another attempt may succeed."""


NAMED_ERRORS: tuple[str, ...] = (
    "InvalidEvent",
    "ImageNotFound",
    "InvalidImage",
    "ImageTooLarge",
    "EndpointError",
    "LowConfidence",
    "OutOfDistribution",
    "SafeMode",
)
