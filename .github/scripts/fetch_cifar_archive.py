"""Provide the CIFAR-100 archive on a GitHub runner and export SCONES_CIFAR_ARCHIVE.

A developer's checkout finds the dev archive in ../shared; a GitHub runner has no such folder.
This script picks, in order:

1. `SCONES_CIFAR_ARCHIVE`, when it names an existing file (a self-hosted runner with the data);
2. `SCONES_CIFAR_ARCHIVE_URL` (a repository variable, e.g. a release asset holding the small dev
   archive), downloaded into the cache dir and checked against `SCONES_CIFAR_ARCHIVE_SHA256`,
   which is required with it so a changed or truncated file never reaches the tests;
3. the official `cifar-100-python.tar.gz` through the project's one loader
   (`training.cifar.resolve_archive`, MD5-verified download into the cache dir).

The workflows cache the cache dir with actions/cache, so the download happens once per key.
The chosen path is appended to `$GITHUB_ENV` (or `--github-env`) for the following steps.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

ENV_PATH = "SCONES_CIFAR_ARCHIVE"
ENV_URL = "SCONES_CIFAR_ARCHIVE_URL"
ENV_SHA256 = "SCONES_CIFAR_ARCHIVE_SHA256"


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
        tmp.replace(target)
    except OSError as err:
        raise ArchiveFetchError(f"download of {url} failed: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return target


def resolve(env: dict[str, str], cache_dir: Path) -> Path:
    configured = env.get(ENV_PATH, "").strip()
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ArchiveFetchError(f"{ENV_PATH}={configured} is not a file")
        return path.resolve()
    url = env.get(ENV_URL, "").strip()
    if url:
        sha = env.get(ENV_SHA256, "").strip()
        if not sha:
            raise ArchiveFetchError(f"{ENV_URL} is set but {ENV_SHA256} is not")
        return download_verified(url, sha, cache_dir).resolve()
    # The project's loader owns the official URL and its MD5; don't duplicate them here.
    from training.cifar import resolve_archive

    return Path(resolve_archive(None, cache_dir)).resolve()


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
    args = p.parse_args(argv)
    # The loader reads SCONES_CIFAR_ARCHIVE itself; resolve() handled it already.
    env = dict(os.environ)
    try:
        path = resolve(env, args.cache_dir.expanduser())
    except ArchiveFetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    export(path, args.github_env)
    return 0


if __name__ == "__main__":
    # Run from the repo root so `training` imports; the script lives in .github/scripts.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
