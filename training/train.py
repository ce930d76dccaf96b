"""Train the vehicle classifier: SageMaker script-mode entry point and local CLI in one.

On SageMaker (entry `train.py` in the source bundle) the channel and model directories come
from SM_CHANNEL_TRAIN, SM_CHANNEL_TEST and SM_MODEL_DIR and the hyperparameters arrive as
arguments (--epochs, --seed, --min-accuracy, --classes, ...). Locally:

    python -m training.train --train DIR/train --test DIR/test --model-dir OUT [--epochs N]

Recipe: a small pre-activation ResNet (training.model) trained from scratch with SGD (Nesterov),
a one-cycle learning-rate schedule, label smoothing, weight decay 1e-3 and augmentation (crop
with 2-pixel padding, flip, cutout; mixup is available but off: it lost in 5-fold cross-validation,
benchmarks/recipe_search.py), 300 epochs in bfloat16 autocast where the CPU supports it (the same
compute time as 150 in float32); the served logits average the image and its mirror image
(training.model's tta_flip). A stratified validation split is carved from the training data
(the test split is never used to choose anything); the softmax temperature is fitted on it,
and the drift baseline is built from it. The test split is only measured, and the quality
gate compares its accuracy with --min-accuracy.

The model dir receives model.pth, model_meta.json, metrics.json, baseline.json, gate.json and code/
(inference.py + the training modules it imports), i.e. SageMaker's model.tar.gz deploys as is.

It also receives model.ts, the frozen forward pass the endpoint serves (training.serving_module),
and every metric, the temperature and the baseline are computed with that module.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lambdas.defaults import DEFAULT_THRESHOLD
from training.archive import tree_entries, write_tar_gz
from training.augment import augment, mixup, random_crop, random_flip
from training.cifar import Split, parse_classes
from training.errors import DatasetError, QualityGateFailed, StagedDataError
from training.metrics import classification_metrics, fit_temperature, softmax
from training.model import DEFAULT_ARCH, bfloat16_supported, build_model, count_parameters
from training.outliers import outlier_pool, uniform_loss
from training.preprocess import to_tensor
from training.serving_module import SERVING_MODULE_KEY, ServingModule
from training.serving_module import freeze as freeze_serving_module
from training.serving_module import save as save_serving_module
from training.stage import read_outliers, read_split

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_FILE = "model.pth"
META_FILE = "model_meta.json"
METRICS_FILE = "metrics.json"
BASELINE_FILE = "baseline.json"
GATE_FILE = "gate.json"
CODE_DIR = "code"
FAILURE_FILE = "failure"  # in SM_OUTPUT_DIR (/opt/ml/output)
INPUT_SIZE = (32, 32)
# Exit status of a run that trained fine but failed the quality gate (distinct from crashes).
EXIT_QUALITY_GATE = 3
EXIT_DATA_ERROR = 2
# How the recipe's network computes (training.model); the serve benchmark builds the same.
DEFAULT_PRECISION = "auto"
DEFAULT_TTA_FLIP = 1
# Outlier exposure (training.outliers): chosen in docs/safety.md.
DEFAULT_OUTLIER_WEIGHT = 0.5
DEFAULT_GREY = 0.2  # docs/safety.md: grey photos of both classes, no colour shortcut
OUTLIER_POOL_SIZE = 4000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    p.add_argument("--train", default=env.get("SM_CHANNEL_TRAIN"), help="staged train split dir")
    p.add_argument("--test", default=env.get("SM_CHANNEL_TEST"), help="staged test split dir")
    p.add_argument(
        "--labelled",
        default=env.get("SM_CHANNEL_LABELLED"),
        help="reviewers' labelled images, <dir>/<class>/* (training.labelled): added to training",
    )
    p.add_argument("--model-dir", default=env.get("SM_MODEL_DIR"), help="artifact output dir")
    p.add_argument("--classes", default=None, help="expected class list (checked against data)")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-3)
    p.add_argument("--mixup-alpha", type=float, default=0.0, help="0 disables mixup")
    p.add_argument("--cutout", type=int, default=8, help="cutout square side, 0 disables")
    p.add_argument("--padding", type=int, default=2, help="random-crop padding")
    p.add_argument("--jitter", type=float, default=0.0, help="brightness/contrast jitter")
    p.add_argument(
        "--grey",
        type=float,
        default=DEFAULT_GREY,
        help="probability of turning a training photo grey (training.augment.random_grey)",
    )
    p.add_argument("--ema", type=float, default=0.0, help="weight EMA decay per step, 0 = off")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument(
        "--swa-epochs",
        type=int,
        default=0,
        help="average the weights of the last N epochs (stochastic weight averaging), 0 = off",
    )
    p.add_argument(
        "--channels-last",
        type=int,
        choices=(0, 1),
        default=1,
        help="train in channels_last memory format (1.4x faster on CPU; same network)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default=DEFAULT_PRECISION,
        help="auto: bfloat16 autocast where the CPU runs it natively (2x faster), else float32",
    )
    p.add_argument(
        "--tta-flip",
        type=int,
        choices=(0, 1),
        default=DEFAULT_TTA_FLIP,
        help="serve (and calibrate) the mean logits of the image and its mirror image",
    )
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument(
        "--outlier-weight",
        type=float,
        default=DEFAULT_OUTLIER_WEIGHT,
        help="outlier exposure: weight of the uniform-prediction loss on synthetic outliers "
        "(training.outliers), 0 = off",
    )
    p.add_argument(
        "--outlier-batch", type=int, default=32, help="synthetic outliers per training step"
    )
    p.add_argument("--widths", default=",".join(map(str, DEFAULT_ARCH["widths"])))
    p.add_argument("--blocks", default=",".join(map(str, DEFAULT_ARCH["blocks"])))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: all cores, at most 8); fixed threads + seed = same weights",
    )
    p.add_argument("--min-accuracy", type=float, default=0.0, help="quality gate on test accuracy")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    # SageMaker's toolkit may pass extra hyperparameters; they are reported, not fatal.
    args, unknown = p.parse_known_args(argv)
    if unknown:
        print(f"ignoring unknown arguments: {' '.join(unknown)}", file=sys.stderr)
    for name in ("train", "test", "model_dir"):
        if not getattr(args, name):
            p.error(f"--{name.replace('_', '-')} is required (or SM_ environment variable)")
    if args.epochs < 1:
        p.error("--epochs must be >= 1")
    if not 0.0 < args.val_fraction < 0.5:
        p.error("--val-fraction must be in (0, 0.5)")
    return args


def stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, validation): `fraction` of every class, at least one image each."""
    fit, val = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        n_val = max(1, round(len(idx) * fraction))
        val.append(idx[:n_val])
        fit.append(idx[n_val:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def one_cycle_lr(step: int, total: int, peak: float, warmup_fraction: float = 0.15) -> float:
    """Learning rate at `step` of `total`: linear warm-up to `peak`, then cosine decay to zero."""
    warmup = max(1, int(warmup_fraction * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean/std on the 0..1 scale (rounded: stored in JSON and shown to people)."""
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    return [round(float(v), 4) for v in pixels.mean(0)], [round(float(v), 4) for v in pixels.std(0)]


def _logits(model: nn.Module | ServingModule, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        out = [model(x[i : i + batch]) for i in range(0, len(x), batch)]
    return torch.cat(out).double().numpy() if out else np.zeros((0, 0))


def _features(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Penultimate features (N, D) in eval mode: what the serving gate measures distances on."""
    model.eval()
    with torch.inference_mode():
        out = [model.forward_with_features(x[i : i + batch])[1] for i in range(0, len(x), batch)]
    return torch.cat(out).double().numpy()


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    args: argparse.Namespace,
    rng: np.random.Generator,
    x_val: torch.Tensor,
    y_val: np.ndarray,
    mean: list[float],
    std: list[float],
    log: Any = print,
    outliers: torch.Tensor | None = None,
) -> list[dict[str, float]]:
    """Train in place; returns one history row per epoch (printed as progress).

    `outliers` (normalised NCHW, training.outliers' pool): each step adds
    `args.outlier_batch` of them to the batch, their predictions pulled towards uniform with
    weight `args.outlier_weight` (outlier exposure)."""
    use_outliers = (
        outliers is not None and len(outliers) > 0 and getattr(args, "outlier_weight", 0) > 0
    )
    steps_per_epoch = max(1, len(x) // args.batch_size)
    total = steps_per_epoch * args.epochs
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=args.lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=args.weight_decay,
    )

    def lr_at(step: int) -> float:
        return one_cycle_lr(step, total, args.lr)

    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    mean_t = torch.tensor(mean, dtype=torch.float32)
    std_t = torch.tensor(std, dtype=torch.float32)
    if args.channels_last:
        # oneDNN's convolutions run ~1.4x faster on NHWC tensors on these CPUs.
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        x_val = x_val.contiguous(memory_format=torch.channels_last)
        if use_outliers:
            outliers = outliers.contiguous(memory_format=torch.channels_last)
    ema = None
    if args.ema > 0:
        # An exponential moving average of the weights (and BatchNorm statistics) is a cheap
        # ensemble over the last few hundred steps: steadier and usually better on small data.
        ema = torch.optim.swa_utils.AveragedModel(
            model,
            multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema),
            use_buffers=True,
        )
    swa = None
    swa_start = args.epochs - args.swa_epochs + 1 if args.swa_epochs > 0 else args.epochs + 1
    history = []
    step = 0
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        loss_sum, correct, seen = 0.0, 0.0, 0
        for b in range(steps_per_epoch):  # drop the ragged last batch: BatchNorm needs > 1
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            xb = augment(  # indexing ops keep channels_last where the input has it
                x[idx],
                rng,
                padding=args.padding,
                cutout_size=args.cutout,
                jitter=args.jitter,
                grey=args.grey,
                mean=mean_t,
                std=std_t,
            )
            yb = y[idx]
            xb, ya, yb2, lam = mixup(xb, yb, rng, args.mixup_alpha)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            if use_outliers:
                pick = torch.from_numpy(rng.integers(0, len(outliers), size=args.outlier_batch))
                xo = random_flip(random_crop(outliers[pick], rng, args.padding), rng)
                # One forward pass: BatchNorm sees photos and outliers together, as at serving.
                all_logits = model(torch.cat([xb, xo]))
                logits, outlier_logits = all_logits[: len(xb)], all_logits[len(xb) :]
            else:
                logits = model(xb)
            loss = lam * criterion(logits, ya) + (1.0 - lam) * criterion(logits, yb2)
            if use_outliers:
                loss = loss + args.outlier_weight * uniform_loss(outlier_logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            loss_sum += float(loss.detach()) * len(idx)
            pred = logits.argmax(1)
            correct += lam * float((pred == ya).sum()) + (1 - lam) * float((pred == yb2).sum())
            seen += len(idx)
        if epoch >= swa_start:
            if swa is None:
                # Equal-weight average of the end-of-epoch weights over the last epochs of the
                # low-LR tail (SWA); BatchNorm statistics are recomputed on the fit data after.
                swa = torch.optim.swa_utils.AveragedModel(model)
            else:
                swa.update_parameters(model)
        val_logits = _logits(ema.module if ema is not None else model, x_val)
        row = {
            "epoch": epoch,
            "loss": loss_sum / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
            "val_accuracy": float((val_logits.argmax(1) == y_val).mean()),
            "val_nll": _nll(val_logits, y_val, 1.0),
            "elapsed_s": time.perf_counter() - start,
        }
        history.append(row)
        log(
            f"epoch {epoch:3d}/{args.epochs}  loss {row['loss']:.4f}  "
            f"train_acc {row['train_accuracy']:.3f}  val_acc {row['val_accuracy']:.3f}  "
            f"lr {lr_at(step - 1):.4f}  {row['elapsed_s']:.1f}s",
            flush=True,
        )
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
    if swa is not None:
        # BatchNorm statistics of the averaged weights, re-estimated on the unaugmented fit data.
        with torch.no_grad():
            batches = (x[i : i + args.batch_size] for i in range(0, len(x), args.batch_size))
            torch.optim.swa_utils.update_bn(batches, swa.module)
        model.load_state_dict(swa.module.state_dict())
        val_logits = _logits(model, x_val)
        history[-1]["val_accuracy_swa"] = float((val_logits.argmax(1) == y_val).mean())
        history[-1]["val_nll_swa"] = _nll(val_logits, y_val, 1.0)
        swa_acc = history[-1]["val_accuracy_swa"]
        log(f"SWA over the last {args.swa_epochs} epochs: val_acc {swa_acc:.3f}", flush=True)
    # Saved weights stay in the default (contiguous) layout: serving builds a plain model.
    model.to(memory_format=torch.contiguous_format)
    return history


def _training_imports(source: Path) -> set[str]:
    """Names of training.* modules imported (at any depth) by a source file."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("training."):
                found.add(node.module.split(".")[1])
            elif node.module == "training":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("training."):
                    found.add(alias.name.split(".")[1])
    return found


def write_code_dir(code_dir: Path) -> list[str]:
    """code/inference.py (training/sagemaker_entry.py) + every training module it needs."""
    entry = PACKAGE_DIR / "sagemaker_entry.py"
    if not entry.is_file():
        raise FileNotFoundError(f"{entry} is missing: the artifact would not be servable")
    needed: set[str] = set()
    todo = [entry]
    while todo:
        for name in sorted(_training_imports(todo.pop())):
            if name not in needed and (PACKAGE_DIR / f"{name}.py").is_file():
                needed.add(name)
                todo.append(PACKAGE_DIR / f"{name}.py")
    if code_dir.exists():
        shutil.rmtree(code_dir)
    (code_dir / "training").mkdir(parents=True)
    shutil.copyfile(entry, code_dir / "inference.py")
    written = ["inference.py"]
    for name in ["__init__", *sorted(needed)]:
        shutil.copyfile(PACKAGE_DIR / f"{name}.py", code_dir / "training" / f"{name}.py")
        written.append(f"training/{name}.py")
    return written


def pack_model(model_dir: str | os.PathLike[str], tar_path: str | os.PathLike[str]) -> Path:
    """Write model.tar.gz as SageMaker does (the model dir's contents at the archive root).

    Deterministic (sorted names, fixed mtimes/owners, no gzip timestamp) so equal artifacts have
    equal hashes. The tar itself is skipped if it lives inside model_dir.
    """
    root = Path(model_dir).resolve()
    out = Path(tar_path).resolve()
    return write_tar_gz(out, tree_entries(root, skip=[out]))


def _check_classes(expected: str | None, train_classes: list[str], test_classes: list[str]) -> None:
    if train_classes != test_classes:
        raise StagedDataError(f"train classes {train_classes} differ from test {test_classes}")
    if expected:
        wanted = parse_classes(expected)
        if wanted != train_classes:
            raise StagedDataError(
                f"--classes {wanted} does not match the staged data's classes {train_classes}"
            )


@dataclass(frozen=True)
class _PreparedData:
    """The job's images, read, checked and split.

    `train` is the whole training split (staged plus the reviewers' labelled images), `fit` and
    `val` its stratified parts; `test` is only ever measured, never used to choose anything.
    `mean` and `std` are the fit split's channel statistics (the network's normalisation);
    `counts` is metrics.json's "data" section."""

    classes: list[str]
    train: Split
    fit: Split
    val: Split
    test: Split
    counts: dict[str, Any]
    mean: list[float]
    std: list[float]


@dataclass(frozen=True)
class _NetworkInputs:
    """The fit and validation splits as normalised NCHW tensors, and the outlier-exposure pool
    (None when --outlier-weight is 0) with its counts for metrics.json."""

    x_fit: torch.Tensor
    y_fit: torch.Tensor
    x_val: torch.Tensor
    x_outliers: torch.Tensor | None
    outlier_counts: dict[str, int]


@dataclass(frozen=True)
class _ServedEvaluation:
    """What the frozen serving module measures: the softmax temperature fitted on the
    validation split, the validation logits and calibrated probabilities, and both splits'
    classification metrics at the serving threshold."""

    served: ServingModule
    temperature: float
    val_logits: np.ndarray
    val_probs: np.ndarray
    val_metrics: dict[str, Any]
    test_metrics: dict[str, Any]


def train(args: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    """Run the whole job; returns metrics (also written). Raises QualityGateFailed last."""
    wall_start = time.perf_counter()
    threads, rng = _make_deterministic(args)
    data = _prepare_data(args, rng, log)
    arch, model = _build_network(args, data, threads, log)
    inputs = _network_inputs(args, data, log)
    history, train_seconds = _train_network(model, args, rng, data, inputs, log)

    # Temperature, metrics and baseline are the frozen module's: the one model.ts ships and the
    # endpoint runs (training/serving_module.py). The gate's class means and distance limit use
    # the same weights' features before freezing (_features).
    x_val = inputs.x_val.contiguous(memory_format=torch.channels_last)  # the layout serving uses
    evaluation = _evaluate_served_module(model, x_val, data, args.threshold)
    gate = _fit_safety_gate(model, inputs.x_fit, x_val, data)
    baseline = _drift_baseline(data, evaluation.val_probs)
    model_dir = Path(args.model_dir)
    code_files = _write_artifact(model_dir, model, arch, data, evaluation, gate, baseline)
    metrics = _metrics_report(
        args,
        data,
        evaluation,
        arch=arch,
        threads=threads,
        parameters=count_parameters(model),
        outlier_counts=inputs.outlier_counts,
        history=history,
        train_seconds=train_seconds,
        total_seconds=time.perf_counter() - wall_start,
        code_files=code_files,
    )
    _write_json(model_dir / METRICS_FILE, metrics)
    _log_summary(log, evaluation, args.threshold, train_seconds)
    test_accuracy = evaluation.test_metrics["accuracy"]
    if test_accuracy < args.min_accuracy:
        raise QualityGateFailed(test_accuracy, args.min_accuracy)
    return metrics


def _make_deterministic(args: argparse.Namespace) -> tuple[int, np.random.Generator]:
    """Fix torch's thread count (--threads, default all cores up to 8) and seed (--seed), and
    require deterministic algorithms: fixed threads + seed = same weights. Returns the thread
    count and the numpy stream that splits, shuffles and augments."""
    threads = args.threads or min(os.cpu_count() or 1, 8)
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    return threads, np.random.default_rng(args.seed)


def _prepare_data(args: argparse.Namespace, rng: np.random.Generator, log: Any) -> _PreparedData:
    """Read the staged --train and --test splits, check their classes (against each other and
    --classes; StagedDataError), add the --labelled images to the training split, carve the
    stratified validation split from it with `rng`, and measure the fit split's statistics."""
    train_split, classes = read_split(args.train)
    test_split, test_classes = read_split(args.test)
    _check_classes(args.classes, classes, test_classes)
    data_counts: dict[str, Any] = {"staged": len(train_split)}
    if args.labelled:
        from training.labelled import merge_labelled

        train_split, data_counts = merge_labelled(train_split, test_split, classes, args.labelled)
        log(f"data: {json.dumps(data_counts, sort_keys=True)}", flush=True)
    fit_idx, val_idx = stratified_split(train_split.labels, args.val_fraction, rng)
    fit_split = _subset(train_split, fit_idx)
    mean, std = channel_stats(fit_split.images)
    return _PreparedData(
        classes=classes,
        train=train_split,
        fit=fit_split,
        val=_subset(train_split, val_idx),
        test=test_split,
        counts=data_counts,
        mean=mean,
        std=std,
    )


def _subset(split: Split, idx: np.ndarray) -> Split:
    """The images of `split` at `idx`, in that order."""
    return Split(
        images=split.images[idx],
        labels=split.labels[idx],
        filenames=[split.filenames[i] for i in idx],
    )


def _build_network(
    args: argparse.Namespace, data: _PreparedData, threads: int, log: Any
) -> tuple[dict[str, Any], nn.Module]:
    """The recipe's network (--widths, --blocks, --tta-flip, --precision) for the data's classes,
    initialised from torch's seeded generator; returns its arch and the network, and logs what
    it will train on."""
    arch = recipe_arch(
        len(data.classes),
        widths=[int(v) for v in str(args.widths).split(",")],
        blocks=[int(v) for v in str(args.blocks).split(",")],
        tta_flip=bool(args.tta_flip),
        precision=args.precision,
    )
    model = build_model(arch)
    log(
        f"training {arch['name']} ({count_parameters(model)} parameters) on {len(data.fit)} "
        f"images, validating on {len(data.val)}, classes {data.classes}, {threads} threads",
        flush=True,
    )
    return arch, model


def _network_inputs(args: argparse.Namespace, data: _PreparedData, log: Any) -> _NetworkInputs:
    """Normalise the fit and validation images with the fit split's statistics and, where
    --outlier-weight > 0, build the outlier-exposure pool (training.outliers): OUTLIER_POOL_SIZE
    synthetic outliers of the fit images plus the staged photos of other classes."""
    x_fit = to_tensor(data.fit.images, data.mean, data.std)
    y_fit = torch.from_numpy(data.fit.labels)
    x_val = to_tensor(data.val.images, data.mean, data.std)
    x_outliers = None
    outlier_counts = {"synthetic": 0, "archive": 0}
    if args.outlier_weight > 0:
        # Photos of the archive's other classes, staged with the train split (training.stage).
        foreign = read_outliers(args.train)
        # Its own stream: the pool does not shift the draws the rest of training makes.
        pool = outlier_pool(
            data.fit.images,
            OUTLIER_POOL_SIZE,
            np.random.default_rng([args.seed, 1]),
            foreign=foreign,
        )
        x_outliers = to_tensor(pool, data.mean, data.std)
        outlier_counts = {"synthetic": OUTLIER_POOL_SIZE, "archive": len(foreign)}
        log(f"outlier pool: {json.dumps(outlier_counts, sort_keys=True)}", flush=True)
    return _NetworkInputs(
        x_fit=x_fit, y_fit=y_fit, x_val=x_val, x_outliers=x_outliers, outlier_counts=outlier_counts
    )


def _train_network(
    model: nn.Module,
    args: argparse.Namespace,
    rng: np.random.Generator,
    data: _PreparedData,
    inputs: _NetworkInputs,
    log: Any,
) -> tuple[list[dict[str, float]], float]:
    """Train `model` in place with `fit` on the fit split (plus the outlier pool where there is
    one), validating each epoch; returns the per-epoch history and the training seconds."""
    train_start = time.perf_counter()
    history = fit(
        model,
        inputs.x_fit,
        inputs.y_fit,
        args,
        rng,
        inputs.x_val,
        data.val.labels,
        data.mean,
        data.std,
        log,
        outliers=inputs.x_outliers,
    )
    return history, time.perf_counter() - train_start


def _evaluate_served_module(
    model: nn.Module, x_val: torch.Tensor, data: _PreparedData, threshold: float
) -> _ServedEvaluation:
    """Freeze `model` into the serving module, fit its temperature on the validation split
    (`x_val`, channels_last) and measure both splits with it at `threshold`."""
    served = freeze_serving_module(model, INPUT_SIZE)
    val_logits = _logits(served, x_val)
    temperature = fit_temperature(val_logits, data.val.labels)
    val_probs = softmax(val_logits, temperature)
    x_test = to_tensor(data.test.images, data.mean, data.std).contiguous(
        memory_format=torch.channels_last
    )
    test_logits = _logits(served, x_test)
    test_probs = softmax(test_logits, temperature)
    test_metrics = classification_metrics(test_probs, data.test.labels, data.classes, threshold)
    val_metrics = classification_metrics(val_probs, data.val.labels, data.classes, threshold)
    return _ServedEvaluation(
        served=served,
        temperature=temperature,
        val_logits=val_logits,
        val_probs=val_probs,
        val_metrics=val_metrics,
        test_metrics=test_metrics,
    )


def _fit_safety_gate(
    model: nn.Module, x_fit: torch.Tensor, x_val: torch.Tensor, data: _PreparedData
) -> dict[str, Any]:
    """The serving gate (docs/safety.md) as gate.json holds it: statistic ranges of the whole
    training split, feature-space class means of the fit split (`x_fit`), the distance limit
    from the validation split (`x_val`)."""
    from training.gate import fit_gate  # numpy-only; imported late to keep CLI fast

    gate = fit_gate(
        data.train.images,
        _features(model, x_fit),
        data.fit.labels,
        _features(model, x_val),
        len(data.classes),
    )
    return gate.to_json()


def _drift_baseline(data: _PreparedData, val_probs: np.ndarray) -> dict[str, Any]:
    """The drift detector's reference (training.baseline, baseline.json): the validation
    split's calibrated probabilities and images, and the training split's input statistics."""
    from training.baseline import build_baseline  # numpy-only; imported late to keep CLI fast

    # Input statistics don't depend on the model, so the whole training split (not just the
    # 120 validation images) is their reference: clean-traffic PSI is much less noisy.
    return build_baseline(
        data.val.images, val_probs, data.classes, reference_images=data.train.images
    )


def _write_artifact(
    model_dir: Path,
    model: nn.Module,
    arch: dict[str, Any],
    data: _PreparedData,
    evaluation: _ServedEvaluation,
    gate: dict[str, Any],
    baseline: dict[str, Any],
) -> list[str]:
    """Write the servable artifact into `model_dir` (created if missing): model.pth, model.ts,
    model_meta.json, baseline.json, gate.json and code/; returns code/'s files. metrics.json
    is written last, by train."""
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / WEIGHTS_FILE)
    meta = {
        SERVING_MODULE_KEY: save_serving_module(evaluation.served, model_dir),
        "arch": arch,
        "classes": data.classes,
        "input_size": list(INPUT_SIZE),
        "mean": data.mean,
        "std": data.std,
        "temperature": evaluation.temperature,
        "framework": "pytorch",
        "torch_version": torch.__version__.split("+")[0],
    }
    _write_json(model_dir / META_FILE, meta)
    _write_json(model_dir / BASELINE_FILE, baseline)
    # Compact: the feature matrices would take a line per number indented.
    (model_dir / GATE_FILE).write_text(json.dumps(gate, sort_keys=True) + "\n")
    return write_code_dir(model_dir / CODE_DIR)


def _metrics_report(
    args: argparse.Namespace,
    data: _PreparedData,
    evaluation: _ServedEvaluation,
    *,
    arch: dict[str, Any],
    threads: int,
    parameters: int,
    outlier_counts: dict[str, int],
    history: list[dict[str, float]],
    train_seconds: float,
    total_seconds: float,
    code_files: list[str],
) -> dict[str, Any]:
    """metrics.json: the data used, the test and validation metrics, the temperature, the
    quality gate's floor, and how the network was trained."""
    val_metrics = evaluation.val_metrics
    return {
        "data": data.counts,
        "test": evaluation.test_metrics,
        "validation": {
            "count": val_metrics["count"],
            "accuracy": val_metrics["accuracy"],
            "ece": val_metrics["ece"],
            "coverage_at_threshold": val_metrics["coverage_at_threshold"],
            "accepted_accuracy_at_threshold": val_metrics["accepted_accuracy_at_threshold"],
            "nll_before_temperature": _nll(evaluation.val_logits, data.val.labels, 1.0),
            "nll_after_temperature": _nll(
                evaluation.val_logits, data.val.labels, evaluation.temperature
            ),
        },
        "temperature": evaluation.temperature,
        "min_accuracy": args.min_accuracy,
        "training": {
            "epochs": args.epochs,
            "seed": args.seed,
            "threads": threads,
            "fit_images": len(data.fit),
            "validation_images": len(data.val),
            "parameters": parameters,
            "outliers": outlier_counts,
            "hyperparameters": {
                # precision as resolved on this machine ("auto" says nothing afterwards)
                k: arch[k] if k == "precision" else getattr(args, k)
                for k in (
                    "batch_size",
                    "lr",
                    "weight_decay",
                    "mixup_alpha",
                    "cutout",
                    "padding",
                    "label_smoothing",
                    "val_fraction",
                    "jitter",
                    "grey",
                    "ema",
                    "swa_epochs",
                    "channels_last",
                    "precision",
                    "tta_flip",
                    "outlier_weight",
                    "outlier_batch",
                )
            },
            "train_seconds": round(train_seconds, 2),
            "total_seconds": round(total_seconds, 2),
            "history": history,
        },
        "code_files": code_files,
    }


def _log_summary(
    log: Any, evaluation: _ServedEvaluation, threshold: float, train_seconds: float
) -> None:
    """Log one line: test accuracy, ECE and temperature, coverage and accepted accuracy at
    `threshold`, and the training time."""
    test_metrics = evaluation.test_metrics
    log(
        f"test accuracy {test_metrics['accuracy']:.4f}, ECE {test_metrics['ece']:.4f}, "
        f"T={evaluation.temperature:.3f}; at threshold {threshold}: coverage "
        f"{test_metrics['coverage_at_threshold']:.3f}, accepted accuracy "
        f"{_fmt(test_metrics['accepted_accuracy_at_threshold'])}; trained in {train_seconds:.1f}s",
        flush=True,
    )


def recipe_arch(
    num_classes: int,
    *,
    widths: Sequence[int] = tuple(DEFAULT_ARCH["widths"]),
    blocks: Sequence[int] = tuple(DEFAULT_ARCH["blocks"]),
    tta_flip: bool = bool(DEFAULT_TTA_FLIP),
    precision: str = DEFAULT_PRECISION,
) -> dict[str, Any]:
    """The arch the recipe trains (build_model's input), precision resolved for this CPU."""
    return {
        **DEFAULT_ARCH,
        "num_classes": num_classes,
        "widths": list(widths),
        "blocks": list(blocks),
        "tta_flip": tta_flip,
        "precision": resolve_precision(precision),
    }


def resolve_precision(requested: str) -> str:
    """'auto' -> 'bfloat16' where this CPU runs it natively, else 'float32'."""
    if requested == "auto":
        return "bfloat16" if bfloat16_supported() else "float32"
    return requested


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    from training.metrics import nll

    return round(nll(logits, labels, temperature), 6)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _write_json(path: Path, data: Any) -> None:
    buf = io.StringIO()
    json.dump(data, buf, indent=2, sort_keys=True)
    path.write_text(buf.getvalue() + "\n")


def write_failure_reason(message: str, output_dir: str | None = None) -> Path | None:
    """Write `message` to $SM_OUTPUT_DIR/failure, where SageMaker takes a job's FailureReason.

    SageMaker returns the file's first 1024 characters as DescribeTrainingJob's FailureReason
    (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html);
    sagemaker-training writes its own "ExecuteUserScriptError ..." text there only when the file
    does not exist yet (sagemaker_training/files.py write_failure_file), so the reason a user
    should read comes first. Outside a training job (no SM_OUTPUT_DIR) nothing is written.
    """
    directory = output_dir or os.environ.get("SM_OUTPUT_DIR")
    if not directory:
        return None
    path = Path(directory) / FAILURE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(message[:1024])
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except DatasetError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        print(f"error: {reason}", file=sys.stderr)
        write_failure_reason(reason)
        return EXIT_DATA_ERROR
    except QualityGateFailed as exc:
        reason = f"QualityGateFailed: {exc}"
        print(f"error: {reason}", file=sys.stderr)
        write_failure_reason(reason)
        return EXIT_QUALITY_GATE
    return 0


if __name__ == "__main__":
    sys.exit(main())
