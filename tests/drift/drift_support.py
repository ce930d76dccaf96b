"""Helpers of the drift tests: synthetic photo-like images and DESIGN-format capture records."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from PIL import Image

CLASSES = ["bicycle", "motorcycle"]


def scene_images(n: int, seed: int, size: int = 16) -> np.ndarray:
    """Photo-like images: a brighter top, varied brightness and texture, some colour."""
    rng = np.random.default_rng(seed)
    yy = np.linspace(1.0, 0.0, size)[None, :, None, None]
    level = rng.uniform(0.3, 0.7, (n, 1, 1, 1))
    tilt = rng.uniform(0.0, 0.3, (n, 1, 1, 1))
    tint = rng.uniform(0.8, 1.2, (n, 1, 1, 3))
    noise = rng.normal(0, rng.uniform(0.02, 0.08, (n, 1, 1, 1)), (n, size, size, 3))
    img = (level + tilt * (yy - 0.5)) * tint + noise
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def confident_probs(n: int, seed: int, low: float = 0.95) -> np.ndarray:
    rng = np.random.default_rng(seed)
    conf = rng.uniform(low, 1.0, n)
    cls = rng.integers(0, 2, n)
    probs = np.empty((n, 2))
    probs[np.arange(n), cls] = conf
    probs[np.arange(n), 1 - cls] = 1 - conf
    return probs


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def capture_line(when: datetime, image: bytes, probs: Sequence[float]) -> str:
    """One record exactly as docs/design.md's Data Capture format."""
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "image/png",
                    "mode": "INPUT",
                    "data": base64.b64encode(image).decode(),
                    "encoding": "BASE64",
                },
                "endpointOutput": {
                    "observedContentType": "application/json",
                    "mode": "OUTPUT",
                    "data": json.dumps([round(float(p), 4) for p in probs]),
                    "encoding": "JSON",
                },
            },
            "eventMetadata": {
                "eventId": str(uuid.uuid4()),
                "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "eventVersion": "0",
        }
    )


def capture_key(prefix: str, endpoint: str, variant: str, started: datetime) -> str:
    return (
        f"{prefix}/{endpoint}/{variant}/{started:%Y/%m/%d/%H}/"
        f"{started:%M-%S}-{started.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    )
