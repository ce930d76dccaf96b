"""training.cifar: the one loader, on the dev archive and on small generated archives."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from training import cifar
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

NAMES = [f"class{i}" for i in range(100)]
NAMES[8], NAMES[48], NAMES[3] = "bicycle", "motorcycle", "bear"


def _batch(labels: list[int], seed: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {
        b"data": rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8),
        b"fine_labels": labels,
        b"coarse_labels": [0] * len(labels),
        b"filenames": [f"img_{seed}_{i:04d}.png".encode() for i in range(len(labels))],
        b"batch_label": b"generated",
    }


def make_archive(
    path: Path,
    *,
    members: tuple[str, ...] = ("train", "test", "meta"),
    train: dict | None = None,
    test: dict | None = None,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """A tiny archive in the official layout (protocol 2 pickles, like the originals)."""
    payloads = {
        "train": pickle.dumps(train or _batch([8, 48, 3, 8, 48, 48], 1), protocol=2),
        "test": pickle.dumps(test or _batch([48, 8, 3, 8], 2), protocol=2),
        "meta": pickle.dumps(
            {b"fine_label_names": [n.encode() for n in NAMES], b"coarse_label_names": []},
            protocol=2,
        ),
    }
    with tarfile.open(path, "w:gz") as tar:
        for name in members:
            data = payloads[name]
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_dev_archive_loads_both_classes(dev_archive: Path) -> None:
    subset = cifar.load_cifar(dev_archive, ["bicycle", "motorcycle"])
    assert subset.fine_labels == [8, 48]
    assert len(subset.train) == 800 and len(subset.test) == 200
    for split in (subset.train, subset.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (32, 32, 3)
        assert split.labels.dtype == np.int64
        assert np.bincount(split.labels).tolist() == [len(split) // 2] * 2
        assert len(set(split.filenames)) == len(split)
    assert subset.archive_md5 == hashlib.md5(dev_archive.read_bytes()).hexdigest()


def test_class_order_follows_request(dev_archive: Path) -> None:
    a = cifar.load_cifar(dev_archive, ["bicycle", "motorcycle"])
    b = cifar.load_cifar(dev_archive, ["motorcycle", "bicycle"])
    assert np.array_equal(a.test.labels, 1 - b.test.labels)
    assert np.array_equal(a.test.images, b.test.images)


def test_pixel_layout_is_rgb_planes(tmp_path: Path) -> None:
    batch = _batch([8, 48], 5)
    batch[b"data"][0] = np.concatenate(
        [np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]
    ).astype(np.uint8)
    archive = make_archive(tmp_path / "a.tar.gz", train=batch)
    subset = cifar.load_cifar(archive, ["bicycle", "motorcycle"])
    assert subset.train.images[0, 5, 7].tolist() == [10, 20, 30]


def test_any_fine_label_names_work(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a.tar.gz")
    subset = cifar.load_cifar(archive, ["bear", "motorcycle", "bicycle"])
    assert subset.fine_labels == [3, 48, 8]
    assert subset.train.labels.tolist() == [2, 1, 0, 2, 1, 1]


def test_other_classes_train_images_come_back_as_others(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cifar, "_OTHERS_CHUNK", 2)  # the copy runs in chunks: cross a boundary
    train = _batch([8, 48, 3, 8, 7, 48, 3], 1)
    archive = make_archive(tmp_path / "a.tar.gz", train=train)
    subset = cifar.load_cifar(archive, ["bicycle", "motorcycle"])
    # Train rows 2, 4, 6 (fine labels 3, 7, 3), in archive order, as RGB images; the test
    # split's image of label 3 is not among them.
    assert subset.others_fine_labels.tolist() == [3, 7, 3]
    assert subset.others_fine_labels.dtype == np.int64
    assert subset.others.dtype == np.uint8 and subset.others.flags["C_CONTIGUOUS"]
    rows = train[b"data"][[2, 4, 6]].reshape(3, 3, 32, 32).transpose(0, 2, 3, 1)
    assert np.array_equal(subset.others, rows)
    assert subset.fine_label_names[3] == "bear"
    assert len(subset.train) == 4


def test_dev_archive_has_no_others(dev_archive: Path) -> None:
    subset = cifar.load_cifar(dev_archive, ["bicycle", "motorcycle"])
    assert subset.others.shape == (0, 32, 32, 3) and subset.others.dtype == np.uint8
    assert subset.others_fine_labels.shape == (0,)


def test_unknown_class_is_named(dev_archive: Path) -> None:
    with pytest.raises(UnknownClass, match="'unicycle'"):
        cifar.load_cifar(dev_archive, ["bicycle", "unicycle"])


@pytest.mark.parametrize("classes", [["bicycle"], ["bicycle", "bicycle"], "bicycle"])
def test_bad_class_lists(dev_archive: Path, classes) -> None:
    with pytest.raises(InvalidClasses):
        cifar.load_cifar(dev_archive, classes)


def test_valid_name_without_images(dev_archive: Path) -> None:
    with pytest.raises(EmptyClass):
        cifar.load_cifar(dev_archive, ["bicycle", "apple"])


def test_not_gzip(tmp_path: Path) -> None:
    bad = tmp_path / "x.tar.gz"
    bad.write_bytes(b"this is not a gzip file at all" * 10)
    with pytest.raises(CorruptArchive):
        cifar.load_cifar(bad, ["bicycle", "motorcycle"])


def test_truncated(tmp_path: Path, dev_archive: Path) -> None:
    bad = tmp_path / "cut.tar.gz"
    bad.write_bytes(dev_archive.read_bytes()[:1_500_000])
    with pytest.raises(CorruptArchive, match=r"truncated|corrupt"):
        cifar.load_cifar(bad, ["bicycle", "motorcycle"])


def test_corrupt_bytes_inside(tmp_path: Path, dev_archive: Path) -> None:
    data = bytearray(dev_archive.read_bytes())
    for i in range(100_000, 100_400):
        data[i] ^= 0xFF
    bad = tmp_path / "flip.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptArchive):
        cifar.load_cifar(bad, ["bicycle", "motorcycle"])


def test_missing_member(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a.tar.gz", members=("train", "meta"))
    with pytest.raises(MissingMember, match="cifar-100-python/test"):
        cifar.load_cifar(archive, ["bicycle", "motorcycle"])


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    payload = pickle.dumps({b"data": Evil()}, protocol=2)
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("train", "test", "meta"):
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(CorruptArchive, match="not allowed"):
        cifar.load_cifar(archive, ["bicycle", "motorcycle"])
    assert not (tmp_path / "pwned").exists()


def test_unsafe_filename_member_is_refused(tmp_path: Path) -> None:
    batch = _batch([8, 48], 3)
    batch[b"filenames"] = [b"../escape.png", b"ok.png"]
    archive = make_archive(tmp_path / "a.tar.gz", train=batch)
    with pytest.raises(CorruptArchive, match="unsafe"):
        cifar.load_cifar(archive, ["bicycle", "motorcycle"])


def test_other_members_are_ignored_not_extracted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    archive = make_archive(tmp_path / "a.tar.gz", extra={"../../outside.txt": b"x"})
    cifar.load_cifar(archive, ["bicycle", "motorcycle"])
    assert not (tmp_path.parent / "outside.txt").exists()


def test_wrong_data_shape(tmp_path: Path) -> None:
    batch = _batch([8, 48], 4)
    batch[b"data"] = batch[b"data"][:, :100]
    archive = make_archive(tmp_path / "a.tar.gz", train=batch)
    with pytest.raises(CorruptArchive, match="3072"):
        cifar.load_cifar(archive, ["bicycle", "motorcycle"])


def test_duplicate_filenames_are_disambiguated(tmp_path: Path) -> None:
    batch = _batch([8, 48, 8], 6)
    batch[b"filenames"] = [b"same.png", b"same.png", b"same.png"]
    subset = cifar.load_cifar(
        make_archive(tmp_path / "a.tar.gz", train=batch), ["bicycle", "motorcycle"]
    )
    assert subset.train.filenames == ["same.png", "same__1.png", "same__2.png"]


# --- resolve_archive ------------------------------------------------------------------------


def test_flag_beats_environment(tmp_path: Path, dev_archive: Path, monkeypatch) -> None:
    monkeypatch.setenv(cifar.ARCHIVE_ENV, str(tmp_path / "nope.tar.gz"))
    assert cifar.resolve_archive(str(dev_archive), tmp_path) == dev_archive


def test_environment_is_used(tmp_path: Path, dev_archive: Path, monkeypatch) -> None:
    monkeypatch.setenv(cifar.ARCHIVE_ENV, str(dev_archive))
    assert cifar.resolve_archive(None, tmp_path / "cache") == dev_archive
    assert not (tmp_path / "cache").exists()  # nothing downloaded


def test_given_archive_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        cifar.resolve_archive(str(tmp_path / "missing.tar.gz"), tmp_path)


def test_given_archive_with_expected_md5(tmp_path: Path, dev_archive: Path) -> None:
    with pytest.raises(ChecksumMismatch):
        cifar.resolve_archive(str(dev_archive), tmp_path, expected_md5="0" * 32)


def test_download_verifies_md5_and_caches(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(cifar.ARCHIVE_ENV, raising=False)
    source = make_archive(tmp_path / "served.tar.gz")
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    got = cifar.resolve_archive(None, cache, url=source.as_uri(), md5=md5)
    assert got == cache / cifar.ARCHIVE_NAME and got.read_bytes() == source.read_bytes()
    source.unlink()  # second call must use the cache, not the network
    assert cifar.resolve_archive(None, cache, url=source.as_uri(), md5=md5) == got


def test_download_checksum_mismatch_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(cifar.ARCHIVE_ENV, raising=False)
    source = make_archive(tmp_path / "served.tar.gz")
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatch, match=cifar.OFFICIAL_MD5):
        cifar.resolve_archive(None, cache, url=source.as_uri())
    assert list(cache.iterdir()) == []


def test_corrupted_cache_is_detected(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(cifar.ARCHIVE_ENV, raising=False)
    (tmp_path / cifar.ARCHIVE_NAME).write_bytes(b"damaged")
    with pytest.raises(ChecksumMismatch):
        cifar.resolve_archive(None, tmp_path)


def test_unreachable_download(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(cifar.ARCHIVE_ENV, raising=False)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadUnavailable, match=cifar.ARCHIVE_ENV):
        cifar.resolve_archive(None, cache, url="http://127.0.0.1:9/cifar-100-python.tar.gz")
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ["bicycle", "motorcycle"]),
        ("bicycle,motorcycle", ["bicycle", "motorcycle"]),
        (" apple , pear ", ["apple", "pear"]),
        ('["motorcycle", "bicycle"]', ["motorcycle", "bicycle"]),
    ],
)
def test_parse_classes(text, expected) -> None:
    assert cifar.parse_classes(text) == expected


def test_parse_classes_bad_json() -> None:
    with pytest.raises(InvalidClasses):
        cifar.parse_classes('["a", 1]')
