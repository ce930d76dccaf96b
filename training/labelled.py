"""Add reviewers' labelled images (``labelled/<class>/*`` from the data bucket) to a training split.

Images are compared by content: each is decoded and brought to the staged size exactly as the
endpoint's preprocessing does (training.preprocess.load_image), and the SHA-256 of the pixels
identifies it. A labelled image is dropped when its pixels repeat

- an image of the **test split** (the evaluation set must stay unseen: local mode reviews test
  images, so there every labelled image is dropped this way);
- an image already in the training split (nothing new to learn);
- an earlier labelled image (the same photo answered twice: the first answer, in file name
  order, is kept).

The test split itself is only read. ``merge_labelled`` returns the grown split and the counts
training reports in metrics.json under ``data``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.cifar import Split
from training.errors import UnknownClass


def _pixel_hash(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def merge_labelled(
    train: Split, test: Split, classes: Sequence[str], labelled_dir: str | Path
) -> tuple[Split, dict[str, Any]]:
    """``train`` plus the new labelled images under ``labelled_dir/<class>/``, and the counts.

    A folder that is not a class raises UnknownClass (a label the model cannot learn); a file
    that does not decode is counted under ``undecodable`` and skipped.
    """
    from training.errors import SconesError
    from training.preprocess import load_image

    root = Path(labelled_dir)
    size = train.images.shape[1:3]
    test_hashes = {_pixel_hash(img) for img in test.images}
    in_train = {_pixel_hash(img) for img in train.images}
    kept: set[str] = set()
    used: dict[str, int] = {c: 0 for c in classes}
    dropped = {"in_test_split": 0, "in_training_split": 0, "repeated": 0, "undecodable": 0}
    images, labels, names = [], [], []
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for folder in folders:
        if folder.name not in classes:
            raise UnknownClass(
                f"labelled folder {folder.name!r} is not a class ({', '.join(classes)})"
            )
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            try:
                image = load_image(path.read_bytes(), size)
            except (SconesError, ValueError, OSError):
                dropped["undecodable"] += 1
                continue
            digest = _pixel_hash(image)
            if digest in test_hashes:
                dropped["in_test_split"] += 1
            elif digest in in_train:
                dropped["in_training_split"] += 1
            elif digest in kept:
                dropped["repeated"] += 1
            else:
                kept.add(digest)
                images.append(image)
                labels.append(classes.index(folder.name))
                names.append(f"labelled/{folder.name}/{path.name}")
                used[folder.name] += 1
    counts = {"staged": len(train), "labelled_used": used, "labelled_dropped": dropped}
    if not images:
        return train, counts
    grown = Split(
        images=np.concatenate([train.images, np.stack(images)]),
        labels=np.concatenate([train.labels, np.asarray(labels, dtype=np.int64)]),
        filenames=[*train.filenames, *names],
    )
    return grown, counts
