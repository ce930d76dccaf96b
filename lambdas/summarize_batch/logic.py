"""Account for a batch: one outcome per object listed under the prefix, none lost.

Records are what a Distributed Map's ResultWriter writes for each child execution (AWS Step
Functions developer guide, "ResultWriter (Map)", exporting to Amazon S3:
https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html): a
``manifest.json`` naming result files per status (``SUCCEEDED``, ``FAILED``, ``PENDING``), each
file a JSON array of ``{"Status", "Input", "Output" | "Error"/"Cause", ...}`` where ``Input``
and ``Output`` are JSON strings. Local mode's inline Map produces the same records in the
state (lambdas.batch_workflow_definition.to_inline_map), ``Input``/``Output`` as objects, with the
listed items beside them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from lambdas.batch_workflow_definition import NOT_RUN
from lambdas.errors import InvalidEvent

SUMMARY_NAME = "summary.json"
# Keys listed in the state's copy of the summary (summary.json has them all): the summary is
# the execution's output and must stay far below the 256 KiB state limit.
MAX_KEYS_IN_STATE = 100
# Step Functions' error when a Map Run's failures exceed its tolerance.
TOLERANCE_ERROR = "States.ExceedToleratedFailureThreshold"

COMPLETE_REASON = "every listed object has a route, a review or a named failure"

def _json_field(record: Mapping[str, Any], name: str) -> Any:
    value = record.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def record_key(record: Mapping[str, Any]) -> str | None:
    """The S3 key an item record is about (its child execution's input ``s3_key``)."""
    item_input = _json_field(record, "Input")
    key = item_input.get("s3_key") if isinstance(item_input, dict) else None
    return key if isinstance(key, str) else None


def record_outcome(record: Mapping[str, Any]) -> tuple[str, str]:
    """("route", name) for a routed image, ("review", reason) for one handed to human review
    (a designed outcome: the per-image execution succeeds), ("failure", error name) otherwise."""
    status = record.get("Status")
    if status == "SUCCEEDED":
        output = _json_field(record, "Output")
        output = output if isinstance(output, dict) else {}
        route = output.get("route")
        if isinstance(route, str) and route:
            return "route", route
        if output.get("review") is not None:
            error = output.get("error")
            reason = error.get("Error") if isinstance(error, dict) else None
            return "review", str(reason or "LowConfidence")
        return "failure", "NoRouteInOutput"
    if status == "FAILED":
        return "failure", str(record.get("Error") or "UnnamedFailure")
    if status in ("PENDING", "ABORTED", None):
        return "failure", NOT_RUN
    return "failure", f"Status.{status}"


def summarize(
    records: Iterable[Mapping[str, Any]],
    listed_keys: Iterable[str],
    *,
    map_error: Mapping[str, Any] | None = None,
    tolerated_failure_percentage: float | None = None,
) -> dict[str, Any]:
    """Counts per route and per named failure, and whether the batch is complete.

    ``listed_keys`` are the objects that were under the prefix when the batch started; each must
    have exactly one record. A key with no record is counted as NotRun and listed in
    ``unaccounted``; a record for a key not listed (an object added mid-batch) is counted and
    listed in ``unlisted``. ``tolerated_failure_percentage`` applies the Map Run's tolerance to
    the records (local mode's inline Map cannot stop early; the cloud's Map Run does).
    """
    routes: Counter[str] = Counter()
    reviews: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for record in records:
        key = record_key(record)
        if key is None:
            failures["RecordWithoutKey"] += 1
            continue
        seen[key] += 1
        kind, name = record_outcome(record)
        {"route": routes, "review": reviews}.get(kind, failures)[name] += 1
    listed = set(listed_keys)
    unaccounted = sorted(listed - set(seen))
    failures.update({NOT_RUN: len(unaccounted)} if unaccounted else {})
    duplicates = sorted(k for k, n in seen.items() if n > 1)
    items = sum(routes.values()) + sum(reviews.values()) + sum(failures.values())
    failed = sum(failures.values())
    error = dict(map_error) if map_error else None
    tolerance = tolerated_failure_percentage
    if error is None and tolerance is not None and items and 100.0 * failed / items > tolerance:
        error = {
            "Error": TOLERANCE_ERROR,
            "Cause": f"{failed} of {items} items failed, over the tolerated {tolerance:g}% "
            "(applied to the results in local mode)",
        }
    reasons = []
    if error:
        reasons.append(f"map run failed: {error.get('Error')}: {error.get('Cause', '')}".strip())
    if unaccounted:
        reasons.append(f"{len(unaccounted)} listed object(s) have no result")
    if duplicates:
        reasons.append(f"{len(duplicates)} object(s) have more than one result")
    return {
        "items": items,
        "listed": len(listed),
        "routed": sum(routes.values()),
        "reviewed": sum(reviews.values()),
        "failed": failed,
        "routes": dict(sorted(routes.items())),
        "reviews": dict(sorted(reviews.items())),
        "failures": dict(sorted(failures.items())),
        "unaccounted": unaccounted,
        "unlisted": sorted(set(seen) - listed),
        "duplicates": duplicates,
        "map_error": error,
        "complete": not reasons,
        "reason": "; ".join(reasons) or COMPLETE_REASON,
    }


def parse_request(event: Any) -> dict[str, Any]:
    """Validate the Summarize state's payload (see build_batch_definition)."""
    if not isinstance(event, dict):
        raise InvalidEvent("summarize_batch: the event must be an object")
    for name in ("bucket", "prefix", "results_prefix", "started_at"):
        if not isinstance(event.get(name), str) or not event[name]:
            raise InvalidEvent(f"summarize_batch: {name!r} must be a non-empty string")
    if not event["results_prefix"].endswith("/"):
        raise InvalidEvent("summarize_batch: 'results_prefix' must end in '/'")
    batch = event.get("batch")
    if not isinstance(batch, dict):
        raise InvalidEvent("summarize_batch: 'batch' (the state input) must be an object")
    return event


def parse_time(value: str) -> dt.datetime:
    """An ISO-8601 timestamp as Step Functions writes $$.Execution.StartTime (UTC)."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidEvent(f"summarize_batch: started_at {value!r} is not ISO-8601") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def list_keys(s3: Any, bucket: str, prefix: str, before: dt.datetime) -> Iterator[str]:
    """Keys under ``prefix`` last modified before ``before`` (what the batch listed), paginated."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            # S3 timestamps have 1 s resolution in listings; an object written in the batch's
            # first second is still counted as listed.
            if obj["LastModified"] <= before + dt.timedelta(seconds=1):
                yield obj["Key"]


def _read_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def find_manifest(
    s3: Any, bucket: str, results_prefix: str, batch: Mapping[str, Any]
) -> str | None:
    """The ResultWriter manifest's key: from the Map's output, else searched under the results
    prefix (the Map Run failed, so its output is the error, but results may have been written)."""
    details = (batch.get("map_run") or {}).get("ResultWriterDetails") or {}
    if isinstance(details.get("Key"), str):
        return details["Key"]
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=results_prefix):
        found += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith("/manifest.json")]
    return sorted(found)[-1] if found else None


