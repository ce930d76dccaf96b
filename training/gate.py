"""The per-request safety gate: is this photo like the ones the model was trained on?

Why and how it was chosen: docs/safety.md. Two kinds of check, both fitted at training time
from clean data only and stored in the artifact's ``gate.json`` (:data:`GATE_FILE`):

- ``input_quality``: statistics of the image at the model's input size
  (``training.image_stats``: brightness, contrast, sharpness, saturation, highlights) must lie
  within the range the training photos span (their ``quantile`` .. ``1 - quantile``
  quantiles; saturation at least :data:`COLOURLESS_BELOW`). Night shots, over-exposure, blur,
  grey-scale, flat and random-noise images fail here.
- ``feature_distance``: the Mahalanobis distance of the network's penultimate features to the
  nearest class mean (shared covariance, shrunk towards its mean variance) must not exceed the
  ``feature_quantile`` of the validation photos' distances. Photos unlike the training content
  fail here.

numpy only, and cheap (a few microseconds per request next to a millisecond forward pass):
:func:`check` runs on one resized image and its features. Class-agnostic: any number of
classes. The endpoint serves the result under :data:`GATE_CONTENT_TYPE` (docs/design.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.image_stats import batch_statistics, highlights

GATE_FILE = "gate.json"
GATE_VERSION = 1
# The opt-in Accept type: probabilities plus the gate's verdict (docs/design.md).
GATE_CONTENT_TYPE = "application/vnd.scones.gate+json"
INPUT_QUALITY = "input_quality"
FEATURE_DISTANCE = "feature_distance"
QUALITY_STATISTICS: tuple[str, ...] = (
    "brightness", "contrast", "sharpness", "saturation", "highlights",
)
# Chosen on the validation split's shifted copies and the tuning foreign images
# (benchmarks/gate_candidates.py, docs/safety.md).
DEFAULT_QUANTILE = 0.005
DEFAULT_FEATURE_QUANTILE = 0.995
SHRINKAGE = 0.1
# Grey-scale images go to a person whatever their quantiles say: 3 % of the training photos
# are grey (so the saturation quantile is 0), and on grey images of anything the network
# answers "bicycle" with confidence (most grey training photos are bicycles). Measured on the
# tuning part: 14 of 16 routed non-vehicles were grey (docs/safety.md).
COLOURLESS_BELOW = 0.01
# Plain words for a statistic outside its range, for the review message.
_TOO = {
    ("brightness", "low"): "too dark",
    ("brightness", "high"): "too bright",
    ("contrast", "low"): "too flat",
    ("contrast", "high"): "harsh contrast",
    ("sharpness", "low"): "blurred",
    ("sharpness", "high"): "noisy",
    ("saturation", "low"): "colourless: a grey-scale photo",
    ("saturation", "high"): "oversaturated",
    ("highlights", "low"): "underexposed",
    ("highlights", "high"): "washed out",
}


class GateError(ValueError):
    """gate.json is missing, malformed or does not fit the model it ships with."""


@dataclass(frozen=True)
class Gate:
    """A loaded gate.json: per-statistic ranges and the feature-space model."""

    ranges: dict[str, tuple[float, float]]
    means: np.ndarray  # (C, D) class means of the penultimate features
    whitening: np.ndarray  # (D, D): distance = |whitening @ (f - mean)|
    max_distance: float

    def to_json(self) -> dict[str, Any]:
        return {
            "version": GATE_VERSION,
            INPUT_QUALITY: {
                name: {"low": lo, "high": hi} for name, (lo, hi) in self.ranges.items()
            },
            FEATURE_DISTANCE: {
                "means": np.round(self.means, 6).tolist(),
                "whitening": np.round(self.whitening, 6).tolist(),
                "max_distance": self.max_distance,
            },
        }


def quality_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """The input-quality statistics of a uint8 batch (N, H, W, 3): name -> (N,) values."""
    stats = batch_statistics(images)
    stats["highlights"] = highlights(images)
    return stats


def _distances(features: np.ndarray, means: np.ndarray, whitening: np.ndarray) -> np.ndarray:
    """(N,) distance of each feature row to its nearest class mean, in whitened space."""
    diff = features[:, None, :] - means[None, :, :]  # (N, C, D)
    white = diff @ whitening.T
    return np.sqrt((white**2).sum(axis=2)).min(axis=1)


def fit_gate(
    train_images: np.ndarray,
    fit_features: np.ndarray,
    fit_labels: np.ndarray,
    val_features: np.ndarray,
    n_classes: int,
    quantile: float = DEFAULT_QUANTILE,
    feature_quantile: float = DEFAULT_FEATURE_QUANTILE,
) -> Gate:
    """Fit the gate on clean data: statistic ranges from the training images (uint8 NHWC at the
    input size), class means and covariance from the fit split's features, the distance limit
    from the validation split's."""
    if not 0.0 <= quantile < 0.5 or not 0.5 < feature_quantile <= 1.0:
        raise GateError(f"quantiles out of range: {quantile}, {feature_quantile}")
    stats = quality_statistics(np.asarray(train_images))
    ranges = {
        name: (
            round(float(np.quantile(stats[name], quantile)), 6),
            round(float(np.quantile(stats[name], 1.0 - quantile)), 6),
        )
        for name in QUALITY_STATISTICS
    }
    low, high = ranges["saturation"]
    ranges["saturation"] = (max(low, COLOURLESS_BELOW), max(high, COLOURLESS_BELOW))
    feats = np.asarray(fit_features, dtype=np.float64)
    labels = np.asarray(fit_labels)
    missing = [c for c in range(n_classes) if not (labels == c).any()]
    if missing:
        raise GateError(f"no fit features for classes {missing}")
    means = np.stack([feats[labels == c].mean(axis=0) for c in range(n_classes)])
    centred = feats - means[labels]
    cov = centred.T @ centred / max(len(feats) - n_classes, 1)
    dim = cov.shape[0]
    cov = (1 - SHRINKAGE) * cov + SHRINKAGE * (np.trace(cov) / dim) * np.eye(dim)
    # cov^-1 = W^T W with W = L^-1 for cov = L L^T (Cholesky): |W d|^2 = d^T cov^-1 d.
    whitening = np.linalg.inv(np.linalg.cholesky(cov))
    val = _distances(np.asarray(val_features, dtype=np.float64), means, whitening)
    return Gate(
        ranges=ranges,
        means=means,
        whitening=whitening,
        max_distance=round(float(np.quantile(val, feature_quantile)), 6),
    )


