"""training.train: a short run on the dev archive learns, writes a servable artifact, and the
quality gate, SageMaker environment, determinism and pack_model behave."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from task_archives import official_names, write_task_archive

from training.baseline import validate_baseline
from training.model import bfloat16_supported
from training.stage import read_outliers, read_split, stage_dataset
from training.train import (
    EXIT_QUALITY_GATE,
    OUTLIER_POOL_SIZE,
    main,
    pack_model,
    stratified_split,
)

CLASSES = ["bicycle", "motorcycle"]
# Few epochs keep the suite quick on a shared CPU; the full recipe is measured in benchmarks/.
SHORT = ["--epochs", "6", "--threads", "2", "--seed", "0"]


@pytest.fixture(scope="module")
def staged(dev_archive: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train-data") / "data"
    stage_dataset(dev_archive, out, CLASSES)
    return out


@pytest.fixture(scope="module")
def trained(staged: Path, tmp_path_factory) -> Path:
    model_dir = tmp_path_factory.mktemp("model")
    argv = ["--train", str(staged / "train"), "--test", str(staged / "test")]
    assert main([*argv, "--model-dir", str(model_dir), *SHORT]) == 0
    return model_dir


@pytest.mark.slow
def test_short_run_learns_clearly_above_chance(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    # Chance is 0.5 on the balanced 200-image test file; six epochs reach well above it.
    assert metrics["test"]["accuracy"] >= 0.68
    history = metrics["training"]["history"]
    assert len(history) == 6
    assert history[-1]["loss"] < history[0]["loss"]
    assert metrics["test"]["count"] == 200
    assert set(metrics["test"]["per_class"]) == set(CLASSES)
    assert 0.0 <= metrics["test"]["ece"] <= 1.0
    assert metrics["validation"]["count"] == 120  # 15 % of 800, stratified
    assert (
        metrics["validation"]["nll_after_temperature"]
        <= metrics["validation"]["nll_before_temperature"]
    )


@pytest.mark.slow
def test_artifact_contract(trained: Path) -> None:
    meta = json.loads((trained / "model_meta.json").read_text())
    assert meta["classes"] == CLASSES
    assert meta["input_size"] == [32, 32]
    assert len(meta["mean"]) == 3 and len(meta["std"]) == 3
    assert meta["temperature"] > 0
    assert meta["framework"] == "pytorch" and meta["torch_version"] == "2.13.0"
    assert meta["arch"]["num_classes"] == 2
    # The recipe's serving behaviour travels with the weights, resolved for this machine.
    assert meta["arch"]["tta_flip"] is True
    expected_precision = "bfloat16" if bfloat16_supported() else "float32"
    assert meta["arch"]["precision"] == expected_precision
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["training"]["hyperparameters"]["precision"] == expected_precision
    baseline = json.loads((trained / "baseline.json").read_text())
    validate_baseline(baseline)
    assert baseline["classes"] == CLASSES and baseline["count"] == 120
    state = torch.load(trained / "model.pth", weights_only=True)
    assert isinstance(state, dict) and state
    assert meta["serving_module"] == "model.ts" and (trained / "model.ts").is_file()
    assert (trained / "code" / "inference.py").is_file()
    for module in ("__init__", "model", "preprocess", "errors", "serving_module"):
        assert (trained / "code" / "training" / f"{module}.py").is_file()


@pytest.mark.slow
def test_code_dir_serves_on_its_own(trained: Path, staged: Path, tmp_path: Path) -> None:
    """As on SageMaker's inference image: only code/ on sys.path, `inference` a top-level module."""
    split, _ = read_split(staged / "test")
    np.save(tmp_path / "imgs.npy", split.images[:20])
    script = (
        "import sys, json, numpy as np, inference, training.inference as hooks;"
        f"m = inference.model_fn({str(trained)!r});"
        "assert inference.__file__.startswith(sys.path[0]);"
        "assert hooks.__file__.startswith(sys.path[0]);"
        f"p = hooks.predict_fn(np.load({str(tmp_path / 'imgs.npy')!r}), m);"
        "print(json.dumps(p.tolist()))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(trained / "code")
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    probs = np.array(json.loads(done.stdout))
    assert probs.shape == (20, 2)
    assert np.allclose(probs.sum(axis=1), 1.0)


@pytest.mark.slow
def test_metrics_describe_the_module_the_endpoint_serves(trained: Path, staged: Path) -> None:
    """The test accuracy in metrics.json (the quality gate's) is that of what model_fn serves:
    the frozen model.ts, whose logits differ slightly from the eager network's."""
    from training import inference

    model = inference.model_fn(str(trained))
    assert not isinstance(model.module, torch.nn.Module)  # the frozen module, not model.pth
    split, _ = read_split(staged / "test")
    probabilities = inference.predict_fn(split.images, model)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == split.labels))
    metrics = json.loads((trained / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)


@pytest.mark.slow
def test_quality_gate_exit_code_names_accuracy_and_floor(staged: Path, tmp_path: Path, capsys):
    argv = ["--train", str(staged / "train"), "--test", str(staged / "test")]
    code = main([*argv, "--model-dir", str(tmp_path), "--epochs", "1", "--threads", "2",
                 "--min-accuracy", "0.999"])  # fmt: skip
    assert code == EXIT_QUALITY_GATE
    err = capsys.readouterr().err
    assert "QualityGateFailed" in err and "0.9990" in err and "test accuracy" in err
    # The artifact is still written, so a failed gate can be inspected.
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.slow
def test_sagemaker_environment_and_determinism(staged: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(staged / "train"))
    monkeypatch.setenv("SM_CHANNEL_TEST", str(staged / "test"))
    weights = []
    for run in ("a", "b"):
        monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / run))
        # SageMaker passes hyperparameters as strings; the classes list as JSON.
        assert main(["--epochs", "1", "--threads", "2", "--classes", json.dumps(CLASSES)]) == 0
        weights.append(hashlib.sha256((tmp_path / run / "model.pth").read_bytes()).hexdigest())
    assert weights[0] == weights[1]


