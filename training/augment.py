"""Batch augmentation with plain torch ops (no torchvision): crop with padding, flip, cutout, mixup.

All randomness comes from the numpy Generator passed in, so a seeded run draws the same
augmentations every time regardless of torch's thread count. Inputs are normalised float
batches (N, 3, H, W); zero is the data set's mean colour there, so cutout fills with the mean.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional


def random_crop(x: torch.Tensor, rng: np.random.Generator, padding: int) -> torch.Tensor:
    """Reflect-pad by `padding` and crop back to (H, W) at a random offset per image."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = functional.pad(x, (padding, padding, padding, padding), mode="reflect")
    oy = torch.from_numpy(rng.integers(0, 2 * padding + 1, size=n))
    ox = torch.from_numpy(rng.integers(0, 2 * padding + 1, size=n))
    rows = (oy[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # (N,1,H,1)
    cols = (ox[:, None] + torch.arange(w)[None, :])[:, None, None, :]  # (N,1,1,W)
    batch = torch.arange(n)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_flip(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    mask = torch.from_numpy(rng.random(x.shape[0]) < 0.5)[:, None, None, None]
    return torch.where(mask, x.flip(3), x)


def cutout(x: torch.Tensor, rng: np.random.Generator, size: int) -> torch.Tensor:
    """Zero (the mean colour) one size x size square per image, centred anywhere (may clip)."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.from_numpy(rng.integers(0, h, size=n))[:, None, None]
    cx = torch.from_numpy(rng.integers(0, w, size=n))[:, None, None]
    ys = torch.arange(h)[None, :, None]
    xs = torch.arange(w)[None, None, :]
    half = size // 2
    inside = (
        (ys >= cy - half) & (ys < cy - half + size) & (xs >= cx - half) & (xs < cx - half + size)
    )
    return x * (~inside)[:, None, :, :].to(x.dtype)


def color_jitter(
    x: torch.Tensor,
    rng: np.random.Generator,
    strength: float,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> torch.Tensor:
    """Random brightness and contrast per image, applied in normalised space.

    Brightness b scales raw pixels: x_raw * b is, normalised, b * x + (b - 1) * mean / std.
    Contrast c scales each channel around the image's own mean (the same in either space).
    Besides regularising, this makes the model less sensitive to lighting (drift) changes.
    """
    if strength <= 0:
        return x
    n = x.shape[0]
    b = torch.from_numpy(rng.uniform(1 - strength, 1 + strength, n).astype(np.float32))
    c = torch.from_numpy(rng.uniform(1 - strength, 1 + strength, n).astype(np.float32))
    b, c = b[:, None, None, None], c[:, None, None, None]
    shift = (mean / std).view(1, -1, 1, 1)
    x = b * x + (b - 1) * shift
    centre = x.mean(dim=(2, 3), keepdim=True)
    return (x - centre) * c + centre


def random_grey(
    x: torch.Tensor,
    rng: np.random.Generator,
    probability: float,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> torch.Tensor:
    """Turn each image grey (BT.601 luma in every channel) with `probability`, in normalised
    space: raw = x * std + mean, luma of raw, normalised back per channel.

    Without it a class whose photos are more often grey (CIFAR's bicycles: 18 of the dev
    archive's 22 grey photos) lets the network read "no colour" as that class, and it routes
    grey images of anything as that class with confidence (docs/safety.md)."""
    if probability <= 0:
        return x
    pick = torch.from_numpy(rng.random(x.shape[0]) < probability)[:, None, None, None]
    m, s = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, -1, 1, 1)
    luma = ((x * s + m) * weights).sum(dim=1, keepdim=True)
    return torch.where(pick, (luma - m) / s, x)


def augment(
    x: torch.Tensor,
    rng: np.random.Generator,
    *,
    padding: int = 4,
    cutout_size: int = 8,
    jitter: float = 0.0,
    grey: float = 0.0,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> torch.Tensor:
    """The CIFAR recipe: random crop with padding, horizontal flip, colour jitter, random
    grey, cutout."""
    x = random_flip(random_crop(x, rng, padding), rng)
    if jitter > 0 and mean is not None and std is not None:
        x = color_jitter(x, rng, jitter, mean, std)
    if grey > 0 and mean is not None and std is not None:
        x = random_grey(x, rng, grey, mean, std)
    return cutout(x, rng, cutout_size)


def mixup(
    x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Blend the batch with a shuffled copy: returns (mixed x, y, y of the partner, lambda)."""
    if alpha <= 0:
        return x, y, y, 1.0
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(x.shape[0]))
    return lam * x + (1.0 - lam) * x[perm], y, y[perm], lam