def _matrix(value: Any, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GateError(f"{where} is not a numeric matrix ({exc})") from None
    if arr.ndim != 2 or not np.isfinite(arr).all():
        raise GateError(f"{where} must be a finite 2-D matrix, got shape {arr.shape}")
    return arr


def parse_gate(data: Any, n_classes: int, where: str = GATE_FILE) -> Gate:
    """Check a gate.json object against the model (n_classes); GateError names the field."""
    if not isinstance(data, Mapping) or data.get("version") != GATE_VERSION:
        raise GateError(f"{where}: expected an object with version {GATE_VERSION}")
    quality = data.get(INPUT_QUALITY)
    if not isinstance(quality, Mapping) or not quality:
        raise GateError(f"{where}: {INPUT_QUALITY!r} must map statistics to ranges")
    ranges: dict[str, tuple[float, float]] = {}
    for name, bounds in quality.items():
        if name not in QUALITY_STATISTICS:
            raise GateError(f"{where}: unknown statistic {name!r}")
        try:
            lo, hi = float(bounds["low"]), float(bounds["high"])
        except (TypeError, KeyError, ValueError):
            raise GateError(f"{where}: {INPUT_QUALITY}.{name} needs numeric low and high") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise GateError(f"{where}: {INPUT_QUALITY}.{name} must have low <= high")
        ranges[name] = (lo, hi)
    feature = data.get(FEATURE_DISTANCE)
    if not isinstance(feature, Mapping):
        raise GateError(f"{where}: {FEATURE_DISTANCE!r} must be an object")
    means = _matrix(feature.get("means"), f"{where}: {FEATURE_DISTANCE}.means")
    whitening = _matrix(feature.get("whitening"), f"{where}: {FEATURE_DISTANCE}.whitening")
    if means.shape[0] != n_classes:
        raise GateError(
            f"{where}: {FEATURE_DISTANCE}.means has {means.shape[0]} rows for {n_classes} classes"
        )
    if whitening.shape != (means.shape[1], means.shape[1]):
        raise GateError(
            f"{where}: {FEATURE_DISTANCE}.whitening is {whitening.shape}, expected "
            f"{(means.shape[1], means.shape[1])}"
        )
    try:
        max_distance = float(feature["max_distance"])
    except (KeyError, TypeError, ValueError):
        raise GateError(f"{where}: {FEATURE_DISTANCE}.max_distance must be a number") from None
    if not math.isfinite(max_distance) or max_distance <= 0:
        raise GateError(f"{where}: {FEATURE_DISTANCE}.max_distance must be > 0")
    return Gate(ranges=ranges, means=means, whitening=whitening, max_distance=max_distance)


def load_gate(model_dir: str | Path, n_classes: int) -> Gate | None:
    """The artifact's gate, or None when it has none (an artifact from before the gate)."""
    path = Path(model_dir) / GATE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GateError(f"{path} is not valid JSON ({exc})") from None
    return parse_gate(data, n_classes, str(path))


def _detail(name: str, value: float, lo: float, hi: float) -> str:
    side = "low" if value < lo else "high"
    return (
        f"{name} {value:.4f} is outside the training photos' range {lo:.4f}..{hi:.4f} "
        f"({_TOO.get((name, side), side)})"
    )


def check(image: np.ndarray, features: Sequence[float] | np.ndarray, gate: Gate) -> dict[str, Any]:
    """The gate's verdict on one image (uint8 HxWx3 at the model's input size) and its
    penultimate features: ``{"in_distribution", "failed": [{"check", "kind", "value", "low"
    | "high", "detail"}], "scores": {name: value}}`` (the shape docs/design.md gives)."""
    stats = quality_statistics(np.asarray(image)[None])
    scores: dict[str, float] = {}
    failed: list[dict[str, Any]] = []
    for name, (lo, hi) in gate.ranges.items():
        value = float(stats[name][0])
        scores[name] = round(value, 6)
        if not lo <= value <= hi:
            failed.append(
                {
                    "check": name,
                    "kind": INPUT_QUALITY,
                    "value": round(value, 6),
                    "low": lo,
                    "high": hi,
                    "detail": _detail(name, value, lo, hi),
                }
            )
    feats = np.asarray(features, dtype=np.float64).reshape(1, -1)
    if feats.shape[1] != gate.means.shape[1]:
        raise GateError(
            f"the network gives {feats.shape[1]} features, {GATE_FILE} expects "
            f"{gate.means.shape[1]}"
        )
    distance = float(_distances(feats, gate.means, gate.whitening)[0])
    scores[FEATURE_DISTANCE] = round(distance, 6)
    if not distance <= gate.max_distance:  # NaN features fail too
        failed.append(
            {
                "check": FEATURE_DISTANCE,
                "kind": FEATURE_DISTANCE,
                "value": round(distance, 6),
                "high": gate.max_distance,
                "detail": (
                    f"feature distance {distance:.2f} to the nearest class exceeds "
                    f"{gate.max_distance:.2f} (unlike the training photos)"
                ),
            }
        )
    return {"in_distribution": not failed, "failed": failed, "scores": scores}
