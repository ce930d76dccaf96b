"""Drift baseline: histograms with fixed bin edges and the population stability index (PSI).

Training calls :func:`build_baseline` on held-out data and writes the result as
``baseline.json``; the drift detector bins a window of captured traffic with the *same* stored
edges and compares with :func:`psi`. numpy only (runs in the detector Lambda).

Binning. Edges are quantiles of the baseline sample, so every baseline bin holds about the
same share of it (the most sensitive layout for PSI). Only the inner edges are stored; the
outer bins are open (``(-inf, e0)`` and ``[e_last, inf)``), so a shifted value always lands
somewhere. A value equal to an edge belongs to the bin above it. Repeated quantiles (for
example many confidences of exactly 1.0) collapse into one edge rather than empty bins.

Confidence is rounded to :data:`CONFIDENCE_DECIMALS` places before binning, both here and in
the detector, because the endpoint's JSON answer carries that many decimals: binning the
rounded value on both sides keeps a value near an edge in the same bin.

PSI. ``sum((a - e) * ln(a / e))`` over bins, with ``e``/``a`` the baseline/window shares. An
empty bin would make the logarithm infinite, so both sides are smoothed additively:
``share = (count + alpha) / (n + alpha * bins)`` with ``alpha = 0.5`` (Jeffreys' prior).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from training.image_stats import STATISTICS, batch_statistics

BASELINE_VERSION = 1
CONFIDENCE_DECIMALS = 4
# Five equal-mass bins: the PSI of a sample drawn from the baseline's own distribution is about
# (bins - 1) * (1/n + 1/N) by chance alone; with a 150-image baseline (N) and 100-request windows
# (n) ten bins put that noise near 0.15 per statistic (the largest of five near 0.25, the alarm
# level), five bins near 0.07. Measured on CIFAR test images: benchmarks/drift_benchmark.py.
DEFAULT_BINS = 5
SMOOTHING = 0.5
# Low-confidence rates recorded in the baseline for reference (the configured threshold is
# usually one of these; the detector computes the rate at the configured one itself).
REFERENCE_THRESHOLDS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.93, 0.95, 0.99)


class BaselineError(ValueError):
    """Inputs to the baseline are inconsistent, or a stored baseline is malformed."""


# --- histogram helpers ---------------------------------------------------------------------


def quantile_edges(values: Sequence[float] | np.ndarray, n_bins: int = DEFAULT_BINS) -> list[float]:
    """Inner bin edges at the 1/n_bins .. (n_bins-1)/n_bins quantiles, repeats removed."""
    if n_bins < 2:
        raise BaselineError(f"n_bins must be at least 2, got {n_bins}")
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise BaselineError("cannot place bin edges on an empty sample")
    if not np.all(np.isfinite(arr)):
        raise BaselineError("sample contains NaN or infinite values")
    qs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    # "lower" picks observed values so an edge sits exactly on a data point (ties at 1.0
    # confidence then share one bin instead of straddling an interpolated edge).
    edges = np.unique(np.quantile(arr, qs, method="lower"))
    # An edge at the sample minimum leaves the lowest bin empty by construction; drop it.
    edges = edges[edges > arr.min()]
    return [float(e) for e in edges]


def bin_counts(values: Sequence[float] | np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts per bin (len(edges) + 1 bins; a value equal to an edge goes to the bin above)."""
    arr = np.asarray(values, dtype=np.float64)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), arr, side="right")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.int64)


