"""training.outliers.outlier_pool: the archive's other-class photos join the synthetic pool."""

from __future__ import annotations

import numpy as np
import pytest

from training.outliers import outlier_pool

SIZE = 120


def _photos(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _rows(images: np.ndarray) -> list[bytes]:
    return sorted(img.tobytes() for img in images)


def test_without_foreign_photos_the_pool_is_the_synthetic_one() -> None:
    images = _photos(20, 0)
    plain = outlier_pool(images, SIZE, np.random.default_rng(3))
    assert plain.shape == (SIZE, 32, 32, 3) and plain.dtype == np.uint8
    for foreign in (None, np.zeros((0, 32, 32, 3), np.uint8)):
        same = outlier_pool(images, SIZE, np.random.default_rng(3), foreign=foreign)
        assert np.array_equal(same, plain)


def test_foreign_photos_join_the_unchanged_synthetic_part() -> None:
    images, foreign = _photos(20, 0), _photos(30, 1)
    plain = outlier_pool(images, SIZE, np.random.default_rng(3))
    pool = outlier_pool(images, SIZE, np.random.default_rng(3), foreign=foreign)
    assert pool.shape == (SIZE + 30, 32, 32, 3) and pool.dtype == np.uint8
    # Exactly the synthetic pool plus the foreign photos, as they were given, shuffled together.
    assert _rows(pool) == sorted(_rows(plain) + _rows(foreign))
    positions = {img.tobytes(): i for i, img in enumerate(pool)}
    assert sorted(positions[img.tobytes()] for img in foreign) != list(range(SIZE, SIZE + 30))
    again = outlier_pool(images, SIZE, np.random.default_rng(3), foreign=foreign)
    assert np.array_equal(again, pool)


def test_foreign_photos_must_have_the_pool_item_shape() -> None:
    with pytest.raises(ValueError, match="foreign"):
        outlier_pool(_photos(4, 0), 10, np.random.default_rng(0), foreign=_photos(3, 1)[:, :16])
    with pytest.raises(ValueError, match="foreign"):
        outlier_pool(_photos(4, 0), 10, np.random.default_rng(0), foreign=np.zeros((2, 32, 32, 3)))
