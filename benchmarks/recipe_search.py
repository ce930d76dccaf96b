"""Recipe search: stratified k-fold cross-validation of training-recipe variants.

    .venv/bin/python -m benchmarks.recipe_search [--archive A] [--device cpu|cuda] [--workers N]
        [--folds 5] [--only NAME,NAME] [--budget-s S] [--jsonl PATH] [--out PATH]
    .venv/bin/python -m benchmarks.recipe_search --aggregate RUN.jsonl [...] [--min-folds 4]

How training/train.py's defaults were chosen (benchmarks/results/recipe_search.json). Each entry
of CONFIGS is a named set of overrides; `default` is training/train.py's current defaults. A job
(config, fold) trains on the dev archive's training images outside the fold with train.py's
optimiser, schedule, label smoothing and augmentations, and writes one JSON line: the mirror-TTA
logits of the held-out fold and of the test images. Jobs run in spawned worker processes (one
torch thread each, bfloat16 autocast) fold by fold, so a run cut short by --budget-s still leaves
complete early folds, and the lines of several runs aggregate together.

Only the training split chooses: configs are ranked by cross-validation accuracy. The test
split's accuracy (mean over the fold models) is recorded for information and never used to
choose anything; 200 test images that were chosen on would no longer measure anything.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from default_task import DEFAULT_CLASSES
from lambdas.defaults import DEFAULT_THRESHOLD
from training.augment import augment, mixup
from training.cifar import Split, resolve_archive
from training.metrics import fit_temperature, nll, softmax
from training.model import build_model
from training.preprocess import to_tensor
from training.stage import read_split, stage_dataset
from training.train import channel_stats, one_cycle_lr, parse_args, recipe_arch

RESULTS = Path(__file__).resolve().parent / "results" / "recipe_search.json"
COVERAGE = 0.75  # the coverage target: how accurate are the 75 % most confident?
_KNOBS = ("epochs", "batch_size", "lr", "weight_decay", "mixup_alpha", "cutout", "padding",
          "jitter", "label_smoothing", "seed")  # fmt: skip


def _train_defaults() -> dict[str, Any]:
    """training/train.py's defaults, plus knobs train.py fixes: warm-up share, zoom, dropout."""
    args = parse_args(["--train", "-", "--test", "-", "--model-dir", "-"])
    arch = {k: [int(v) for v in getattr(args, k).split(",")] for k in ("widths", "blocks")}
    return {**{k: getattr(args, k) for k in _KNOBS}, **arch, "warmup": 0.15, "scale": 0.0,
            "dropout": 0.0}  # fmt: skip


