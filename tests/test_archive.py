"""training/archive.py: the one deterministic writer of every zip and tar.gz (Lambda zips and
layer, the staged .npz, the training source bundle, model.tar.gz)."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from training.archive import tree_entries, write_tar_gz, write_zip, zip_bytes

ENTRIES = [("b/two.py", b"2", 0o644), ("a.py", b"1" * 1000, 0o100755)]


def test_zip_bytes_depend_only_on_the_entries() -> None:
    first = zip_bytes(ENTRIES)
    time.sleep(1.1)  # a writer that stamped the clock would differ now
    assert zip_bytes(list(reversed(ENTRIES))) == first
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == ["a.py", "b/two.py"]
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert [i.external_attr >> 16 for i in infos] == [0o100755, 0o644]
        assert zf.read("a.py") == b"1" * 1000


def test_tar_gz_has_no_clock_owner_or_gzip_name(tmp_path: Path) -> None:
    entries = [("d", None, 0o755), ("d/f.txt", b"hello", 0o644)]
    a = write_tar_gz(tmp_path / "a.tar.gz", entries).read_bytes()
    time.sleep(1.1)
    assert write_tar_gz(tmp_path / "b.tar.gz", entries).read_bytes() == a
    assert a[4:8] == b"\0\0\0\0"  # gzip MTIME field (RFC 1952)
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = tar.getmembers()
        assert [(m.name, m.isdir(), m.mode, m.mtime, m.uid, m.uname) for m in members] == [
            ("d", True, 0o755, 0, 0, ""),
            ("d/f.txt", False, 0o644, 0, 0, ""),
        ]
    assert gzip.decompress(a)  # a valid gzip stream


def test_tree_entries_skip_pycache_and_the_archive_itself(tmp_path: Path) -> None:
    (tmp_path / "code" / "__pycache__").mkdir(parents=True)
    (tmp_path / "code" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    (tmp_path / "code" / "inference.py").write_text("x = 1\n")
    (tmp_path / "model.tar.gz").write_bytes(b"old")
    names = [e[0] for e in tree_entries(tmp_path, skip=[tmp_path / "model.tar.gz"])]
    assert names == ["code", "code/inference.py"]


def test_a_failed_write_leaves_neither_target_nor_temporary(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no data"):
        write_zip(tmp_path / "out.zip", [("dir", None, 0o755)])
    assert list(tmp_path.iterdir()) == []
