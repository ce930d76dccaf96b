"""Read the driver's image from S3 and put it, base64-encoded, into the state."""

from __future__ import annotations

import base64
import json
from typing import Any

from lambdas.errors import ImageNotFound, ImageTooLarge
from lambdas.image_format import detect_image_type

# Step Functions refuses a state input/output over 256 KiB. The Lambda task's raw result also
# carries invocation metadata, so keep some headroom below the hard limit.
STATE_LIMIT_BYTES = 256 * 1024
HEADROOM_BYTES = 8 * 1024
MAX_STATE_BYTES = STATE_LIMIT_BYTES - HEADROOM_BYTES

_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "404", "NotFound", "AccessDenied", "403"}


def base64_size(n_bytes: int) -> int:
    return 4 * ((n_bytes + 2) // 3)


def state_size(event: dict[str, Any]) -> int:
    return len(json.dumps(event, separators=(",", ":")).encode("utf-8"))


def check_fits(event: dict[str, Any], n_bytes: int) -> None:
    """Raise ImageTooLarge if an image of n_bytes would push the state over the limit."""
    projected = state_size({**event, "image_data": "", "inferences": []}) + base64_size(n_bytes)
    if projected > MAX_STATE_BYTES:
        raise ImageTooLarge(
            f"s3://{event['s3_bucket']}/{event['s3_key']} is {n_bytes} bytes; base64 in the state "
            f"would be {projected} bytes, over the {MAX_STATE_BYTES}-byte budget under Step "
            f"Functions' {STATE_LIMIT_BYTES}-byte payload limit"
        )


def fetch_object(s3: Any, bucket: str, key: str) -> bytes:
    """Read the object, refusing (before downloading) one too large for the state."""
    from botocore.exceptions import ClientError

    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND_CODES:
            what = "bucket" if code == "NoSuchBucket" else "object"
            raise ImageNotFound(
                f"s3://{bucket}/{key}: {what} not found or not readable ({code})"
            ) from None
        raise
    body = response["Body"]
    try:
        length = int(response.get("ContentLength", 0))
        check_fits({"s3_bucket": bucket, "s3_key": key}, length)
        return body.read()
    finally:
        body.close()


def serialize(event: dict[str, Any], data: bytes) -> dict[str, Any]:
    """Return the event with ``image_data`` and an empty ``inferences`` list added."""
    detect_image_type(data)
    check_fits(event, len(data))
    out = {**event, "image_data": base64.b64encode(data).decode("ascii"), "inferences": []}
    return out
