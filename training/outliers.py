"""Outliers for outlier exposure (Hendrycks et al. 2019): synthetic ones, plus the archive's
other classes where it has them.

The dev archive holds only the configured classes, so the network never sees a photo of
anything else and stays confident on a cat or a wall. Training also shows it images built
from the training photos and from procedures, none of which contains a whole vehicle, and pulls its
prediction on them towards the uniform distribution (``uniform_loss``; class-agnostic: it works
for any number of classes). What is built (``outlier_pool``, seeded, uint8 NHWC at the input
size):

- ``shuffled``: a training photo cut into a 4x4 grid of tiles, the tiles permuted: natural
  colours and textures, no object shape;
- ``zoomed``: a crop of 6..12 px of a training photo scaled up to the full size: a close-up of
  a surface (a tyre, a wall, the ground) rather than a vehicle;
- ``mosaic``: four quadrants from four different photos;
- ``noise``: uniform random pixels; ``flat``: one colour with a little noise; ``field``:
  smooth random colour fields and stripes.

Darkened photos are not among them: they taught the network to doubt every dark photo (about
ten points of clean coverage); the gate's highlights check sends night shots to review instead
(docs/safety.md).

A fifth of the pool is then turned grey (the training photos include a few grey-scale ones,
so colour alone must not make an image look like a vehicle).

The safety gate (training/gate.py, docs/safety.md) measures what this buys on images none of
these procedures produce.
"""

from __future__ import annotations

import numpy as np
import torch

KINDS = ("shuffled", "zoomed", "mosaic", "noise", "flat", "field")
# Shares of the pool per kind: most of it is made of natural-image content.
SHARES = (0.35, 0.25, 0.15, 0.075, 0.075, 0.1)
GREY_SHARE = 0.2


def _shuffled(images: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    src = images[rng.integers(0, len(images), size=n)]
    _, h, w, c = src.shape
    th, tw = h // 4, w // 4
    tiles = src[:, : th * 4, : tw * 4].reshape(n, 4, th, 4, tw, c).transpose(0, 1, 3, 2, 4, 5)
    tiles = tiles.reshape(n, 16, th, tw, c)
    order = np.argsort(rng.random((n, 16)), axis=1)
    tiles = np.take_along_axis(tiles, order[:, :, None, None, None], axis=1)
    out = tiles.reshape(n, 4, 4, th, tw, c).transpose(0, 1, 3, 2, 4, 5)
    out = out.reshape(n, th * 4, tw * 4, c)
    full = src.copy()
    full[:, : th * 4, : tw * 4] = out
    return full


def _zoomed(images: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    from PIL import Image

    h, w = images.shape[1:3]
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        img = images[int(rng.integers(len(images)))]
        side = int(rng.integers(6, 13))
        top, left = (int(v) for v in rng.integers(0, [h - side + 1, w - side + 1]))
        crop = Image.fromarray(np.ascontiguousarray(img[top : top + side, left : left + side]))
        out[i] = np.asarray(crop.resize((w, h), Image.BICUBIC))
    return out


def _mosaic(images: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    h, w = images.shape[1:3]
    out = images[rng.integers(0, len(images), size=n)].copy()
    hh, hw = h // 2, w // 2
    for qy, qx in ((0, 1), (1, 0), (1, 1)):
        other = images[rng.integers(0, len(images), size=n)]
        ys, xs = slice(qy * hh, (qy + 1) * hh), slice(qx * hw, (qx + 1) * hw)
        out[:, ys, xs] = other[:, ys, xs]
    return out


def _noise(shape: tuple[int, int], rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, *shape, 3), dtype=np.uint8)


def _flat(shape: tuple[int, int], rng: np.random.Generator, n: int) -> np.ndarray:
    colour = rng.integers(0, 256, size=(n, 1, 1, 3))
    noise = rng.normal(0.0, 3.0, size=(n, *shape, 3))
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def _field(shape: tuple[int, int], rng: np.random.Generator, n: int) -> np.ndarray:
    from PIL import Image

    h, w = shape
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    for i in range(n):
        if rng.random() < 0.5:
            cells = int(rng.integers(2, 9))
            coarse = rng.integers(0, 256, size=(cells, cells, 3), dtype=np.uint8)
            out[i] = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC))
        else:
            angle, period = rng.uniform(0, np.pi), rng.uniform(3, 12)
            wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period) > 0
            a, b = rng.integers(0, 256, size=(2, 3))
            out[i] = np.where(wave[..., None], a, b)
    return out


def _grey(images: np.ndarray) -> np.ndarray:
    luma = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.repeat(np.clip(luma.round(), 0, 255).astype(np.uint8)[..., None], 3, axis=3)


def outlier_pool(
    images: np.ndarray,
    size: int,
    rng: np.random.Generator,
    *,
    foreign: np.ndarray | None = None,
) -> np.ndarray:
    """`size` synthetic outliers (uint8, the shape of `images`' items) built from `images`.

    `foreign`: real photos of no task class (the archive's other classes, training.stage's
    outlier_images; same item shape), appended to the synthetic ones as they are and the whole
    pool shuffled with `rng` after the synthetic part is built, so that part is the same with
    or without them. None or empty: exactly the synthetic pool.
    """
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or len(arr) == 0:
        raise ValueError(f"outlier_pool needs a uint8 batch (N, H, W, 3), got {arr.shape}")
    extra = None if foreign is None else np.asarray(foreign)
    if extra is not None and (extra.dtype != np.uint8 or extra.shape[1:] != arr.shape[1:]):
        raise ValueError(f"foreign outliers must be uint8 {arr.shape[1:]} items, got {extra.shape}")
    counts = [round(size * share) for share in SHARES]
    counts[0] += size - sum(counts)
    shape = (int(arr.shape[1]), int(arr.shape[2]))
    parts = [
        _shuffled(arr, rng, counts[0]),
        _zoomed(arr, rng, counts[1]),
        _mosaic(arr, rng, counts[2]),
        _noise(shape, rng, counts[3]),
        _flat(shape, rng, counts[4]),
        _field(shape, rng, counts[5]),
    ]
    pool = np.concatenate(parts)
    pool = pool[rng.permutation(len(pool))]
    n_grey = round(len(pool) * GREY_SHARE)
    pool[:n_grey] = _grey(pool[:n_grey])
    pool = pool[rng.permutation(len(pool))]
    if extra is None or len(extra) == 0:
        return pool
    pool = np.concatenate([pool, extra])
    return pool[rng.permutation(len(pool))]


def uniform_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy from the uniform distribution over the classes to softmax(logits)."""
    return -torch.log_softmax(logits, dim=1).mean(dim=1).mean()
