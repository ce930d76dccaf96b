"""Named errors of the training package.

Each class name says what went wrong, so a CLI, a test or a log line can tell the cases apart.
The dataset family (DatasetError and its subclasses) belongs to data staging; the serving
family is used by the inference hooks. Nothing here imports torch.
"""

from __future__ import annotations


class SconesError(Exception):
    """Base of every named error raised by the training package."""


# --- data staging -------------------------------------------------------------------------


class DatasetError(SconesError):
    """The CIFAR archive or the staged data set cannot be used."""


class ChecksumMismatch(DatasetError):
    """A downloaded archive's MD5 differs from the published checksum."""


class CorruptArchive(DatasetError):
    """The archive is not a gzip tar, is truncated, or a member cannot be unpickled."""


class MissingMember(DatasetError):
    """A required member (train, test, meta) is absent from the archive."""


class UnknownClass(DatasetError):
    """A requested class name is not a CIFAR-100 fine label name."""


class InvalidClasses(DatasetError):
    """The class list is unusable (fewer than two names, repeated names)."""


class EmptyClass(DatasetError):
    """A requested class has no image in a split of the archive."""


class DownloadUnavailable(DatasetError):
    """No archive was given and the official download could not be reached."""


class StagedDataError(DatasetError):
    """A staged split (dataset.npz / manifest) is missing or malformed."""


# --- training -----------------------------------------------------------------------------


class QualityGateFailed(SconesError):
    """Test accuracy is below the configured floor (--min-accuracy)."""

    def __init__(self, accuracy: float, floor: float) -> None:
        super().__init__(
            f"test accuracy {accuracy:.4f} is below the quality gate floor {floor:.4f} "
            "(--min-accuracy)"
        )
        self.accuracy = accuracy
        self.floor = floor


# --- serving ------------------------------------------------------------------------------


class ServingError(SconesError):
    """A request the endpoint rejects; `status` is the HTTP status the container answers with."""

    status: int = 400

    @property
    def name(self) -> str:
        # The JSON error body's "error" field is the class name, as docs/design.md specifies.
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


class NotAcceptable(ServingError):
    """The request's Accept header admits no type the endpoint answers with (HTTP 406)."""

    status = 406


class ModelArtifactError(SconesError):
    """A model directory/tarball lacks a file or holds inconsistent metadata; serving refuses it."""
