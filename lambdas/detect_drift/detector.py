"""One detector run: window bounds, baseline, read the capture, analyse, build and store the report.

Everything takes its S3 client as an argument (boto3 in the Lambda, pointed at local services
through ``AWS_ENDPOINT_URL_S3`` in local mode, moto in tests): no local-mode branch here.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from lambdas.detect_drift.analysis import REPORT_VERSION, analyse, baseline_summary
from lambdas.detect_drift.capture import ParseResult, S3Location, read_s3_window
from lambdas.detect_drift.settings import DetectorSettings
from lambdas.errors import ConfigurationError
from training.baseline import BaselineError, validate_baseline


class BaselineUnavailable(Exception):
    """The baseline object is missing, unreadable or malformed: no drift can be measured."""


class InvalidWindow(ValueError):
    """The event's window_start/window_end are not ISO 8601 times or not in order."""


def _parse_instant(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidWindow(f"{name} must be an ISO 8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidWindow(f"{name} {value!r} is not ISO 8601") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def window_bounds(
    event: Mapping[str, Any] | None, now: datetime, minutes: int
) -> tuple[datetime, datetime]:
    """[start, end) of the window to analyse.

    ``window_start``/``window_end`` in the event win (backfills, local mode); otherwise the
    window ends at the scheduled event's ``time`` (EventBridge sets it), or ``now``, floored
    to the minute so two runs of one schedule tick read the same records.
    """
    event = event or {}
    if "window_end" in event or "window_start" in event:
        end = _parse_instant(event.get("window_end"), "window_end")
        start = _parse_instant(event.get("window_start"), "window_start")
        if end <= start:
            raise InvalidWindow("window_end must be after window_start")
        return start, end
    end = _parse_instant(event["time"], "time") if "time" in event else now
    end = end.astimezone(UTC).replace(second=0, microsecond=0)
    return end - timedelta(minutes=minutes), end


BASELINE_MEMBER = "baseline.json"


def baseline_from_model_tar(data: bytes) -> bytes:
    """``baseline.json`` out of a SageMaker ``model.tar.gz`` (training puts it at the root)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.lstrip("./") == BASELINE_MEMBER:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        return handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BaselineUnavailable(f"model archive is not a readable tar.gz: {exc}") from exc
    raise BaselineUnavailable(f"model archive has no {BASELINE_MEMBER}")


def load_baseline(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    """The baseline from ``baseline.json`` or from inside the model's ``model.tar.gz``.

    Reading it from the training job's own artifact means no copy step can go stale: the
    baseline always belongs to the model the endpoint serves.
    """
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # botocore ClientError and friends: report them by name
        raise BaselineUnavailable(f"cannot read baseline s3://{bucket}/{key}: {exc}") from exc
    if key.endswith(".tar.gz"):
        body = baseline_from_model_tar(body)
    try:
        return validate_baseline(json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError, BaselineError) as exc:
        raise BaselineUnavailable(f"baseline s3://{bucket}/{key} is malformed: {exc}") from exc


def build_report(
    parsed: ParseResult,
    baseline: Mapping[str, Any],
    *,
    endpoint: str,
    variant: str,
    stack: str,
    start: datetime | None,
    end: datetime | None,
    confidence_threshold: float,
    thresholds: Any,
) -> dict[str, Any]:
    """Analyse a parsed window and wrap it with counts, window and baseline summary."""
    observations = parsed.observations
    probabilities = np.array([o.probabilities for o in observations], dtype=np.float64)
    images = (
        np.stack([o.image for o in observations])
        if observations
        else np.zeros((0, 1, 1, 3), dtype=np.uint8)
    )
    result = analyse(probabilities, images, baseline, thresholds, confidence_threshold)
    return {
        "version": REPORT_VERSION,
        "stack": stack,
        "endpoint": endpoint,
        "variant": variant,
        "window": {
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "first_request": observations[0].time.isoformat() if observations else None,
            "last_request": observations[-1].time.isoformat() if observations else None,
        },
        **result,
        "counts": {
            "files": parsed.files,
            "lines": parsed.lines,
            "valid": len(observations),
            "corrupt": sum(parsed.corrupt.values()),
            "corrupt_by_reason": dict(sorted(parsed.corrupt.items())),
            "outside_window": parsed.outside_window,
            "truncated": parsed.truncated,
        },
        "corrupt_examples": parsed.examples,
        "confidence_threshold": confidence_threshold,
        "thresholds": thresholds.to_dict(),
        "baseline": baseline_summary(baseline),
    }


def detect(
    s3: Any,
    settings: DetectorSettings,
    start: datetime,
    end: datetime,
    baseline: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Read [start, end) of the capture and return the window's report."""
    if baseline is None:
        baseline = load_baseline(s3, settings.baseline_bucket, settings.baseline_key)
    classes = tuple(baseline["classes"])
    if settings.classes is not None and settings.classes != classes:
        raise ConfigurationError(
            f"CLASSES {list(settings.classes)} differ from the baseline's {list(classes)}"
        )
    parsed = read_s3_window(
        s3,
        settings.capture,
        settings.endpoint,
        settings.variant,
        start,
        end,
        n_classes=len(classes),
        image_size=baseline["image_size"],
        max_records=settings.max_records,
    )
    return build_report(
        parsed,
        baseline,
        endpoint=settings.endpoint,
        variant=settings.variant,
        stack=settings.stack,
        start=start,
        end=end,
        confidence_threshold=settings.confidence_threshold,
        thresholds=settings.thresholds,
    )


def report_key(location: S3Location, endpoint: str, end: datetime) -> str:
    """``{report prefix}/{endpoint}/yyyy/mm/dd/HHMMSSZ.json`` (one report per window end)."""
    end = end.astimezone(UTC)
    return location.key(endpoint, end.strftime("%Y/%m/%d"), end.strftime("%H%M%SZ") + ".json")


def write_report(s3: Any, location: S3Location, endpoint: str, report: Mapping[str, Any],
                 end: datetime) -> str:
    key = report_key(location, endpoint, end)
    s3.put_object(
        Bucket=location.bucket,
        Key=key,
        Body=json.dumps(report, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return key
