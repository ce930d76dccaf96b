"""``python -m local batch s3://bucket/prefix/``: classify every object under a prefix.

Locally (after ``python -m local up``) the batch state machine deployed in the moto server is
``to_inline_map`` of the cloud definition (docs/batch.md says why): this command lists the
prefix with ListObjectsV2 (paginated, as the Distributed Map's ItemReader does) and passes the
keys in the execution input. With ``--stack NAME`` it starts the deployed stack's batch state
machine instead (outputs ``batchStateMachineArn`` and ``bucket`` from ``pulumi stack output``),
whose Distributed Map lists the prefix itself. Either way it waits, then prints the summary the
Summarize step wrote to ``s3://bucket/batch-results/<execution>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lambdas.batch_workflow_definition import (
    RESULTS_PREFIX,
    build_batch_definition,
    to_inline_map,
)
from lambdas.summarize_batch.logic import SUMMARY_NAME

BATCH_STATE_MACHINE = "scones-batch"
SUMMARIZE_FUNCTION = "scones-summarize-batch"
SUMMARIZE_HANDLER = "lambdas.summarize_batch.handler.lambda_handler"
# Local mode may also batch the staged test set; the cloud stack allows batch/ and intake/.
LOCAL_INPUT_PREFIXES = ("batch/", "intake/", "test/")
# Inline Map iterations run on the moto server's threads: more than this only adds contention
# on two cores (benchmarks/results/batch.json).
LOCAL_MAX_CONCURRENCY = 16


class BatchRequestError(ValueError):
    """The batch request cannot be started (bad URI, wrong bucket, missing stack output)."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` -> (bucket, prefix); the prefix must end in '/'."""
    if not uri.startswith("s3://"):
        raise BatchRequestError(f"expected s3://bucket/prefix/, got {uri!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket or not prefix or not prefix.endswith("/"):
        raise BatchRequestError(
            f"{uri!r}: give a bucket and a prefix ending in '/' (a prefix without it would also "
            "match its siblings: batch/day1 matches batch/day10/)"
        )
    return bucket, prefix


def local_definition(
    function_arns: Mapping[str, str],
    *,
    summarize_function_arn: str,
    review_topic_arn: str,
    routes: Mapping[str, str],
    bucket: str,
    max_concurrency: int = LOCAL_MAX_CONCURRENCY,
) -> dict[str, Any]:
    """The cloud batch definition, transformed by to_inline_map for moto."""
    return to_inline_map(
        build_batch_definition(
            function_arns,
            summarize_function_arn=summarize_function_arn,
            review_topic_arn=review_topic_arn,
            bucket=bucket,
            routes=routes,
            input_prefixes=LOCAL_INPUT_PREFIXES,
            max_concurrency=max_concurrency,
        )
    )


def deploy_batch(
    *,
    lam: Any,
    sfn: Any,
    role_arn: str,
    zip_bytes: bytes,
    environment: Mapping[str, str],
    function_arns: Mapping[str, str],
    review_topic_arn: str,
    routes: Mapping[str, str],
    bucket: str,
    max_concurrency: int = LOCAL_MAX_CONCURRENCY,
) -> dict[str, str]:
    """Create the summarize function (same zip, same environment as the others) and the local
    batch state machine; returns their ARNs."""
    summarize_arn = lam.create_function(
        FunctionName=SUMMARIZE_FUNCTION,
        Runtime="python3.12",
        Role=role_arn,
        Handler=SUMMARIZE_HANDLER,
        Code={"ZipFile": zip_bytes},
        Timeout=300,
        MemorySize=512,
        Environment={"Variables": dict(environment)},
    )["FunctionArn"]
    definition = local_definition(
        function_arns,
        summarize_function_arn=summarize_arn,
        review_topic_arn=review_topic_arn,
        routes=routes,
        bucket=bucket,
        max_concurrency=max_concurrency,
    )
    arn = sfn.create_state_machine(
        name=BATCH_STATE_MACHINE, definition=json.dumps(definition), roleArn=role_arn
    )["stateMachineArn"]
    return {"batch_state_machine_arn": arn, "summarize_function_arn": summarize_arn}


def list_items(s3: Any, bucket: str, prefix: str) -> list[dict[str, str]]:
    """Every key under the prefix, as the ItemReader's items (``{"Key": ...}``), paginated."""
    items = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        items += [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
    return items


@dataclass
class BatchRun:
    execution_arn: str
    status: str
    summary: dict[str, Any]
    wall_s: float
    listed: int | None  # keys the client listed (local mode), None when the Map lists them


def summary_key(execution_arn: str) -> str:
    return f"{RESULTS_PREFIX}{execution_arn.rsplit(':', 1)[-1]}/{SUMMARY_NAME}"


def run_batch(
    sfn: Any,
    s3: Any,
    state_machine_arn: str,
    bucket: str,
    prefix: str,
    *,
    inline: bool,
    timeout_s: float = 3600.0,
    poll_s: float = 0.2,
) -> BatchRun:
    """Start one batch execution, wait for it, and read its summary.json."""
    request: dict[str, Any] = {"prefix": prefix}
    listed = None
    started = time.perf_counter()
    if inline:
        request["items"] = list_items(s3, bucket, prefix)
        listed = len(request["items"])
    arn = sfn.start_execution(
        stateMachineArn=state_machine_arn,
        name=f"batch-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}",
        input=json.dumps(request),
    )["executionArn"]
    deadline = started + timeout_s
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            break
        if time.perf_counter() > deadline:
            raise TimeoutError(f"batch {arn} still running after {timeout_s:.0f}s")
        time.sleep(poll_s)
    wall = time.perf_counter() - started
    try:
        body = s3.get_object(Bucket=bucket, Key=summary_key(arn))["Body"].read()
        summary = json.loads(body)
    except Exception as exc:  # no summary: the request was refused, or Summarize itself failed
        summary = {
            "complete": False,
            "reason": f"{desc.get('error') or desc['status']}: {desc.get('cause') or exc}",
        }
    return BatchRun(arn, desc["status"], summary, wall, listed)


def stack_outputs(
    stack: str, runner: Callable[..., Any] = subprocess.run
) -> dict[str, Any]:
    """A deployed stack's outputs (``pulumi stack output --json``)."""
    try:
        proc = runner(
            ["pulumi", "stack", "output", "--json", "--stack", stack],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BatchRequestError("--stack needs the Pulumi CLI on PATH") from exc
    if proc.returncode != 0:
        raise BatchRequestError(f"pulumi stack output --stack {stack} failed: {proc.stderr}")
    outputs = json.loads(proc.stdout)
    missing = [k for k in ("batchStateMachineArn", "bucket") if not outputs.get(k)]
    if missing:
        raise BatchRequestError(f"stack {stack} has no output {missing}: deploy this version")
    return outputs


def format_summary(run: BatchRun) -> str:
    s = run.summary
    lines = [f"batch {run.execution_arn}: {run.status} in {run.wall_s:.1f}s"]
    if "items" in s:
        rate = s["items"] / run.wall_s if run.wall_s > 0 else 0.0
        lines.append(
            f"items {s['items']} (listed {s['listed']}): routed {s['routed']}, "
            f"failed {s['failed']}  |  {rate:.1f} images/s"
        )
        lines.append(f"routes   {json.dumps(s['routes'])}")
        lines.append(f"failures {json.dumps(s['failures'])}")
        if s.get("summary_uri"):
            lines.append(f"summary  {s['summary_uri']}")
    lines.append(("complete: " if s.get("complete") else "INCOMPLETE: ") + str(s.get("reason")))
    return "\n".join(lines)


def cmd_batch(args: argparse.Namespace, state: Mapping[str, Any] | None) -> int:
    """The CLI subcommand; ``state`` is local mode's state (None with --stack)."""
    import boto3

    from local.deploy import aws_client

    try:
        bucket, prefix = parse_s3_uri(args.uri)
        if args.stack:
            outputs = stack_outputs(args.stack)
            expected, arn = outputs["bucket"], outputs["batchStateMachineArn"]
            sfn, s3 = boto3.client("stepfunctions"), boto3.client("s3")
        else:
            assert state is not None
            expected, arn = state["bucket"], state["batch_state_machine_arn"]
            sfn = aws_client("stepfunctions", state["moto_url"])
            s3 = aws_client("s3", state["moto_url"])
        if bucket != expected:
            raise BatchRequestError(f"the batch reads bucket {expected!r}, not {bucket!r}")
    except BatchRequestError as exc:
        print(f"batch: {exc}", file=sys.stderr)
        return 2
    run = run_batch(sfn, s3, arn, bucket, prefix, inline=not args.stack, timeout_s=args.timeout)
    print(json.dumps(run.summary, indent=2) if args.json else format_summary(run))
    return 0 if run.status == "SUCCEEDED" else 1


def add_parser(sub: Any) -> None:
    batch = sub.add_parser("batch", help="classify every object under s3://bucket/prefix/")
    batch.add_argument("uri", help="s3://bucket/prefix/ (the prefix ends in '/')")
    batch.add_argument("--stack", help="run on this deployed Pulumi stack instead of locally")
    batch.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait")
    batch.add_argument("--json", action="store_true", help="print the summary as JSON")

