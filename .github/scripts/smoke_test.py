"""Post-deploy smoke test: one workflow execution on a staged image must succeed.

Usage (the deploy workflow passes the stack's outputs):

    python .github/scripts/smoke_test.py --bucket BUCKET --state-machine-arn ARN \
        [--image FILE_OR_DIR | --key intake/x.png | --prefix intake/]

The image is, in order: `--key` (an object already in the bucket), `--image` (a local file, or
a local folder such as a staged test split, uploaded under `--upload-prefix`), else the first
image under `--prefix` in the bucket. For a staged split folder plus `--model-data-url` (stack
output `modelDataUrl`), the deployed model is run locally through the serving code and the
image it classifies correctly with the highest confidence is sent: a smoke test checks the
plumbing, and an image below the confidence threshold would end in `LowConfidence` (a Fail
state) however healthy the stack is. Without a model, the folder's first image by name is used.

An upload under `intake/` also fires the stack's EventBridge rule, which starts an execution by
itself. So after an upload the script first waits `--trigger-wait` seconds for an execution whose
input names the uploaded key and follows that one; only if none appears does it start one
itself, with the DESIGN event `{"s3_bucket", "s3_key", "driver_id"}`. Either way exactly one
execution is judged, and the script exits 0 only when it SUCCEEDED. STANDARD state machines
are polled with DescribeExecution; EXPRESS ones can be neither listed nor described, so they
run through StartSyncExecution.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
# Where the stack's Lambdas may read images and where its EventBridge rule listens.
UPLOAD_PREFIX = "intake/smoke-tests/"


class SmokeTestError(Exception):
    """The smoke test could not run or the execution did not succeed."""


class NoTestImage(SmokeTestError):
    """No staged image was found to send through the workflow."""


class ExecutionTimedOut(SmokeTestError):
    """The execution was still running when the smoke test gave up waiting."""


@dataclass(frozen=True)
class ExecutionResult:
    execution_arn: str
    status: str
    output: str | None = None
    error: str | None = None
    cause: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


def build_event(bucket: str, key: str, driver_id: str) -> dict[str, str]:
    """The state machine input, as docs/design.md defines it."""
    return {"s3_bucket": bucket, "s3_key": key, "driver_id": driver_id}


def execution_name(run_id: str | None = None) -> str:
    """A unique, valid execution name (1-80 chars of [A-Za-z0-9-_])."""
    suffix = uuid.uuid4().hex[:12]
    base = f"smoke-{run_id}-{suffix}" if run_id else f"smoke-{suffix}"
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in base)
    return safe[:80]


def pick_staged_key(s3: Any, bucket: str, prefix: str) -> str:
    """First image under `prefix`, in key order, so reruns send the same image."""
    paginator = s3.get_paginator("list_objects_v2")
    keys: list[str] = []
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(
            obj["Key"]
            for obj in page.get("Contents", [])
            if obj["Key"].lower().endswith(IMAGE_SUFFIXES)
        )
    if not keys:
        raise NoTestImage(
            f"no image (.png/.jpg) under s3://{bucket}/{prefix}: stage the test split first, "
            "or pass --key or --image"
        )
    return min(keys)


def ensure_key_exists(s3: Any, bucket: str, key: str) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        raise NoTestImage(f"s3://{bucket}/{key} is not readable: {err}") from err


def pick_local_image(path: Path) -> Path:
    """`path` itself, or the first image (sorted by name) in the folder `path`."""
    if path.is_file():
        return path
    images = sorted(p for p in path.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise NoTestImage(f"no .png/.jpg image in {path}")
    return images[0]


def most_confident_index(probabilities: Any, labels: Any) -> int | None:
    """Index of the correctly classified row with the highest top probability, if any."""
    import numpy as np

    probs = np.asarray(probabilities)
    correct = np.flatnonzero(probs.argmax(axis=1) == np.asarray(labels))
    if correct.size == 0:
        return None
    return int(correct[np.argmax(probs[correct].max(axis=1))])


def choose_confident_image(test_dir: Path, model_path: Path) -> tuple[Path, float]:
    """The staged image the model is surest about (and right), with that confidence."""
    # The serving hooks themselves, so the choice matches what the endpoint will answer.
    from training.errors import DatasetError, ModelArtifactError
    from training.evaluate import predict_probabilities
    from training.stage import read_split

    try:
        split, _classes = read_split(test_dir)
        probabilities, _model = predict_probabilities(model_path, split.images)
    except (DatasetError, ModelArtifactError) as err:  # unreadable staged split or artifact
        raise SmokeTestError(f"cannot choose an image: {type(err).__name__}: {err}") from err
    best = most_confident_index(probabilities, split.labels)
    if best is None:
        raise NoTestImage(f"the model classifies no image in {test_dir} correctly")
    image = test_dir / split.filenames[best]
    if not image.is_file():
        raise NoTestImage(f"{image} is listed in {test_dir}/dataset.npz but missing")
    return image, float(probabilities[best].max())


def download_model(s3: Any, s3_uri: str, dest_dir: Path) -> Path:
    """Fetch s3://bucket/key (the training job's model.tar.gz) into dest_dir."""
    from botocore.exceptions import ClientError

    if not s3_uri.startswith("s3://") or "/" not in s3_uri[5:]:
        raise SmokeTestError(f"--model-data-url must be s3://bucket/key, got {s3_uri!r}")
    bucket, key = s3_uri[5:].split("/", 1)
    dest = dest_dir / Path(key).name
    try:
        s3.download_file(bucket, key, str(dest))
    except ClientError as err:
        raise SmokeTestError(f"cannot download {s3_uri}: {err}") from err
    return dest


