"""Histogram, PSI and baseline helpers on cases small enough to check by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from training.baseline import (
    BASELINE_VERSION,
    BaselineError,
    baseline_low_confidence_rate,
    bin_counts,
    build_baseline,
    psi,
    psi_against,
    quantile_edges,
    smoothed_shares,
    validate_baseline,
)
from training.image_stats import STATISTICS


def test_quantile_edges_and_counts_on_one_to_ten() -> None:
    values = np.arange(1, 11, dtype=float)
    edges = quantile_edges(values, 5)
    # quantiles 0.2..0.8 with method="lower" on 1..10 pick 2, 4, 6, 8
    assert edges == [2.0, 4.0, 6.0, 8.0]
    # a value equal to an edge belongs to the bin above it
    assert bin_counts(values, edges).tolist() == [1, 2, 2, 2, 3]


def test_ties_collapse_into_one_bin() -> None:
    values = [0.5, 0.5] + [1.0] * 8
    edges = quantile_edges(values, 10)
    assert edges == [1.0]
    assert bin_counts(values, edges).tolist() == [2, 8]


def test_out_of_range_values_land_in_open_outer_bins() -> None:
    assert bin_counts([-100.0, 100.0], [0.0, 1.0]).tolist() == [1, 0, 1]


def test_smoothed_shares_fill_empty_bins() -> None:
    shares = smoothed_shares([0, 2])
    # (0 + .5) / (2 + 1), (2 + .5) / (2 + 1)
    assert shares.tolist() == pytest.approx([1 / 6, 5 / 6])


def test_psi_identical_is_zero() -> None:
    assert psi([50, 50], [50, 50]) == pytest.approx(0.0)
    # Same shares, different sizes: only the smoothing (heavier on the 6-value side) differs.
    assert 0 < psi([10, 20, 30], [1, 2, 3]) < 0.01


def test_psi_hand_computed() -> None:
    # expected [.5, .5]; actual smoothed (90.5/101, 10.5/101)
    a1, a2 = 90.5 / 101, 10.5 / 101
    want = (a1 - 0.5) * math.log(a1 / 0.5) + (a2 - 0.5) * math.log(a2 / 0.5)
    assert want == pytest.approx(0.85306, abs=1e-5)
    assert psi([50, 50], [90, 10]) == pytest.approx(want)


def test_psi_is_finite_with_empty_bins_and_grows_with_shift() -> None:
    small = psi([10, 10, 10], [12, 9, 9])
    big = psi([10, 10, 10], [0, 0, 30])
    assert math.isfinite(big)
    assert 0 < small < 0.1 < 0.25 < big


def test_psi_errors() -> None:
    with pytest.raises(BaselineError, match="bin count mismatch"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(BaselineError, match="at least one value"):
        psi([1, 2], [0, 0])


def test_quantile_edges_errors() -> None:
    with pytest.raises(BaselineError):
        quantile_edges([], 10)
    with pytest.raises(BaselineError):
        quantile_edges([1.0, float("nan")], 10)
    with pytest.raises(BaselineError):
        quantile_edges([1.0], 1)


def _dataset(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    p0 = rng.uniform(0, 1, n)
    probs = np.stack([p0, 1 - p0], axis=1)
    return images, probs


def test_build_baseline_contents_and_json() -> None:
    images, probs = _dataset()
    probs[:30] = [0.99, 0.01]
    probs[30:] = [0.2, 0.8]
    base = build_baseline(images, probs, ["bicycle", "motorcycle"])
    again = json.loads(json.dumps(base))
    assert again == base
    assert base["version"] == BASELINE_VERSION
    assert base["count"] == 40
    assert base["image_size"] == [8, 8]
    assert base["class_counts"] == {"bicycle": 30, "motorcycle": 10}
    assert base["class_mix"] == {"bicycle": 0.75, "motorcycle": 0.25}
    conf = base["confidence"]
    assert conf["edges"] == [0.99]
    assert conf["counts"] == [10, 30]
    assert conf["mean"] == pytest.approx((30 * 0.99 + 10 * 0.8) / 40)
    assert conf["low_confidence_rate"]["0.93"] == pytest.approx(0.25)
    assert set(base["statistics"]) == set(STATISTICS)
    for hist in base["statistics"].values():
        assert sum(hist["counts"]) == 40
        assert len(hist["counts"]) == len(hist["edges"]) + 1
    assert validate_baseline(again) == base
    # the baseline sample scores (near) zero against itself
    from training.image_stats import batch_statistics

    stats = batch_statistics(images)
    for name in STATISTICS:
        assert psi_against(base["statistics"][name], stats[name]) == pytest.approx(0.0)


def test_baseline_low_confidence_rate_at_any_threshold() -> None:
    images, probs = _dataset(100)
    conf = np.linspace(0.5, 0.995, 100)
    probs = np.stack([conf, 1 - conf], axis=1)
    base = build_baseline(images, probs, ["a", "b"])
    assert len(base["confidence"]["percentiles"]) == 101
    exact = float(np.mean(np.round(conf, 4) < 0.93))
    assert baseline_low_confidence_rate(base, 0.93) == pytest.approx(exact)  # stored exactly
    # any other threshold: read off the percentiles, within a percentile
    assert baseline_low_confidence_rate(base, 0.7) == pytest.approx(np.mean(conf < 0.7), abs=0.01)
    assert baseline_low_confidence_rate(base, 0.1) == 0.0
    assert baseline_low_confidence_rate(base, 1.01) == 1.0
    older = {**base, "confidence": {k: v for k, v in base["confidence"].items()
                                    if k not in ("percentiles", "low_confidence_rate")}}
    assert baseline_low_confidence_rate(older, 0.93) is None


def test_reference_images_feed_the_input_statistics() -> None:
    images, probs = _dataset(40)
    reference = np.concatenate([images, images[::-1]]) // 2  # 80 darker images
    base = build_baseline(images, probs, ["a", "b"], reference_images=reference)
    assert base["count"] == 40 and base["statistics_count"] == 80
    assert sum(base["statistics"]["brightness"]["counts"]) == 80
    plain = build_baseline(images, probs, ["a", "b"])
    assert plain["statistics_count"] == 40
    assert base["statistics"]["brightness"]["mean"] < plain["statistics"]["brightness"]["mean"]
    assert base["confidence"] == plain["confidence"]  # confidence stays held-out only
    with pytest.raises(BaselineError, match="reference_images"):
        build_baseline(images, probs, ["a", "b"], reference_images=reference[:, :4])
    with pytest.raises(BaselineError, match="reference_images"):
        build_baseline(images, probs, ["a", "b"], reference_images=reference[:0])


def test_confidence_is_rounded_like_the_endpoint_answer() -> None:
    images, probs = _dataset(4)
    probs[:] = [0.999996, 0.000004]
    base = build_baseline(images, probs, ["a", "b"])
    assert base["confidence"]["max"] == 1.0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda im, p, c: (im, p, ["a"]), "at least two"),
        (lambda im, p, c: (im, p, ["a", "a"]), "distinct"),
        (lambda im, p, c: (im.astype(np.float32), p, c), "uint8"),
        (lambda im, p, c: (im, p[:, :1], c), "shape"),
        (lambda im, p, c: (im, p[:-1], c), "probability rows"),
        (lambda im, p, c: (im, p * 2, c), "sums to"),
        (lambda im, p, c: (im[:0], p[:0], c), "at least one image"),
    ],
)
def test_build_baseline_rejects_bad_input(mutate, message: str) -> None:
    images, probs = _dataset()
    with pytest.raises(BaselineError, match=message):
        build_baseline(*mutate(images, probs, ["bicycle", "motorcycle"]))


def test_validate_baseline_names_the_problem() -> None:
    images, probs = _dataset()
    base = build_baseline(images, probs, ["a", "b"])
    with pytest.raises(BaselineError, match="version"):
        validate_baseline({**base, "version": 99})
    with pytest.raises(BaselineError, match="missing 'statistics'"):
        validate_baseline({k: v for k, v in base.items() if k != "statistics"})
    broken = json.loads(json.dumps(base))
    broken["statistics"]["brightness"]["counts"].append(1)
    with pytest.raises(BaselineError, match=r"statistics\.brightness"):
        validate_baseline(broken)
    with pytest.raises(BaselineError, match="JSON object"):
        validate_baseline([1, 2])
