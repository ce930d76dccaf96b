"""Input statistics on small images whose values can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.image_stats import STATISTICS, ImageShapeError, batch_statistics, image_statistics


def _solid(rgb: tuple[int, int, int], size: int = 4) -> np.ndarray:
    return np.tile(np.array(rgb, dtype=np.uint8), (size, size, 1))


def test_grey_image_is_flat() -> None:
    stats = image_statistics(_solid((128, 128, 128)))
    assert set(stats) == set(STATISTICS)
    assert stats["brightness"] == pytest.approx(128 / 255)
    assert stats["contrast"] == pytest.approx(0.0)
    assert stats["saturation"] == pytest.approx(0.0)
    assert stats["sharpness"] == pytest.approx(0.0)
    assert stats["vertical_balance"] == pytest.approx(0.0)


def test_pure_red_uses_bt601_luma_and_full_saturation() -> None:
    stats = image_statistics(_solid((255, 0, 0)))
    assert stats["brightness"] == pytest.approx(0.299)
    assert stats["saturation"] == pytest.approx(1.0)


def test_saturation_per_pixel_and_black_pixels_count_as_zero() -> None:
    img = np.array(
        [[[0, 0, 0], [255, 128, 0]], [[200, 100, 100], [10, 10, 10]]], dtype=np.uint8
    )
    img = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)  # 4x4, each pixel 2x2
    # black -> 0, (255,128,0) -> 1, (200,100,100) -> 0.5, grey -> 0; mean 0.375
    assert image_statistics(img)["saturation"] == pytest.approx(0.375)


def test_half_white_half_black() -> None:
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    img[:2] = 255
    stats = image_statistics(img)
    assert stats["brightness"] == pytest.approx(0.5)
    assert stats["contrast"] == pytest.approx(0.5)
    # Interior pixels: white row sees one black neighbour (|1+1+1+0-4| = 1), black row one
    # white neighbour (|1| = 1): mean |Laplacian| = 1.
    assert stats["sharpness"] == pytest.approx(1.0)
    assert stats["vertical_balance"] == pytest.approx(1.0)
    flipped = image_statistics(img[::-1])
    assert flipped["vertical_balance"] == pytest.approx(-1.0)
    rotated = image_statistics(np.rot90(img).copy())
    assert rotated["vertical_balance"] == pytest.approx(0.0)
    assert rotated["brightness"] == pytest.approx(stats["brightness"])


def test_odd_height_leaves_middle_row_out_of_balance() -> None:
    img = np.zeros((5, 3, 3), dtype=np.uint8)
    img[2] = 255  # middle row only
    assert image_statistics(img)["vertical_balance"] == pytest.approx(0.0)


def test_noise_raises_and_blur_lowers_sharpness() -> None:
    rng = np.random.default_rng(0)
    base = np.clip(rng.normal(128, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
    smooth = base.astype(np.float64)
    smooth = (smooth + np.roll(smooth, 1, 0) + np.roll(smooth, 1, 1) + np.roll(smooth, -1, 0)
              + np.roll(smooth, -1, 1)) / 5
    noisy = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
    s_base = image_statistics(base)["sharpness"]
    assert image_statistics(smooth.astype(np.uint8))["sharpness"] < s_base
    assert image_statistics(noisy)["sharpness"] > s_base


def test_batch_matches_single_images() -> None:
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 256, (5, 8, 6, 3), dtype=np.uint8)
    stats = batch_statistics(batch)
    for i in range(5):
        single = image_statistics(batch[i])
        for name in STATISTICS:
            assert stats[name][i] == pytest.approx(single[name])


def test_empty_batch() -> None:
    stats = batch_statistics(np.zeros((0, 4, 4, 3), dtype=np.uint8))
    assert all(v.shape == (0,) for v in stats.values())


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4), dtype=np.uint8),
        np.zeros((4, 4, 4), dtype=np.uint8),
        np.zeros((4, 4, 3), dtype=np.float32),
        np.zeros((2, 2, 3), dtype=np.uint8),
    ],
)
def test_rejects_non_rgb_uint8(bad: np.ndarray) -> None:
    with pytest.raises(ImageShapeError):
        image_statistics(bad)
