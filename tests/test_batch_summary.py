"""summarize_batch against ResultWriter's files in S3 (moto): the cloud path, which moto's own
Distributed Map cannot produce (it writes an empty manifest), built here in the documented
format: manifest.json naming SUCCEEDED_n.json / FAILED_n.json / PENDING_n.json, each a JSON
array of child-execution records whose Input and Output are JSON strings (Step Functions
developer guide, "ResultWriter (Map)":
https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.errors import InvalidEvent
from lambdas.summarize_batch.logic import MAX_KEYS_IN_STATE, run, summarize

BUCKET = "scones-summary-test"
PREFIX = "batch/day-2/"
RESULTS = "batch-results/exec-1/"
MAP_RUN = "arn:aws:states:eu-west-1:123456789012:mapRun:scones-dev-batch/ClassifyPrefix:abc"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _succeeded(key: str, route: str) -> dict[str, Any]:
    event = {"s3_bucket": BUCKET, "s3_key": key}
    output = {**event, "label": "x", "confidence": 0.99, "route": route}
    return {"Status": "SUCCEEDED", "Input": json.dumps(event), "Output": json.dumps(output)}


def _failed(key: str, error: str) -> dict[str, Any]:
    event = {"s3_bucket": BUCKET, "s3_key": key}
    return {"Status": "FAILED", "Input": json.dumps(event), "Error": error, "Cause": "{}"}


def _write_results(s3: Any, files: dict[str, list[dict[str, Any]]]) -> str:
    run_dir = f"{RESULTS}abc/"
    manifest: dict[str, Any] = {
        "DestinationBucket": BUCKET,
        "MapRunArn": MAP_RUN,
        "ResultFiles": {"FAILED": [], "PENDING": [], "SUCCEEDED": []},
    }
    for status, records in files.items():
        key = f"{run_dir}{status}_0.json"
        body = json.dumps(records).encode()
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        manifest["ResultFiles"][status].append({"Key": key, "Size": len(body)})
    s3.put_object(Bucket=BUCKET, Key=f"{run_dir}manifest.json", Body=json.dumps(manifest))
    return f"{run_dir}manifest.json"


def _event(batch: dict[str, Any], started: dt.datetime | None = None) -> dict[str, Any]:
    started = started or dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    return {
        "bucket": BUCKET,
        "prefix": PREFIX,
        "results_prefix": RESULTS,
        "started_at": started.isoformat().replace("+00:00", "Z"),
        "batch": batch,
    }


def _put_inputs(s3: Any, names: list[str]) -> list[str]:
    keys = [f"{PREFIX}{n}" for n in names]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    return keys


def test_result_files_are_counted_per_route_and_named_failure(s3: Any) -> None:
    keys = _put_inputs(s3, ["a.png", "b.png", "c.png", "d.png", "e.txt"])
    manifest = _write_results(
        s3,
        {
            "SUCCEEDED": [
                _succeeded(keys[0], "nearby"),
                _succeeded(keys[1], "nearby"),
                _succeeded(keys[2], "distant"),
            ],
            "FAILED": [_failed(keys[3], "LowConfidence"), _failed(keys[4], "InvalidImage")],
        },
    )
    summary = run(
        s3,
        _event(
            {
                "map_run": {
                    "MapRunArn": MAP_RUN,
                    "ResultWriterDetails": {"Bucket": BUCKET, "Key": manifest},
                }
            }
        ),
    )
    assert summary["routes"] == {"nearby": 2, "distant": 1}
    assert summary["failures"] == {"InvalidImage": 1, "LowConfidence": 1}
    assert (summary["items"], summary["listed"], summary["complete"]) == (5, 5, True)
    assert summary["results_source"] == f"s3://{BUCKET}/{manifest}"
    stored = s3.get_object(Bucket=BUCKET, Key=f"{RESULTS}summary.json")["Body"].read()
    assert json.loads(stored) == summary  # nothing to cut: the state's copy is the whole


def test_failed_map_run_is_summarised_from_what_it_wrote(s3: Any) -> None:
    """The Map Run stopped (tolerance exceeded): its output is the error, not the manifest's
    location, so the manifest is found under the results prefix; unprocessed items are PENDING
    and a listed object with no record at all is NotRun: both counted, the batch incomplete."""
    keys = _put_inputs(s3, ["a.png", "b.png", "c.png", "d.png"])
    _write_results(
        s3,
        {
            "FAILED": [_failed(keys[0], "EndpointError"), _failed(keys[1], "EndpointError")],
            "PENDING": [{"Status": "PENDING", "Input": json.dumps({"s3_key": keys[2]})}],
        },
    )
    error = {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "too many failures"}
    summary = run(s3, _event({"map_error": error}))
    assert summary["failures"] == {"EndpointError": 2, "NotRun": 2}
    assert summary["unaccounted"] == [keys[3]]
    assert summary["items"] == summary["listed"] == 4
    assert summary["complete"] is False
    assert "States.ExceedToleratedFailureThreshold" in summary["reason"]


def test_objects_added_after_the_start_are_not_expected(s3: Any) -> None:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    _put_inputs(s3, ["late.png"])  # LastModified now: after the batch started
    summary = run(s3, _event({"map_results": []}, started=started))
    assert (summary["listed"], summary["unaccounted"], summary["complete"]) == (0, [], True)


def test_duplicate_results_are_reported() -> None:
    key = f"{PREFIX}a.png"
    summary = summarize([_succeeded(key, "nearby"), _failed(key, "LowConfidence")], [key])
    assert summary["duplicates"] == [key] and summary["complete"] is False


@pytest.mark.parametrize(
    "event",
    [
        None,
        {"bucket": BUCKET},
        {"bucket": BUCKET, "prefix": PREFIX, "results_prefix": "x", "started_at": "t", "batch": {}},
        {
            "bucket": BUCKET,
            "prefix": PREFIX,
            "results_prefix": RESULTS,
            "started_at": "t",
            "batch": [],
        },
    ],
)
def test_bad_request_is_a_named_error(s3: Any, event: Any) -> None:
    with pytest.raises(InvalidEvent):
        run(s3, event)


def test_many_missing_results_keep_the_state_small(s3: Any) -> None:
    """Every key is in summary.json; the execution's output names the first 100 and the count."""
    keys = [f"{PREFIX}{i:04d}.png" for i in range(MAX_KEYS_IN_STATE + 5)]
    summary = run(s3, _event({"map_results": [], "items": [{"Key": k} for k in keys]}))
    assert summary["unaccounted"] == keys[:MAX_KEYS_IN_STATE]
    assert summary["unaccounted_count"] == len(keys)
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{RESULTS}summary.json")["Body"].read())
    assert stored["unaccounted"] == keys and stored["failures"] == {"NotRun": len(keys)}
