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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError

from lambdas.env import read

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


def _sums_to_one(shares: dict[str, float]) -> dict[str, float]:
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        raise ValueError(f"must sum to 1, got {sum(shares.values()):.4f}")
    return shares


# The thresholds' types, declared once: DriftThresholds validates with them and
# components/settings.py types the scones:drift* keys with them, so the stack, the detector and
# local mode accept exactly the same values.
PsiThreshold = Annotated[float, Field(gt=0, allow_inf_nan=False)]
RateThreshold = Annotated[float, Field(gt=0, lt=1)]
MinSamples = Annotated[int, Field(ge=1, le=100_000)]
ClassShare = Annotated[
    dict[str, Annotated[float, Field(ge=0, le=1)]],
    Field(min_length=1),
    AfterValidator(_sums_to_one),
]

# What each field must be (ThresholdError's wording) and the detector's variable that carries it.
_EXPECTED = {
    "confidence_psi": "a positive number",
    "input_psi": "a positive number",
    "low_confidence_increase": "between 0 and 1",
    "class_share_tolerance": "between 0 and 1",
    "min_samples": "a whole number from 1 to 100000",
    "expected_class_share": "{class: share} with shares within [0, 1]",
}
ENVIRONMENT: Mapping[str, str] = {
    "confidence_psi": "DRIFT_CONFIDENCE_PSI",
    "input_psi": "DRIFT_INPUT_PSI",
    "low_confidence_increase": "DRIFT_LOW_CONFIDENCE_INCREASE",
    "class_share_tolerance": "DRIFT_CLASS_SHARE_TOLERANCE",
    "min_samples": "DRIFT_MIN_SAMPLES",
    "expected_class_share": "EXPECTED_CLASS_SHARE",
}


# Strict: a threshold given in code is a number already (the readers of text, the stack config
# and the detector's environment, convert first).
_STRICT = ConfigDict(strict=True)
_FIELD_TYPES: Mapping[str, TypeAdapter[Any]] = {
    "confidence_psi": TypeAdapter(PsiThreshold, config=_STRICT),
    "input_psi": TypeAdapter(PsiThreshold, config=_STRICT),
    "low_confidence_increase": TypeAdapter(RateThreshold, config=_STRICT),
    "class_share_tolerance": TypeAdapter(RateThreshold, config=_STRICT),
    "min_samples": TypeAdapter(MinSamples, config=_STRICT),
    "expected_class_share": TypeAdapter(ClassShare | None, config=_STRICT),
}
_NUMBER = TypeAdapter(Annotated[float, Field(allow_inf_nan=False)])
_WHOLE = TypeAdapter(int)
_SHARES = TypeAdapter(dict[str, float])


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
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            try:
                _FIELD_TYPES[name].validate_python(
                    dict(value) if isinstance(value, Mapping) else value
                )
            except ValidationError as exc:
                error = exc.errors()[0]
                if error["type"] == "value_error":  # _sums_to_one
                    raise ThresholdError(f"{name} {error['ctx']['error']}") from None
                raise ThresholdError(f"{name} must be {_EXPECTED[name]}, got {value!r}") from None

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> DriftThresholds:
        """The thresholds the detector's environment carries (:data:`ENVIRONMENT`); an unset
        variable keeps the default. Raises ConfigurationError naming the bad variable, or
        ThresholdError naming the field whose value is out of range."""
        d = cls()
        number = {
            name: read(env, ENVIRONMENT[name], _NUMBER, getattr(d, name), what="a finite number")
            for name in ("confidence_psi", "input_psi", "low_confidence_increase",
                         "class_share_tolerance")
        }
        return cls(
            **number,
            min_samples=read(
                env, "DRIFT_MIN_SAMPLES", _WHOLE, d.min_samples, what="a whole number"
            ),
            expected_class_share=read(
                env, "EXPECTED_CLASS_SHARE", _SHARES, None, is_json=True,
                what="a JSON object {class: share}",
            ),
        )

    def environment(self) -> dict[str, str]:
        """The detector's variables for these thresholds (what :meth:`from_environment` reads;
        EXPECTED_CLASS_SHARE only when a mix is configured)."""
        variables = {
            ENVIRONMENT[name]: repr(getattr(self, name))
            for name in ("confidence_psi", "input_psi", "low_confidence_increase",
                         "class_share_tolerance")
        }
        variables["DRIFT_MIN_SAMPLES"] = str(self.min_samples)
        if self.expected_class_share is not None:
            variables["EXPECTED_CLASS_SHARE"] = json.dumps(
                dict(self.expected_class_share), sort_keys=True
            )
        return variables

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