PREV = "previous_default"
# (name, parent, overrides of the parent)
_TABLE: list[tuple[str, str | None, dict[str, Any]]] = [
    ("default", None, {}),
    # The recipe before the search; run 1's base, and the parent of runs 1 and 2.
    (PREV, "default", {"mixup_alpha": 0.2, "padding": 4, "weight_decay": 5e-4}),
    # Run 1: one knob at a time.
    ("wd1e-3", PREV, {"weight_decay": 1e-3}),
    ("wd2e-3", PREV, {"weight_decay": 2e-3}),
    ("wd2.5e-4", PREV, {"weight_decay": 2.5e-4}),
    ("mix0", PREV, {"mixup_alpha": 0.0}),
    ("mix0.5", PREV, {"mixup_alpha": 0.5}),
    ("mix1", PREV, {"mixup_alpha": 1.0}),
    ("cut0", PREV, {"cutout": 0}),
    ("cut12", PREV, {"cutout": 12}),
    ("cut16", PREV, {"cutout": 16}),
    ("ls0", PREV, {"label_smoothing": 0.0}),
    ("ls0.2", PREV, {"label_smoothing": 0.2}),
    ("lr0.05", PREV, {"lr": 0.05}),
    ("lr0.2", PREV, {"lr": 0.2}),
    ("bs32", PREV, {"batch_size": 32}),
    ("bs128", PREV, {"batch_size": 128, "lr": 0.2}),
    ("drop0.2", PREV, {"dropout": 0.2}),
    ("scale0.3", PREV, {"scale": 0.3}),
    ("jit0.2", PREV, {"jitter": 0.2}),
    ("pad2", PREV, {"padding": 2}),
    ("warm0.05", PREV, {"warmup": 0.05}),
    ("e150", PREV, {"epochs": 150}),
    ("e450", PREV, {"epochs": 450}),
    # Run 1: other sizes, epochs set for about the same GPU time as previous_default.
    ("w48e135", PREV, {"widths": [48, 96, 192], "epochs": 135}),
    ("w64e75", PREV, {"widths": [64, 128, 256], "epochs": 75}),
    ("b2e150", PREV, {"blocks": [2, 2, 2], "epochs": 150}),
    ("w24e530", PREV, {"widths": [24, 48, 96], "epochs": 530}),
    # Run 2: a second seed, combinations of run 1's winners (`default` was "combo2"), bigger nets.
    (f"{PREV}_s2", PREV, {"seed": 2}),
    ("combo1", PREV, {"padding": 2, "weight_decay": 1e-3, "lr": 0.2}),
    ("combo3", "combo1", {"widths": [24, 48, 96], "epochs": 530}),
    ("big_w64b2", PREV, {"widths": [64, 128, 256], "blocks": [2, 2, 2]}),
    ("big_w64b2_p2", "big_w64b2", {"padding": 2, "weight_decay": 1e-3}),
    ("big_w96", PREV, {"widths": [96, 192, 384]}),
    ("e1000", PREV, {"epochs": 1000}),
    ("w16e1000", PREV, {"widths": [16, 32, 64], "epochs": 1000}),
    # Run 3: one knob at a time from `default` (run 3 called them c2_*).
    ("default_s2", "default", {"seed": 2}),
    ("default_wd2e-3", "default", {"weight_decay": 2e-3}),
    ("default_pad0", "default", {"padding": 0}),
    ("default_pad1", "default", {"padding": 1}),
    ("default_cut0", "default", {"cutout": 0}),
    ("default_cut12", "default", {"cutout": 12}),
    ("default_ls0.2", "default", {"label_smoothing": 0.2}),
    ("default_lr0.2", "default", {"lr": 0.2}),
    ("default_jit0.2", "default", {"jitter": 0.2}),
]
CONFIGS: dict[str, dict[str, Any]] = {}
for _name, _parent, _changes in _TABLE:
    CONFIGS[_name] = {**(CONFIGS[_parent] if _parent else _train_defaults()), **_changes}
# Names the GPU runs' JSON lines used (read by --aggregate); "c2_X" became "default_X".
LEGACY_NAMES = {"base": PREV, "base_s2": f"{PREV}_s2", "combo2": "default"}
# Run 1's weight-EMA variant (decay 0.999) predicted one class for every image (accuracy 0.5 on
# every fold): the run was broken, not the idea measured. Its lines are skipped.
EXCLUDED = {"ema999": "broken run: every validation prediction was one class (accuracy 0.5)"}


