"""Fixtures of the drift tests: a synthetic baseline and a writer of DESIGN-format capture files."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from PIL import Image

from training.baseline import build_baseline

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


@pytest.fixture(scope="session")
def baseline() -> dict[str, Any]:
    return build_baseline(scene_images(400, seed=1), confident_probs(400, seed=2), CLASSES)


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def capture_line(when: datetime, image: bytes, probs: Sequence[float]) -> str:
    """One record exactly as DESIGN.md's Data Capture format."""
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


@pytest.fixture
def write_capture() -> Callable[..., list[str]]:
    """write(s3, bucket, prefix, endpoint, variant, records, start, per_file, spacing) -> keys.

    ``records`` are lines (str) or (image uint8, probs) pairs; request i happens at
    ``start + i * spacing``; every ``per_file`` records start a new file, named by the time of
    its first record, as SageMaker names them.
    """

    def write(
        s3: Any,
        bucket: str,
        prefix: str,
        endpoint: str,
        variant: str,
        records: Sequence[Any],
        start: datetime,
        per_file: int = 100,
        spacing: timedelta = timedelta(seconds=1),
    ) -> list[str]:
        keys = []
        for first in range(0, len(records), per_file):
            started = start + first * spacing
            lines = []
            for i in range(first, min(first + per_file, len(records))):
                rec = records[i]
                when = start + i * spacing
                if isinstance(rec, str):
                    lines.append(rec)
                else:
                    lines.append(capture_line(when, png_bytes(rec[0]), rec[1]))
            key = capture_key(prefix, endpoint, variant, started)
            s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
            keys.append(key)
        return keys

    return write
