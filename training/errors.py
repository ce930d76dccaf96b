"""Named errors shared by training and serving.

Each error names one problem so callers (the endpoint server, the training CLI, tests) can map it
to an exit code or an HTTP status without parsing messages.
"""

from __future__ import annotations


class SconesError(Exception):
    """Base class of every named error in the project's model code."""


# --- Serving errors (raised by training.preprocess / training.inference input_fn) ---------------


class ServingError(SconesError):
    """A request the endpoint rejects; `status` is the HTTP status the container answers with."""

    status: int = 400

    @property
    def name(self) -> str:
        # The JSON error body's "error" field is the class name, as DESIGN.md specifies.
        return type(self).__name__


class UnsupportedContentType(ServingError):
    """The request's Content-Type is not one the endpoint accepts (HTTP 415)."""

    status = 415


class InvalidImage(ServingError):
    """The request body is not a decodable image the model can use (HTTP 400)."""

    status = 400


class PayloadTooLarge(ServingError):
    """The request body is over the endpoint's size limit (HTTP 413)."""

    status = 413
