"""Drift thresholds and alarm rules: the one definition the Lambda, the CloudWatch alarms and
local mode's ``monitor`` command all evaluate.

No pulumi, boto3 or numpy import: ``components/`` builds CloudWatch alarms from
:func:`alarm_rules`, the detector computes its verdict with :func:`evaluate`, and
``python -m local monitor`` prints which alarms would fire with the same function.

Every rule fires when its value is strictly greater than its threshold:

- ``ConfidencePSI``: PSI of the window's max-class confidence against the baseline.
- ``InputPSI``: the largest PSI over the input statistics (brightness, contrast, ...).
- ``LowConfidenceRate``: share of requests whose max confidence is below the workflow's
  confidence threshold (those go to human review), *minus* the baseline's share at the same
  threshold (``BaselineLowConfidenceRate``, published beside it): how many more requests than
  on held-out data need review. Relative because the clean rate is a property of the model and
  the threshold (about 0.55 for the trained model at 0.93), not a constant; a CloudWatch
  metric-math expression ``rate - base`` in the cloud.
- ``ClassShare`` (one rule per class): ``|share of the class - expected share|``; the expected
  share is the configured class mix (default: uniform), a CloudWatch metric-math expression
  ``ABS(share - expected)`` in the cloud.

Defaults and their rationale are in ``DriftThresholds`` below and docs/monitoring.md; they were
chosen from the measured noise of clean windows (benchmarks/drift_benchmark.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Dimension names of every drift metric (and of the alarms on them).
DIM_STACK = "Stack"
DIM_ENDPOINT = "Endpoint"
DIM_CLASS = "Class"
DIM_STATISTIC = "Statistic"

M_LOW_CONFIDENCE_RATE = "LowConfidenceRate"
M_BASELINE_LOW_CONFIDENCE_RATE = "BaselineLowConfidenceRate"
M_MEAN_CONFIDENCE = "MeanConfidence"
M_CLASS_SHARE = "ClassShare"
M_CONFIDENCE_PSI = "ConfidencePSI"
M_INPUT_PSI = "InputPSI"
M_WINDOW_REQUESTS = "WindowRequests"
M_CORRUPT_RECORDS = "CorruptCaptureRecords"


class ThresholdError(ValueError):
    """A drift threshold is out of range (the message names it)."""


@dataclass(frozen=True)
class DriftThresholds:
    """Alarm thresholds and the minimum window size.

    - ``input_psi`` 0.25: the usual "large shift" PSI level, above the sampling noise of clean
      100-request windows (noise scales with (bins - 1) * (1/n + 1/N)); measured clean peak
      0.22 against a 120-image baseline, 0.14 against the training split; every shift of the
      benchmark reached 0.8 or more.
    - ``confidence_psi`` 0.4: the confidence baseline rests on the validation split only (120
      images on the dev data) and a model's confidence differs a little between splits:
      clean windows peaked at 0.10-0.33 over six trained models. Dark (1.4-3.0) and most
      blurred traffic (0.24-0.98) still cross 0.4; InputPSI is the first line anyway.
    - ``low_confidence_increase`` 0.2: LowConfidenceRate more than 0.2 above the baseline's rate
      at the same threshold. The binomial noise of a 100-request window plus that of a
      150-image baseline is about 0.06 (p near 0.5), so 0.2 is over three standard deviations;
      and a fifth more of the traffic going to human review is worth a page.
    - ``class_share_tolerance`` 0.25: a 50/50 mix moving to 75/25 or beyond; routing capacity
      is planned on the mix, and a flood of one class is also what out-of-domain images do.
    - ``min_samples`` 100: below that a window's rates and PSI are too noisy to alarm on (PSI
      noise grows as 1/n: at 30 requests the largest of five statistics often passes 0.25 by
      chance); the detector reports "insufficient data" and publishes no drift metric. A
      quiet endpoint needs a longer ``driftWindowMinutes``.
    """

    confidence_psi: float = 0.4
    input_psi: float = 0.25
    low_confidence_increase: float = 0.2
    class_share_tolerance: float = 0.25
    min_samples: int = 100
    expected_class_share: Mapping[str, float] | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("confidence_psi", "input_psi"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ThresholdError(f"{name} must be a positive number, got {value!r}")
        for name in ("low_confidence_increase", "class_share_tolerance"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < 1):
                raise ThresholdError(f"{name} must be between 0 and 1, got {value!r}")
        if not isinstance(self.min_samples, int) or self.min_samples < 1:
            raise ThresholdError(
                f"min_samples must be a positive integer, got {self.min_samples!r}"
            )
        if self.expected_class_share is not None:
            shares = dict(self.expected_class_share)
            if not shares or any(
                not isinstance(v, (int, float)) or not 0 <= v <= 1 for v in shares.values()
            ):
                raise ThresholdError("expected_class_share values must be within [0, 1]")
            if abs(sum(shares.values()) - 1.0) > 1e-6:
                raise ThresholdError(
                    f"expected_class_share must sum to 1, got {sum(shares.values()):.4f}"
                )

    def expected_share(self, classes: Sequence[str]) -> dict[str, float]:
        """Expected share per class: the configured mix, else uniform."""
        if self.expected_class_share is None:
            return {c: 1.0 / len(classes) for c in classes}
        missing = [c for c in classes if c not in self.expected_class_share]
        if missing:
            raise ThresholdError(f"expected_class_share has no value for {missing}")
        return {c: float(self.expected_class_share[c]) for c in classes}

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence_psi": self.confidence_psi,
            "input_psi": self.input_psi,
            "low_confidence_increase": self.low_confidence_increase,
            "class_share_tolerance": self.class_share_tolerance,
            "min_samples": self.min_samples,
            "expected_class_share": (
                None if self.expected_class_share is None else dict(self.expected_class_share)
            ),
        }


@dataclass(frozen=True)
class AlarmRule:
    """One alarm: ``value(metrics) > threshold`` fires it."""

    key: str  # stable id, used in alarm names: e.g. "confidence-psi", "class-share-<class>"
    metric: str  # CloudWatch metric name
    threshold: float
    description: str
    class_name: str | None = None  # ClassShare rules: the Class dimension
    expected: float | None = None  # ClassShare rules: the value the share is compared with
    minus: str | None = None  # a metric subtracted from this one (LowConfidenceRate's baseline)

    def value(self, metrics: Mapping[str, Any]) -> float | None:
        """The rule's value in a window's metrics (None when the window has none)."""
        raw = metrics.get(self.metric)
        if self.minus is not None:
            base = metrics.get(self.minus)
            return None if raw is None or base is None else float(raw) - float(base)
        if self.class_name is not None:
            if not isinstance(raw, Mapping) or self.class_name not in raw:
                return None
            share = raw[self.class_name]
            return None if share is None else abs(float(share) - float(self.expected or 0.0))
        return None if raw is None else float(raw)


def alarm_rules(classes: Sequence[str], thresholds: DriftThresholds) -> list[AlarmRule]:
    """The drift alarms for a model with these classes, in a stable order."""
    rules = [
        AlarmRule(
            key="confidence-psi",
            metric=M_CONFIDENCE_PSI,
            threshold=thresholds.confidence_psi,
            description="Max-class confidence distribution moved away from the training "
            "baseline (PSI).",
        ),
        AlarmRule(
            key="input-psi",
            metric=M_INPUT_PSI,
            threshold=thresholds.input_psi,
            description="An input statistic (brightness, contrast, saturation, sharpness, "
            "orientation) moved away from the training baseline (largest PSI).",
        ),
        AlarmRule(
            key="low-confidence-rate",
            metric=M_LOW_CONFIDENCE_RATE,
            threshold=thresholds.low_confidence_increase,
            description="More predictions than on held-out data fall below the confidence "
            "threshold (LowConfidenceRate - BaselineLowConfidenceRate; human review load).",
            minus=M_BASELINE_LOW_CONFIDENCE_RATE,
        ),
    ]
    for cls, expected in thresholds.expected_share(classes).items():
        rules.append(
            AlarmRule(
                key=f"class-share-{cls}",
                metric=M_CLASS_SHARE,
                threshold=thresholds.class_share_tolerance,
                description=f"Share of '{cls}' predictions is more than "
                f"{thresholds.class_share_tolerance:g} away from the expected {expected:g}.",
                class_name=cls,
                expected=expected,
            )
        )
    return rules


@dataclass(frozen=True)
class AlarmState:
    key: str
    metric: str
    value: float | None
    threshold: float
    firing: bool
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "firing": self.firing,
            "description": self.description,
        }


def evaluate(metrics: Mapping[str, Any], rules: Sequence[AlarmRule]) -> list[AlarmState]:
    """State of every rule on one window's metrics (a missing metric never fires, as
    CloudWatch's ``treat_missing_data = notBreaching``)."""
    states = []
    for rule in rules:
        value = rule.value(metrics)
        states.append(
            AlarmState(
                key=rule.key,
                metric=rule.metric,
                value=value,
                threshold=rule.threshold,
                firing=value is not None and value > rule.threshold,
                description=rule.description,
            )
        )
    return states
