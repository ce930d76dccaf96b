"""The Data Capture record and its file layout (docs/design.md, "Data capture"): the one home
for writing a record, naming its file and reading both back. The format is SageMaker Data
Capture's own, so the drift monitor reads SageMaker's files, the local endpoint's
(`local/capture.py`) and the classify Lambda's (serverless endpoints) alike.

Stdlib only: the classify and drift Lambdas carry this module in their zips.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lambdas.s3_uri import S3Location

CONTENT_TYPE = "application/jsonlines"
# The endpoint rounds each probability to 4 decimals, so the sum may be off by a little.
PROBABILITY_SUM_TOLERANCE = 0.01
_FILE_TIME = re.compile(r"^(\d{2})-(\d{2})-(\d{3})-")


class CaptureRecordError(ValueError):
    """A capture line cannot be used; ``reason`` is the drift report's counter name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ProbabilitiesError(ValueError):
    """An endpoint answer is not a JSON list of n probabilities summing to 1."""


# --- writing ---------------------------------------------------------------------------------


def capture_record(
    request_body: bytes,
    request_content_type: str,
    response_body: str,
    when: dt.datetime,
    event_id: str,
    response_content_type: str = "application/json",
) -> dict[str, Any]:
    """The JSON object of one request/response pair (docs/design.md's exact shape)."""
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": request_content_type,
                "mode": "INPUT",
                "data": base64.b64encode(request_body).decode("ascii"),
                "encoding": "BASE64",
            },
            "endpointOutput": {
                "observedContentType": response_content_type,
                "mode": "OUTPUT",
                "data": response_body,
                "encoding": "JSON",
            },
        },
        "eventMetadata": {
            "eventId": event_id,
            "inferenceTime": when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "eventVersion": "0",
    }


def capture_key(prefix: str, endpoint: str, variant: str, when: dt.datetime, file_id: str) -> str:
    """``{prefix}/{endpoint}/{variant}/yyyy/mm/dd/hh/{mm-ss-mmm}-{file_id}.jsonl`` (UTC; no
    leading part when ``prefix`` is empty): SageMaker's layout, named by the first record."""
    t = when.astimezone(dt.UTC)
    name = f"{t:%M-%S}-{t.microsecond // 1000:03d}-{file_id}.jsonl"
    parts = [prefix] if prefix else []
    parts += [endpoint, variant, f"{t:%Y}", f"{t:%m}", f"{t:%d}", f"{t:%H}", name]
    return "/".join(parts)


def capture_file_body(records: Iterable[dict[str, Any]]) -> bytes:
    """A capture file's bytes: one compact JSON object a line."""
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode("utf-8")


def write_capture(
    s3: Any,
    location: S3Location,
    endpoint: str,
    variant: str,
    request: bytes,
    content_type: str,
    response_body: str,
    when: dt.datetime | None = None,
    response_type: str = "application/json",
) -> str:
    """Write one capture file holding this request/response under ``location``; its key."""
    when = when or dt.datetime.now(dt.UTC)
    record = capture_record(
        request, content_type, response_body, when, str(uuid.uuid4()), response_type
    )
    key = capture_key(location.prefix, endpoint, variant, when, str(uuid.uuid4()))
    s3.put_object(
        Bucket=location.bucket, Key=key, Body=capture_file_body([record]), ContentType=CONTENT_TYPE
    )
    return key


# --- reading ---------------------------------------------------------------------------------


def file_time(key: str) -> dt.datetime | None:
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
        return dt.datetime(year, month, day, hour, minute, second, milli * 1000, tzinfo=dt.UTC)
    except ValueError:
        return None


def parse_capture_lines(text: str) -> list[dict[str, Any]]:
    """A capture file's text (JSON lines) back into records; blank lines are skipped."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class CapturedPair:
    """One record's fields as the reader uses them (bodies decoded from their encodings)."""

    time: dt.datetime
    request_body: bytes
    response_body: bytes


def parse_time(text: Any) -> dt.datetime:
    """``eventMetadata.inferenceTime`` (ISO 8601; naive means UTC)."""
    if not isinstance(text, str):
        kind = type(text).__name__
        raise CaptureRecordError("bad_time", f"inferenceTime is {kind}, not a string")
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CaptureRecordError("bad_time", f"inferenceTime {text!r} is not ISO 8601") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _decode_data(block: Any, which: str) -> bytes:
    if not isinstance(block, dict):
        raise CaptureRecordError("missing_field", f"captureData.{which} is missing")
    data, encoding = block.get("data"), str(block.get("encoding", "")).upper()
    if not isinstance(data, str):
        raise CaptureRecordError("missing_field", f"captureData.{which}.data is missing")
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CaptureRecordError("bad_encoding", f"{which}.data is not valid base64") from exc
    if encoding in ("JSON", "CSV"):
        return data.encode()
    raise CaptureRecordError(
        "bad_encoding", f"{which}.encoding {encoding!r} is not BASE64, JSON or CSV"
    )


def parse_record(line: str | bytes) -> CapturedPair:
    """One capture line -> its time and decoded bodies; CaptureRecordError names the reason
    (``invalid_json``, ``missing_field``, ``bad_encoding``, ``bad_time``)."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CaptureRecordError("invalid_json", f"line is not JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise CaptureRecordError("invalid_json", "line is not a JSON object")
    capture = record.get("captureData")
    meta = record.get("eventMetadata")
    if not isinstance(capture, dict) or not isinstance(meta, dict):
        raise CaptureRecordError("missing_field", "captureData or eventMetadata is missing")
    when = parse_time(meta.get("inferenceTime"))
    response = _decode_data(capture.get("endpointOutput"), "endpointOutput")
    request = _decode_data(capture.get("endpointInput"), "endpointInput")
    return CapturedPair(when, request, response)


def parse_probabilities(raw: str | bytes, n_classes: int) -> tuple[float, ...]:
    """An endpoint answer: a JSON list of ``n_classes`` probabilities in [0, 1] summing to 1
    (within PROBABILITY_SUM_TOLERANCE); ProbabilitiesError says what is wrong."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProbabilitiesError("the answer is not JSON") from exc
    if (
        not isinstance(value, list)
        or len(value) != n_classes
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ProbabilitiesError(f"the answer is not a list of {n_classes} numbers")
    probs = tuple(float(v) for v in value)
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs):
        raise ProbabilitiesError(f"{list(probs)} has values outside [0, 1]")
    if not math.isclose(sum(probs), 1.0, abs_tol=PROBABILITY_SUM_TOLERANCE):
        raise ProbabilitiesError(f"{list(probs)} sums to {sum(probs):.4f}, not 1")
    return probs


def captured_probabilities(raw: str | bytes, n_classes: int) -> tuple[float, ...]:
    """The probabilities of a captured answer: the default answer (a JSON list) or the gate
    answer (``{"probabilities": [...], "gate": {...}}``, docs/design.md) holding one."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProbabilitiesError("the answer is not JSON") from exc
    if isinstance(value, dict):
        return parse_probabilities(json.dumps(value.get("probabilities")), n_classes)
    return parse_probabilities(raw, n_classes)

