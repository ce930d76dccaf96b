"""``python -m local retrain``: train on the staged data plus the reviewers' labelled images, and
keep the new model only if it passes the quality gate on the unchanged test split.

1. Copies ``labelled/<class>/*`` out of local mode's data bucket into the labelled set kept
   beside the model cache (``<cache>/labelled``), so answers outlive ``local down``.
2. Trains with ``training.train --labelled`` through local.model_cache (the cache key covers the
   labelled set's contents), with the same arguments ``local up`` uses.
3. Reads the new model's test accuracy; below ``--min-accuracy`` (default: scones:minAccuracy's
   default) the new model is removed from the cache, so ``local up`` keeps serving the old one.

The next ``local down && local up`` serves the new model (``up`` trains with the labelled set
when it holds any image). Exit status: 0 kept, 3 refused by the gate.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

EXIT_GATE_FAILED = 3


def labelled_dir() -> Path:
    from local.model_cache import models_cache_dir

    return models_cache_dir().parent / "labelled"


def labelled_train_args(base: list[str]) -> list[str]:
    """``base`` plus ``--labelled DIR`` when the kept labelled set holds any image."""
    root = labelled_dir()
    if root.is_dir() and any(p.is_file() for p in root.rglob("*")):
        return [*base, "--labelled", str(root)]
    return base


def sync_labelled(s3: Any, bucket: str, target: Path) -> int:
    """Copy every labelled/ object of the bucket into ``target`` (same relative names)."""
    from review.cases import LABELLED_PREFIX

    copied = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{LABELLED_PREFIX}/"
    ):
        for obj in page.get("Contents", []):
            parts = obj["Key"].split("/")
            if len(parts) != 3 or not parts[2]:
                continue  # only labelled/<class>/<file>
            path = target / parts[1] / parts[2]
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                copied += 1
    return copied


def retrain(state: dict[str, Any], train_args: list[str], min_accuracy: float) -> int:
    from local.deploy import aws_client
    from local.model_cache import ensure_model

    root = labelled_dir()
    copied = sync_labelled(aws_client("s3", state["moto_url"]), state["bucket"], root)
    print(f"labelled: {copied} new image(s) copied into {root}")
    args = labelled_train_args(train_args)
    data_dir = Path(state["data_dir"])
    model_dir, reused = ensure_model(data_dir, args, data_dir.parent / "logs" / "retrain.log")
    metrics = json.loads((model_dir / "metrics.json").read_text())
    accuracy = float(metrics["test"]["accuracy"])
    print(f"data: {json.dumps(metrics.get('data', {}), sort_keys=True)}")
    print(f"model: {'reused' if reused else 'trained'} {model_dir}, test accuracy {accuracy:.4f}")
    if accuracy < min_accuracy:
        shutil.rmtree(model_dir, ignore_errors=True)
        print(f"quality gate: {accuracy:.4f} < {min_accuracy:.4f}: new model discarded")
        return EXIT_GATE_FAILED
    print("quality gate passed: `python -m local down && python -m local up` serves it")
    return 0
