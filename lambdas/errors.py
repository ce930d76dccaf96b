"""Named errors of the workflow.

The exception class name IS the Lambda error type Step Functions sees (``errorType`` in the
function's error payload), so the state machine catches on these names. Do not rename a class
without changing ``lambdas/workflow_definition.py`` and docs/design.md together.
"""

from __future__ import annotations


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


class LowConfidence(WorkflowError):
    """The best class probability is below the threshold: a person has to look at the image."""


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
    "SafeMode",
)
