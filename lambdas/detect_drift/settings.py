"""Environment of the drift detector (set by components/drift_monitor.py or local mode).

==============================  ========  ===================================================
variable                        default   meaning
==============================  ========  ===================================================
CAPTURE_S3_URI                  required  s3://bucket/prefix the endpoint captures under
                                          (files below {prefix}/{endpoint}/{variant}/...)
REPORT_S3_URI                   required  s3://bucket/prefix the JSON reports go to
BASELINE_S3_URI                 required  s3://bucket/key of the model's baseline.json, or
                                          of its model.tar.gz (baseline.json read inside)
ENDPOINT_NAME                   required  endpoint whose capture is read (metric dimension)
VARIANT_NAME                    AllTraffic production variant of the capture folder
STACK_NAME                      local     stack name (metric dimension)
WINDOW_MINUTES                  60        the window is the last N minutes before the event
CONFIDENCE_THRESHOLD            0.93      below it a prediction counts as low confidence
DRIFT_CONFIDENCE_PSI            0.4       alarm threshold of ConfidencePSI
DRIFT_INPUT_PSI                 0.25      alarm threshold of InputPSI (max over statistics)
DRIFT_LOW_CONFIDENCE_INCREASE   0.2       alarm when LowConfidenceRate exceeds the baseline's
                                          rate at CONFIDENCE_THRESHOLD by more than this
DRIFT_CLASS_SHARE_TOLERANCE     0.25      alarm when |ClassShare - expected| exceeds it
DRIFT_MIN_SAMPLES               100       (1-100000) fewer usable records: "insufficient data"
EXPECTED_CLASS_SHARE            uniform   JSON {class: share}, the mix ClassShare is held to
CLASSES                         baseline  JSON list; when set it must match the baseline's
MAX_RECORDS                     20000     records read per run (bounds memory and time)
==============================  ========  ===================================================

The DRIFT_* and EXPECTED_CLASS_SHARE variables belong to
:class:`lambdas.detect_drift.rules.DriftThresholds` (``environment()`` writes them for the
component, ``from_environment`` reads them here); their
defaults are the values the CloudWatch alarms use, so the report's verdict and the alarms agree.
CONFIDENCE_THRESHOLD is read as the filter step reads it (``lambdas.config.parse_threshold``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, TypeAdapter

from lambdas.config import parse_threshold
from lambdas.detect_drift.rules import DriftThresholds, ThresholdError
from lambdas.env import raw, read, require
from lambdas.errors import ConfigurationError
from lambdas.s3_uri import S3Location, S3UriError, parse_s3_uri

DEFAULT_VARIANT = "AllTraffic"
DEFAULT_WINDOW_MINUTES = 60  # scones:driftWindowMinutes's default too
DEFAULT_MAX_RECORDS = 20_000

_WINDOW_MINUTES = TypeAdapter(Annotated[int, Field(ge=1, le=7 * 24 * 60)])
_MAX_RECORDS = TypeAdapter(Annotated[int, Field(ge=1, le=1_000_000)])
_CLASS_LIST = TypeAdapter(list[str])


@dataclass(frozen=True)
class DetectorSettings:
    capture: S3Location
    report: S3Location
    baseline_bucket: str
    baseline_key: str
    endpoint: str
    variant: str
    stack: str
    window_minutes: int
    confidence_threshold: float
    thresholds: DriftThresholds
    classes: tuple[str, ...] | None
    max_records: int


def _uri(env: Mapping[str, str], key: str) -> S3Location:
    try:
        return parse_s3_uri(require(env, key))
    except S3UriError as exc:
        raise ConfigurationError(f"{key}: {exc}") from exc


def thresholds_from_env(env: Mapping[str, str]) -> DriftThresholds:
    """The drift thresholds of the environment (DriftThresholds.from_environment), every
    error a ConfigurationError."""
    try:
        return DriftThresholds.from_environment(env)
    except ThresholdError as exc:
        raise ConfigurationError(str(exc)) from exc


def load_settings(env: Mapping[str, str]) -> DetectorSettings:
    baseline = _uri(env, "BASELINE_S3_URI")
    if not baseline.prefix or baseline.prefix.endswith("/"):
        raise ConfigurationError("BASELINE_S3_URI must name an object (s3://bucket/key)")
    classes = read(
        env, "CLASSES", _CLASS_LIST, None, is_json=True, what="a JSON list of class names"
    )
    return DetectorSettings(
        capture=_uri(env, "CAPTURE_S3_URI"),
        report=_uri(env, "REPORT_S3_URI"),
        baseline_bucket=baseline.bucket,
        baseline_key=baseline.prefix,
        endpoint=require(env, "ENDPOINT_NAME"),
        variant=raw(env, "VARIANT_NAME") or DEFAULT_VARIANT,
        stack=raw(env, "STACK_NAME") or "local",
        window_minutes=read(
            env, "WINDOW_MINUTES", _WINDOW_MINUTES, DEFAULT_WINDOW_MINUTES,
            what="a whole number from 1 to 10080",
        ),
        confidence_threshold=parse_threshold(env),
        thresholds=thresholds_from_env(env),
        classes=None if classes is None else tuple(classes),
        max_records=read(
            env, "MAX_RECORDS", _MAX_RECORDS, DEFAULT_MAX_RECORDS,
            what="a whole number from 1 to 1000000",
        ),
    )
