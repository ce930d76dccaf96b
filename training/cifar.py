"""The one loader of CIFAR-100's official python archive (`cifar-100-python.tar.gz`).

The official archive and the offline dev archive (same layout, fewer images) go through the same
code: `resolve_archive` picks the file, `load_cifar` reads it.

Checksum policy: only a file this module downloaded (or finds in its download cache) is checked
against the published MD5, because that is the only file the published MD5 describes. An archive
given explicitly (flag or SCONES_CIFAR_ARCHIVE) is trusted as given, e.g. the dev archive, which
has no published checksum; its MD5 is still computed and recorded in the staged manifest, and a
caller that knows the expected MD5 can pass `expected_md5` to have it verified too.

Safety: members are read straight from the tar stream into memory (nothing is extracted to
disk, so member paths cannot escape anywhere), only the three known member names are read, and
the pickles are loaded with an unpickler that admits nothing but the numpy array constructors.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from default_task import DEFAULT_CLASSES  # in the source bundle too (training.bundle)
from training.errors import (
    ChecksumMismatch,
    CorruptArchive,
    DatasetError,
    DownloadUnavailable,
    EmptyClass,
    InvalidClasses,
    MissingMember,
    UnknownClass,
)

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
OFFICIAL_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
ARCHIVE_NAME = "cifar-100-python.tar.gz"
ARCHIVE_ENV = "SCONES_CIFAR_ARCHIVE"
CACHE_ENV = "SCONES_CACHE_DIR"
MEMBER_DIR = "cifar-100-python"
MEMBERS = ("train", "test", "meta")
_DOWNLOAD_TIMEOUT_S = 30
_CHUNK = 1 << 20
_OTHERS_CHUNK = 4096


@dataclass(frozen=True)
class Split:
    """One split of the kept classes: images uint8 (N,32,32,3), labels int64 (N), filenames."""

    images: np.ndarray
    labels: np.ndarray
    filenames: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class CifarSubset:
    """The requested classes from one archive; labels index into `classes`.

    `others` are the train-split images of every class the archive holds beyond `classes`
    (uint8 (M,32,32,3), in archive order; (0,32,32,3) for the dev archive), `others_fine_labels`
    their fine labels (int64 (M)), named by `fine_label_names` (the meta's 100 names). They are
    never labelled examples: staging samples them as outliers (training.stage).
    """

    classes: list[str]
    fine_labels: list[int]
    train: Split
    test: Split
    archive_md5: str
    others: np.ndarray
    others_fine_labels: np.ndarray
    fine_label_names: list[str]


def default_cache_dir() -> Path:
    """SCONES_CACHE_DIR, else $XDG_CACHE_HOME/scones-unlimited, else ~/.cache/scones-unlimited.

    Kept outside the repo's .scones/ so `local down` does not throw away a 160 MB download.
    """
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scones-unlimited"


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str) -> str:
    """Return the file's MD5; raise ChecksumMismatch if it is not `expected`."""
    actual = file_md5(path)
    if actual != expected.lower():
        raise ChecksumMismatch(f"{path}: MD5 is {actual}, expected {expected.lower()}")
    return actual


def resolve_archive(
    archive: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    url: str = OFFICIAL_URL,
    md5: str = OFFICIAL_MD5,
    expected_md5: str | None = None,
) -> Path:
    """Find the archive: `archive` argument > SCONES_CIFAR_ARCHIVE > verified download in cache.

    A download goes to a temporary file in the cache dir and is renamed into place only after
    its MD5 matches `md5`, so an interrupted or corrupt download never looks like a good one.
    """
    chosen = archive if archive not in (None, "") else os.environ.get(ARCHIVE_ENV) or None
    if chosen is not None:
        path = Path(chosen)
        if not path.is_file():
            raise DatasetError(f"archive {path} does not exist or is not a file")
        if expected_md5:
            verify_md5(path, expected_md5)
        return path

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache / ARCHIVE_NAME
    if cached.is_file():
        # Re-check the cache too: a file damaged on disk must not be trusted silently.
        verify_md5(cached, md5)
        return cached
    cache.mkdir(parents=True, exist_ok=True)
    _download(url, cached, md5)
    return cached


def _download(url: str, dest: Path, md5: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response,
            ):
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DownloadUnavailable(
                f"cannot download {url} ({exc}); give a local archive with --archive or "
                f"{ARCHIVE_ENV}=path/to/cifar-100-python.tar.gz"
            ) from exc
        actual = digest.hexdigest()
        if actual != md5.lower():
            raise ChecksumMismatch(f"download from {url}: MD5 is {actual}, expected {md5.lower()}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admit only what the CIFAR pickles need: numpy's array reconstruction, nothing callable."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1").
            return _latin1_encode
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR pickle")
        return super().find_class(module, name)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(
            f"unexpected _codecs.encode({type(text).__name__}, {encoding!r})"
        )
    return text.encode("latin1")


def _read_members(path: Path) -> dict[str, dict[bytes, Any]]:
    """Stream the tar once and unpickle the three known members; no other member is read."""
    wanted = {f"{MEMBER_DIR}/{m}": m for m in MEMBERS}
    found: dict[str, dict[bytes, Any]] = {}
    try:
        # Stream mode ("r|gz"): one sequential pass, so the 160 MB archive is decompressed once.
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                key = wanted.get(member.name.removeprefix("./"))
                if key is None or not member.isfile():
                    continue
                handle = tar.extractfile(member)
                if handle is None:  # pragma: no cover - isfile() members always have data
                    continue
                payload = handle.read()
                if len(payload) != member.size:
                    raise CorruptArchive(f"{path}: member {member.name} is truncated")
                found[key] = _unpickle(payload, path, member.name)
    except DatasetError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise CorruptArchive(
            f"{path} is not a readable gzip tar archive (truncated or corrupt): {exc}"
        ) from exc
    missing = [f"{MEMBER_DIR}/{m}" for m in MEMBERS if m not in found]
    if missing:
        raise MissingMember(f"{path} lacks member(s) {', '.join(missing)}")
    return found


def _unpickle(payload: bytes, path: Path, name: str) -> dict[bytes, Any]:
    try:
        data = _NumpyOnlyUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means the member is unusable
        raise CorruptArchive(f"{path}: member {name} is not a valid CIFAR pickle: {exc}") from exc
    if not isinstance(data, dict):
        raise CorruptArchive(f"{path}: member {name} does not hold a dict")
    return data


def _validate_classes(classes: Sequence[str], names: list[str]) -> list[int]:
    if isinstance(classes, str):
        raise InvalidClasses("classes must be a list of names, not a single string")
    if len(classes) < 2:
        raise InvalidClasses(f"need at least two classes, got {list(classes)}")
    if len(set(classes)) != len(classes):
        raise InvalidClasses(f"class names repeat: {list(classes)}")
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise UnknownClass(
            f"not CIFAR-100 fine label names: {', '.join(map(repr, unknown))} "
            f"(e.g. {', '.join(names[:5])}, ...)"
        )
    return [names.index(c) for c in classes]


def _select(raw: dict[bytes, Any], fine_ids: list[int], split: str, path: Path) -> Split:
    try:
        data = np.asarray(raw[b"data"])
        fine = np.asarray(raw[b"fine_labels"], dtype=np.int64)
        filenames = [f.decode("utf-8") for f in raw[b"filenames"]]
    except (KeyError, AttributeError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise CorruptArchive(f"{path}: {split} member lacks data/fine_labels/filenames") from exc
    n = fine.shape[0]
    if data.dtype != np.uint8 or data.shape != (n, 3072) or len(filenames) != n:
        raise CorruptArchive(
            f"{path}: {split} member has data {data.dtype}{data.shape}, {n} labels, "
            f"{len(filenames)} filenames (expected uint8 (N, 3072) and N of each)"
        )
    keep = np.flatnonzero(np.isin(fine, fine_ids))
    labels = np.array([fine_ids.index(int(f)) for f in fine[keep]], dtype=np.int64)
    for idx in range(len(fine_ids)):
        if not np.any(labels == idx):
            raise EmptyClass(
                f"{path}: the {split} split has no image of fine label {fine_ids[idx]}"
            )
    # CIFAR rows are 1024 R, 1024 G, 1024 B values, each a row-major 32x32 plane.
    images = data[keep].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return Split(
        images=np.ascontiguousarray(images),
        labels=labels,
        filenames=_safe_filenames([filenames[i] for i in keep], path),
    )


def _others(raw: dict[bytes, Any], fine_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The images (NHWC) and fine labels of every class not in `fine_ids`; `raw` is validated."""
    data = np.asarray(raw[b"data"])
    fine = np.asarray(raw[b"fine_labels"], dtype=np.int64)
    keep = np.flatnonzero(~np.isin(fine, fine_ids))
    # Filled in chunks, so the official archive's 49,000 (147 MB) are held once, not twice.
    images = np.empty((len(keep), 32, 32, 3), dtype=np.uint8)
    for start in range(0, len(keep), _OTHERS_CHUNK):
        rows = keep[start : start + _OTHERS_CHUNK]
        images[start : start + len(rows)] = data[rows].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, fine[keep]


def _safe_filenames(names: list[str], path: Path) -> list[str]:
    """Filenames become paths when staged: keep only plain basenames, disambiguate repeats."""
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        if not name or "/" in name or "\\" in name or name in {".", ".."} or "\x00" in name:
            raise CorruptArchive(f"{path}: unsafe image filename {name!r}")
        candidate, n = name, 1
        while candidate in seen:
            stem, dot, ext = name.rpartition(".")
            candidate = f"{stem}__{n}.{ext}" if dot else f"{name}__{n}"
            n += 1
        seen.add(candidate)
        out.append(candidate)
    return out


def load_cifar(archive_path: str | os.PathLike[str], classes: Sequence[str]) -> CifarSubset:
    """Read the archive and keep `classes` (CIFAR-100 fine label names, in the given order),
    plus the train-split images of the archive's other classes (`CifarSubset.others`)."""
    path = Path(archive_path)
    if not path.is_file():
        raise DatasetError(f"archive {path} does not exist or is not a file")
    members = _read_members(path)
    try:
        names = [n.decode("utf-8") for n in members["meta"][b"fine_label_names"]]
    except (KeyError, AttributeError, UnicodeDecodeError, TypeError) as exc:
        raise CorruptArchive(f"{path}: meta member lacks fine_label_names") from exc
    fine_ids = _validate_classes(classes, names)
    train = _select(members["train"], fine_ids, "train", path)  # validates the train member
    others, others_fine_labels = _others(members["train"], fine_ids)
    return CifarSubset(
        classes=list(classes),
        fine_labels=fine_ids,
        train=train,
        test=_select(members["test"], fine_ids, "test", path),
        archive_md5=file_md5(path),
        others=others,
        others_fine_labels=others_fine_labels,
        fine_label_names=names,
    )


def parse_classes(text: str | Sequence[str] | None) -> list[str]:
    """Accept a JSON list ('["bicycle","motorcycle"]') or 'bicycle,motorcycle' (CLI, SageMaker)."""
    if text is None:
        return list(DEFAULT_CLASSES)
    if not isinstance(text, str):
        return [str(t) for t in text]
    stripped = text.strip()
    if stripped.startswith("["):
        import json

        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InvalidClasses(f"classes {text!r} is not a JSON list: {exc}") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidClasses(f"classes {text!r} must be a list of strings")
        return value
    return [part.strip() for part in stripped.split(",") if part.strip()]
