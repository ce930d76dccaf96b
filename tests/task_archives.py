"""Small archives in the official CIFAR-100 python format for other class sets than the dev
archive's two (three-class local runs, the roadway task offline).

The layout is the official one (``cifar-100-python/{train,test,meta}``, protocol-2 pickles with
``data`` uint8 rows of 3072 = 3x32x32 channel-major, ``fine_labels``, ``coarse_labels``,
``filenames``; ``meta`` with the 100 ``fine_label_names``), the names are the official ones,
read from the dev archive's ``meta``. Each class's images are one distinct colour plus noise, so
a model trained for a few epochs tells them apart (what the tests assert is the plumbing of a
class set: answer length, filter, routes, alarms, not the model's quality on real photos).
"""

from __future__ import annotations

import io
import pickle
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def official_names(dev_archive: Path) -> list[str]:
    """The 100 fine label names, in label order, from an official-format archive's meta."""
    with tarfile.open(dev_archive, "r:gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/meta"))
        meta = pickle.load(tar.extractfile(member), encoding="bytes")
    return [n.decode() for n in meta[b"fine_label_names"]]


def _split(
    labels: Sequence[int], colours: dict[int, np.ndarray], rng: np.random.Generator, tag: str
) -> dict[bytes, object]:
    rows = []
    for label in labels:
        image = colours[label][:, None, None] + rng.normal(0, 12, size=(3, 32, 32))
        rows.append(np.clip(image, 0, 255).astype(np.uint8).reshape(3072))
    return {
        b"data": np.stack(rows),
        b"fine_labels": list(labels),
        b"coarse_labels": [0] * len(labels),
        b"filenames": [f"{tag}_{i:05d}.png".encode() for i in range(len(labels))],
        b"batch_label": f"generated {tag}".encode(),
    }


def write_task_archive(
    path: Path,
    names: Sequence[str],
    classes: Sequence[str],
    *,
    train_per_class: int = 40,
    test_per_class: int = 12,
    seed: int = 0,
    train_counts: Mapping[str, int] | None = None,
) -> Path:
    """Write cifar-100-python.tar.gz holding `classes` (official `names`) at `path`.

    `train_counts` overrides `train_per_class` for the classes it names."""
    rng = np.random.default_rng(seed)
    ids = [names.index(c) for c in classes]
    # Colours far apart in RGB: evenly spaced hues at full saturation.
    colours = {}
    for k, label in enumerate(ids):
        hue = k / len(ids)
        colours[label] = np.array(
            [127 + 110 * np.cos(2 * np.pi * (hue + s / 3)) for s in range(3)], dtype=np.float64
        )
    per_class = {c: (train_counts or {}).get(c, train_per_class) for c in classes}
    train = [names.index(c) for c in classes for _ in range(per_class[c])]
    test = [i for i in ids for _ in range(test_per_class)]
    rng.shuffle(train)
    rng.shuffle(test)
    payloads = {
        "train": _split(train, colours, rng, "train"),
        "test": _split(test, colours, rng, "test"),
        "meta": {
            b"fine_label_names": [n.encode() for n in names],
            b"coarse_label_names": [],
        },
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in payloads.items():
            data = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
