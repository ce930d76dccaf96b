"""The batch workflow: classify every object under an S3 prefix with the per-image workflow.

One Amazon States Language definition, used by the Pulumi component and by local mode:

    ValidateRequest (Choice) -> ClassifyPrefix (Distributed Map) -> Summarize -> BatchComplete
          \\-> InvalidBatchRequest (Fail)      \\-> (Catch) Summarize        \\-> BatchIncomplete

- ClassifyPrefix lists the prefix with an ``ItemReader`` over ``s3:listObjectsV2`` (every key
  under it, paginated by Step Functions), runs each object through the per-image states as a
  child workflow execution (EXPRESS: the per-image graph only uses request-response
  integrations), at most ``max_concurrency`` at a time, and writes the children's results to
  S3 with ``ResultWriter`` under ``{RESULTS_PREFIX}{execution name}/``.
- The item processor's states ARE ``build_definition(...)["States"]``: the same graph a single
  image runs, so a bad image ends in the same named Fail state and its child execution's Error
  is that name (InvalidImage, LowConfidence, ...). Those failures count against
  ``ToleratedFailurePercentage``: a systemic fault (the endpoint down: every item fails
  EndpointError) stops the Map Run instead of burning through the prefix.
- Summarize (the summarize_batch Lambda) reads the result files, counts items per route and per
  named failure, checks every object listed under the prefix has exactly one result, writes
  ``summary.json`` beside the results and returns the counts. It also runs when the Map Run
  failed (Catch), so a stopped batch is still accounted for; the execution then ends in
  BatchIncomplete.

Local mode runs :func:`to_inline_map` of this definition (moto's Distributed Map discards
results and failure names: docs/batch.md says what it supports and what the transform changes).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lambdas.workflow_definition import LAMBDA_TRANSIENT_ERRORS, build_definition

RESULTS_PREFIX = "batch-results/"
DEFAULT_INPUT_PREFIXES = ("batch/", "intake/")
DEFAULT_MAX_CONCURRENCY = 40
# Above the normal share of LowConfidence + bad objects in a day's intake, far below the 100 %
# of a systemic fault; docs/batch.md explains the choice.
DEFAULT_TOLERATED_FAILURE_PERCENTAGE = 50.0
MAP_STATE = "ClassifyPrefix"
SUMMARIZE_STATE = "Summarize"
# What the summary calls an item whose result never arrived (Map Run stopped before it ran).
NOT_RUN = "NotRun"
# Items per execution of the inline form: one ListObjectsV2 page, whose keys and records fit in
# the 256 KiB state with room to spare (docs/batch.md).
LOCAL_CHUNK_ITEMS = 1000
_PREFIX_RE = re.compile(r"^[A-Za-z0-9!_.*'()/-]+/$")


def _prefix_pattern(prefix: str) -> str:
    # Choice StringMatches treats only '*' and '\' specially.
    return prefix.replace("\\", "\\\\").replace("*", "\\*") + "*"


def build_batch_definition(
    function_arns: Mapping[str, str],
    *,
    summarize_function_arn: str,
    review_topic_arn: str,
    review_queue_url: str,
    bucket: str,
    routes: Mapping[str, str],
    input_prefixes: Sequence[str] = DEFAULT_INPUT_PREFIXES,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    tolerated_failure_percentage: float = DEFAULT_TOLERATED_FAILURE_PERCENTAGE,
    retry_interval_seconds: int = 1,
) -> dict[str, Any]:
    """Return the batch state machine definition (a dict; ``json.dumps`` it for the API).

    Input: ``{"prefix": "batch/2026-12-01/"}`` (a key prefix in ``bucket`` ending in "/", under
    one of ``input_prefixes``). ``function_arns``/``routes``/``review_topic_arn``/
    ``review_queue_url`` are the per-image workflow's (see build_definition);
    ``summarize_function_arn`` is summarize_batch. A low-confidence image is queued for review
    without waiting: the children are EXPRESS, which cannot wait for a task token.
    """
    if not summarize_function_arn:
        raise ValueError("build_batch_definition: summarize_function_arn is required")
    if not bucket:
        raise ValueError("build_batch_definition: bucket is required")
    if not 1 <= max_concurrency <= 10_000:
        # Distributed Map runs at most 10,000 child executions in parallel (AWS quota).
        raise ValueError("build_batch_definition: max_concurrency must be in 1..10000")
    if not 0.0 <= tolerated_failure_percentage <= 100.0:
        raise ValueError("build_batch_definition: tolerated_failure_percentage must be 0..100")
    bad = [p for p in input_prefixes if not _PREFIX_RE.match(p) or p.startswith(RESULTS_PREFIX)]
    if not input_prefixes or bad:
        raise ValueError(
            f"build_batch_definition: input prefixes must end in '/' and stay out of "
            f"{RESULTS_PREFIX!r}: {bad or 'none given'}"
        )
    per_image = build_definition(
        function_arns,
        review_topic_arn=review_topic_arn,
        review_queue_url=review_queue_url,
        wait_for_review=False,
        routes=routes,
        retry_interval_seconds=retry_interval_seconds,
    )
    results_prefix = f"States.Format('{RESULTS_PREFIX}{{}}/', $$.Execution.Name)"
    allowed = " or ".join(repr(p) for p in input_prefixes)
    states: dict[str, Any] = {
        "ValidateRequest": {
            "Type": "Choice",
            "Comment": "Refuse a request the batch cannot honour before listing anything.",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.prefix", "IsPresent": True},
                        {"Variable": "$.prefix", "IsString": True},
                        {
                            "Or": [
                                {"Variable": "$.prefix", "StringMatches": _prefix_pattern(p)}
                                for p in input_prefixes
                            ]
                        },
                        {"Variable": "$.prefix", "StringMatches": "*/"},
                    ],
                    "Next": MAP_STATE,
                }
            ],
            "Default": "InvalidBatchRequest",
        },
        "InvalidBatchRequest": {
            "Type": "Fail",
            "Error": "InvalidEvent",
            "Cause": (
                f'the batch input must be {{"prefix": "<prefix>/"}} with a prefix under '
                f"{allowed}, ending in '/'"
            ),
        },
        MAP_STATE: {
            "Type": "Map",
            "Comment": "Each object under the prefix through the per-image states.",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:listObjectsV2",
                "Parameters": {"Bucket": bucket, "Prefix.$": "$.prefix"},
            },
            # The per-image event (docs/design.md): only the fields its validation accepts.
            "ItemSelector": {"s3_bucket": bucket, "s3_key.$": "$$.Map.Item.Value.Key"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": per_image["StartAt"],
                "States": per_image["States"],
            },
            "MaxConcurrency": max_concurrency,
            "ToleratedFailurePercentage": tolerated_failure_percentage,
            "Label": MAP_STATE,
            "ResultWriter": {
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket": bucket, "Prefix.$": results_prefix},
            },
            "ResultPath": "$.map_run",
            "Catch": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "ResultPath": "$.map_error",
                    "Next": SUMMARIZE_STATE,
                }
            ],
            "Next": SUMMARIZE_STATE,
        },
        SUMMARIZE_STATE: {
            "Type": "Task",
            "Comment": "Count per route and per named failure; every listed object accounted for.",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {
                "FunctionName": summarize_function_arn,
                "Payload": {
                    "bucket": bucket,
                    "prefix.$": "$.prefix",
                    "results_prefix.$": results_prefix,
                    "started_at.$": "$$.Execution.StartTime",
                    "batch.$": "$",
                },
            },
            "OutputPath": "$.Payload",
            "Retry": [
                {
                    "ErrorEquals": LAMBDA_TRANSIENT_ERRORS,
                    "IntervalSeconds": retry_interval_seconds,
                    "MaxAttempts": 3,
                    "BackoffRate": 2.0,
                    "MaxDelaySeconds": 8,
                    "JitterStrategy": "FULL",
                }
            ],
            "Next": "SummaryChoice",
        },
        "SummaryChoice": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.complete", "BooleanEquals": True, "Next": "BatchComplete"}
            ],
            "Default": "BatchIncomplete",
        },
        "BatchComplete": {
            "Type": "Succeed",
            "Comment": "Every object under the prefix has a route or a named failure.",
        },
        "BatchIncomplete": {
            "Type": "Fail",
            "Comment": "The Map Run stopped or results are missing; summary.json says which.",
            "Error": "BatchIncomplete",
            "CausePath": "$.reason",
        },
    }
    return {
        "Comment": "Scones Unlimited: classify every image under an S3 prefix, then summarise.",
        "StartAt": "ValidateRequest",
        "States": states,
    }


def to_inline_map(definition: Mapping[str, Any], *, items_path: str = "$.items") -> dict[str, Any]:
    """The same definition with its Distributed Map made an inline Map, for moto (local mode).

    moto 5.2.5 parses the Distributed Map but its ResultWriter writes an empty manifest and
    drops the results, and a failed item's output is ``None`` (its error name is lost): see
    docs/batch.md. The transform changes only the Map state:
    - ``ItemReader`` -> ``ItemsPath`` (``items_path``): the caller lists the prefix with the
      same ListObjectsV2 call, paginated, and passes ``[{"Key": ...}, ...]`` there;
    - the per-image states run inside a one-branch Parallel whose success and Catch produce
      the records ResultWriter writes, cut to what the summary reads (``Status``, ``Input``
      ``{"s3_key"}``, ``Output`` ``{"route"}`` or ``{"review", "error"}``, or ``Error``), so a
      failed image is a record, not the end of the Map (inline Map has no tolerance); the
      records live in the 256 KiB state, so the caller runs at most LOCAL_CHUNK_ITEMS items per
      execution;
    - ``ResultWriter``/``ToleratedFailurePercentage``/``Label``/``ProcessorConfig`` go; the
      records land in ``$.map_results`` and the tolerance is handed to Summarize, which applies
      it to the records (as the Map Run would have, after the fact instead of early).
    """
    result = copy.deepcopy(dict(definition))
    states = result["States"]
    map_state = states[MAP_STATE]
    processor = map_state["ItemProcessor"]
    tolerance = map_state.pop("ToleratedFailurePercentage", 0.0)
    for key in ("ItemReader", "ResultWriter", "Label", "ToleratedFailureCount"):
        map_state.pop(key, None)
    map_state["ItemsPath"] = items_path
    map_state["ResultPath"] = "$.map_results"
    map_state["ItemProcessor"] = {
        "ProcessorConfig": {"Mode": "INLINE"},
        "StartAt": "Item",
        "States": {
            "Item": {
                "Type": "Parallel",
                "Branches": [{"StartAt": processor["StartAt"], "States": processor["States"]}],
                "OutputPath": "$[0]",
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ItemFailed"}
                ],
                "Next": "ItemOutcome",
            },
            # A succeeded image was routed or handed to review (lambdas/workflow_definition.py
            # REVIEW_STATE); a path that is absent would be a States.Runtime error in a Pass.
            "ItemOutcome": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.route", "IsPresent": True, "Next": "ItemRouted"},
                    {"Variable": "$.review", "IsPresent": True, "Next": "ItemSentToReview"},
                ],
                "Default": "ItemWithoutOutcome",
            },
            # Only what the summary reads: the records of 1,000 items must fit, with the items,
            # in the 256 KiB state (moto enforces the limit as Step Functions does).
            "ItemRouted": {
                "Type": "Pass",
                "Parameters": {
                    "Status": "SUCCEEDED",
                    "Input": {"s3_key.$": "$.s3_key"},
                    "Output": {"route.$": "$.route"},
                },
                "End": True,
            },
            "ItemSentToReview": {
                "Type": "Pass",
                "Parameters": {
                    "Status": "SUCCEEDED",
                    "Input": {"s3_key.$": "$.s3_key"},
                    "Output": {"review.$": "$.review", "error": {"Error.$": "$.error.Error"}},
                },
                "End": True,
            },
            "ItemWithoutOutcome": {
                "Type": "Pass",
                "Parameters": {"Status": "SUCCEEDED", "Input": {"s3_key.$": "$.s3_key"}},
                "End": True,
            },
            "ItemFailed": {
                "Type": "Pass",
                # The Cause (a stack trace, kilobytes) stays in the execution history.
                "Parameters": {
                    "Status": "FAILED",
                    "Input": {"s3_key.$": "$.s3_key"},
                    "Error.$": "$.error.Error",
                },
                "End": True,
            },
        },
    }
    payload = states[SUMMARIZE_STATE]["Parameters"]["Payload"]
    payload["emulated_tolerated_failure_percentage"] = tolerance
    return result