def test_classes_mismatch_is_a_data_error(staged: Path, tmp_path: Path, capsys) -> None:
    argv = ["--train", str(staged / "train"), "--test", str(staged / "test")]
    assert main([*argv, "--model-dir", str(tmp_path), "--classes", "apple,pear"]) == 2
    assert "StagedDataError" in capsys.readouterr().err


def test_missing_channel_is_a_data_error(tmp_path: Path, capsys) -> None:
    code = main(["--train", str(tmp_path), "--test", str(tmp_path), "--model-dir", str(tmp_path)])
    assert code == 2
    assert "dataset.npz" in capsys.readouterr().err


def test_stratified_split() -> None:
    labels = np.array([0] * 40 + [1] * 60)
    fit, val = stratified_split(labels, 0.2, np.random.default_rng(1))
    assert len(set(fit) & set(val)) == 0 and len(fit) + len(val) == 100
    assert np.bincount(labels[val]).tolist() == [8, 12]
    again = stratified_split(labels, 0.2, np.random.default_rng(1))
    assert np.array_equal(again[1], val)


@pytest.mark.slow
def test_pack_model_is_deterministic_and_flat(trained: Path, tmp_path: Path) -> None:
    a = pack_model(trained, tmp_path / "a" / "model.tar.gz")
    b = pack_model(trained, tmp_path / "b" / "model.tar.gz")
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        names = tar.getnames()
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
    for name in ("model.pth", "model.ts", "model_meta.json", "metrics.json", "baseline.json",
                 "code/inference.py", "code/training/model.py"):  # fmt: skip
        assert name in names
    assert not any(n.startswith(("/", "..")) or "__pycache__" in n for n in names)


@pytest.mark.slow
def test_pack_model_inside_model_dir_skips_itself(trained: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(trained, copy)
    out = pack_model(copy, copy / "model.tar.gz")
    out2 = pack_model(copy, copy / "model.tar.gz")
    assert out == out2
    with tarfile.open(out) as tar:
        assert "model.tar.gz" not in tar.getnames()


@pytest.mark.slow
def test_dev_archive_trains_on_synthetic_outliers_only(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["training"]["outliers"] == {"synthetic": OUTLIER_POOL_SIZE, "archive": 0}


@pytest.mark.slow
def test_staged_other_class_photos_join_the_outlier_pool(
    dev_archive: Path, tmp_path: Path, monkeypatch
) -> None:
    import training.train as train_mod

    archive = write_task_archive(
        tmp_path / "cifar-100-python.tar.gz",
        official_names(dev_archive),
        [*CLASSES, "apple", "bee", "cloud"],
        train_per_class=20,
        test_per_class=6,
    )
    staged = tmp_path / "data"
    stage_dataset(archive, staged, CLASSES, max_outliers=45)
    staged_outliers = read_outliers(staged / "train")
    assert len(staged_outliers) == 45
    seen: dict[str, object] = {}
    real_pool, real_fit = train_mod.outlier_pool, train_mod.fit

    def pool_spy(*args, **kwargs):
        seen["pool"] = real_pool(*args, **kwargs)
        return seen["pool"]

    def fit_spy(*args, **kwargs):
        seen["trained_on"] = len(kwargs["outliers"])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_mod, "outlier_pool", pool_spy)
    monkeypatch.setattr(train_mod, "fit", fit_spy)
    argv = ["--train", str(staged / "train"), "--test", str(staged / "test")]
    model_dir = tmp_path / "model"
    assert main([*argv, "--model-dir", str(model_dir), "--epochs", "2", "--threads", "2"]) == 0
    pool_rows = {img.tobytes() for img in seen["pool"]}
    assert all(img.tobytes() in pool_rows for img in staged_outliers)
    assert seen["trained_on"] == OUTLIER_POOL_SIZE + 45
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["training"]["outliers"] == {"synthetic": OUTLIER_POOL_SIZE, "archive": 45}
    assert metrics["training"]["fit_images"] + metrics["training"]["validation_images"] == 40