def smoothed_shares(counts: Sequence[int] | np.ndarray, alpha: float = SMOOTHING) -> np.ndarray:
    """Additively smoothed bin shares: (count + alpha) / (n + alpha * bins)."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise BaselineError("counts must be a non-empty 1-D sequence")
    if np.any(c < 0):
        raise BaselineError("counts must not be negative")
    return (c + alpha) / (c.sum() + alpha * c.size)


def psi(
    expected_counts: Sequence[int] | np.ndarray,
    actual_counts: Sequence[int] | np.ndarray,
    alpha: float = SMOOTHING,
) -> float:
    """Population stability index of ``actual`` against ``expected`` (bin counts, same bins).

    Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift (for large
    samples; small windows carry sampling noise of roughly (bins - 1) / n on their own).
    """
    e = np.asarray(expected_counts, dtype=np.float64)
    a = np.asarray(actual_counts, dtype=np.float64)
    if e.shape != a.shape:
        raise BaselineError(f"bin count mismatch: expected {e.shape}, actual {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise BaselineError("PSI needs at least one value on each side")
    pe = smoothed_shares(e, alpha)
    pa = smoothed_shares(a, alpha)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def histogram(values: Sequence[float] | np.ndarray, n_bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Baseline histogram of a sample: quantile edges, counts, shares, and summary numbers."""
    arr = np.asarray(values, dtype=np.float64)
    edges = quantile_edges(arr, n_bins)
    counts = bin_counts(arr, edges)
    return {
        "edges": edges,
        "counts": [int(c) for c in counts],
        "proportions": [float(c) / arr.size for c in counts],
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def psi_against(hist: Mapping[str, Any], values: Sequence[float] | np.ndarray) -> float:
    """PSI of a sample against a stored baseline histogram (binned with its edges)."""
    return psi(hist["counts"], bin_counts(values, hist["edges"]))


def round_confidence(confidence: Sequence[float] | np.ndarray) -> np.ndarray:
    """Max-class confidence as the endpoint's JSON carries it (see module docstring)."""
    return np.round(np.asarray(confidence, dtype=np.float64), CONFIDENCE_DECIMALS)


# --- the baseline ----------------------------------------------------------------------------


def build_baseline(
    images_uint8: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    *,
    n_bins: int = DEFAULT_BINS,
    reference_images: np.ndarray | None = None,
) -> dict[str, Any]:
    """Baseline of held-out data: confidence, class mix and input statistics distributions.

    ``images_uint8``: (N, H, W, 3) at the model's input size; ``probabilities``: (N, C) in class
    order (rows sum to 1); ``classes``: the C class names. Returns a JSON-serialisable dict.

    ``reference_images`` (optional, (M, H, W, 3)): the images the *input statistics* are taken
    from instead, typically the whole training split. Input statistics do not depend on the
    model, so they need not come from held-out data, and a larger sample makes the baseline's
    own sampling noise much smaller: measured on the dev archive, the largest InputPSI over 91
    clean 100-request windows was 0.19-0.32 against ten random 120-image baselines and 0.14
    against the 800-image training split (alarm level 0.25).
    """
    images = np.asarray(images_uint8)
    probs = np.asarray(probabilities, dtype=np.float64)
    classes = [str(c) for c in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise BaselineError(f"classes must be at least two distinct names, got {classes}")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise BaselineError(
            f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}"
        )
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise BaselineError(
            f"probabilities must have shape (N, {len(classes)}), got {probs.shape}"
        )
    if probs.shape[0] != images.shape[0]:
        raise BaselineError(
            f"{images.shape[0]} images but {probs.shape[0]} probability rows"
        )
    n = int(images.shape[0])
    if n == 0:
        raise BaselineError("a baseline needs at least one image")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise BaselineError("probabilities contain negative, NaN or infinite values")
    sums = probs.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > 1e-3):
        worst = int(np.argmax(np.abs(sums - 1.0)))
        raise BaselineError(f"probability row {worst} sums to {sums[worst]:.6f}, not 1")

    stats_images = images if reference_images is None else np.asarray(reference_images)
    if (
        stats_images.ndim != 4
        or stats_images.dtype != np.uint8
        or stats_images.shape[1:] != images.shape[1:]
        or stats_images.shape[0] == 0
    ):
        raise BaselineError(
            f"reference_images must be uint8 (M, {images.shape[1]}, {images.shape[2]}, 3) with "
            f"M > 0, got {stats_images.dtype} {stats_images.shape}"
        )
    confidence = round_confidence(probs.max(axis=1))
    predicted = probs.argmax(axis=1)
    class_counts = np.bincount(predicted, minlength=len(classes))
    conf_hist = histogram(confidence, n_bins)
    conf_hist["low_confidence_rate"] = {
        f"{t:g}": float(np.mean(confidence < t)) for t in REFERENCE_THRESHOLDS
    }
    # Percentiles 0..100 of the (rounded) confidence: the detector reads the baseline's
    # low-confidence rate at whatever threshold is configured from them.
    conf_hist["percentiles"] = [
        float(v) for v in np.quantile(confidence, np.linspace(0, 1, 101), method="lower")
    ]
    stats = batch_statistics(stats_images)
    return {
        "version": BASELINE_VERSION,
        "classes": classes,
        "count": n,
        "statistics_count": int(stats_images.shape[0]),
        "image_size": [int(images.shape[1]), int(images.shape[2])],
        "bins": int(n_bins),
        "smoothing": SMOOTHING,
        "confidence_decimals": CONFIDENCE_DECIMALS,
        "confidence": conf_hist,
        "class_counts": {c: int(k) for c, k in zip(classes, class_counts, strict=True)},
        "class_mix": {c: float(k) / n for c, k in zip(classes, class_counts, strict=True)},
        "statistics": {name: histogram(stats[name], n_bins) for name in STATISTICS},
    }


