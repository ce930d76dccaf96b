"""The batch definition: valid ASL (asl-validator, offline), the per-image states reused as the
Map's item processor, and local mode's inline form changing only what moto cannot run."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lambdas.batch_workflow_definition import (
    MAP_STATE,
    RESULTS_PREFIX,
    build_batch_definition,
    to_inline_map,
)
from lambdas.defaults import WORKFLOW_FUNCTIONS
from lambdas.workflow_definition import build_definition

TOOLS = Path(__file__).resolve().parent / "asl_tools"
ARNS = {
    k: f"arn:aws:lambda:eu-west-1:123456789012:function:scones-dev-{k}"
    for k in WORKFLOW_FUNCTIONS
}
SUMMARIZE = "arn:aws:lambda:eu-west-1:123456789012:function:scones-dev-summarize-batch"
REVIEW = "arn:aws:sns:eu-west-1:123456789012:review"
REVIEW_QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/review-cases"
ROUTES = {"bicycle": "nearby", "motorcycle": "distant"}


def _batch(**kwargs) -> dict:
    return build_batch_definition(
        ARNS,
        summarize_function_arn=SUMMARIZE,
        review_topic_arn=REVIEW,
        review_queue_url=REVIEW_QUEUE,
        bucket="data-bucket-a1b2c3",
        routes=ROUTES,
        **kwargs,
    )


@pytest.fixture(scope="module")
def asl_validator() -> list[str]:
    """asl-validator (npm, pinned in tests/asl_tools/package-lock.json), installed offline-able
    with `npm ci` the first time."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not on PATH: asl-validator runs under Node")
    cli = TOOLS / "node_modules" / "asl-validator" / "dist" / "bin" / "asl-validator.js"
    if not cli.is_file():
        proc = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=TOOLS,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"npm ci in {TOOLS} failed:\n{proc.stdout}\n{proc.stderr}"
    assert cli.is_file(), f"asl-validator's CLI moved: {cli}"
    return [node, str(cli)]


@pytest.mark.parametrize("form", ["cloud", "inline", "per-image", "per-image-express"])
def test_definitions_are_valid_asl(asl_validator: list[str], form: str, tmp_path: Path) -> None:
    definition = {
        "cloud": _batch(),
        "inline": to_inline_map(_batch()),
        "per-image": build_definition(
            ARNS, review_topic_arn=REVIEW, review_queue_url=REVIEW_QUEUE, routes=ROUTES
        ),
        # An EXPRESS workflow queues review cases without waiting (no expiry state to reach).
        "per-image-express": build_definition(
            ARNS, review_topic_arn=REVIEW, review_queue_url=REVIEW_QUEUE, routes=ROUTES,
            wait_for_review=False,
        ),
    }[form]
    path = tmp_path / f"{form}.json"
    path.write_text(json.dumps(definition))
    proc = subprocess.run(
        [*asl_validator, "--json-path", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_validator_catches_a_broken_definition(asl_validator: list[str], tmp_path: Path) -> None:
    broken = _batch()
    broken["States"][MAP_STATE]["Next"] = "NoSuchState"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    proc = subprocess.run([*asl_validator, "--json-path", str(path)], capture_output=True)
    assert proc.returncode != 0


def test_item_processor_is_the_per_image_workflow() -> None:
    d = _batch(max_concurrency=25, tolerated_failure_percentage=10)
    # Batch children are EXPRESS: they queue a review case without waiting for an answer.
    per_image = build_definition(
        ARNS, review_topic_arn=REVIEW, review_queue_url=REVIEW_QUEUE, wait_for_review=False,
        routes=ROUTES,
    )
    m = d["States"][MAP_STATE]
    assert m["ItemProcessor"]["States"] == per_image["States"]
    assert m["ItemProcessor"]["StartAt"] == per_image["StartAt"]
    assert m["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "EXPRESS",
    }
    assert m["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {"Bucket": "data-bucket-a1b2c3", "Prefix.$": "$.prefix"},
    }
    # The per-image event and nothing else (its validation refuses unknown fields).
    assert m["ItemSelector"] == {
        "s3_bucket": "data-bucket-a1b2c3",
        "s3_key.$": "$$.Map.Item.Value.Key",
    }
    assert (m["MaxConcurrency"], m["ToleratedFailurePercentage"]) == (25, 10)
    assert m["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject"
    assert RESULTS_PREFIX in m["ResultWriter"]["Parameters"]["Prefix.$"]
    # A failed Map Run is still summarised.
    assert m["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.map_error", "Next": "Summarize"}
    ]


def test_inline_form_changes_only_the_map_and_the_summary_payload() -> None:
    cloud = _batch()
    inline = to_inline_map(cloud)
    assert cloud == _batch()  # the input is not modified
    changed = {k for k in cloud["States"] if cloud["States"][k] != inline["States"][k]}
    assert changed == {MAP_STATE, "Summarize"}
    m = inline["States"][MAP_STATE]
    assert not {"ItemReader", "ResultWriter", "ToleratedFailurePercentage", "Label"} & set(m)
    assert (
        m["ItemsPath"] == "$.items"
        and m["MaxConcurrency"] == cloud["States"][MAP_STATE]["MaxConcurrency"]
    )
    branch = m["ItemProcessor"]["States"]["Item"]["Branches"][0]
    assert branch["States"] == cloud["States"][MAP_STATE]["ItemProcessor"]["States"]
    payload = inline["States"]["Summarize"]["Parameters"]["Payload"]
    assert payload["emulated_tolerated_failure_percentage"] == 50.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"tolerated_failure_percentage": 101}, "tolerated_failure_percentage"),
        ({"input_prefixes": ["batch"]}, "input prefixes"),
        ({"input_prefixes": [RESULTS_PREFIX]}, "input prefixes"),
        ({"input_prefixes": []}, "input prefixes"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _batch(**kwargs)
