"""Reading captured traffic: list a time window's capture files, parse and decode their records.

Layout and record format are docs/design.md's (SageMaker Data Capture's):
``{prefix}/{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/{mm-ss-mmm}-{uuid}.jsonl``, one JSON
object a line. A line that cannot be used (bad JSON, missing field, undecodable image,
probabilities of the wrong shape, bad time) is *counted by reason* and skipped, never fatal:
one corrupt record must not hide the drift in the thousand others.

Pure functions over an S3 client object (``list_objects_v2`` paginator and ``get_object``) so
tests run them against moto and local mode against its own S3 or a directory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from lambdas.capture_format import (
    CaptureRecordError,
    ProbabilitiesError,
    captured_probabilities,
    file_time,
    parse_record,
)
from lambdas.s3_uri import S3Location

# Files are named by the time their first record was buffered; a file that started a little
# before the window can still hold records inside it, so listing reaches back this far.
FILE_SLACK = timedelta(minutes=10)
MAX_EXAMPLES = 10
# ListObjectsV2 returns at most 1000 keys a page; a module constant so tests can force paging.
LIST_PAGE_SIZE = 1000


@dataclass
class Observation:
    """One usable captured inference."""

    time: datetime
    probabilities: tuple[float, ...]
    image: np.ndarray  # uint8 (H, W, 3) at the baseline's image size
    source: str = ""  # "key:line" for reports

    @property
    def confidence(self) -> float:
        return max(self.probabilities)

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))


@dataclass
class ParseResult:
    observations: list[Observation] = field(default_factory=list)
    corrupt: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, str]] = field(default_factory=list)
    outside_window: int = 0
    files: int = 0
    lines: int = 0
    truncated: bool = False

    def reject(self, reason: str, source: str, detail: str) -> None:
        self.corrupt[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({"source": source, "reason": reason, "detail": detail[:300]})




# --- listing ---------------------------------------------------------------------------------


def hour_prefixes(
    location: S3Location, endpoint: str, variant: str, start: datetime, end: datetime
) -> list[str]:
    """Hour folders that may hold records of [start, end) (reaching back FILE_SLACK)."""
    if end <= start:
        raise ValueError(f"window end {end.isoformat()} is not after start {start.isoformat()}")
    hour = (start - FILE_SLACK).replace(minute=0, second=0, microsecond=0)
    prefixes = []
    while hour < end:
        prefixes.append(location.key(endpoint, variant, hour.strftime("%Y/%m/%d/%H")) + "/")
        hour += timedelta(hours=1)
    return prefixes


def list_capture_keys(
    s3: Any,
    location: S3Location,
    endpoint: str,
    variant: str,
    start: datetime,
    end: datetime,
) -> list[str]:
    """Capture object keys that may hold records of [start, end), oldest first (paginated)."""
    paginator = s3.get_paginator("list_objects_v2")
    keys: list[str] = []
    for prefix in hour_prefixes(location, endpoint, variant, start, end):
        for page in paginator.paginate(
            Bucket=location.bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE_SIZE}
        ):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if not key.endswith(".jsonl"):
                    continue
                started = file_time(key)
                # Unparseable names are kept: their records are filtered by time below.
                if started is not None and not (start - FILE_SLACK <= started < end):
                    continue
                keys.append(key)
    return sorted(keys, key=lambda k: (file_time(k) or start, k))


def list_capture_files(root: Path, endpoint: str, variant: str) -> list[Path]:
    """Capture files of a local capture directory (local mode without S3), oldest first."""
    base = Path(root) / endpoint / variant
    return sorted(base.glob("*/*/*/*/*.jsonl")) if base.is_dir() else []


# --- parsing ---------------------------------------------------------------------------------


def decode_record(
    line: str | bytes,
    n_classes: int,
    image_size: Sequence[int],
) -> tuple[datetime, tuple[float, ...], np.ndarray]:
    """One capture line -> (inference time, probabilities, image at image_size); a
    CaptureRecordError names why a line is unusable (docs/design.md's reasons)."""
    from training.errors import InvalidImage  # light module; keeps import order simple
    from training.preprocess import load_image

    pair = parse_record(line)
    try:
        probs = captured_probabilities(pair.response_body, n_classes)
    except ProbabilitiesError as exc:
        raise CaptureRecordError("bad_output", f"endpointOutput: {exc}") from exc
    try:
        image = load_image(pair.request_body, tuple(image_size))
    except InvalidImage as exc:
        raise CaptureRecordError(
            "bad_image", f"endpointInput is not a decodable image ({exc})"
        ) from exc
    return pair.time, probs, image


def parse_lines(
    lines: Iterable[str | bytes],
    source: str,
    result: ParseResult,
    *,
    n_classes: int,
    image_size: Sequence[int],
    start: datetime | None,
    end: datetime | None,
    max_records: int,
) -> None:
    """Add the usable records of one file's lines to ``result`` (corrupt ones counted)."""
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        if not line.strip():
            continue
        result.lines += 1
        where = f"{source}:{number}"
        try:
            when, probs, image = decode_record(line, n_classes, image_size)
        except CaptureRecordError as exc:
            result.reject(exc.reason, where, exc.detail)
            continue
        if (start is not None and when < start) or (end is not None and when >= end):
            result.outside_window += 1
            continue
        if len(result.observations) >= max_records:
            result.truncated = True
            return
        result.observations.append(Observation(when, probs, image, where))


def list_all_capture_keys(s3: Any, location: S3Location, endpoint: str, variant: str) -> list[str]:
    """Every capture object key of an endpoint variant, oldest first (local mode's --all)."""
    paginator = s3.get_paginator("list_objects_v2")
    keys = [
        obj["Key"]
        for page in paginator.paginate(
            Bucket=location.bucket,
            Prefix=location.key(endpoint, variant) + "/",
            PaginationConfig={"PageSize": LIST_PAGE_SIZE},
        )
        for obj in page.get("Contents", [])
        if obj["Key"].endswith(".jsonl")
    ]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return sorted(keys, key=lambda k: (file_time(k) or epoch, k))


def read_s3_window(
    s3: Any,
    location: S3Location,
    endpoint: str,
    variant: str,
    start: datetime | None,
    end: datetime | None,
    *,
    n_classes: int,
    image_size: Sequence[int],
    max_records: int,
) -> ParseResult:
    """Every usable record of [start, end) under the capture prefix (everything when both are
    None)."""
    result = ParseResult()
    if start is None and end is None:
        keys = list_all_capture_keys(s3, location, endpoint, variant)
    elif start is None or end is None:
        raise ValueError("give both window start and end, or neither")
    else:
        keys = list_capture_keys(s3, location, endpoint, variant, start, end)
    for key in keys:
        result.files += 1
        body = s3.get_object(Bucket=location.bucket, Key=key)["Body"].read()
        parse_lines(
            _split_lines(body), key, result, n_classes=n_classes, image_size=image_size,
            start=start, end=end, max_records=max_records,
        )
        if result.truncated:
            break
    result.observations.sort(key=lambda o: o.time)
    return result


def read_directory(
    root: Path,
    endpoint: str,
    variant: str,
    *,
    n_classes: int,
    image_size: Sequence[int],
    start: datetime | None = None,
    end: datetime | None = None,
    max_records: int = 1_000_000,
) -> ParseResult:
    """Every usable record of a local capture directory (optionally within [start, end))."""
    result = ParseResult()
    for path in list_capture_files(root, endpoint, variant):
        result.files += 1
        parse_lines(
            _split_lines(path.read_bytes()), str(path), result, n_classes=n_classes,
            image_size=image_size, start=start, end=end, max_records=max_records,
        )
        if result.truncated:
            break
    result.observations.sort(key=lambda o: o.time)
    return result


def _split_lines(body: bytes) -> Iterator[bytes]:
    return iter(body.splitlines())
