"""training.stage: layout, deterministic bytes, atomicity on failure, the CLI."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.cifar import load_cifar
from training.errors import CorruptArchive, StagedDataError, UnknownClass
from training.stage import main, read_split, stage_dataset

CLASSES = ["bicycle", "motorcycle"]


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def staged(dev_archive: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stage") / "data"
    stage_dataset(dev_archive, out, CLASSES)
    return out


def test_layout_and_manifest(staged: Path, dev_archive: Path) -> None:
    manifest = json.loads((staged / "manifest.json").read_text())
    assert manifest["classes"] == CLASSES
    assert manifest["fine_labels"] == [8, 48]
    assert manifest["counts"] == {
        "train": {"bicycle": 400, "motorcycle": 400},
        "test": {"bicycle": 100, "motorcycle": 100},
    }
    assert manifest["archive"]["md5"] == hashlib.md5(dev_archive.read_bytes()).hexdigest()
    tree = _tree(staged)
    assert {k: v for k, v in tree.items() if k != "manifest.json"} == manifest["files"]
    assert len(list((staged / "train").glob("*.png"))) == 800
    assert len(list((staged / "test").glob("*.png"))) == 200


def test_lst_png_and_npz_agree_with_archive(staged: Path, dev_archive: Path) -> None:
    subset = load_cifar(dev_archive, CLASSES)
    lines = (staged / "test.lst").read_text().splitlines()
    assert len(lines) == 200
    for i in (0, 57, 199):
        index, label, rel = lines[i].split("\t")
        assert int(index) == i and int(label) == subset.test.labels[i]
        assert rel == subset.test.filenames[i]
        png = np.asarray(Image.open(io.BytesIO((staged / "test" / rel).read_bytes())))
        assert np.array_equal(png, subset.test.images[i])
    split, classes = read_split(staged / "test")
    assert classes == CLASSES
    assert np.array_equal(split.images, subset.test.images)
    assert np.array_equal(split.labels, subset.test.labels)
    assert split.filenames == subset.test.filenames


def test_same_input_same_bytes(staged: Path, dev_archive: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    stage_dataset(dev_archive, again, CLASSES)
    assert _tree(again) == _tree(staged)


def test_restage_replaces_existing(dev_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    stage_dataset(dev_archive, out, CLASSES)
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temp dirs left behind


def test_failure_leaves_no_output(dev_archive: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cut.tar.gz"
    bad.write_bytes(dev_archive.read_bytes()[:2_000_000])
    out = tmp_path / "out" / "data"
    with pytest.raises(CorruptArchive):
        stage_dataset(bad, out, CLASSES)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_failure_midway_keeps_previous_staging(
    dev_archive: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "data"
    stage_dataset(dev_archive, out, CLASSES)
    before = _tree(out)
    calls = {"n": 0}
    import training.stage as stage_mod

    real = stage_mod.png_bytes

    def failing(image):
        calls["n"] += 1
        if calls["n"] == 500:
            raise OSError("disk full")
        return real(image)

    monkeypatch.setattr(stage_mod, "png_bytes", failing)
    with pytest.raises(OSError, match="disk full"):
        stage_dataset(dev_archive, out, CLASSES)
    assert _tree(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_unknown_class_writes_nothing(dev_archive: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownClass):
        stage_dataset(dev_archive, tmp_path / "data", ["bicycle", "hovercraft"])
    assert list(tmp_path.iterdir()) == []


def test_read_split_missing(tmp_path: Path) -> None:
    with pytest.raises(StagedDataError, match=r"training\.stage"):
        read_split(tmp_path)


def test_cli(dev_archive: Path, tmp_path: Path, capsys) -> None:
    assert main(["--archive", str(dev_archive), "--out", str(tmp_path / "d")]) == 0
    assert "train bicycle=400/motorcycle=400" in capsys.readouterr().out
    code = main(["--archive", str(dev_archive), "--out", str(tmp_path / "e"), "--classes", "x,y"])
    assert code == 2
    assert "UnknownClass" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
