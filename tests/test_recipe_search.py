"""benchmarks.recipe_search: the fold split, the aggregation on hand-made logits, one tiny job."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.recipe_search import (
    CONFIGS,
    aggregate,
    read_jsonl,
    run_job,
    stratified_folds,
)
from training.cifar import Split
from training.train import parse_args


def test_folds_are_stratified_disjoint_and_cover_every_image() -> None:
    labels = np.array([0] * 23 + [1] * 17)
    folds = stratified_folds(labels, 5)
    joined = np.concatenate(folds)
    assert len(joined) == len(labels) and set(joined.tolist()) == set(range(len(labels)))
    per_class = np.array([np.bincount(labels[f], minlength=2) for f in folds])
    assert per_class.max(0).tolist() == [5, 4] and per_class.min(0).tolist() == [4, 3]
    assert [f.tolist() for f in stratified_folds(labels, 5)] == [f.tolist() for f in folds]


def test_default_is_train_py_defaults_and_previous_default_differs_in_three_knobs() -> None:
    args = parse_args(["--train", "-", "--test", "-", "--model-dir", "-"])
    default = CONFIGS["default"]
    for knob in ("epochs", "lr", "weight_decay", "mixup_alpha", "padding", "cutout"):
        assert default[knob] == getattr(args, knob)
    diff = {k for k, v in CONFIGS["previous_default"].items() if v != default[k]}
    assert diff == {"mixup_alpha", "padding", "weight_decay"}


def _fold_job(name: str, fold: int, vi: np.ndarray, labels: np.ndarray) -> dict:
    """Per fold of 5 + 5 images: 7 confidently right, 3 class-1 images barely wrong."""
    logits, wrong = [], 0
    for label in labels[vi]:
        if label == 0 or wrong == 3:
            logits.append([12.0, 0.0] if label == 0 else [0.0, 12.0])
        else:
            wrong += 1
            logits.append([0.01 * wrong, 0.0])  # predicts 0 with confidence barely above 0.5
    test_logits = [[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 2  # 4 of 6 test images (all class 0) right
    return {"name": name, "fold": fold, "secs": 2.0 + fold, "vi": vi.tolist(),
            "lv": logits, "lt": test_logits}  # fmt: skip


def test_aggregate_on_hand_made_logits(tmp_path: Path) -> None:
    labels, test_labels = np.array([0] * 10 + [1] * 10), np.zeros(6, dtype=np.int64)
    folds = stratified_folds(labels, 2)
    lines = [_fold_job("cfg", f, folds[f], labels) for f in range(2)]
    lines.append(_fold_job("partial", 0, folds[0], labels))
    lines.append({"name": "c2_lr0.2", "fold": 0, "error": "RuntimeError('boom')"})
    lines.append({"name": "ema999", "fold": 0, "vi": [], "lv": [], "lt": []})
    path = tmp_path / "run.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    jobs, failed = read_jsonl([path])
    assert [j["name"] for j in failed] == ["default_lr0.2"]  # renamed from run 3's c2_
    assert "ema999" not in {j["name"] for j in jobs}
    rows = aggregate(jobs, labels, test_labels, k=2, hardware="test box")
    assert [r["name"] for r in rows] == ["cfg"]  # "partial" lacks fold 1
    row = rows[0]
    assert row["validation_images"] == 20 and row["folds"] == 2
    assert row["cv_accuracy"] == pytest.approx(0.7) and row["cv_accuracy_se"] == 0.0
    # The temperature keeps the confident ones above 0.93 and the barely wrong ones below.
    assert row["coverage_at_threshold"] == pytest.approx(0.7)
    assert row["accepted_accuracy_at_threshold"] == pytest.approx(1.0)
    # The 15 most confident of 20: the 14 confidently right ones and one barely wrong one.
    assert row["oof_accepted_accuracy_at_coverage_0.75"] == pytest.approx(14 / 15, abs=1e-4)
    assert row["test_accuracy_info_only"] == pytest.approx(4 / 6, abs=1e-4)
    assert row["seconds_per_job"] == 2.5 and row["device"] == "test box"
    assert 0 < row["nll_after_temperature"] < np.log(2)  # better than a coin
    by_first_fold = aggregate(jobs, labels, test_labels, k=2, min_folds=1)
    assert [r["name"] for r in by_first_fold] == ["cfg", "partial"]
    with pytest.raises(ValueError, match="another data set or fold split"):
        aggregate(jobs, np.roll(labels, 1), test_labels, k=2)


def test_one_epoch_job_on_cpu_returns_logits_of_the_right_shape() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 10)
    train = Split(rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), labels, ["x"] * 20)
    test = Split(rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), labels[:6], ["t"] * 6)
    folds = stratified_folds(labels, 5)
    config = {**CONFIGS["previous_default"], "epochs": 1, "batch_size": 8,
              "widths": [8, 16, 32], "scale": 0.3, "jitter": 0.2}  # fmt: skip
    job = run_job(config, 2, folds, train, test, "cpu")
    assert job["vi"] == folds[2].tolist()
    assert np.array(job["lv"]).shape == (4, 2) and np.array(job["lt"]).shape == (6, 2)
    assert np.isfinite(job["lv"]).all() and job["device"].startswith("cpu")
