"""Classification metrics on probabilities (numpy only): accuracy, per-class precision/recall,
confusion matrix, expected calibration error, a confidence-threshold sweep, temperature fitting.

Shared by training (metrics.json in the artifact) and `training.evaluate` (the report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lambdas.defaults import DEFAULT_THRESHOLD  # in the source bundle too (training.bundle)

ECE_BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels at a temperature."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising NLL on held-out logits (Guo et al. 2017), by a deterministic
    log-spaced grid search refined once; a 1-D convex-ish problem needs nothing fancier."""
    if len(labels) == 0:
        return 1.0
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 200))
    best = min(grid, key=lambda t: nll(logits, labels, t))
    fine = np.exp(np.linspace(np.log(best) - 0.05, np.log(best) + 0.05, 101))
    return float(min(fine, key=lambda t: nll(logits, labels, t)))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> tuple[float, list[dict[str, float]]]:
    """ECE over equal-width confidence bins, plus the per-bin table (reliability diagram)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    table = []
    ece = 0.0
    n = max(len(labels), 1)
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        in_bin = (confidence > lo) & (confidence <= hi) if i else (confidence <= hi)
        count = int(in_bin.sum())
        acc = float(correct[in_bin].mean()) if count else 0.0
        conf = float(confidence[in_bin].mean()) if count else 0.0
        ece += count / n * abs(acc - conf)
        table.append(
            {
                "lower": float(lo),
                "upper": float(hi),
                "count": count,
                "accuracy": acc,
                "confidence": conf,
            }
        )
    return float(ece), table


def threshold_sweep(
    probabilities: np.ndarray, labels: np.ndarray, thresholds: Sequence[float] | None = None
) -> list[dict[str, float]]:
    """Per threshold: share of predictions accepted (confidence >= t) and their accuracy."""
    if thresholds is None:
        thresholds = [round(t, 2) for t in np.arange(0.50, 0.995, 0.01)]
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    rows = []
    for t in thresholds:
        accepted = confidence >= t
        count = int(accepted.sum())
        rows.append(
            {
                "threshold": float(t),
                "coverage": float(count / max(len(labels), 1)),
                "accepted": count,
                "accepted_accuracy": float(correct[accepted].mean()) if count else None,
                "errors_accepted": int((~correct[accepted]).sum()),
            }
        )
    return rows


def classification_metrics(
    probabilities: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Everything metrics.json holds, JSON-serialisable."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, len(classes))
    per_class = {}
    for i, name in enumerate(classes):
        predicted = int(matrix[:, i].sum())
        actual = int(matrix[i, :].sum())
        per_class[name] = {
            "precision": float(matrix[i, i] / predicted) if predicted else None,
            "recall": float(matrix[i, i] / actual) if actual else None,
            "support": actual,
        }
    ece, bins = expected_calibration_error(probabilities, labels)
    sweep = threshold_sweep(probabilities, labels)
    at = threshold_sweep(probabilities, labels, [threshold])[0]
    return {
        "count": len(labels),
        "accuracy": float((predictions == labels).mean()) if len(labels) else None,
        "per_class": per_class,
        "confusion_matrix": {"classes": list(classes), "rows_true_cols_pred": matrix.tolist()},
        "ece": ece,
        "reliability_bins": bins,
        "mean_confidence": float(probabilities.max(axis=1).mean()) if len(labels) else None,
        "threshold": float(threshold),
        "coverage_at_threshold": at["coverage"],
        "accepted_accuracy_at_threshold": at["accepted_accuracy"],
        "threshold_sweep": sweep,
    }