def load_records(s3: Any, bucket: str, manifest_key: str) -> list[dict[str, Any]]:
    """Every record of every result file the manifest names."""
    manifest = _read_json(s3, bucket, manifest_key)
    records: list[dict[str, Any]] = []
    for status, files in sorted((manifest.get("ResultFiles") or {}).items()):
        for entry in files or []:
            for record in _read_json(s3, manifest.get("DestinationBucket") or bucket, entry["Key"]):
                records.append({"Status": status, **record})
    return records


def run(s3: Any, event: Any) -> dict[str, Any]:
    """Read the records (S3, or the state in local mode), summarise, write summary.json."""
    request = parse_request(event)
    bucket, batch = request["bucket"], request["batch"]
    if isinstance(batch.get("map_results"), list):
        records = batch["map_results"]
        source = "state"
    else:
        manifest = find_manifest(s3, bucket, request["results_prefix"], batch)
        records = load_records(s3, bucket, manifest) if manifest else []
        source = f"s3://{bucket}/{manifest}" if manifest else "none"
    if isinstance(batch.get("items"), list):  # local mode: the caller listed the prefix
        listed = [i["Key"] for i in batch["items"] if isinstance(i, dict) and "Key" in i]
    else:
        listed = list(
            list_keys(s3, bucket, request["prefix"], parse_time(request["started_at"]))
        )
    summary = summarize(
        records,
        listed,
        map_error=batch.get("map_error"),
        tolerated_failure_percentage=request.get("emulated_tolerated_failure_percentage"),
    )
    summary_key = request["results_prefix"] + SUMMARY_NAME
    summary.update(
        prefix=request["prefix"],
        results_source=source,
        summary_uri=f"s3://{bucket}/{summary_key}",
    )
    s3.put_object(
        Bucket=bucket,
        Key=summary_key,
        Body=json.dumps(summary, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return for_state(summary)


def for_state(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The summary with its key lists cut to MAX_KEYS_IN_STATE (``<list>_count`` says how many)."""
    out = dict(summary)
    for name in ("unaccounted", "unlisted", "duplicates"):
        keys = list(summary.get(name) or [])
        if len(keys) > MAX_KEYS_IN_STATE:
            out[name] = keys[:MAX_KEYS_IN_STATE]
            out[f"{name}_count"] = len(keys)
    return out
