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

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

# Files are named by the time their first record was buffered; a file that started a little
# before the window can still hold records inside it, so listing reaches back this far.
FILE_SLACK = timedelta(minutes=10)
MAX_EXAMPLES = 10
# ListObjectsV2 returns at most 1000 keys a page; a module constant so tests can force paging.
LIST_PAGE_SIZE = 1000
_FILE_TIME = re.compile(r"^(\d{2})-(\d{2})-(\d{3})-")


class CaptureLocationError(ValueError):
    """A capture/report/baseline location is not an s3:// URI (or directory) we can use."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # without leading or trailing slash ("" for the bucket root)

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))


def parse_s3_uri(uri: str) -> S3Location:
    """``s3://bucket/some/prefix`` -> S3Location (named error for anything else)."""
    parsed = urlparse(uri or "")
    if parsed.scheme != "s3" or not parsed.netloc:
        raise CaptureLocationError(f"expected an s3://bucket/prefix URI, got {uri!r}")
    return S3Location(parsed.netloc, parsed.path.strip("/"))


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


class _Corrupt(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


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


def file_time(key: str) -> datetime | None:
    """Start time encoded in a capture key (hour folders + ``mm-ss-mmm``), or None."""
    parts = key.split("/")
    if len(parts) < 5:
        return None
    match = _FILE_TIME.match(parts[-1])
    try:
        year, month, day, hour = (int(p) for p in parts[-5:-1])
        if not match:
            return None
        minute, second, milli = (int(g) for g in match.groups())
        return datetime(year, month, day, hour, minute, second, milli * 1000, tzinfo=UTC)
    except ValueError:
        return None


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


def parse_time(text: Any) -> datetime:
    if not isinstance(text, str):
        raise _Corrupt("bad_time", f"inferenceTime is {type(text).__name__}, not a string")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _Corrupt("bad_time", f"inferenceTime {text!r} is not ISO 8601") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _decode_data(block: Any, which: str) -> bytes:
    if not isinstance(block, dict):
        raise _Corrupt("missing_field", f"captureData.{which} is missing")
    data, encoding = block.get("data"), str(block.get("encoding", "")).upper()
    if not isinstance(data, str):
        raise _Corrupt("missing_field", f"captureData.{which}.data is missing")
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _Corrupt("bad_encoding", f"{which}.data is not valid base64") from exc
    if encoding in ("JSON", "CSV"):
        return data.encode()
    raise _Corrupt("bad_encoding", f"{which}.encoding {encoding!r} is not BASE64, JSON or CSV")


def parse_probabilities(raw: bytes, n_classes: int) -> tuple[float, ...]:
    """The endpoint's answer: a JSON list of n_classes probabilities summing to 1, or the gate
    answer (``{"probabilities": [...], "gate": {...}}``, docs/design.md) holding one."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Corrupt("bad_output", "endpointOutput is not JSON") from exc
    if isinstance(value, dict):
        value = value.get("probabilities")
    if (
        not isinstance(value, list)
        or len(value) != n_classes
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise _Corrupt("bad_output", f"endpointOutput is not a list of {n_classes} numbers")
    probs = tuple(float(v) for v in value)
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs):
        raise _Corrupt("bad_output", "probabilities outside [0, 1]")
    # The endpoint rounds each probability to 4 decimals, so the sum may be off by a little.
    if abs(sum(probs) - 1.0) > 0.01:
        raise _Corrupt("bad_output", f"probabilities sum to {sum(probs):.4f}, not 1")
    return probs


def decode_record(
    line: str | bytes,
    n_classes: int,
    image_size: Sequence[int],
) -> tuple[datetime, tuple[float, ...], np.ndarray]:
    """One capture line -> (inference time, probabilities, image at image_size)."""
    from training.errors import InvalidImage  # light module; keeps import order simple
    from training.preprocess import load_image

    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Corrupt("invalid_json", f"line is not JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise _Corrupt("invalid_json", "line is not a JSON object")
    capture = record.get("captureData")
    meta = record.get("eventMetadata")
    if not isinstance(capture, dict) or not isinstance(meta, dict):
        raise _Corrupt("missing_field", "captureData or eventMetadata is missing")
    when = parse_time(meta.get("inferenceTime"))
    probs = parse_probabilities(_decode_data(capture.get("endpointOutput"), "endpointOutput"),
                                n_classes)
    body = _decode_data(capture.get("endpointInput"), "endpointInput")
    try:
        image = load_image(body, tuple(image_size))
    except InvalidImage as exc:
        raise _Corrupt("bad_image", f"endpointInput is not a decodable image ({exc})") from exc
    return when, probs, image


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
        except _Corrupt as exc:
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