def stratified_folds(labels: np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """k disjoint sorted index sets covering all images, each class spread evenly over them.

    The split of the GPU runs (keep it: their JSON lines hold these indices)."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        for i, part in enumerate(np.array_split(idx[rng.permutation(len(idx))], k)):
            folds[i].extend(part.tolist())
    return [np.sort(np.array(f, dtype=np.int64)) for f in folds]


def _zoom(x: torch.Tensor, rng: np.random.Generator, scale: float) -> torch.Tensor:
    """Random zoom-in by a factor in [1 - scale, 1] at a random place (run 1's scale0.3 only)."""
    if scale <= 0:
        return x
    s = torch.from_numpy(rng.uniform(1 - scale, 1.0, len(x))).float()
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = s
    theta[:, :, 2] = torch.from_numpy(rng.uniform(-1, 1, (len(x), 2))).float() * (1 - s)[:, None]
    grid = functional.affine_grid(theta, list(x.shape), align_corners=False)
    return functional.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


def run_job(
    config: dict[str, Any], fold: int, folds: Sequence[np.ndarray], train: Split, test: Split,
    device: str = "cpu",
) -> dict[str, Any]:  # fmt: skip
    """Train on every fold but `fold`; the mirror-TTA logits of `fold` and of the test split."""
    c, dev, val_idx = config, torch.device(device), folds[fold]
    fit_idx = np.setdiff1d(np.arange(len(train)), val_idx)
    mean, std = channel_stats(train.images[fit_idx])
    x, y = to_tensor(train.images[fit_idx], mean, std), torch.from_numpy(train.labels[fit_idx])
    seed = 1000 * fold + 7 + 100 * c["seed"]  # the GPU runs' seeds
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # tta_flip: eval logits average the image and its mirror; precision "auto": bfloat16 on CPUs
    # that run it natively, as train.py does (on CUDA the autocast below does it).
    arch = recipe_arch(int(train.labels.max()) + 1, widths=c["widths"], blocks=c["blocks"],
                       tta_flip=True)  # fmt: skip
    model = build_model({**arch, "dropout": c["dropout"]})
    model = model.to(dev, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), c["lr"], momentum=0.9, nesterov=True,
                          weight_decay=c["weight_decay"])  # fmt: skip
    criterion = nn.CrossEntropyLoss(label_smoothing=c["label_smoothing"])
    bs = c["batch_size"]
    steps = len(x) // bs  # drop the ragged last batch, as train.py does
    total = steps * c["epochs"]
    autocast = {"device_type": dev.type, "dtype": torch.bfloat16, "enabled": dev.type == "cuda"}
    aug = {"padding": c["padding"], "cutout_size": c["cutout"], "jitter": c["jitter"],
           "mean": torch.tensor(mean), "std": torch.tensor(std)}  # fmt: skip
    step, start = 0, time.perf_counter()
    for _ in range(c["epochs"]):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        # One augment call per epoch on the CPU (train.py augments per batch): with 15 workers
        # sharing one GPU, fewer small CPU ops per step kept it busy.
        xa = augment(_zoom(x[order], rng, c["scale"]), rng, **aug)
        xa, ya = xa.to(dev, memory_format=torch.channels_last), y[order].to(dev)
        for b in range(steps):
            batch = slice(b * bs, (b + 1) * bs)
            xb, yb, yb2, lam = mixup(xa[batch], ya[batch], rng, c["mixup_alpha"])
            for group in opt.param_groups:
                group["lr"] = one_cycle_lr(step, total, c["lr"], c["warmup"])
            with torch.autocast(**autocast):
                logits = model(xb).float()
            loss = lam * criterion(logits, yb) + (1.0 - lam) * criterion(logits, yb2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    model.eval()
    with torch.inference_mode(), torch.autocast(**autocast):
        lv, lt = (model(to_tensor(a, mean, std).to(dev)).double().cpu().numpy()
                  for a in (train.images[val_idx], test.images))  # fmt: skip
    where = f"{torch.cuda.get_device_name(dev)} (bf16 autocast)" if dev.type == "cuda" else (
        f"cpu {platform.machine()} ({arch['precision']})")  # fmt: skip
    return {"secs": round(time.perf_counter() - start, 1), "device": where, "vi": val_idx.tolist(),
            "lv": np.round(lv, 5).tolist(), "lt": np.round(lt, 5).tolist()}  # fmt: skip


def _worker(queue: Any, lock: Any, jsonl: str, data: str, k: int, device: str, stop: float) -> None:
    torch.set_num_threads(1)  # many workers share the machine; one thread each
    torch.backends.cudnn.benchmark = True
    train, test = read_split(Path(data) / "train")[0], read_split(Path(data) / "test")[0]
    folds = stratified_folds(train.labels, k)
    while (item := queue.get()) is not None and time.time() < stop:
        name, config, fold = item
        try:
            row = {"name": name, "fold": fold, **run_job(config, fold, folds, train, test, device)}
        except Exception as exc:  # one failed job must not stop the others: record it
            row = {"name": name, "fold": fold, "error": repr(exc)}
        with lock, open(jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{name} fold {fold}: {row.get('secs', row.get('error'))}", flush=True)


def run_jobs(names: list[str], data: Path, args: argparse.Namespace, jsonl: Path) -> None:
    """Queue every (config, fold) fold by fold for `args.workers` spawned processes."""
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    queue, lock = ctx.Queue(), ctx.Lock()
    smoke = {"epochs": args.epochs} if args.epochs else {}
    for fold in range(args.folds):  # fold-major: a budget stop leaves the early folds complete
        for name in names:
            queue.put((name, {**CONFIGS[name], **smoke}, fold))
    stop = time.time() + (args.budget_s or math.inf)
    work = (queue, lock, str(jsonl), str(data), args.folds, args.device, stop)
    procs = [ctx.Process(target=_worker, args=work) for _ in range(args.workers)]
    for p in procs:
        queue.put(None)
        p.start()
    for p in procs:
        p.join()
    queue.cancel_join_thread()  # after a --budget-s stop, unread jobs must not block our exit


def read_jsonl(paths: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(jobs, failed jobs) from JSON lines; the GPU runs' names renamed, EXCLUDED ones dropped."""
    jobs, failed = [], []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            name = LEGACY_NAMES.get(row["name"], row["name"])
            row["name"] = "default_" + name[3:] if name.startswith("c2_") else name
            if row["name"] not in EXCLUDED:
                (failed if "error" in row else jobs).append(row)
    return jobs, failed


def aggregate(
    jobs: Iterable[dict[str, Any]], train_labels: np.ndarray, test_labels: np.ndarray, k: int,
    min_folds: int | None = None, hardware: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """One row per config that has folds 0..min_folds-1 (default: all k) of the k-fold split,
    computed over exactly those folds so that rows compare; sorted by CV accuracy."""
    use, expected = min_folds or k, stratified_folds(train_labels, k)
    by_name: dict[str, dict[int, dict[str, Any]]] = {}
    for job in (j for j in jobs if j["fold"] < use):
        if job["vi"] != expected[job["fold"]].tolist():
            raise ValueError(f"{job['name']} fold {job['fold']}: another data set or fold split")
        by_name.setdefault(job["name"], {}).setdefault(job["fold"], job)  # first one wins
    rows = []
    for name, per_fold in by_name.items():
        if len(per_fold) < use:
            continue
        acc, nlls, cov, test_acc, conf, right = [], [], [], [], [], []
        fold_jobs = list(per_fold.values())
        for job in fold_jobs:
            logits, labels = np.array(job["lv"]), train_labels[job["vi"]]
            temperature = fit_temperature(logits, labels)  # per fold, as train.py fits its own
            probs = softmax(logits, temperature)
            conf.append(probs.max(1))
            right.append(probs.argmax(1) == labels)
            acc.append(right[-1].mean())
            nlls.append(nll(logits, labels, temperature))
            cov.append((conf[-1] >= DEFAULT_THRESHOLD).mean())
            test_acc.append((np.array(job["lt"]).argmax(1) == test_labels).mean())
        conf_all, right_all = np.concatenate(conf), np.concatenate(right)
        accepted = right_all[conf_all >= DEFAULT_THRESHOLD]
        top = np.argsort(-conf_all, kind="stable")[: math.ceil(COVERAGE * len(conf_all))]
        rows.append({
            "name": name, "folds": use, "validation_images": len(conf_all),
            "cv_accuracy": _r(np.mean(acc)),
            "cv_accuracy_se": _r(np.std(acc, ddof=1) / math.sqrt(use)) if use > 1 else None,
            "nll_after_temperature": _r(np.mean(nlls)),
            "coverage_at_threshold": _r(np.mean(cov)),
            "accepted_accuracy_at_threshold": _r(accepted.mean()) if len(accepted) else None,
            f"oof_accepted_accuracy_at_coverage_{COVERAGE}": _r(right_all[top].mean()),
            "test_accuracy_info_only": _r(np.mean(test_acc)),
            "seconds_per_job": round(float(np.mean([j["secs"] for j in fold_jobs])), 1),
            "device": "; ".join(sorted({j.get("device") or hardware or "?" for j in fold_jobs})),
            "changes": _changes(name),
        })  # fmt: skip
    return sorted(rows, key=lambda r: (-r["cv_accuracy"], r["nll_after_temperature"]))


def _r(value: Any) -> float:
    return round(float(value), 4)


def _changes(name: str) -> str | None:
    """How a config differs from `default`, e.g. 'padding=4 weight_decay=0.0005'."""
    if name not in CONFIGS:
        return None
    base = CONFIGS["default"]
    return " ".join(f"{k}={v}" for k, v in CONFIGS[name].items() if v != base[k]) or "-"


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'config':21s} {'CV acc ± se':>13s} {'NLL':>6s} {'cov@thr':>7s} {'acc@thr':>7s} "
          f"{'acc@75%':>7s} {'test*':>6s} {'s/job':>5s}  changes from default")  # fmt: skip
    for r in rows:
        aa = r["accepted_accuracy_at_threshold"]
        print(f"{r['name']:21s} {r['cv_accuracy']:.4f}±{r['cv_accuracy_se'] or 0:.4f} "
              f"{r['nll_after_temperature']:6.3f} {r['coverage_at_threshold']:7.3f} "
              f"{'n/a' if aa is None else f'{aa:.4f}':>7s} "
              f"{r[f'oof_accepted_accuracy_at_coverage_{COVERAGE}']:7.4f} "
              f"{r['test_accuracy_info_only']:6.4f} {r['seconds_per_job']:5.0f}  "
              f"{r['changes']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.recipe_search")
    p.add_argument("--archive", help="dev archive (default: $SCONES_CIFAR_ARCHIVE or download)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda where available")
    p.add_argument("--workers", type=int, help="processes (default: 14 on cuda, else CPU count)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--min-folds", type=int, help="also rank configs with only the first N folds")
    p.add_argument("--only", help="comma-separated config names (default: all)")
    p.add_argument("--epochs", type=int, help="override every config's epochs (smoke runs)")
    p.add_argument("--budget-s", type=float, help="start no job after this many seconds")
    p.add_argument("--jsonl", help="append the job lines here (default: a new temp file)")
    p.add_argument("--aggregate", nargs="+", metavar="JSONL", help="only aggregate these lines")
    p.add_argument("--hardware", help="where the jobs ran (for lines without a device field)")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(CONFIGS)
    if unknown := sorted(set(names) - set(CONFIGS)):
        p.error(f"unknown config(s) {unknown}; choose from {list(CONFIGS)}")
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.workers = args.workers or (14 if args.device == "cuda" else os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="scones-recipe-search-") as tmp:
        data, archive = Path(tmp) / "data", resolve_archive(args.archive)
        stage_dataset(archive, data, list(DEFAULT_CLASSES))  # the product's own stager
        train, test = read_split(data / "train")[0], read_split(data / "test")[0]
        if not args.aggregate:
            if not args.jsonl:
                fd, args.jsonl = tempfile.mkstemp(prefix="recipe_search-", suffix=".jsonl")
                os.close(fd)
            print(f"{len(names)} configs x {args.folds} folds -> {args.jsonl}", flush=True)
            run_jobs(names, data, args, Path(args.jsonl))
    sources = [Path(s) for s in (args.aggregate or [args.jsonl])]
    if empty := [str(s) for s in sources if not s.is_file() or s.stat().st_size == 0]:
        print(f"no job lines in {empty}: nothing to aggregate (did --budget-s stop every job?)",
              file=sys.stderr)  # fmt: skip
        return 1
    jobs, failed = read_jsonl(sources)
    hardware = args.hardware or "; ".join(sorted({j["device"] for j in jobs if "device" in j}))
    tables = []
    for n in sorted({args.folds, args.min_folds or args.folds}, reverse=True):
        rows = aggregate(jobs, train.labels, test.labels, args.folds, n, hardware)
        tables.append({"folds_used": list(range(n)), "rows": rows})
        print(f"\n{len(rows)} configs with folds 0..{n - 1} of {args.folds} "
              "(* test accuracy: information only, never used to choose)")  # fmt: skip
        print_table(rows)
    result = {
        "benchmark": "recipe_search",
        "command": "python -m benchmarks.recipe_search " + shlex.join(argv or sys.argv[1:]),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "archive": archive.name, "hardware": hardware, "folds": args.folds,
        "train_images": len(train), "test_images": len(test),
        "validation_images_per_fold": sorted({len(j["vi"]) for j in jobs}),
        "selection": "configs ranked by mean accuracy over stratified folds of the training split "
        "only; NLL after a temperature fitted per fold; coverage and accepted accuracy at the "
        f"default threshold {DEFAULT_THRESHOLD}; accuracy of the {COVERAGE:.0%} most confident "
        "out-of-fold predictions (pooled, ranked by calibrated confidence)",
        "note": "test_accuracy_info_only (mean test accuracy of the fold models) is information "
        "only: the test split was never used to choose a config",
        "default": CONFIGS["default"], "excluded": EXCLUDED,
        "legacy_names": {**LEGACY_NAMES, "c2_X": "default_X"},
        "failed_jobs": [{k: j[k] for k in ("name", "fold", "error")} for j in failed],
        "tables": tables,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