def baseline_low_confidence_rate(baseline: Mapping[str, Any], threshold: float) -> float | None:
    """Share of the baseline's confidences below ``threshold`` (None if it cannot be told).

    Exact for the reference thresholds; otherwise read off the stored percentiles (to within
    one percentile).
    """
    conf = baseline.get("confidence", {})
    exact = conf.get("low_confidence_rate", {}).get(f"{threshold:g}")
    if exact is not None:
        return float(exact)
    pct = conf.get("percentiles")
    if not isinstance(pct, list) or len(pct) < 2:
        return None
    below = int(np.searchsorted(np.asarray(pct, dtype=np.float64), threshold, side="left"))
    return min(1.0, max(0.0, (below - 0.5) / (len(pct) - 1))) if 0 < below < len(pct) else (
        0.0 if below == 0 else 1.0
    )


def _check_hist(hist: Any, where: str) -> None:
    if not isinstance(hist, Mapping):
        raise BaselineError(f"baseline {where} must be an object")
    edges, counts = hist.get("edges"), hist.get("counts")
    if not isinstance(edges, list) or not isinstance(counts, list):
        raise BaselineError(f"baseline {where} needs 'edges' and 'counts' lists")
    if len(counts) != len(edges) + 1:
        raise BaselineError(
            f"baseline {where}: {len(counts)} counts for {len(edges)} edges "
            f"(expected {len(edges) + 1})"
        )
    if any(not isinstance(e, (int, float)) or not math.isfinite(e) for e in edges):
        raise BaselineError(f"baseline {where}: edges must be finite numbers")
    if list(edges) != sorted(edges):
        raise BaselineError(f"baseline {where}: edges must be sorted")
    if any(not isinstance(c, int) or c < 0 for c in counts) or sum(counts) == 0:
        raise BaselineError(f"baseline {where}: counts must be non-negative integers, not all 0")


def validate_baseline(baseline: Any) -> dict[str, Any]:
    """Check a loaded baseline.json; returns it, or raises BaselineError naming the problem."""
    if not isinstance(baseline, Mapping):
        raise BaselineError("baseline must be a JSON object")
    version = baseline.get("version")
    if version != BASELINE_VERSION:
        raise BaselineError(
            f"unsupported baseline version {version!r} (this code reads {BASELINE_VERSION})"
        )
    for key in ("classes", "count", "image_size", "confidence", "class_mix", "statistics"):
        if key not in baseline:
            raise BaselineError(f"baseline is missing '{key}'")
    classes = baseline["classes"]
    if not isinstance(classes, list) or len(classes) < 2:
        raise BaselineError("baseline 'classes' must list at least two names")
    size = baseline["image_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise BaselineError("baseline 'image_size' must be [height, width]")
    _check_hist(baseline["confidence"], "confidence")
    stats = baseline["statistics"]
    if not isinstance(stats, Mapping) or not stats:
        raise BaselineError("baseline 'statistics' must be a non-empty object")
    for name, hist in stats.items():
        _check_hist(hist, f"statistics.{name}")
    return dict(baseline)
