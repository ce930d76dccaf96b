"""Window metrics, PSI against the baseline, and the drift verdict (pure functions).

``analyse`` turns a window's observations into the metrics docs/design.md names
(``LowConfidenceRate``, ``MeanConfidence``, ``ClassShare``, ``ConfidencePSI``, ``InputPSI``),
evaluates the alarm rules on them and states a verdict with its reasons:

- ``no_traffic``: nothing was captured in the window. Not drift: an idle endpoint is normal at
  night, and an alarm on it would train people to ignore the drift alarms.
- ``insufficient_data``: fewer than ``min_samples`` usable records; metrics are reported but
  not published, so a handful of odd requests cannot fire an alarm.
- ``drift``: at least one rule fires; ``reasons`` says which, with value and threshold.
- ``ok``: enough traffic and no rule fires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lambdas.detect_drift.rules import (
    M_BASELINE_LOW_CONFIDENCE_RATE,
    M_CLASS_SHARE,
    M_CONFIDENCE_PSI,
    M_INPUT_PSI,
    M_LOW_CONFIDENCE_RATE,
    M_MEAN_CONFIDENCE,
    DriftThresholds,
    alarm_rules,
    evaluate,
)
from training.baseline import baseline_low_confidence_rate, psi_against, round_confidence
from training.image_stats import batch_statistics

REPORT_VERSION = 1
STATUS_NO_TRAFFIC = "no_traffic"
STATUS_INSUFFICIENT = "insufficient_data"
STATUS_OK = "ok"
STATUS_DRIFT = "drift"


def window_metrics(
    probabilities: np.ndarray,
    images: np.ndarray,
    baseline: Mapping[str, Any],
    confidence_threshold: float,
) -> dict[str, Any]:
    """Metrics of a non-empty window: probabilities (n, C), images uint8 (n, H, W, 3)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    n = probs.shape[0]
    if n == 0:
        raise ValueError("window_metrics needs at least one observation")
    classes = list(baseline["classes"])
    confidence = round_confidence(probs.max(axis=1))
    predicted = probs.argmax(axis=1)
    counts = np.bincount(predicted, minlength=len(classes))
    stats = batch_statistics(images)
    by_statistic = {
        name: psi_against(hist, stats[name])
        for name, hist in baseline["statistics"].items()
        if name in stats
    }
    return {
        "count": int(n),
        M_LOW_CONFIDENCE_RATE: float(np.mean(confidence < confidence_threshold)),
        M_BASELINE_LOW_CONFIDENCE_RATE: baseline_low_confidence_rate(
            baseline, confidence_threshold
        ),
        M_MEAN_CONFIDENCE: float(confidence.mean()),
        M_CLASS_SHARE: {c: float(k) / n for c, k in zip(classes, counts, strict=True)},
        M_CONFIDENCE_PSI: psi_against(baseline["confidence"], confidence),
        M_INPUT_PSI: max(by_statistic.values()) if by_statistic else None,
        "InputPSIByStatistic": by_statistic,
        "StatisticMeans": {name: float(values.mean()) for name, values in stats.items()},
    }


def analyse(
    probabilities: Sequence[Sequence[float]] | np.ndarray,
    images: np.ndarray | Sequence[np.ndarray],
    baseline: Mapping[str, Any],
    thresholds: DriftThresholds,
    confidence_threshold: float,
) -> dict[str, Any]:
    """Metrics, alarm states, status and reasons of one window of observations."""
    classes = list(baseline["classes"])
    rules = alarm_rules(classes, thresholds)
    n = len(probabilities)
    if n == 0:
        return {
            "status": STATUS_NO_TRAFFIC,
            "drift": False,
            "reasons": ["no traffic captured in the window"],
            "metrics": {"count": 0},
            "alarms": [s.to_dict() for s in evaluate({}, rules)],
        }
    image_batch = np.stack(list(images)) if not isinstance(images, np.ndarray) else images
    metrics = window_metrics(np.asarray(probabilities), image_batch, baseline, confidence_threshold)
    if n < thresholds.min_samples:
        return {
            "status": STATUS_INSUFFICIENT,
            "drift": False,
            "reasons": [
                f"only {n} usable requests in the window (minimum {thresholds.min_samples}); "
                "metrics not published"
            ],
            "metrics": metrics,
            "alarms": [s.to_dict() for s in evaluate({}, rules)],
        }
    states = evaluate(metrics, rules)
    firing = [s for s in states if s.firing]
    reasons = [
        f"{s.key}: {s.metric} {'deviation ' if s.key.startswith('class-share') else ''}"
        f"{s.value:.3f} > {s.threshold:g}"
        for s in firing
    ]
    return {
        "status": STATUS_DRIFT if firing else STATUS_OK,
        "drift": bool(firing),
        "reasons": reasons or ["all drift metrics within thresholds"],
        "metrics": metrics,
        "alarms": [s.to_dict() for s in states],
    }


def baseline_summary(baseline: Mapping[str, Any]) -> dict[str, Any]:
    """What the report repeats from the baseline so a reader can compare at a glance."""
    return {
        "count": baseline.get("count"),
        "classes": baseline.get("classes"),
        "class_mix": baseline.get("class_mix"),
        "confidence_mean": baseline["confidence"].get("mean"),
        "low_confidence_rate": baseline["confidence"].get("low_confidence_rate"),
        "statistic_means": {
            name: hist.get("mean") for name, hist in baseline["statistics"].items()
        },
    }
