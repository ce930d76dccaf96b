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
DRIFT_MIN_SAMPLES               100       fewer usable records: "insufficient data"
EXPECTED_CLASS_SHARE            uniform   JSON {class: share}, the mix ClassShare is held to
CLASSES                         baseline  JSON list; when set it must match the baseline's
MAX_RECORDS                     20000     records read per run (bounds memory and time)
==============================  ========  ===================================================

Thresholds default to :class:`lambdas.detect_drift.rules.DriftThresholds`, the values the
CloudWatch alarms use, so the report's verdict and the alarms agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, TypeAdapter

from lambdas.defaults import DEFAULT_THRESHOLD
from lambdas.detect_drift.rules import DriftThresholds, ThresholdError
from lambdas.env import read
from lambdas.errors import ConfigurationError
from lambdas.s3_uri import S3Location, S3UriError, parse_s3_uri

DEFAULT_VARIANT = "AllTraffic"
DEFAULT_WINDOW_MINUTES = 60
DEFAULT_CONFIDENCE_THRESHOLD = DEFAULT_THRESHOLD  # scones:confidenceThreshold's default
DEFAULT_MAX_RECORDS = 20_000

_FINITE = TypeAdapter(Annotated[float, Field(allow_inf_nan=False)])
_SHARES = TypeAdapter(dict[str, float])
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


def _required(env: Mapping[str, str], key: str) -> str:
    value = (env.get(key) or "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {key} is not set")
    return value


def _uri(env: Mapping[str, str], key: str) -> S3Location:
    try:
        return parse_s3_uri(_required(env, key))
    except S3UriError as exc:
        raise ConfigurationError(f"{key}: {exc}") from exc


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    return read(env, key, _FINITE, default, what="a finite number")


def _int(env: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    adapter = TypeAdapter(Annotated[int, Field(ge=low, le=high, strict=False)])
    return read(env, key, adapter, default, what=f"a whole number from {low} to {high}")


def _json(env: Mapping[str, str], key: str, adapter: TypeAdapter, what: str) -> object | None:
    return read(env, key, adapter, None, is_json=True, what=what)


def thresholds_from_env(env: Mapping[str, str]) -> DriftThresholds:
    d = DriftThresholds()
    expected = _json(
        env, "EXPECTED_CLASS_SHARE", _SHARES, "a JSON object {class: share}"
    )
    try:
        return DriftThresholds(
            confidence_psi=_float(env, "DRIFT_CONFIDENCE_PSI", d.confidence_psi),
            input_psi=_float(env, "DRIFT_INPUT_PSI", d.input_psi),
            low_confidence_increase=_float(
                env, "DRIFT_LOW_CONFIDENCE_INCREASE", d.low_confidence_increase
            ),
            class_share_tolerance=_float(
                env, "DRIFT_CLASS_SHARE_TOLERANCE", d.class_share_tolerance
            ),
            min_samples=_int(env, "DRIFT_MIN_SAMPLES", d.min_samples, 1, 1_000_000),
            expected_class_share=expected,
        )
    except ThresholdError as exc:
        raise ConfigurationError(str(exc)) from exc


def load_settings(env: Mapping[str, str]) -> DetectorSettings:
    baseline = _uri(env, "BASELINE_S3_URI")
    if not baseline.prefix or baseline.prefix.endswith("/"):
        raise ConfigurationError("BASELINE_S3_URI must name an object (s3://bucket/key)")
    confidence_threshold = _float(env, "CONFIDENCE_THRESHOLD", DEFAULT_CONFIDENCE_THRESHOLD)
    if not 0.0 <= confidence_threshold <= 1.0:
        raise ConfigurationError(
            f"CONFIDENCE_THRESHOLD must be within [0, 1], got {confidence_threshold}"
        )
    classes = _json(env, "CLASSES", _CLASS_LIST, "a JSON list of class names")
    return DetectorSettings(
        capture=_uri(env, "CAPTURE_S3_URI"),
        report=_uri(env, "REPORT_S3_URI"),
        baseline_bucket=baseline.bucket,
        baseline_key=baseline.prefix,
        endpoint=_required(env, "ENDPOINT_NAME"),
        variant=(env.get("VARIANT_NAME") or "").strip() or DEFAULT_VARIANT,
        stack=(env.get("STACK_NAME") or "").strip() or "local",
        window_minutes=_int(env, "WINDOW_MINUTES", DEFAULT_WINDOW_MINUTES, 1, 7 * 24 * 60),
        confidence_threshold=confidence_threshold,
        thresholds=thresholds_from_env(env),
        classes=None if classes is None else tuple(classes),
        max_records=_int(env, "MAX_RECORDS", DEFAULT_MAX_RECORDS, 1, 1_000_000),
    )
