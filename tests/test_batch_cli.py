"""`python -m local batch`: the request is checked before anything starts, a deployed stack's
outputs are read through the Pulumi CLI, and chunked local runs merge into one summary."""

from __future__ import annotations

import argparse
import json
import subprocess
from typing import Any

import pytest

from local.batch import (
    BatchRequestError,
    cmd_batch,
    merge_summaries,
    parse_batch_uri,
    stack_outputs,
)
from local.cli import build_parser


def test_uri_is_bucket_and_prefix_with_its_slash() -> None:
    assert parse_batch_uri("s3://scones-local/batch/day-1/") == ("scones-local", "batch/day-1/")


@pytest.mark.parametrize(
    "uri", ["scones-local/batch/", "s3://scones-local", "s3://scones-local/batch/day1", "s3:///x/"]
)
def test_bad_uri_is_refused_by_name(uri: str) -> None:
    with pytest.raises(BatchRequestError):
        parse_batch_uri(uri)


def test_wrong_bucket_is_refused_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(uri="s3://other/batch/", stack=None, timeout=5, json=False)
    state = {"bucket": "scones-local", "batch_state_machine_arn": "arn", "moto_url": "http://x"}
    assert cmd_batch(args, state) == 2
    assert "reads bucket 'scones-local', not 'other'" in capsys.readouterr().err


def _runner(returncode: int, outputs: dict[str, Any]) -> Any:
    def run(cmd: list[str], **_kwargs: Any) -> subprocess.CompletedProcess:
        assert cmd[:4] == ["pulumi", "stack", "output", "--json"] and cmd[-1] == "dev"
        return subprocess.CompletedProcess(cmd, returncode, json.dumps(outputs), "no stack")

    return run


def test_stack_outputs_come_from_pulumi() -> None:
    outputs = {"bucket": "b", "batchStateMachineArn": "arn:aws:states:eu-west-1:1:stateMachine:x"}
    assert stack_outputs("dev", runner=_runner(0, outputs)) == outputs
    with pytest.raises(BatchRequestError, match="batchStateMachineArn"):
        stack_outputs("dev", runner=_runner(0, {"bucket": "b"}))
    with pytest.raises(BatchRequestError, match="failed"):
        stack_outputs("dev", runner=_runner(255, {}))


def test_chunk_summaries_merge_into_one() -> None:
    a = {
        "items": 2,
        "listed": 2,
        "routed": 1,
        "failed": 1,
        "routes": {"nearby": 1},
        "failures": {"LowConfidence": 1},
        "unaccounted": [],
        "complete": True,
        "reason": "ok",
        "summary_uri": "s3://b/1",
    }
    b = {
        "items": 1,
        "listed": 2,
        "routed": 1,
        "failed": 1,
        "routes": {"nearby": 1},
        "failures": {"NotRun": 1},
        "unaccounted": ["k"],
        "complete": False,
        "reason": "1 listed object(s) have no result",
        "summary_uri": "s3://b/2",
    }
    merged = merge_summaries([a, b])
    assert merged["routes"] == {"nearby": 2}
    assert merged["failures"] == {"LowConfidence": 1, "NotRun": 1}
    assert (merged["items"], merged["listed"], merged["unaccounted"]) == (3, 4, ["k"])
    assert merged["complete"] is False and merged["reason"] == b["reason"]


def test_cli_has_the_batch_subcommand() -> None:
    args = build_parser().parse_args(["batch", "s3://b/batch/", "--stack", "dev", "--json"])
    assert (args.command, args.uri, args.stack, args.json) == (
        "batch",
        "s3://b/batch/",
        "dev",
        True,
    )
