"""Helpers for the serving tests: a small artifact in the contract's layout, encoded images."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.model import build_model

CLASSES = ["bicycle", "motorcycle"]
# A narrow network keeps the tests fast; the artifact layout is the real one.
SMALL_ARCH = {
    "name": "preact_resnet",
    "num_classes": 2,
    "widths": [8, 16],
    "blocks": [1, 1],
    "dropout": 0.0,
}
MEAN = [0.5071, 0.4865, 0.4409]
STD = [0.2673, 0.2564, 0.2762]


def make_artifact(
    model_dir: Path,
    *,
    arch: dict | None = None,
    classes: list[str] | None = None,
    temperature: float = 1.5,
    seed: int = 0,
) -> Path:
    """Write model.pth + model_meta.json (random weights) as training writes them."""
    arch = dict(arch or SMALL_ARCH)
    classes = list(classes or CLASSES)
    torch.manual_seed(seed)
    model = build_model(arch)
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / "model.pth")
    meta = {
        "arch": arch,
        "classes": classes,
        "input_size": [32, 32],
        "mean": MEAN,
        "std": STD,
        "temperature": temperature,
        "framework": "pytorch",
        "torch_version": torch.__version__,
    }
    (model_dir / "model_meta.json").write_text(json.dumps(meta))
    return model_dir


def random_rgb(height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(rgb: np.ndarray, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt, **params)
    return buffer.getvalue()
