"""Evaluate a trained artifact on a staged test split and write a report folder.

    python -m training.evaluate --model MODEL(model.tar.gz or dir) --test DIR/test --report OUT

The artifact is loaded and run through the serving code itself (training.inference.model_fn and
predict_fn), so the report measures exactly what the endpoint answers. OUT receives:

    metrics.json               accuracy, per-class precision/recall, confusion matrix, ECE,
                               reliability bins, coverage/accepted accuracy for thresholds 0.50-0.99
    reliability.png            reliability diagram (accuracy vs confidence per bin)
    confidence_by_class.png    max-confidence histogram per true class, correct vs wrong
    threshold_sweep.png        coverage and accepted accuracy against the threshold
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lambdas.defaults import DEFAULT_THRESHOLD
from training.errors import DatasetError, ModelArtifactError, StagedDataError
from training.metrics import classification_metrics
from training.stage import read_split

# The serving hooks' error for an unusable artifact; evaluation reports the same one.
ArtifactError = ModelArtifactError


def _unpack(tar_path: Path, dest: Path) -> Path:
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            # The "data" filter refuses absolute paths, '..', links out of dest and devices.
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"{tar_path} is not a readable model.tar.gz: {exc}") from exc
    return dest


def predict_probabilities(model_path: Path, images: np.ndarray) -> tuple[np.ndarray, Any]:
    """Class probabilities for uint8 images (N,H,W,3) via the serving hooks; returns (probs,
    loaded model)."""
    from training.inference import model_fn, predict_fn  # torch: imported only when needed

    with tempfile.TemporaryDirectory(prefix="scones-eval-") as tmp:
        model_dir = model_path if model_path.is_dir() else _unpack(model_path, Path(tmp))
        model = model_fn(str(model_dir))
    probs = np.concatenate(
        [predict_fn(images[i : i + 256], model) for i in range(0, len(images), 256)]
    )
    return probs, model


def evaluate(
    model_path: str | Path,
    test_dir: str | Path,
    report_dir: str | Path,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Measure the artifact on the staged split; writes metrics.json and the plots."""
    model_path = Path(model_path)
    if not model_path.exists():
        raise ArtifactError(f"model {model_path} does not exist")
    split, classes = read_split(test_dir)
    probs, model = predict_probabilities(model_path, split.images)
    if list(model.classes) != classes:
        raise StagedDataError(
            f"the model's classes {list(model.classes)} differ from the test split's {classes}"
        )
    metrics = classification_metrics(probs, split.labels, classes, threshold)
    metrics["model"] = str(model_path)
    metrics["temperature"] = float(model.temperature)
    report = Path(report_dir)
    report.mkdir(parents=True, exist_ok=True)
    metrics["plots"] = write_plots(report, probs, split.labels, classes, metrics, threshold)
    (report / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def write_plots(
    report: Path,
    probs: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    metrics: dict[str, Any],
    threshold: float,
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # headless: CI and SageMaker have no display
    import matplotlib.pyplot as plt

    written = []
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels

    fig, ax = plt.subplots(figsize=(5, 5))
    bins = metrics["reliability_bins"]
    centers = [(b["lower"] + b["upper"]) / 2 for b in bins if b["count"]]
    accs = [b["accuracy"] for b in bins if b["count"]]
    width = bins[0]["upper"] - bins[0]["lower"]
    ax.bar(centers, accs, width=width * 0.9, edgecolor="black", label="accuracy in bin")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"Reliability (ECE {metrics['ece']:.3f}, n={metrics['count']})")
    ax.legend(loc="upper left")
    written.append(_save(fig, report / "reliability.png"))

    fig, axes = plt.subplots(1, len(classes), figsize=(4 * len(classes), 3.5), squeeze=False)
    edges = np.linspace(0.5 if len(classes) == 2 else 0.0, 1.0, 21)
    for i, name in enumerate(classes):
        ax = axes[0][i]
        mine = labels == i
        ax.hist(
            [confidence[mine & correct], confidence[mine & ~correct]],
            bins=edges,
            stacked=True,
            label=["correct", "wrong"],
            color=["tab:green", "tab:red"],
        )
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold}")
        ax.set_title(f"true class: {name} (n={int(mine.sum())})")
        ax.set_xlabel("confidence")
        ax.legend(loc="upper left", fontsize="small")
    axes[0][0].set_ylabel("images")
    written.append(_save(fig, report / "confidence_by_class.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    sweep = metrics["threshold_sweep"]
    ts = [r["threshold"] for r in sweep]
    ax.plot(ts, [r["coverage"] for r in sweep], label="coverage")
    ax.plot(
        ts,
        [r["accepted_accuracy"] if r["accepted_accuracy"] is not None else np.nan for r in sweep],
        label="accepted accuracy",
    )
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold}")
    ax.set_xlabel("confidence threshold")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left")
    ax.set_title("Coverage vs accepted accuracy")
    written.append(_save(fig, report / "threshold_sweep.png"))
    return written


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    # No timestamps in the PNG so the same evaluation writes the same files.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path.name


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model", required=True, help="model.tar.gz or an artifact directory")
    p.add_argument("--test", required=True, help="staged test split dir (holds dataset.npz)")
    p.add_argument("--report", required=True, help="output folder for metrics.json and plots")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = p.parse_args(argv)
    try:
        metrics = evaluate(args.model, args.test, args.report, args.threshold)
    except (DatasetError, ModelArtifactError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    acc = metrics["accepted_accuracy_at_threshold"]
    print(
        f"accuracy {metrics['accuracy']:.4f} on {metrics['count']} images, "
        f"ECE {metrics['ece']:.4f}; "
        f"threshold {args.threshold}: coverage {metrics['coverage_at_threshold']:.3f}, accepted "
        f"accuracy {'n/a' if acc is None else f'{acc:.4f}'}; report in {args.report}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