def upload_image(s3: Any, bucket: str, path: Path, name: str, prefix: str = UPLOAD_PREFIX) -> str:
    key = f"{prefix}{name}{path.suffix.lower()}"
    content_type = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=content_type)
    return key


def run_standard(
    sfn: Any,
    state_machine_arn: str,
    name: str,
    event: dict[str, str],
    *,
    timeout_s: float,
    poll_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ExecutionResult:
    started = sfn.start_execution(
        stateMachineArn=state_machine_arn, name=name, input=json.dumps(event)
    )
    return wait_for(
        sfn, started["executionArn"], timeout_s=timeout_s, poll_s=poll_s, sleep=sleep, clock=clock
    )


def wait_for(
    sfn: Any,
    arn: str,
    *,
    timeout_s: float,
    poll_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ExecutionResult:
    deadline = clock() + timeout_s
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        status = desc["status"]
        if status in TERMINAL:
            return ExecutionResult(
                execution_arn=arn,
                status=status,
                output=desc.get("output"),
                error=desc.get("error"),
                cause=desc.get("cause"),
            )
        if clock() >= deadline:
            raise ExecutionTimedOut(
                f"execution {arn} still {status} after {timeout_s:.0f} s"
            )
        sleep(poll_s)


def input_names_key(raw_input: str | None, bucket: str, key: str) -> bool:
    """Whether an execution's input is the DESIGN event for s3://bucket/key."""
    try:
        event = json.loads(raw_input or "")
    except json.JSONDecodeError:
        return False
    return isinstance(event, dict) and event.get("s3_key") == key and (
        event.get("s3_bucket") in (None, bucket)
    )


def find_triggered_execution(
    sfn: Any,
    state_machine_arn: str,
    bucket: str,
    key: str,
    *,
    wait_s: float,
    poll_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str | None:
    """The execution the upload's S3 event started, if one shows up within `wait_s`."""
    deadline = clock() + wait_s
    seen: set[str] = set()
    while True:
        page = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=25)
        for execution in page.get("executions", []):
            arn = execution["executionArn"]
            if arn in seen:
                continue
            seen.add(arn)
            desc = sfn.describe_execution(executionArn=arn)
            if input_names_key(desc.get("input"), bucket, key):
                return arn
        if clock() >= deadline:
            return None
        sleep(poll_s)


def run_express(
    sfn: Any, state_machine_arn: str, name: str, event: dict[str, str]
) -> ExecutionResult:
    resp = sfn.start_sync_execution(
        stateMachineArn=state_machine_arn, name=name, input=json.dumps(event)
    )
    return ExecutionResult(
        execution_arn=resp["executionArn"],
        status=resp["status"],
        output=resp.get("output"),
        error=resp.get("error"),
        cause=resp.get("cause"),
    )


def run_smoke_test(
    s3: Any,
    sfn: Any,
    *,
    bucket: str,
    state_machine_arn: str,
    key: str | None = None,
    prefix: str = "",
    image: Path | None = None,
    upload_prefix: str = UPLOAD_PREFIX,
    trigger_wait_s: float = 30.0,
    driver_id: str = "smoke-test",
    run_id: str | None = None,
    timeout_s: float = 600.0,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, ExecutionResult]:
    """Send one image through the state machine; returns (key used, result)."""
    name = execution_name(run_id)
    kind = sfn.describe_state_machine(stateMachineArn=state_machine_arn).get("type", "STANDARD")
    uploaded = False
    if key:
        ensure_key_exists(s3, bucket, key)
    elif image is not None:
        key = upload_image(s3, bucket, pick_local_image(image), name, upload_prefix)
        uploaded = True
    else:
        key = pick_staged_key(s3, bucket, prefix)
    event = build_event(bucket, key, driver_id)
    if kind == "EXPRESS":
        return key, run_express(sfn, state_machine_arn, name, event)
    triggered = None
    if uploaded and trigger_wait_s > 0:
        triggered = find_triggered_execution(
            sfn, state_machine_arn, bucket, key, wait_s=trigger_wait_s, poll_s=poll_s, sleep=sleep
        )
    if triggered is not None:
        print(f"following the execution the upload triggered: {triggered}")
        result = wait_for(sfn, triggered, timeout_s=timeout_s, poll_s=poll_s, sleep=sleep)
    else:
        result = run_standard(
            sfn, state_machine_arn, name, event, timeout_s=timeout_s, poll_s=poll_s, sleep=sleep
        )
    return key, result


def summary_markdown(bucket: str, key: str, result: ExecutionResult) -> str:
    icon = "✅" if result.succeeded else "❌"
    lines = [
        f"### {icon} Smoke test: {result.status}",
        "",
        f"- image: `s3://{bucket}/{key}`",
        f"- execution: `{result.execution_arn}`",
    ]
    if result.output:
        lines.append(f"- output: `{result.output}`")
    if result.error or result.cause:
        lines.append(f"- error: `{result.error}` — {result.cause}")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bucket", required=True, help="stack output `bucket`")
    p.add_argument("--state-machine-arn", required=True, help="stack output `stateMachineArn`")
    p.add_argument("--key", default=None, help="an existing image key in the bucket")
    p.add_argument("--prefix", default="", help="where staged test images live in the bucket")
    p.add_argument(
        "--image", type=Path, default=None,
        help="a local image, or a folder whose first image (sorted) is used; uploaded",
    )
    p.add_argument("--upload-prefix", default=UPLOAD_PREFIX, help="bucket prefix for --image")
    p.add_argument(
        "--model-data-url", default="",
        help="stack output `modelDataUrl`: pick the folder's most confident correct image",
    )
    p.add_argument(
        "--trigger-wait", type=float, default=30.0,
        help="seconds to wait for the execution an upload triggers before starting one",
    )
    p.add_argument("--driver-id", default="smoke-test")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (STANDARD)")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between status polls")
    args = p.parse_args(argv)
    if not args.bucket.strip() or not args.state_machine_arn.strip():
        p.error("--bucket and --state-machine-arn must be non-empty (missing stack outputs?)")
    if args.image is not None and not args.image.exists():
        p.error(f"--image {args.image} does not exist")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import boto3

    s3 = boto3.client("s3")
    sfn = boto3.client("stepfunctions")
    try:
        image = args.image
        if image is not None and image.is_dir() and args.model_data_url and not args.key:
            with tempfile.TemporaryDirectory(prefix="smoke-model-") as tmp:
                model = download_model(s3, args.model_data_url, Path(tmp))
                image, confidence = choose_confident_image(image, model)
            print(f"chosen image: {image.name} (model confidence {confidence:.4f})")
        key, result = run_smoke_test(
            s3, sfn,
            bucket=args.bucket,
            state_machine_arn=args.state_machine_arn,
            key=args.key,
            prefix=args.prefix,
            image=image,
            upload_prefix=args.upload_prefix,
            trigger_wait_s=args.trigger_wait,
            driver_id=args.driver_id,
            run_id=os.environ.get("GITHUB_RUN_ID"),
            timeout_s=args.timeout,
            poll_s=args.poll,
        )
    except SmokeTestError as err:
        print(f"smoke test failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    report = summary_markdown(args.bucket, key, result)
    print(report)
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as fh:
            fh.write(report)
    if not result.succeeded:
        print(
            f"smoke test failed: execution ended {result.status} "
            f"(error={result.error!r}, cause={result.cause!r})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    # Run from the repo root so `training` imports; the script lives in .github/scripts.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
