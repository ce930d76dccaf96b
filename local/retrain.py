"""``python -m local retrain``: train on the staged data plus the reviewers' labelled images, and
keep the new model only if it passes the quality gate on the unchanged test split.

Local mode:

1. Copies ``labelled/<class>/*`` out of local mode's data bucket into the labelled set kept
   beside the model cache (``<cache>/labelled``), so answers outlive ``local down``.
2. Trains with ``training.train --labelled`` through local.model_cache (the cache key covers the
   labelled set's contents), with the same arguments ``local up`` uses.
3. Reads the new model's test accuracy; below ``--min-accuracy`` (default: scones:minAccuracy's
   default) the new model is removed from the cache, so ``local up`` keeps serving the old one.

The next ``local down && local up`` serves the new model (``up`` trains with the labelled set
when it holds any image). Exit status: 0 kept, 3 refused by the gate.

In the cloud (``--stack NAME`` or ``--outputs FILE``; the deployer's credentials and Pulumi CLI):

1. Lists ``labelled/<class>/*`` in the stack's bucket and writes a SageMaker manifest file of
   exactly those keys to ``manifests/labelled/<digest>.json`` (``labelled_manifest``; the
   digest is of the sorted keys, which carry each image's content hash, so one labelled set has
   one digest and labels arriving later are not in it).
2. ``pulumi config set scones:labelledSnapshot <digest>`` and ``pulumi up --yes``: the program
   gives the training job a ``labelled`` channel over that manifest (components/
   model_training.py); the digest is part of the job's name, so a new set means a new job.
   The job trains on staged data + labelled images (training.labelled deduplicates them by
   pixels and never adds a test image) and its quality gate exits non-zero below
   scones:minAccuracy: the job fails, ``pulumi up`` stops before the endpoint (which keeps its
   model), and the previous snapshot is set back. A passing job is registered and the endpoint
   updated blue/green, as on any deploy.
3. Prints the counts the job used (``metrics.json`` ``data``, next to model.tar.gz).
Exit status: 0 deployed (or nothing new to train on), 3 refused by the gate / deploy failed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from components.bucket_layout import LABELLED_MANIFESTS_PREFIX, LABELLED_PREFIX

EXIT_GATE_FAILED = 3
SNAPSHOT_KEY = "scones:labelledSnapshot"
_LABELLED_KEY = re.compile(rf"^{LABELLED_PREFIX}/[^/]+/[^/]+$")


def labelled_keys(s3: Any, bucket: str) -> list[str]:
    """Every ``labelled/<class>/<file>`` key in the bucket, sorted."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{LABELLED_PREFIX}/"
    ):
        keys += [o["Key"] for o in page.get("Contents", []) if _LABELLED_KEY.match(o["Key"])]
    return sorted(keys)


def retrain_status(
    keys: Iterable[str], trained: set[str] | None, retrain_after: int
) -> dict[str, Any]:
    """How many labels are new since the last retrain, and whether that reaches N."""
    keys = set(keys)
    new = len(keys - trained) if trained is not None else len(keys)
    return {
        "known": True,
        "labelled": len(keys),
        "new": new,
        "retrain_after": retrain_after,
        "due": new >= retrain_after,
    }


def labelled_manifest(bucket: str, keys: Sequence[str]) -> tuple[str, bytes]:
    """(digest, body) of the SageMaker manifest file listing exactly ``keys``.

    The format is S3DataSource's ManifestFile: a JSON array whose first element is
    ``{"prefix": "s3://bucket/prefix/"}`` followed by keys relative to it (SageMaker API
    reference, S3DataSource,
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html). The
    prefix is ``labelled/``, so each entry is ``<class>/<file>``, the class folders
    training.labelled reads (that the channel directory keeps these relative paths is not on
    that page: components/model_training.py says how a retrain shows it).
    """
    relative = sorted(k.removeprefix(f"{LABELLED_PREFIX}/") for k in keys)
    if not relative:
        raise ValueError("no labelled images: nothing to snapshot")
    digest = hashlib.sha256("\n".join(relative).encode()).hexdigest()[:16]
    body = json.dumps([{"prefix": f"s3://{bucket}/{LABELLED_PREFIX}/"}, *relative], indent=0)
    return digest, body.encode()


def manifest_key(digest: str) -> str:
    return f"{LABELLED_MANIFESTS_PREFIX}/{digest}.json"


