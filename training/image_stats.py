"""Per-image input statistics for drift detection (numpy + Pillow only, no torch).

The same functions run at training time (to build the baseline) and in the drift-detector
Lambda (on captured requests), so they must stay cheap and dependency-light.

All statistics are computed on luma/colour values scaled to [0, 1]:

- ``brightness``: mean luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, the weights
  Pillow's ``convert("L")`` uses). Darkened or over-exposed photos move it.
- ``contrast``: RMS contrast, the population standard deviation of ``Y``. Fog, glare and
  flat generated images move it.
- ``saturation``: mean HSV saturation ``(max(R,G,B) - min(R,G,B)) / max(R,G,B)`` per pixel,
  0 where the pixel is black. Grey-scale cameras and colourful synthetic patterns move it.
- ``sharpness``: mean absolute 4-neighbour Laplacian of ``Y`` over interior pixels
  (kernel ``[[0,1,0],[1,-4,1],[0,1,0]]``). Blur lowers it, sensor noise raises it. The mean
  absolute value is used rather than the usual variance because it is far less heavy-tailed,
  which keeps histogram bins meaningful.
- ``vertical_balance``: mean ``Y`` of the top half minus mean ``Y`` of the bottom half. Photos
  have a "this way up" (sky/background above, ground below); a camera held sideways or upside
  down changes this distribution while leaving the four statistics above unchanged.

Statistics depend on resolution (sharpness especially), so callers compare images at the
model's input size: the drift detector decodes and resizes a captured request with
``training.preprocess`` exactly as the endpoint does before computing them.
"""

from __future__ import annotations

import numpy as np

STATISTICS: tuple[str, ...] = (
    "brightness",
    "contrast",
    "saturation",
    "sharpness",
    "vertical_balance",
)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


class ImageShapeError(ValueError):
    """An array is not an RGB uint8 image (HxWx3) or a batch of them (NxHxWx3)."""


def _check_batch(images: np.ndarray) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ImageShapeError(f"expected a uint8 batch of shape (N, H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ImageShapeError(f"expected dtype uint8, got {arr.dtype}")
    if arr.shape[1] < 3 or arr.shape[2] < 3:
        raise ImageShapeError(f"images must be at least 3x3 pixels, got {arr.shape[1:3]}")
    return arr


def batch_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of every image in a uint8 batch (N, H, W, 3): name -> float64 array (N,)."""
    arr = _check_batch(images)
    n = arr.shape[0]
    out: dict[str, np.ndarray] = {}
    if n == 0:
        return {name: np.zeros(0, dtype=np.float64) for name in STATISTICS}
    rgb = arr.astype(np.float64) / 255.0
    luma = rgb @ _LUMA  # (N, H, W)
    out["brightness"] = luma.mean(axis=(1, 2))
    out["contrast"] = luma.std(axis=(1, 2))
    cmax = rgb.max(axis=3)
    cmin = rgb.min(axis=3)
    # Black pixels have undefined hue/saturation; HSV defines their saturation as 0.
    sat = np.divide(cmax - cmin, cmax, out=np.zeros_like(cmax), where=cmax > 0)
    out["saturation"] = sat.mean(axis=(1, 2))
    lap = (
        luma[:, :-2, 1:-1]
        + luma[:, 2:, 1:-1]
        + luma[:, 1:-1, :-2]
        + luma[:, 1:-1, 2:]
        - 4.0 * luma[:, 1:-1, 1:-1]
    )
    out["sharpness"] = np.abs(lap).mean(axis=(1, 2))
    half = luma.shape[1] // 2
    # With an odd height the middle row belongs to neither half.
    top = luma[:, :half].mean(axis=(1, 2))
    bottom = luma[:, luma.shape[1] - half :].mean(axis=(1, 2))
    out["vertical_balance"] = top - bottom
    return out


def image_statistics(rgb: np.ndarray) -> dict[str, float]:
    """Statistics of one uint8 RGB image (H, W, 3) as plain floats (see module docstring)."""
    arr = np.asarray(rgb)
    if arr.ndim != 3:
        raise ImageShapeError(f"expected a uint8 image of shape (H, W, 3), got {arr.shape}")
    stats = batch_statistics(arr[None, ...])
    return {name: float(values[0]) for name, values in stats.items()}


def highlights(images: np.ndarray) -> np.ndarray:
    """(N,) the 99th percentile of luma in [0, 1] per image of a uint8 batch (N, H, W, 3).

    A photo taken in daylight has some bright pixels (a sky, a reflection, a white wall) even
    when its mean brightness is low; a photo taken at night, or darkened by a factor k, has
    none above k. Used by the safety gate (training.gate), not by the drift baseline."""
    arr = _check_batch(images)
    if arr.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    luma = (arr.astype(np.float64) / 255.0) @ _LUMA
    return np.percentile(luma.reshape(arr.shape[0], -1), 99.0, axis=1)
