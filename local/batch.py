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
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdas.batch_workflow_definition import (
    LOCAL_CHUNK_ITEMS,
    RESULTS_PREFIX,
    build_batch_definition,
    to_inline_map,
)
from lambdas.defaults import RUNTIME
from lambdas.s3_uri import S3UriError, parse_s3_uri
from lambdas.summarize_batch.logic import COMPLETE_REASON, SUMMARY_NAME

BATCH_STATE_MACHINE = "scones-batch"
SUMMARIZE_FUNCTION = "scones-summarize-batch"
SUMMARIZE_HANDLER = "lambdas.summarize_batch.handler.lambda_handler"
# Local mode may also batch the staged test set; the cloud stack allows batch/ and intake/.
LOCAL_INPUT_PREFIXES = ("batch/", "intake/", "test/")
# Inline Map iterations run on the moto server's threads; on two cores 8, 16 and 32 gave the
# same throughput within the machine's noise (benchmarks/results/batch*.json), 8 the best twice.
LOCAL_MAX_CONCURRENCY = 8


class BatchRequestError(ValueError):
    """The batch request cannot be started (bad URI, wrong bucket, missing stack output)."""


def parse_batch_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` -> (bucket, prefix); the prefix must end in '/'."""
    try:
        location = parse_s3_uri(uri)
    except S3UriError as exc:
        raise BatchRequestError(f"expected s3://bucket/prefix/, got {uri!r}") from exc
    if not location.prefix or not uri.endswith("/"):
        raise BatchRequestError(
            f"{uri!r}: give a bucket and a prefix ending in '/' (a prefix without it would also "
            "match its siblings: batch/day1 matches batch/day10/)"
        )
    return location.bucket, location.prefix + "/"


def local_definition(
    function_arns: Mapping[str, str],
    *,
    summarize_function_arn: str,
    review_topic_arn: str,
    review_queue_url: str,
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
            review_queue_url=review_queue_url,
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
    build_dir: Path,
    environment: Mapping[str, str],
    function_arns: Mapping[str, str],
    review_topic_arn: str,
    review_queue_url: str,
    routes: Mapping[str, str],
    bucket: str,
    max_concurrency: int = LOCAL_MAX_CONCURRENCY,
) -> dict[str, str]:
    """Create the summarize function (its own zip, in ``build_dir``; the same environment as
    the others) and the local batch state machine; returns their ARNs."""
    from lambdas.package import build_function_zip

    zip_path = build_function_zip(build_dir / "summarize_batch.zip", SUMMARIZE_HANDLER)
    summarize_arn = lam.create_function(
        FunctionName=SUMMARIZE_FUNCTION,
        Runtime=RUNTIME,
        Role=role_arn,
        Handler=SUMMARIZE_HANDLER,
        Code={"ZipFile": zip_path.read_bytes()},
        Timeout=300,
        MemorySize=512,
        Environment={"Variables": dict(environment)},
    )["FunctionArn"]
    definition = local_definition(
        function_arns,
        summarize_function_arn=summarize_arn,
        review_topic_arn=review_topic_arn,
        review_queue_url=review_queue_url,
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
    execution_arns: list[str]
    status: str  # SUCCEEDED only if every execution did
    summary: dict[str, Any]
    wall_s: float
    listed: int | None  # keys the client listed (local mode), None when the Map lists them


def summary_key(execution_arn: str) -> str:
    return f"{RESULTS_PREFIX}{execution_arn.rsplit(':', 1)[-1]}/{SUMMARY_NAME}"


def merge_summaries(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One summary for a batch run as several executions (local chunks): counts added."""
    if len(summaries) == 1:
        return dict(summaries[0])
    counts: dict[str, Counter[str]] = {k: Counter() for k in ("routes", "reviews", "failures")}
    merged: dict[str, Any] = {"items": 0, "listed": 0, "routed": 0, "reviewed": 0, "failed": 0}
    lists: dict[str, list[str]] = {"unaccounted": [], "unlisted": [], "duplicates": []}
    for s in summaries:
        for k, counter in counts.items():
            counter.update(s.get(k, {}))
        for k in merged:
            merged[k] += int(s.get(k, 0))
        for k, values in lists.items():
            values += s.get(k, [])
    reasons = [s["reason"] for s in summaries if not s.get("complete")]
    return {
        **merged,
        **{k: dict(sorted(counter.items())) for k, counter in counts.items()},
        **{k: sorted(v) for k, v in lists.items()},
        "complete": all(s.get("complete") for s in summaries),
        "reason": "; ".join(reasons) or COMPLETE_REASON,
        "summary_uris": [s.get("summary_uri") for s in summaries],
        "executions": len(summaries),
    }


def _wait(sfn: Any, arn: str, deadline: float, poll_s: float) -> dict[str, Any]:
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            return desc
        if time.perf_counter() > deadline:
            raise TimeoutError(f"batch {arn} still running")
        time.sleep(poll_s)


def _summary(s3: Any, bucket: str, desc: Mapping[str, Any]) -> dict[str, Any]:
    try:
        body = s3.get_object(Bucket=bucket, Key=summary_key(desc["executionArn"]))["Body"].read()
        return dict(json.loads(body))
    except Exception as exc:  # no summary: the request was refused, or Summarize itself failed
        return {
            "complete": False,
            "reason": f"{desc.get('error') or desc['status']}: {desc.get('cause') or exc}",
        }


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
    chunk_items: int = LOCAL_CHUNK_ITEMS,
) -> BatchRun:
    """Run the batch and read its summary.json: in the cloud (``inline=False``) one execution
    whose Map lists the prefix; locally the listing split into executions of at most
    ``chunk_items`` keys (an inline Map's results live in the 256 KiB state), one after the
    other, their summaries merged."""
    started = time.perf_counter()
    deadline = started + timeout_s
    if inline:
        items = list_items(s3, bucket, prefix)
        chunks = [items[i : i + chunk_items] for i in range(0, len(items), chunk_items)] or [[]]
    else:
        items, chunks = [], [None]
    descs = []
    for chunk in chunks:
        request: dict[str, Any] = {"prefix": prefix}
        if chunk is not None:
            request["items"] = chunk
        arn = sfn.start_execution(
            stateMachineArn=state_machine_arn,
            name=f"batch-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}",
            input=json.dumps(request),
        )["executionArn"]
        descs.append(_wait(sfn, arn, deadline, poll_s))
    wall = time.perf_counter() - started
    summary = merge_summaries([_summary(s3, bucket, d) for d in descs])
    status = "SUCCEEDED" if all(d["status"] == "SUCCEEDED" for d in descs) else "FAILED"
    return BatchRun(
        [d["executionArn"] for d in descs], status, summary, wall, len(items) if inline else None
    )


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
    lines = [f"batch {', '.join(run.execution_arns)}: {run.status} in {run.wall_s:.1f}s"]
    if "items" in s:
        rate = s["items"] / run.wall_s if run.wall_s > 0 else 0.0
        lines.append(
            f"items {s['items']} (listed {s['listed']}): routed {s['routed']}, "
            f"reviewed {s.get('reviewed', 0)}, failed {s['failed']}  |  {rate:.1f} images/s"
        )
        lines.append(f"routes   {json.dumps(s['routes'])}")
        lines.append(f"reviews  {json.dumps(s.get('reviews', {}))}")
        lines.append(f"failures {json.dumps(s['failures'])}")
        for uri in s.get("summary_uris") or [s.get("summary_uri")]:
            if uri:
                lines.append(f"summary  {uri}")
    lines.append(("complete: " if s.get("complete") else "INCOMPLETE: ") + str(s.get("reason")))
    return "\n".join(lines)


def cmd_batch(args: argparse.Namespace, state: Mapping[str, Any] | None) -> int:
    """The CLI subcommand; ``state`` is local mode's state (None with --stack)."""
    import boto3

    from local.deploy import aws_client

    try:
        bucket, prefix = parse_batch_uri(args.uri)
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

