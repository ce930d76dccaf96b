"""Deterministic archives: the one writer of every zip and tar.gz the project builds (the
Lambda zips and layer, the staged .npz, the SageMaker source bundle, model.tar.gz).

Bytes depend only on the entries: names sorted, fixed timestamps (zip: 1980-01-01, the
format's epoch; tar: 0), no owners, no gzip timestamp or file name, explicit modes. So an
unchanged build has an unchanged hash, and Pulumi re-uploads or redeploys only real changes.
Files are written to a temporary name beside the target and renamed into place.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# An entry is (name, data, mode); data None is a directory (tar only). ``mode`` goes into the
# zip's external attributes as given (callers pass 0o644 or 0o100644 as their format expects).
Entry = tuple[str, bytes | None, int]


def write_zip_to(
    stream: BinaryIO, entries: Iterable[Entry], *, compresslevel: int | None = 9
) -> None:
    """Write a deflated zip of ``entries`` (sorted by name) to an open binary stream."""
    with zipfile.ZipFile(
        stream, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
    ) as zf:
        for name, data, mode in sorted(entries, key=lambda e: e[0]):
            if data is None:
                raise ValueError(f"zip entry {name!r} has no data (directories are implicit)")
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = mode << 16
            zf.writestr(info, data)


def zip_bytes(entries: Iterable[Entry], *, compresslevel: int | None = 9) -> bytes:
    buf = io.BytesIO()
    write_zip_to(buf, entries, compresslevel=compresslevel)
    return buf.getvalue()


def write_zip(
    out_path: str | os.PathLike[str], entries: Iterable[Entry], *, compresslevel: int | None = 9
) -> Path:
    """Write the zip to ``out_path`` atomically; returns the path."""
    return _atomic(Path(out_path), lambda f: write_zip_to(f, entries, compresslevel=compresslevel))


def write_tar_gz(out_path: str | os.PathLike[str], entries: Iterable[Entry]) -> Path:
    """A gzipped PAX tar of ``entries`` in the order given (callers sort), atomically."""

    def write(raw: BinaryIO) -> None:
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name, data, mode in entries:
                info = tarfile.TarInfo(name)
                info.mode = mode
                info.mtime = 0
                if data is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))

    return _atomic(Path(out_path), write)


def tree_entries(root: Path, skip: Iterable[Path] = ()) -> list[Entry]:
    """Every directory (0o755) and file (0o644) under ``root``, sorted, without __pycache__."""
    skipped = {Path(p).resolve() for p in skip}
    entries: list[Entry] = []
    for path in sorted(root.rglob("*")):
        if path.resolve() in skipped or "__pycache__" in path.parts:
            continue
        name = path.relative_to(root).as_posix()
        entries.append((name, None, 0o755) if path.is_dir() else (name, path.read_bytes(), 0o644))
    return entries


def _atomic(out: Path, write: Callable[[BinaryIO], None]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
