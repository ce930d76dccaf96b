"""Training on reviewers' labelled images: new images are added, repeats of the training or test
split are dropped by content, the test file is never written, and the counts are reported."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.errors import UnknownClass
from training.labelled import merge_labelled
from training.stage import read_split, stage_dataset
from training.train import main

CLASSES = ["bicycle", "motorcycle"]


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def staged(dev_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("labelled-data") / "data"
    stage_dataset(dev_archive, out, CLASSES)
    return out


@pytest.fixture()
def labelled(staged: Path, tmp_path: Path) -> Path:
    """What `review answer` leaves in labelled/: one new photo answered twice, a copy of a
    training image, a copy of a test image (local mode reviews test images), a broken file."""
    train, _ = read_split(staged / "train")
    test, _ = read_split(staged / "test")
    root = tmp_path / "labelled"
    (root / "bicycle").mkdir(parents=True)
    (root / "motorcycle").mkdir()
    new = np.ascontiguousarray(train.images[0][:, ::-1])  # mirrored: pixels no split holds
    (root / "bicycle" / "case-1-aaaa.png").write_bytes(_png(new))
    (root / "bicycle" / "case-2-aaaa.png").write_bytes(_png(new))
    (root / "motorcycle" / "case-3-bbbb.png").write_bytes(_png(train.images[1]))
    (root / "motorcycle" / "case-4-cccc.png").write_bytes(_png(test.images[0]))
    (root / "motorcycle" / "case-5-dddd.png").write_bytes(b"not an image")
    return root


def test_merge_adds_new_images_and_drops_repeats_by_content(staged: Path, labelled: Path) -> None:
    train, _ = read_split(staged / "train")
    test, _ = read_split(staged / "test")
    grown, counts = merge_labelled(train, test, CLASSES, labelled)
    assert counts == {
        "staged": len(train),
        "labelled_used": {"bicycle": 1, "motorcycle": 0},
        "labelled_dropped": {
            "in_test_split": 1,
            "in_training_split": 1,
            "repeated": 1,
            "undecodable": 1,
        },
    }
    assert len(grown) == len(train) + 1
    assert grown.labels[-1] == CLASSES.index("bicycle")
    assert grown.filenames[-1] == "labelled/bicycle/case-1-aaaa.png"
    assert np.array_equal(grown.images[-1], train.images[0][:, ::-1])


def test_a_folder_that_is_not_a_class_is_refused(staged: Path, labelled: Path) -> None:
    train, _ = read_split(staged / "train")
    test, _ = read_split(staged / "test")
    (labelled / "tricycle").mkdir()
    with pytest.raises(UnknownClass, match="tricycle"):
        merge_labelled(train, test, CLASSES, labelled)


@pytest.mark.slow
def test_training_reports_what_it_used_and_never_touches_the_test_file(
    staged: Path, labelled: Path, tmp_path: Path
) -> None:
    test_file = staged / "test" / "dataset.npz"
    before = hashlib.sha256(test_file.read_bytes()).hexdigest()
    argv = ["--train", str(staged / "train"), "--test", str(staged / "test")]
    code = main(
        [*argv, "--labelled", str(labelled), "--model-dir", str(tmp_path / "model"),
         "--epochs", "1", "--threads", "2"]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["data"]["labelled_used"] == {"bicycle": 1, "motorcycle": 0}
    assert metrics["data"]["labelled_dropped"]["in_test_split"] == 1
    assert hashlib.sha256(test_file.read_bytes()).hexdigest() == before
