"""Data-capture records written by the classify step itself (serverless endpoints have no
Data Capture), in exactly the format SageMaker writes, so the drift monitor reads one format.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

from lambdas.errors import ConfigurationError


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or len(uri) <= 5:
        raise ConfigurationError(f"CAPTURE_S3_URI must look like s3://bucket/prefix, got {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ConfigurationError(f"CAPTURE_S3_URI has no bucket: {uri!r}")
    return bucket, prefix.strip("/")


def capture_record(
    request: bytes,
    content_type: str,
    response_body: str,
    when: dt.datetime,
    event_id: str,
    response_type: str = "application/json",
) -> dict[str, Any]:
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": content_type,
                "mode": "INPUT",
                "data": base64.b64encode(request).decode("ascii"),
                "encoding": "BASE64",
            },
            "endpointOutput": {
                "observedContentType": response_type,
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
    """{prefix}/{endpoint}/{variant}/yyyy/mm/dd/hh/{mm-ss-mmm}-{uuid}.jsonl (SageMaker's layout)."""
    t = when.astimezone(dt.UTC)
    name = f"{t:%M-%S}-{t.microsecond // 1000:03d}-{file_id}.jsonl"
    parts = [prefix] if prefix else []
    parts += [endpoint, variant, f"{t:%Y}", f"{t:%m}", f"{t:%d}", f"{t:%H}", name]
    return "/".join(parts)


def write_capture(
    s3: Any,
    target: tuple[str, str],
    endpoint: str,
    variant: str,
    request: bytes,
    content_type: str,
    response_body: str,
    when: dt.datetime | None = None,
    response_type: str = "application/json",
) -> str:
    """Write one capture file holding this request/response to (bucket, prefix); return its key."""
    bucket, prefix = target
    when = when or dt.datetime.now(dt.UTC)
    record = capture_record(
        request, content_type, response_body, when, str(uuid.uuid4()), response_type
    )
    key = capture_key(prefix, endpoint, variant, when, str(uuid.uuid4()))
    body = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/jsonlines")
    return key
