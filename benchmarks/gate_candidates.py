"""Measure safety-gate candidates offline on one or more trained artifacts (docs/safety.md).

    python -m benchmarks.gate_candidates MODEL_DIR [MODEL_DIR ...]

For each artifact and each part of benchmarks/shifted_inputs.py (``tune``: validation-split
transformations and tuning images, the only part choices are made on; ``report``: test-split
transformations and held-out images) it computes, through the serving code's decode, resize
and forward pass, the share of each kind that would be routed with a wrong class (or routed at
all when it is no vehicle) and the clean coverage, for: the confidence threshold alone; plus
input-quality ranges (training.gate) at several quantiles; plus a feature-space distance
(Mahalanobis to the nearest class mean, k-NN cosine distance) at two validation quantiles.
No workflow: the end-to-end figures come from safe_routing_benchmark.
Writes benchmarks/results/gate_candidates.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.shifted_inputs import KINDS, build_sets

RESULTS = Path(__file__).resolve().parent / "results" / "gate_candidates.json"
THRESHOLD = 0.93


def _arrays(model: Any, images: Sequence[bytes]) -> np.ndarray:
    from training.inference import DECODE_MIN_SIDE
    from training.preprocess import decode_image, resize_to

    side = (DECODE_MIN_SIDE, DECODE_MIN_SIDE)
    return np.stack([resize_to(decode_image(b, min_size=side), model.input_size) for b in images])


def measure(model_dir: str, archive: str, per_kind: int) -> dict[str, Any]:
    from training import inference
    from training.cifar import load_cifar
    from training.gate import (
        COLOURLESS_BELOW,
        QUALITY_STATISTICS,
        _distances,
        fit_gate,
        quality_statistics,
    )
    from training.train import stratified_split

    model = inference.model_fn(model_dir)
    data = load_cifar(archive, model.classes)
    fit_idx, _ = stratified_split(data.train.labels, 0.15, np.random.default_rng(0))
    _, fit_feats = inference._forward(data.train.images[fit_idx], model)
    sets: dict[str, dict[str, Any]] = {}
    for part in ("tune", "report"):
        built = build_sets(part, archive, model.classes, per_kind)
        built["clean"] = build_sets(part, archive, model.classes, 0, kinds=("clean",))["clean"]
        for kind in KINDS:
            arr = _arrays(model, built[kind].images)
            probs, feats = inference._forward(arr, model)
            labels = np.array([-1 if v is None else v for v in built[kind].labels])
            sets[f"{part}/{kind}"] = {
                "probs": probs, "feats": feats, "labels": labels,
                "stats": quality_statistics(arr),
            }
    val = sets["tune/clean"]
    gate = fit_gate(data.train.images, fit_feats, data.train.labels[fit_idx], val["feats"],
                    len(model.classes))
    train_stats = quality_statistics(data.train.images)
    unit = fit_feats / np.linalg.norm(fit_feats, axis=1, keepdims=True)

    def maha(s: dict) -> np.ndarray:
        return _distances(s["feats"], gate.means, gate.whitening)

    def knn(s: dict) -> np.ndarray:
        f = s["feats"] / np.maximum(np.linalg.norm(s["feats"], axis=1, keepdims=True), 1e-9)
        return 1.0 - np.sort(f @ unit.T, axis=1)[:, -5]

    scores: dict[str, Callable[[dict], np.ndarray]] = {
        "mahalanobis": maha, "knn": knn,
    }

    def quality(q: float, colourless: float = 0.0) -> Callable[[dict], np.ndarray]:
        bounds = {n: np.quantile(train_stats[n], [q, 1 - q]) for n in QUALITY_STATISTICS}
        bounds["saturation"] = np.maximum(bounds["saturation"], colourless)

        def flag(s: dict) -> np.ndarray:
            out = np.zeros(len(s["labels"]), bool)
            for n, (lo, hi) in bounds.items():
                out |= (s["stats"][n] < lo) | (s["stats"][n] > hi)
            return out
        return flag

    candidates: dict[str, Callable[[dict], np.ndarray]] = {
        "confidence only": lambda s: np.zeros(len(s["labels"]), bool)
    }
    for q in (0.0025, 0.005, 0.01, 0.02):
        candidates[f"input quality q={q}"] = quality(q)
    candidates[f"input quality q=0.005, colourless < {COLOURLESS_BELOW}"] = quality(
        0.005, COLOURLESS_BELOW)
    chosen = float(np.quantile(maha(val), 0.995))
    candidates["chosen: q=0.005, colourless, mahalanobis val q=0.995"] = (
        lambda g: lambda s: g(s) | (maha(s) > chosen)
    )(quality(0.005, COLOURLESS_BELOW))
    for name, fn in scores.items():
        for vq in (0.95, 0.99):
            limit = float(np.quantile(fn(val), vq))
            candidates[f"{name} val q={vq}"] = (lambda f, t: lambda s: f(s) > t)(fn, limit)
            candidates[f"input quality q=0.005 + {name} val q={vq}"] = (
                lambda f, t, g: lambda s: g(s) | (f(s) > t)
            )(fn, limit, quality(0.005))
    rows: dict[str, Any] = {}
    for cname, rejects in candidates.items():
        for part in ("tune", "report"):
            row: dict[str, Any] = {}
            for kind in KINDS:
                s = sets[f"{part}/{kind}"]
                routed = (s["probs"].max(1) >= THRESHOLD) & ~rejects(s)
                wrong = routed & ((s["labels"] < 0) | (s["probs"].argmax(1) != s["labels"]))
                row[kind] = round(float(wrong.mean()), 4)
                if kind == "clean":
                    row["clean_routed"] = round(float(routed.mean()), 4)
                    row["clean_accuracy"] = round(
                        float((routed & ~wrong).sum() / max(routed.sum(), 1)), 4)
            rows.setdefault(cname, {})[part] = row
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gate_candidates")
    p.add_argument("model_dirs", nargs="+")
    p.add_argument("--per-kind", type=int, default=100)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    from training.cifar import resolve_archive

    archive = str(resolve_archive(None))
    results = {}
    for model_dir in args.model_dirs:
        rows = measure(model_dir, archive, args.per_kind)
        results[model_dir] = rows
        print(f"== {model_dir} (misrouted % per kind; clean: routed % at accuracy %)")
        for cname, parts in rows.items():
            for part, row in parts.items():
                kinds = " ".join(f"{k[:7]}:{row[k] * 100:3.0f}" for k in KINDS[1:])
                print(f"{cname:42s} {part:6s} clean {row['clean_routed']:.3f}@"
                      f"{row['clean_accuracy']:.3f} | {kinds}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threshold": THRESHOLD, "models": results}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
