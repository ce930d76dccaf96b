"""Safe routing end to end: how each kind of input is decided by the local workflow.

    python -m local up
    python -m benchmarks.safe_routing_benchmark        # then: python -m local down

Uploads the report part of benchmarks/shifted_inputs.py (test-split photos, clean and shifted;
flat and random-noise images; photos that are not vehicles, none used for tuning) under
``batch/safety/<kind>/`` of local mode's bucket, starts one execution per image on the routing
state machine (the same handlers, gate and catches as the cloud), and prints per kind the
shares routed, misrouted (routed with the wrong class, or routed although not a vehicle), sent
to review (by reason) and failed. Writes benchmarks/results/safe_routing.json.

Targets (issue 15, docs/safety.md): every shifted or foreign kind at most 2 % misrouted; clean
photos at least 60 % routed at 98 % accuracy or better.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.shifted_inputs import KINDS, build_sets

RESULTS = Path(__file__).resolve().parent / "results" / "safe_routing.json"
MAX_MISROUTED = 0.02
MIN_CLEAN_ROUTED = 0.60
MIN_CLEAN_ACCURACY = 0.98
PREFIX = "batch/safety"


def _reason(message: str) -> str:
    """The ReviewReason a review message starts with ("input_quality: ..."), else "other"."""
    from lambdas.review_reasons import ReviewReason

    parts = [p.strip() for p in message.split(":")]
    if parts[0] not in {r.value for r in ReviewReason}:
        return "other"
    if parts[0] == ReviewReason.OUT_OF_DISTRIBUTION and len(parts) > 1:
        return f"{parts[0]} ({parts[1]})"  # which gate check: input quality, feature distance
    return parts[0]


def tally(kind: str, results: Sequence[Any], classes: Sequence[str]) -> dict[str, Any]:
    """Shares of one kind's results (local.runner.Result) and the reasons it went to review."""
    n = len(results)
    routed = [r for r in results if r.outcome.startswith("routed:")]
    wrong = [r for r in routed if r.true_label is None or r.predicted != r.true_label]
    review = [r for r in results if r.outcome == "needs_review"]
    failed = [r for r in results if r not in routed and r not in review]
    return {
        "kind": kind,
        "requests": n,
        "routed": len(routed) / n,
        "misrouted": len(wrong) / n,
        "review": len(review) / n,
        "failed": len(failed) / n,
        "routed_accuracy": (len(routed) - len(wrong)) / len(routed) if routed else None,
        "review_reasons": dict(sorted(Counter(_reason(r.message) for r in review).items())),
        "failures": dict(sorted(Counter(r.outcome for r in failed).items())),
    }


def verdict(rows: dict[str, dict[str, Any]]) -> list[str]:
    """The targets each kind misses (empty: all met)."""
    misses = []
    for kind, row in rows.items():
        if kind == "clean":
            acc = row["routed_accuracy"] or 0.0
            if row["routed"] < MIN_CLEAN_ROUTED or acc < MIN_CLEAN_ACCURACY:
                misses.append(f"clean: {row['routed']:.1%} routed at {acc:.1%}")
        elif row["misrouted"] > MAX_MISROUTED:
            misses.append(f"{kind}: {row['misrouted']:.1%} misrouted")
    return misses


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.safe_routing_benchmark")
    p.add_argument("--state-dir", type=Path, default=Path(".scones"))
    p.add_argument("--per-kind", type=int, default=100, help="images per kind (clean: all)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    from local.deploy import aws_client
    from local.runner import EventSpec, run_events

    state_path = args.state_dir / "state.json"
    if not state_path.is_file():
        print("not up: run `python -m local up` first", file=sys.stderr)
        return 2
    state = json.loads(state_path.read_text())
    classes = list(state["classes"])
    kinds = [k for k in args.kinds.split(",") if k]
    from training.cifar import resolve_archive

    # The archive local up staged from: $SCONES_CIFAR_ARCHIVE, else the verified download.
    archive_path = str(resolve_archive(None))
    sets = build_sets("report", archive_path, classes, args.per_kind, kinds=kinds)
    clean_all = "clean" in kinds
    if clean_all:
        sets["clean"] = build_sets("report", archive_path, classes, 0, kinds=("clean",))["clean"]

    s3 = aws_client("s3", state["moto_url"])
    sfn = aws_client("stepfunctions", state["moto_url"])
    specs: list[EventSpec] = []
    owner: list[str] = []
    for kind, items in sets.items():
        for i, (data, label) in enumerate(zip(items.images, items.labels, strict=True)):
            ext = "jpg" if data[:2] == b"\xff\xd8" else "png"
            key = f"{PREFIX}/{kind}/{i:04d}.{ext}"
            s3.put_object(Bucket=state["bucket"], Key=key, Body=data)
            true = classes[label] if label is not None else None
            specs.append(
                EventSpec({"s3_bucket": state["bucket"], "s3_key": key}, key, true_label=true)
            )
            owner.append(kind)
    print(f"{len(specs)} executions ({', '.join(f'{k} {len(v.images)}' for k, v in sets.items())})")
    results, wall = run_events(sfn, state["state_machine_arn"], specs, args.concurrency)
    rows = {
        kind: tally(kind, [r for r, o in zip(results, owner, strict=True) if o == kind], classes)
        for kind in sets
    }
    print(f"{'kind':14s} {'n':>4s} {'routed':>7s} {'misrouted':>9s} {'review':>7s} "
          f"{'failed':>6s}  review reasons")
    for row in rows.values():
        print(
            f"{row['kind']:14s} {row['requests']:4d} {row['routed']:7.1%} "
            f"{row['misrouted']:9.1%} {row['review']:7.1%} {row['failed']:6.1%}  "
            f"{row['review_reasons']}"
        )
    clean = rows.get("clean")
    if clean and clean["routed_accuracy"] is not None:
        print(f"clean routed accuracy {clean['routed_accuracy']:.1%}")
    misses = verdict(rows)
    print("targets met" if not misses else "targets missed: " + "; ".join(misses))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "safe_routing",
                "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "model_dir": state.get("model_dir"),
                "threshold": state.get("threshold"),
                "targets": {
                    "max_misrouted": MAX_MISROUTED,
                    "min_clean_routed": MIN_CLEAN_ROUTED,
                    "min_clean_accuracy": MIN_CLEAN_ACCURACY,
                },
                "kinds": rows,
                "targets_missed": misses,
                "wall_s": wall,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
