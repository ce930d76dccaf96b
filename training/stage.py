"""Stage the chosen CIFAR-100 classes as SageMaker-style channels, deterministically and atomically.

Layout (same archive + classes -> same bytes):

    DIR/manifest.json              classes, fine labels, counts, archive md5, every file's sha256
    DIR/train/<cifar filename>     one PNG per image, e.g. train/bicycle_s_000513.png
    DIR/train/dataset.npz          images uint8 (N,32,32,3), labels int64, filenames, classes
    DIR/train.lst                  index<TAB>label<TAB>path relative to train/
    DIR/test/..., DIR/test.lst     the same for the test split

Everything is written into a temporary sibling directory and renamed into place at the end, so
a failure (bad archive, full disk, Ctrl-C) never leaves a half-staged DIR behind, and a DIR
staged earlier is only replaced once the new one is complete.

CLI: python -m training.stage --archive A --out DIR [--classes bicycle,motorcycle]
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
from training.cifar import Split, load_cifar, parse_classes, resolve_archive
from training.errors import DatasetError, StagedDataError

SPLITS = ("train", "test")
DATASET_FILE = "dataset.npz"
MANIFEST_FILE = "manifest.json"


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


def _stage_split(name: str, split: Split, classes: list[str], root: Path, files: dict) -> None:
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
    _write(split_dir / DATASET_FILE, npz_bytes(arrays), files, root)


def stage_dataset(
    archive_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    classes: Sequence[str],
) -> dict[str, Any]:
    """Stage `classes` from the archive into `out_dir`; returns the manifest (also written)."""
    out = Path(out_dir)
    subset = load_cifar(archive_path, classes)  # all validation happens before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        files: dict[str, str] = {}
        counts: dict[str, dict[str, int]] = {}
        for name in SPLITS:
            split: Split = getattr(subset, name)
            _stage_split(name, split, subset.classes, tmp, files)
            counts[name] = {c: int(np.sum(split.labels == i)) for i, c in enumerate(subset.classes)}
        manifest = {
            "classes": subset.classes,
            "fine_labels": subset.fine_labels,
            "counts": counts,
            "archive": {"name": Path(archive_path).name, "md5": subset.archive_md5},
            "image_shape": [32, 32, 3],
            "files": dict(sorted(files.items())),
        }
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
    args = parser.parse_args(argv)
    try:
        archive = resolve_archive(args.archive, args.cache_dir)
        manifest = stage_dataset(archive, args.out, parse_classes(args.classes))
    except DatasetError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(
        f"{split} " + "/".join(f"{c}={n}" for c, n in per.items())
        for split, per in manifest["counts"].items()
    )
    print(f"staged {args.out} from {archive} (md5 {manifest['archive']['md5']}): {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