def trained_labelled_keys(s3: Any, bucket: str, snapshot: str) -> set[str]:
    """The labelled/ keys the current model trained on (the snapshot's manifest)."""
    if not snapshot:
        return set()
    body = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key(snapshot))["Body"].read())
    return {f"{LABELLED_PREFIX}/{k}" for k in body[1:]}


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


Runner = Callable[..., subprocess.CompletedProcess]


def retrain_after_labels(outputs: dict[str, Any] | None = None) -> int:
    """N: the stack's scones:retrainAfterLabels output, else the setting's default (local mode,
    or an older stack without the output): one default for both."""
    from components.settings import Settings

    value = (outputs or {}).get("retrainAfterLabels")
    return int(value) if value else Settings.from_mapping(lambda _key: None).retrain_after_labels


def _pulumi(runner: Runner, stack: str, *args: str) -> subprocess.CompletedProcess:
    return runner(["pulumi", *args, "--stack", stack], capture_output=True, text=True, check=False)


def retrain_cloud(
    stack: str,
    outputs: dict[str, Any],
    s3: Any,
    *,
    runner: Runner = subprocess.run,
    force: bool = False,
) -> int:
    """Snapshot labelled/, point the stack at it and `pulumi up` (see the module docstring).

    Trains only when the labelled set differs from the one the model trained on and, unless
    ``force``, at least ``retrainAfterLabels`` labels are new."""
    bucket = str(outputs["bucket"])
    current = str(outputs.get("labelledSnapshot") or "")
    keys = labelled_keys(s3, bucket)
    status = retrain_status(
        keys, trained_labelled_keys(s3, bucket, current), retrain_after_labels(outputs)
    )
    per_class: dict[str, int] = {}
    for key in keys:
        per_class[key.split("/")[1]] = per_class.get(key.split("/")[1], 0) + 1
    print(
        f"labelled: {len(keys)} image(s) {json.dumps(per_class, sort_keys=True)}, "
        f"{status['new']} new since the last retrain (retrainAfterLabels "
        f"{status['retrain_after']})"
    )
    if not keys:
        print("nothing labelled yet: nothing to retrain on")
        return 0
    digest, body = labelled_manifest(bucket, keys)
    if digest == current:
        print(f"the model already trained on this labelled set ({digest})")
        return 0
    if not status["due"] and not force:
        print("fewer new labels than retrainAfterLabels: not retraining (--force to anyway)")
        return 0
    s3.put_object(
        Bucket=bucket, Key=manifest_key(digest), Body=body, ContentType="application/json"
    )
    print(f"manifest: s3://{bucket}/{manifest_key(digest)}")
    steps = [("config", "set", SNAPSHOT_KEY, digest), ("up", "--yes")]
    for step in steps:
        print(f"$ pulumi {' '.join(step)} --stack {stack}", flush=True)
        proc = _pulumi(runner, stack, *step)
        if proc.returncode != 0:
            print(proc.stdout[-4000:] + proc.stderr[-4000:])
            if step[0] == "up":
                # Back to what the live stack trained on: the endpoint kept that model.
                restore = ("config", "set", SNAPSHOT_KEY, current) if current else (
                    "config", "rm", SNAPSHOT_KEY
                )
                _pulumi(runner, stack, *restore)
                print(
                    "retrain failed (a quality gate below scones:minAccuracy fails the training "
                    "job): the endpoint keeps its current model; scones:labelledSnapshot is "
                    f"back to {current or '(unset)'}"
                )
            return EXIT_GATE_FAILED
    new_outputs = json.loads(_pulumi(runner, stack, "stack", "output", "--json").stdout or "{}")
    job = new_outputs.get("trainingJobName", "")
    # ModelRegistration copies metrics.json next to model.tar.gz.
    model_url = str(new_outputs.get("modelDataUrl", ""))
    metrics_key = model_url.removeprefix(f"s3://{bucket}/").rsplit("/", 1)[0] + "/metrics.json"
    try:
        metrics = json.loads(s3.get_object(Bucket=bucket, Key=metrics_key)["Body"].read())
    except Exception as exc:  # the deploy succeeded; the report is a convenience
        print(f"deployed {job}; metrics.json not readable ({type(exc).__name__})")
        return 0
    print(f"data: {json.dumps(metrics.get('data', {}), sort_keys=True)}")
    print(
        f"deployed {job}: test accuracy {metrics.get('test', {}).get('accuracy')} passed the "
        "quality gate; registered, endpoint updated blue/green"
    )
    return 0
