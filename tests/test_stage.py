"""training.stage: layout, deterministic bytes, atomicity on failure, the CLI."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from task_archives import official_names, write_task_archive

from training.cifar import load_cifar
from training.errors import CorruptArchive, StagedDataError, UnknownClass
from training.stage import main, read_outliers, read_split, stage_dataset, stratified_sample

CLASSES = ["bicycle", "motorcycle"]
# Official names and fine labels: apple 0, bee 6, cloud 23 (bicycle 8, motorcycle 48).
OTHER_TRAIN = {"apple": 30, "bee": 12, "cloud": 30}
TRAIN_KEYS = {"images", "labels", "filenames", "classes"}


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


@pytest.fixture(scope="module")
def official_format(dev_archive: Path, tmp_path_factory) -> Path:
    """An archive in the official layout with the task's classes and three others (uneven)."""
    return write_task_archive(
        tmp_path_factory.mktemp("official") / "cifar-100-python.tar.gz",
        official_names(dev_archive),
        [*CLASSES, *OTHER_TRAIN],
        train_counts=OTHER_TRAIN,
    )


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


def test_dev_archive_stages_no_outliers(staged: Path) -> None:
    with np.load(staged / "train" / "dataset.npz", allow_pickle=False) as data:
        assert set(data.files) == TRAIN_KEYS
    manifest = json.loads((staged / "manifest.json").read_text())
    assert "outliers" not in manifest
    none = read_outliers(staged / "train")
    assert none.shape == (0, 32, 32, 3) and none.dtype == np.uint8


def test_other_classes_stage_a_capped_stratified_outlier_sample(
    official_format: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    # 61 of 72: bee gives its 12, apple and cloud 24 each, the one left over goes to apple.
    manifest = stage_dataset(official_format, out, CLASSES, max_outliers=61)
    assert manifest["outliers"] == {
        "count": 61,
        "max": 61,
        "available": 72,
        "split": "train",
        "seed": 0,
        "classes": {"apple": 25, "bee": 12, "cloud": 24},
    }
    assert json.loads((out / "manifest.json").read_text()) == manifest
    # Not labelled examples: the labelled part is exactly the task's classes.
    assert manifest["counts"]["train"] == {"bicycle": 40, "motorcycle": 40}
    assert len((out / "train.lst").read_text().splitlines()) == 80
    assert len(list((out / "train").glob("*.png"))) == 80
    with np.load(out / "test" / "dataset.npz", allow_pickle=False) as data:
        assert set(data.files) == TRAIN_KEYS
    outliers = read_outliers(out / "train")
    assert outliers.shape == (61, 32, 32, 3) and outliers.dtype == np.uint8
    # Each is a distinct train photo of another class, in archive order.
    subset = load_cifar(official_format, CLASSES)
    rows = {img.tobytes(): i for i, img in enumerate(subset.others)}
    picked = [rows[img.tobytes()] for img in outliers]
    assert picked == sorted(set(picked))
    names = [subset.fine_label_names[int(f)] for f in subset.others_fine_labels[picked]]
    assert Counter(names) == {"apple": 25, "bee": 12, "cloud": 24}
    split, _ = read_split(out / "train")
    assert len(split) == 80


def test_outlier_staging_is_deterministic_and_follows_the_cap(
    official_format: Path, tmp_path: Path
) -> None:
    stage_dataset(official_format, tmp_path / "a", CLASSES, max_outliers=40)
    stage_dataset(official_format, tmp_path / "b", CLASSES, max_outliers=40)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    stage_dataset(official_format, tmp_path / "c", CLASSES, max_outliers=41)
    assert read_outliers(tmp_path / "c" / "train").shape[0] == 41
    # The cap above what there is stages all of them; 0 stages none (and says so).
    everything = stage_dataset(official_format, tmp_path / "d", CLASSES, max_outliers=5000)
    assert everything["outliers"]["count"] == 72
    assert everything["outliers"]["classes"] == OTHER_TRAIN
    nothing = stage_dataset(official_format, tmp_path / "e", CLASSES, max_outliers=0)
    assert nothing["outliers"]["count"] == 0 and nothing["outliers"]["classes"] == {}
    with np.load(tmp_path / "e" / "train" / "dataset.npz", allow_pickle=False) as data:
        assert set(data.files) == TRAIN_KEYS


def test_stratified_sample_shares() -> None:
    labels = np.array([5] * 3 + [2] * 50 + [9] * 50 + [7] * 4)
    picked = stratified_sample(labels, 40, np.random.default_rng(0))
    assert len(picked) == len(set(picked.tolist())) == 40
    assert picked.tolist() == sorted(picked.tolist())
    counts = dict(Counter(labels[picked].tolist()))
    # 3 and 4 are all there is of labels 5 and 7; the 33 left split 17/16 (lowest label first).
    assert counts == {2: 17, 5: 3, 7: 4, 9: 16}
    again = stratified_sample(labels, 40, np.random.default_rng(0))
    assert np.array_equal(again, picked)
    assert len(stratified_sample(labels, 0, np.random.default_rng(0))) == 0
    assert len(stratified_sample(labels, 1000, np.random.default_rng(0))) == len(labels)


def test_cli_max_outliers(official_format: Path, tmp_path: Path, capsys) -> None:
    argv = ["--archive", str(official_format), "--out", str(tmp_path / "d")]
    assert main([*argv, "--max-outliers", "9"]) == 0
    assert "outliers 9 from 3 other classes" in capsys.readouterr().out
    assert read_outliers(tmp_path / "d" / "train").shape[0] == 9
    with pytest.raises(SystemExit):
        main([*argv, "--max-outliers", "-1"])


def test_read_outliers_refuses_a_malformed_array(tmp_path: Path) -> None:
    from training.stage import npz_bytes

    arrays = {"images": np.zeros((1, 32, 32, 3), np.uint8), "outlier_images": np.zeros((2, 8, 8))}
    (tmp_path / "dataset.npz").write_bytes(npz_bytes(arrays))
    with pytest.raises(StagedDataError, match="outlier_images"):
        read_outliers(tmp_path)
