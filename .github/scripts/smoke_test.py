"""Post-deploy smoke test: one workflow execution on a staged image must succeed.

Usage (the deploy workflow passes the stack's outputs):

    python .github/scripts/smoke_test.py --bucket BUCKET --state-machine-arn ARN \
        [--key test/bicycle_s_000513.png | --prefix data/test/ | --image local.png]

The image is chosen, in order: `--key` (an object that must exist), `--image` (a local file
uploaded under `smoke-tests/` and removed afterwards), else the first PNG/JPEG under `--prefix`
in the stack's bucket (the staged test split). It starts one execution with the DESIGN event
`{"s3_bucket", "s3_key", "driver_id"}`, waits for it, and exits 0 only when it SUCCEEDED.
STANDARD state machines are polled with DescribeExecution; EXPRESS ones cannot be described,
so they run through StartSyncExecution instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
UPLOAD_PREFIX = "smoke-tests/"


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
    """The state machine input, as DESIGN.md defines it."""
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


def upload_image(s3: Any, bucket: str, path: Path, name: str) -> str:
    key = f"{UPLOAD_PREFIX}{name}{path.suffix.lower()}"
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
    arn = started["executionArn"]
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
    driver_id: str = "smoke-test",
    run_id: str | None = None,
    timeout_s: float = 600.0,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, ExecutionResult]:
    """Send one image through the state machine; returns (key used, result)."""
    name = execution_name(run_id)
    uploaded = False
    if key:
        ensure_key_exists(s3, bucket, key)
    elif image is not None:
        key = upload_image(s3, bucket, image, name)
        uploaded = True
    else:
        key = pick_staged_key(s3, bucket, prefix)
    event = build_event(bucket, key, driver_id)
    try:
        kind = sfn.describe_state_machine(stateMachineArn=state_machine_arn).get(
            "type", "STANDARD"
        )
        if kind == "EXPRESS":
            result = run_express(sfn, state_machine_arn, name, event)
        else:
            result = run_standard(
                sfn, state_machine_arn, name, event,
                timeout_s=timeout_s, poll_s=poll_s, sleep=sleep,
            )
    finally:
        # The uploaded image is ours alone; staged images belong to the stack.
        if uploaded:
            s3.delete_object(Bucket=bucket, Key=key)
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
    p.add_argument("--bucket", required=True, help="the stack's data bucket (output bucketName)")
    p.add_argument("--state-machine-arn", required=True, help="stack output stateMachineArn")
    p.add_argument("--key", default=None, help="an existing image key in the bucket")
    p.add_argument("--prefix", default="", help="where staged test images live in the bucket")
    p.add_argument("--image", type=Path, default=None, help="a local image to upload and send")
    p.add_argument("--driver-id", default="smoke-test")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (STANDARD)")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between status polls")
    args = p.parse_args(argv)
    if not args.bucket.strip() or not args.state_machine_arn.strip():
        p.error("--bucket and --state-machine-arn must be non-empty (missing stack outputs?)")
    if args.image is not None and not args.image.is_file():
        p.error(f"--image {args.image} is not a file")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import boto3

    s3 = boto3.client("s3")
    sfn = boto3.client("stepfunctions")
    try:
        key, result = run_smoke_test(
            s3, sfn,
            bucket=args.bucket,
            state_machine_arn=args.state_machine_arn,
            key=args.key,
            prefix=args.prefix,
            image=args.image,
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
    sys.exit(main())
