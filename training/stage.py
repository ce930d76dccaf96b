"""Stage the chosen CIFAR-100 classes as SageMaker-style channels, deterministically and atomically.

Layout (same archive + classes -> same bytes):

    DIR/manifest.json              classes, fine labels, counts, archive md5, every file's sha256
    DIR/train/<cifar filename>     one PNG per image, e.g. train/bicycle_s_000513.png
    DIR/train/dataset.npz          images uint8 (N,32,32,3), labels int64, filenames, classes;
                                   outlier_images uint8 (M,32,32,3) when the archive has
                                   other classes (below)
    DIR/train.lst                  index<TAB>label<TAB>path relative to train/
    DIR/test/..., DIR/test.lst     the same for the test split

Everything is written into a temporary sibling directory and renamed into place at the end, so
a failure (bad archive, full disk, Ctrl-C) never leaves a half-staged DIR behind, and a DIR
staged earlier is only replaced once the new one is complete.

Outliers: when the archive holds classes beyond the requested ones (the official archive: 98),
a seeded sample of their *train*-split photos, at most `max_outliers` and spread evenly over
those classes, is staged as the train split's `outlier_images` (photos of no task class, for
outlier exposure in training.train; not labelled examples: no PNG, no train.lst line), and the
manifest's `outliers` records how many were staged from which class. An archive without other
classes (the dev archive) stages no such array and no such manifest key.

CLI: python -m training.stage --archive A --out DIR [--classes bicycle,motorcycle]
     [--max-outliers 5000]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from training.archive import zip_bytes
from training.cifar import CifarSubset, Split, load_cifar, parse_classes, resolve_archive
from training.errors import DatasetError, StagedDataError

SPLITS = ("train", "test")
DATASET_FILE = "dataset.npz"
MANIFEST_FILE = "manifest.json"
OUTLIERS_KEY = "outlier_images"
DEFAULT_MAX_OUTLIERS = 5000
# The sample's seed is fixed: the staged bytes depend only on the archive, classes and cap.
OUTLIER_SAMPLE_SEED = 0


def png_bytes(image: np.ndarray) -> bytes:
    """Encode one uint8 (32,32,3) image as PNG with fixed settings and no metadata."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A .npz (readable by np.load without pickle) whose bytes depend only on the arrays."""
    # Not np.savez: it stamps the current time, so two stagings of the same data would differ.
    entries = []
    for name, array in arrays.items():
        entry = io.BytesIO()
        np.lib.format.write_array(entry, np.asarray(array), allow_pickle=False)
        entries.append((f"{name}.npy", entry.getvalue(), 0o644))
    return zip_bytes(entries, compresslevel=None)


