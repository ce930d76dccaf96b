"""Provide the CIFAR-100 archive on a GitHub runner and export SCONES_CIFAR_ARCHIVE.

A developer's checkout finds the dev archive in ../shared; a GitHub runner has no such folder.

Without flags (deploys, previews, the evaluation job) it provides the training data: the
official `cifar-100-python.tar.gz` through the project's one loader
(`training.cifar.resolve_archive`: `SCONES_CIFAR_ARCHIVE` if set, else an MD5-verified download
into the cache dir).

With `--dev-subset` (the test job) it provides the tests' dev archive, whose exact shape the
tests check (bicycles and motorcycles only, 400 train and 100 test images per class, all 100
label names), taking the first source that applies:

1. `SCONES_CIFAR_ARCHIVE`, when it names an existing file (a self-hosted runner with the data);
2. `SCONES_CIFAR_ARCHIVE_URL` (a repository variable, e.g. a release asset holding
   cifar-100-vehicles-dev.tar.gz), downloaded into the cache dir and checked against
   `SCONES_CIFAR_ARCHIVE_SHA256`, which is required with it so a changed or truncated file
   never reaches the tests;
3. derived from the official archive: the same layout and pickles, the two classes, the first
   400 training images of each in archive order and every test image, written
   deterministically (so its bytes, and the cache, are stable).

The workflows cache the cache dir with actions/cache, so each download happens once per key.
The chosen path is appended to `$GITHUB_ENV` (or `--github-env`) for the following steps.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ENV_PATH = "SCONES_CIFAR_ARCHIVE"
ENV_URL = "SCONES_CIFAR_ARCHIVE_URL"
ENV_SHA256 = "SCONES_CIFAR_ARCHIVE_SHA256"
DEV_CLASSES = ("bicycle", "motorcycle")
DEV_TRAIN_PER_CLASS = 400
DERIVED_NAME = "cifar-100-vehicles-derived.tar.gz"


class ArchiveFetchError(Exception):
    """The archive could not be provided; the message says which source failed and why."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_verified(url: str, sha256: str, cache_dir: Path) -> Path:
    """Download `url` into `cache_dir` (atomically) unless a copy with this hash is there."""
    expected = sha256.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ArchiveFetchError(f"{ENV_SHA256} must be 64 hex digits, got {sha256!r}")
    name = Path(urllib.parse.urlparse(url).path).name or "cifar-archive.tar.gz"
    target = cache_dir / name
    if target.is_file() and sha256_of(target) == expected:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=120) as resp:
            shutil.copyfileobj(resp, out)
        got = sha256_of(tmp)
        if got != expected:
            raise ArchiveFetchError(
                f"{url} has SHA-256 {got}, expected {expected} ({ENV_SHA256})"
            )
        tmp.chmod(0o644)
        tmp.replace(target)
    except OSError as err:
        raise ArchiveFetchError(f"download of {url} failed: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _subset_batch(raw: dict[bytes, Any], fine_ids: list[int], per_class: int | None) -> dict:
    """Rows of `raw` (an official batch dict) whose fine label is kept, in archive order,
    at most `per_class` of each label."""
    import numpy as np

    fine = [int(f) for f in raw[b"fine_labels"]]
    taken = dict.fromkeys(fine_ids, 0)
    keep: list[int] = []
    for row, label in enumerate(fine):
        if label in taken and (per_class is None or taken[label] < per_class):
            taken[label] += 1
            keep.append(row)
    out = {
        b"filenames": [raw[b"filenames"][i] for i in keep],
        b"batch_label": raw.get(b"batch_label", b""),
        b"fine_labels": [fine[i] for i in keep],
        b"data": np.ascontiguousarray(np.asarray(raw[b"data"])[keep]),
    }
    if b"coarse_labels" in raw:
        out[b"coarse_labels"] = [int(raw[b"coarse_labels"][i]) for i in keep]
    return out


def derive_dev_archive(
    official: Path,
    out: Path,
    classes: Sequence[str] = DEV_CLASSES,
    train_per_class: int = DEV_TRAIN_PER_CLASS,
) -> Path:
    """Write the dev-shaped subset of an official-format archive to `out` (atomically)."""
    # The project's loader reads the archive (restricted unpickler, validated members), so
    # this script never unpickles anything itself.
    from training.cifar import MEMBER_DIR, _read_members

    members = _read_members(official)
    names = [n.decode("utf-8") for n in members["meta"][b"fine_label_names"]]
    missing = [c for c in classes if c not in names]
    if missing:
        raise ArchiveFetchError(f"{official} has no fine label(s) {missing}")
    fine_ids = [names.index(c) for c in classes]
    payloads = {
        "train": _subset_batch(members["train"], fine_ids, train_per_class),
        "test": _subset_batch(members["test"], fine_ids, None),
        "meta": members["meta"],
    }
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("train", "test", "meta"):
            # Protocol 2, as the official pickles; fixed metadata so the bytes are stable.
            data = pickle.dumps(payloads[name], protocol=2)
            info = tarfile.TarInfo(f"{MEMBER_DIR}/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh, gzip.GzipFile(
            filename="", mode="wb", fileobj=fh, mtime=0
        ) as gz:
            gz.write(tar_bytes.getvalue())
        tmp.chmod(0o644)  # mkstemp's 0600 would surprise a later reader
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def resolve(env: dict[str, str], cache_dir: Path, *, dev_subset: bool = False) -> Path:
    configured = env.get(ENV_PATH, "").strip()
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ArchiveFetchError(f"{ENV_PATH}={configured} is not a file")
        return path.resolve()
    url = env.get(ENV_URL, "").strip()
    if dev_subset and url:
        sha = env.get(ENV_SHA256, "").strip()
        if not sha:
            raise ArchiveFetchError(f"{ENV_URL} is set but {ENV_SHA256} is not")
        return download_verified(url, sha, cache_dir).resolve()
    # The project's loader owns the official URL and its MD5; don't duplicate them here.
    from training.cifar import resolve_archive
    from training.errors import DatasetError

    try:
        official = Path(resolve_archive(None, cache_dir)).resolve()
        if not dev_subset:
            return official
        derived = cache_dir / DERIVED_NAME
        if not derived.is_file():
            derive_dev_archive(official, derived)
        return derived.resolve()
    except DatasetError as err:
        raise ArchiveFetchError(f"{type(err).__name__}: {err}") from err


def export(path: Path, github_env: str | None) -> None:
    line = f"{ENV_PATH}={path}\n"
    if github_env:
        with open(github_env, "a", encoding="utf-8") as fh:
            fh.write(line)
    print(line, end="")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", type=Path, required=True)
    p.add_argument("--github-env", default=os.environ.get("GITHUB_ENV"))
    p.add_argument(
        "--dev-subset", action="store_true",
        help="provide the tests' dev archive (bicycle/motorcycle, 400+100 per class)",
    )
    args = p.parse_args(argv)
    # The loader reads SCONES_CIFAR_ARCHIVE itself; resolve() handled it already.
    env = dict(os.environ)
    try:
        path = resolve(env, args.cache_dir.expanduser(), dev_subset=args.dev_subset)
    except ArchiveFetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    export(path, args.github_env)
    return 0


if __name__ == "__main__":
    # Run from the repo root so `training` imports; the script lives in .github/scripts.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
