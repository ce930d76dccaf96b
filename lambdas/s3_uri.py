"""``s3://bucket/prefix`` locations: the one parser every part uses (Lambdas, local mode, the
Pulumi components). Stdlib only, so any Lambda zip can carry it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse


class S3UriError(ValueError):
    """The text is not an ``s3://bucket[/prefix]`` URI."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # without leading or trailing slash ("" for the bucket root)

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` under the prefix (empty parts and extra slashes dropped)."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def parse_s3_uri(uri: str) -> S3Location:
    """``s3://bucket/some/prefix/`` -> S3Location("bucket", "some/prefix"); S3UriError else."""
    parsed = urlparse(uri or "")
    if parsed.scheme != "s3" or not parsed.netloc:
        raise S3UriError(f"expected an s3://bucket/prefix URI, got {uri!r}")
    return S3Location(parsed.netloc, parsed.path.strip("/"))