def _write(path: Path, data: bytes, files: dict[str, str], root: Path) -> None:
    path.write_bytes(data)
    files[path.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()


def stratified_sample(fine_labels: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (ascending) of at most `cap` items, spread as evenly as possible over the labels.

    Every label gets the same share, a label with fewer items gives all it has and its unused
    share goes to the others; the shares differ by at most one (the extra ones go to the lowest
    labels). Which items of a label are taken is drawn from `rng`.
    """
    labels, available = np.unique(np.asarray(fine_labels), return_counts=True)
    if cap <= 0 or len(labels) == 0:
        return np.zeros(0, dtype=np.int64)
    if available.sum() <= cap:
        quota = available
    else:
        # The highest level L whose capped total min(available, L) still fits in `cap`.
        levels = np.arange(int(available.max()) + 1)
        totals = np.minimum(available[None, :], levels[:, None]).sum(axis=1)
        level = int(levels[totals <= cap].max())
        quota = np.minimum(available, level)
        extra = cap - int(quota.sum())
        quota[np.flatnonzero(available > level)[:extra]] += 1
    picked = []
    for label, n in zip(labels, quota, strict=True):
        members = np.flatnonzero(fine_labels == label)
        picked.append(rng.choice(members, size=int(n), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _outlier_sample(subset: CifarSubset, cap: int) -> tuple[np.ndarray, dict[str, Any] | None]:
    """(images, manifest entry) of the staged outliers; (empty, None) without other classes."""
    if len(subset.others) == 0:
        return subset.others, None
    picked = stratified_sample(
        subset.others_fine_labels, cap, np.random.default_rng(OUTLIER_SAMPLE_SEED)
    )
    fine = subset.others_fine_labels[picked]
    per_class = {
        subset.fine_label_names[int(label)]: int(n)
        for label, n in zip(*np.unique(fine, return_counts=True), strict=True)
    }
    entry = {
        "count": len(picked),
        "max": cap,
        "available": len(subset.others),
        "split": "train",
        "seed": OUTLIER_SAMPLE_SEED,
        "classes": per_class,
    }
    return subset.others[picked], entry


def _stage_split(
    name: str,
    split: Split,
    classes: list[str],
    root: Path,
    files: dict,
    outliers: np.ndarray | None = None,
) -> None:
    split_dir = root / name
    split_dir.mkdir()
    lines = []
    for index, (image, label, filename) in enumerate(
        zip(split.images, split.labels, split.filenames, strict=True)
    ):
        _write(split_dir / filename, png_bytes(image), files, root)
        lines.append(f"{index}\t{int(label)}\t{filename}\n")
    _write(root / f"{name}.lst", "".join(lines).encode("utf-8"), files, root)
    arrays = {
        "images": split.images,
        "labels": split.labels.astype(np.int64),
        "filenames": np.array(split.filenames, dtype=str),
        "classes": np.array(classes, dtype=str),
    }
    if outliers is not None and len(outliers):
        arrays[OUTLIERS_KEY] = outliers
    _write(split_dir / DATASET_FILE, npz_bytes(arrays), files, root)


def stage_dataset(
    archive_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    classes: Sequence[str],
    *,
    max_outliers: int = DEFAULT_MAX_OUTLIERS,
) -> dict[str, Any]:
    """Stage `classes` from the archive into `out_dir`; returns the manifest (also written).

    Up to `max_outliers` (0: none) train-split photos of the archive's other classes go into
    the train split as `outlier_images` (module docstring)."""
    if max_outliers < 0:
        raise ValueError(f"max_outliers must be >= 0, got {max_outliers}")
    out = Path(out_dir)
    subset = load_cifar(archive_path, classes)  # all validation happens before anything is written
    outlier_images, outlier_entry = _outlier_sample(subset, max_outliers)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        files: dict[str, str] = {}
        counts: dict[str, dict[str, int]] = {}
        for name in SPLITS:
            split: Split = getattr(subset, name)
            _stage_split(
                name,
                split,
                subset.classes,
                tmp,
                files,
                outliers=outlier_images if name == "train" else None,
            )
            counts[name] = {c: int(np.sum(split.labels == i)) for i, c in enumerate(subset.classes)}
        manifest = {
            "classes": subset.classes,
            "fine_labels": subset.fine_labels,
            "counts": counts,
            "archive": {"name": Path(archive_path).name, "md5": subset.archive_md5},
            "image_shape": [32, 32, 3],
            "files": dict(sorted(files.items())),
        }
        if outlier_entry is not None:
            manifest["outliers"] = outlier_entry
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a staged data set is ordinary readable data
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _replace_dir(new: Path, dest: Path) -> None:
    """Move `new` to `dest`; an existing `dest` is swapped out only after `new` is complete."""
    if not dest.exists():
        os.replace(new, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    old.rmdir()
    os.replace(dest, old)
    try:
        os.replace(new, dest)
    except BaseException:
        os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def read_split(channel_dir: str | os.PathLike[str]) -> tuple[Split, list[str]]:
    """Read a staged split (a SageMaker channel dir holding dataset.npz) -> (Split, classes)."""
    path = Path(channel_dir) / DATASET_FILE
    if not path.is_file():
        raise StagedDataError(f"{path} not found: stage the data with `python -m training.stage`")
    try:
        with np.load(path, allow_pickle=False) as data:
            images = data["images"]
            labels = data["labels"].astype(np.int64)
            filenames = [str(f) for f in data["filenames"]]
            classes = [str(c) for c in data["classes"]]
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise StagedDataError(f"{path} is not a staged data set: {exc}") from exc
    n = labels.shape[0]
    if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3) or images.shape[0] != n:
        raise StagedDataError(f"{path}: images {images.dtype}{images.shape} for {n} labels")
    if n and (labels.min() < 0 or labels.max() >= len(classes)):
        raise StagedDataError(f"{path}: labels outside 0..{len(classes) - 1}")
    return Split(images=images, labels=labels, filenames=filenames), classes


def read_outliers(channel_dir: str | os.PathLike[str]) -> np.ndarray:
    """The staged outlier photos of a train channel dir (uint8 (M,32,32,3)); (0,32,32,3) when
    its dataset.npz has none (the dev archive, or a split staged without other classes)."""
    path = Path(channel_dir) / DATASET_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            if OUTLIERS_KEY not in data.files:
                return np.zeros((0, 32, 32, 3), dtype=np.uint8)
            images = data[OUTLIERS_KEY]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise StagedDataError(f"{path} is not a staged data set: {exc}") from exc
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise StagedDataError(f"{path}: {OUTLIERS_KEY} {images.dtype}{images.shape}")
    return images


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.stage", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--archive",
        help="local cifar-100-python.tar.gz (default: $SCONES_CIFAR_ARCHIVE, else download once "
        "into the cache and verify its MD5)",
    )
    parser.add_argument("--cache-dir", help="download cache (default: ~/.cache/scones-unlimited)")
    parser.add_argument("--out", required=True, help="output directory (replaced atomically)")
    parser.add_argument(
        "--classes",
        default="bicycle,motorcycle",
        help="CIFAR-100 fine label names, comma-separated or a JSON list (default: %(default)s)",
    )
    parser.add_argument(
        "--max-outliers",
        type=int,
        default=DEFAULT_MAX_OUTLIERS,
        help="at most this many train photos of the archive's other classes, staged as "
        "outliers for training; 0 stages none (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.max_outliers < 0:
        parser.error("--max-outliers must be >= 0")
    try:
        archive = resolve_archive(args.archive, args.cache_dir)
        manifest = stage_dataset(
            archive, args.out, parse_classes(args.classes), max_outliers=args.max_outliers
        )
    except DatasetError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(
        f"{split} " + "/".join(f"{c}={n}" for c, n in per.items())
        for split, per in manifest["counts"].items()
    )
    if "outliers" in manifest:
        others = manifest["outliers"]
        counts += f"; outliers {others['count']} from {len(others['classes'])} other classes"
    print(f"staged {args.out} from {archive} (md5 {manifest['archive']['md5']}): {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
