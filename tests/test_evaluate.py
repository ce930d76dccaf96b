"""training.evaluate on a hand-built artifact, and the metric functions it reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.errors import DatasetError, StagedDataError
from training.evaluate import ArtifactError, evaluate, main
from training.metrics import (
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    softmax,
    threshold_sweep,
)
from training.model import DEFAULT_ARCH, build_model
from training.stage import stage_dataset
from training.train import pack_model

CLASSES = ["bicycle", "motorcycle"]


@pytest.fixture(scope="module")
def staged(dev_archive: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval-data") / "data"
    stage_dataset(dev_archive, out, CLASSES)
    return out


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """An untrained but complete artifact: evaluation must not care how weights were made."""
    model_dir = tmp_path_factory.mktemp("artifact")
    torch.manual_seed(0)
    arch = {**DEFAULT_ARCH, "num_classes": 2}
    torch.save(build_model(arch).state_dict(), model_dir / "model.pth")
    meta = {
        "arch": arch,
        "classes": CLASSES,
        "input_size": [32, 32],
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "temperature": 1.5,
        "framework": "pytorch",
        "torch_version": "2.13.0",
    }
    (model_dir / "model_meta.json").write_text(json.dumps(meta))
    return model_dir


def test_report_from_directory(artifact: Path, staged: Path, tmp_path: Path) -> None:
    metrics = evaluate(artifact, staged / "test", tmp_path / "report")
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"]
    assert saved["count"] == 200
    matrix = np.array(saved["confusion_matrix"]["rows_true_cols_pred"])
    assert matrix.sum() == 200 and matrix.sum(axis=1).tolist() == [100, 100]
    assert np.trace(matrix) / 200 == pytest.approx(saved["accuracy"])
    assert set(saved["per_class"]) == set(CLASSES)
    thresholds = [row["threshold"] for row in saved["threshold_sweep"]]
    assert thresholds[0] == 0.5 and thresholds[-1] == 0.99 and len(thresholds) == 50
    coverages = [row["coverage"] for row in saved["threshold_sweep"]]
    assert coverages == sorted(coverages, reverse=True)
    assert saved["temperature"] == 1.5
    for name in ("reliability.png", "confidence_by_class.png", "threshold_sweep.png"):
        with Image.open(tmp_path / "report" / name) as img:
            assert img.format == "PNG" and img.size[0] > 100


def test_report_from_tarball_matches_directory(artifact: Path, staged: Path, tmp_path: Path):
    tar = pack_model(artifact, tmp_path / "model.tar.gz")
    a = evaluate(artifact, staged / "test", tmp_path / "a")
    b = evaluate(tar, staged / "test", tmp_path / "b")
    assert a["accuracy"] == b["accuracy"] and a["ece"] == b["ece"]


def test_cli_and_errors(artifact: Path, staged: Path, tmp_path: Path, capsys) -> None:
    assert main(["--model", str(artifact), "--test", str(staged / "test"),
                 "--report", str(tmp_path / "r")]) == 0  # fmt: skip
    assert "accuracy" in capsys.readouterr().out
    assert main(["--model", str(tmp_path / "nope"), "--test", str(staged / "test"),
                 "--report", str(tmp_path / "r2")]) == 2  # fmt: skip
    assert "ModelArtifactError" in capsys.readouterr().err
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(ArtifactError):
        evaluate(bad, staged / "test", tmp_path / "r3")
    with pytest.raises(DatasetError):
        evaluate(artifact, tmp_path, tmp_path / "r4")


def test_class_mismatch(artifact: Path, dev_archive: Path, tmp_path: Path) -> None:
    other = tmp_path / "swapped"
    stage_dataset(dev_archive, other, ["motorcycle", "bicycle"])
    with pytest.raises(StagedDataError, match="classes"):
        evaluate(artifact, other / "test", tmp_path / "r")


# --- metric functions ------------------------------------------------------------------------


def test_metrics_on_known_predictions() -> None:
    probs = np.array([[0.99, 0.01], [0.6, 0.4], [0.3, 0.7], [0.95, 0.05]])
    labels = np.array([0, 1, 1, 1])
    m = classification_metrics(probs, labels, CLASSES, threshold=0.93)
    assert m["accuracy"] == 0.5
    assert m["confusion_matrix"]["rows_true_cols_pred"] == [[1, 0], [2, 1]]
    assert m["per_class"]["bicycle"] == {"precision": 1 / 3, "recall": 1.0, "support": 1}
    assert m["per_class"]["motorcycle"]["precision"] == 1.0
    assert m["coverage_at_threshold"] == 0.5
    assert m["accepted_accuracy_at_threshold"] == 0.5
    sweep = threshold_sweep(probs, labels, [0.5, 0.99, 0.999])
    assert [r["accepted"] for r in sweep] == [4, 1, 0]
    assert sweep[2]["accepted_accuracy"] is None


def test_ece_zero_when_calibrated_and_large_when_not() -> None:
    probs = np.array([[0.75, 0.25]] * 4)
    ece, _ = expected_calibration_error(probs, np.array([0, 0, 0, 1]))
    assert ece == pytest.approx(0.0)
    ece, _ = expected_calibration_error(probs, np.array([1, 1, 1, 1]))
    assert ece == pytest.approx(0.75)


def test_fit_temperature_recovers_the_true_one() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(4000, 2))
    true_t = 2.5
    probs = softmax(logits, true_t)
    labels = (rng.random(4000) < probs[:, 1]).astype(np.int64)
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.1)
