"""Fixtures of the drift tests: a synthetic baseline and a writer of capture files in S3."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from drift_support import (
    CLASSES,
    capture_key,
    capture_line,
    confident_probs,
    png_bytes,
    scene_images,
)

from training.baseline import build_baseline


@pytest.fixture(scope="session")
def baseline() -> dict[str, Any]:
    return build_baseline(scene_images(400, seed=1), confident_probs(400, seed=2), CLASSES)


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
