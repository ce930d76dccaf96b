"""The one Amazon States Language definition of the routing workflow.

Used by the Pulumi component (through ``Output.all(...).apply``) and by local mode, so the cloud
and the offline run execute the same graph:

    Serialize -> Classify -> Filter -> Route -> RouteChoice -> Routed_<route> (Succeed)
         |           |          |      ^  |            |-> RejectedByReviewer (Succeed)
         |           |          |      |  |            \\-> NoRoute (Fail)
         |           |          |      |  \\-> InvalidEvent / UnexpectedError (Fail)
         |           |          \\-> LowConfidence / OutOfDistribution / SafeMode ->
         |           |              Review_<error> (Pass: adds "reason") -> PublishForReview
         |           |              (SNS) -> AwaitReview (SQS, waitForTaskToken) -> Route with
         |           |              the person's decision
         |           |                 \\-> ReviewNotPublished / ReviewNotQueued /
         |           |                     ReviewExpired (Fail)
         |           \\-> EndpointError / InvalidImage / ImageTooLarge / InvalidEvent (Fail)
         \\-> InvalidEvent / ImageNotFound / InvalidImage / ImageTooLarge (Fail)

Human review is a designed outcome: a low-confidence case waits in the review queue until a
person answers (``review.cases`` sends the task token back with SendTaskSuccess); the answer
lands in ``$.decision`` = ``{"label", "reviewer", "decided_at"}`` and the same route step routes
the driver (``label`` a class) or tells the driver the photo was rejected (``label`` "none",
route ``REJECTED_ROUTE``); both end in Succeed states, so only real failures count in Step
Functions' ExecutionsFailed metric. A case nobody answers within ``review_timeout_seconds``
ends in ``REVIEW_EXPIRED_STATE`` (Fail: the driver was never routed, the alarm should say so).

The callback pattern needs a STANDARD workflow: Express Workflows "do not support Run a Job
(.sync) or Wait for Callback (.waitForTaskToken)" (Step Functions developer guide, "Optimized
integrations for Step Functions",
https://docs.aws.amazon.com/step-functions/latest/dg/connect-supported-services.html). With
``wait_for_review=False`` (EXPRESS) the case is queued without a token and the execution ends in
``REVIEW_STATE`` (Succeed); answering such a case labels the image but cannot route the driver.

Only transient errors are retried (Lambda service errors and the classify step's
EndpointUnavailable), with exponential backoff and full jitter; the named errors are caught
into Fail states whose Cause is the function's error payload (errorType + errorMessage).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lambdas.config import NOT_A_VEHICLE, REJECTED_ROUTE
from lambdas.defaults import WORKFLOW_FUNCTIONS
from lambdas.review_reasons import REVIEW_ERRORS

FUNCTION_KEYS = WORKFLOW_FUNCTIONS
REVIEW_STATE = "SentToHumanReview"  # end of the review path without a callback (EXPRESS)
AWAIT_REVIEW_STATE = "AwaitReview"
REVIEW_EXPIRED_STATE = "ReviewExpired"
REJECTED_STATE = "RejectedByReviewer"
DEFAULT_REVIEW_TIMEOUT_SECONDS = 24 * 3600

# AWS's recommended retry list for the lambda:invoke integration (service-side hiccups only).
LAMBDA_TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
ENDPOINT_TRANSIENT_ERRORS = ["EndpointUnavailable"]
# The sns:publish integration names errors "SNS.<code>Exception"; only these are worth a retry.
SNS_TRANSIENT_ERRORS = [
    "SNS.ThrottledException",
    "SNS.InternalErrorException",
    "SNS.KMSThrottlingException",
    "SNS.SdkClientException",
]

# The sqs:sendMessage integration names errors "SQS.<code>"; only client-side hiccups retry.
SQS_TRANSIENT_ERRORS = ["SQS.SdkClientException"]

# Which named errors each step can raise (what its Catch list routes to a Fail state).
_STEP_ERRORS: dict[str, list[str]] = {
    "Serialize": ["InvalidEvent", "ImageNotFound", "InvalidImage", "ImageTooLarge"],
    "Classify": ["InvalidEvent", "InvalidImage", "ImageTooLarge", "EndpointError"],
    "Filter": ["InvalidEvent"],
    "Route": ["InvalidEvent"],
}


def _review_state(error: str) -> str:
    """The Pass state that names the review reason of a case the filter sent to review."""
    return f"Review_{error}"


def _route_state_name(route: str) -> str:
    return "Routed_" + re.sub(r"[^A-Za-z0-9_-]", "_", route)[:60]


def _retry(errors: list[str], attempts: int, interval: int, max_delay: int) -> dict[str, Any]:
    return {
        "ErrorEquals": errors,
        "IntervalSeconds": interval,
        "MaxAttempts": attempts,
        "BackoffRate": 2.0,
        "MaxDelaySeconds": max_delay,
        "JitterStrategy": "FULL",
    }


def _lambda_task(
    function_arn: str, next_state: str, retries: list[dict[str, Any]], catches: list[dict]
) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
        # The function returns the whole event with its fields added; keep only that payload,
        # not the invocation metadata (StatusCode, headers) around it.
        "OutputPath": "$.Payload",
        "Retry": retries,
        "Catch": catches,
        "Next": next_state,
    }


def _catch(errors: list[str], target: str) -> dict[str, Any]:
    # ResultPath keeps the failing step's input and adds {"Error", "Cause"} under "error".
    return {"ErrorEquals": errors, "ResultPath": "$.error", "Next": target}


def _fail(error: str, comment: str) -> dict[str, Any]:
    return {"Type": "Fail", "Comment": comment, "Error": error, "CausePath": "$.error.Cause"}


def review_message(wait_for_review: bool) -> dict[str, Any]:
    """The review queue message's body (Parameters syntax): the case id (the execution's name,
    unique per state machine), when it was queued, the task token when the execution waits for
    the answer, and the whole case (driver, image location, probabilities, the reason)."""
    body: dict[str, Any] = {
        "case_id.$": "$$.Execution.Name",
        "execution_arn.$": "$$.Execution.Id",
        "queued_at.$": "$$.State.EnteredTime",
        "case.$": "$",
    }
    if wait_for_review:
        body["task_token.$"] = "$$.Task.Token"
    return body


def _await_review(
    queue_url: str, wait: bool, timeout_seconds: int, retry_interval: int
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Comment": "Wait on the review queue for a person's answer {label, reviewer, decided_at}.",
        "Resource": "arn:aws:states:::sqs:sendMessage"
        + (".waitForTaskToken" if wait else ""),
        "Parameters": {"QueueUrl": queue_url, "MessageBody": review_message(wait)},
        "Retry": [_retry(SQS_TRANSIENT_ERRORS, 2, retry_interval, 4)],
        "Catch": [
            {
                "ErrorEquals": ["States.ALL"],
                "ResultPath": "$.review_error",
                "Next": "ReviewNotQueued",
            }
        ],
    }
    if wait:
        # The answer replaces nothing of the case: it is added under "decision".
        state.update(ResultPath="$.decision", TimeoutSeconds=timeout_seconds, Next="Route")
        state["Catch"].insert(
            0,
            {
                "ErrorEquals": ["States.Timeout"],
                "ResultPath": "$.review_error",
                "Next": REVIEW_EXPIRED_STATE,
            },
        )
    else:
        state.update(ResultPath=None, Next=REVIEW_STATE)
    return state


def build_definition(
    function_arns: Mapping[str, str],
    *,
    review_topic_arn: str,
    review_queue_url: str,
    wait_for_review: bool = True,
    review_timeout_seconds: int = DEFAULT_REVIEW_TIMEOUT_SECONDS,
    routes: Mapping[str, str],
    retry_attempts: int = 3,
    retry_interval_seconds: int = 1,
    retry_max_delay_seconds: int = 8,
) -> dict[str, Any]:
    """Return the state machine definition as a dict (``json.dumps`` it for the API).

    ``function_arns`` maps the four keys in FUNCTION_KEYS to Lambda ARNs; ``routes`` maps each
    class to its route (the task's config, scones:routes) and yields one Succeed
    state per distinct route after the final Choice. ``review_queue_url`` is the SQS queue a
    low-confidence case waits in (``review_message`` is its body); ``review_timeout_seconds``
    is how long it may wait for a person before ``REVIEW_EXPIRED_STATE``.
    """
    missing = [k for k in FUNCTION_KEYS if not function_arns.get(k)]
    if missing:
        raise ValueError(f"build_definition: no function ARN for {missing}")
    if not review_topic_arn:
        raise ValueError("build_definition: review_topic_arn is required")
    if not review_queue_url:
        raise ValueError("build_definition: review_queue_url is required")
    if not 1 <= review_timeout_seconds <= 365 * 24 * 3600:
        raise ValueError("build_definition: review_timeout_seconds must be 1 s .. 1 year")
    if retry_interval_seconds < 1 or retry_attempts < 0:
        raise ValueError("build_definition: IntervalSeconds must be >= 1 and attempts >= 0")
    routes = dict(routes)
    if not routes:
        raise ValueError("build_definition: routes {class: route} are required")
    if REJECTED_ROUTE in routes.values() or NOT_A_VEHICLE in routes:
        raise ValueError(
            f"build_definition: route {REJECTED_ROUTE!r} and class 'none' are reserved for a "
            "reviewer's rejection"
        )

    lambda_retry = _retry(
        LAMBDA_TRANSIENT_ERRORS, retry_attempts, retry_interval_seconds, retry_max_delay_seconds
    )
    endpoint_retry = _retry(
        ENDPOINT_TRANSIENT_ERRORS, retry_attempts, retry_interval_seconds, retry_max_delay_seconds
    )
    unexpected = _catch(["States.ALL"], "UnexpectedError")

    def catches(step: str, extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        named = [
            _catch(
                [e, "EndpointUnavailable"] if e == "EndpointError" else [e],
                e,
            )
            for e in _STEP_ERRORS[step]
        ]
        return [*(extra or []), *named, unexpected]

    distinct_routes = sorted(set(routes.values()))
    states: dict[str, Any] = {
        "Serialize": _lambda_task(
            function_arns["serialize_image"], "Classify", [lambda_retry], catches("Serialize")
        ),
        "Classify": _lambda_task(
            function_arns["classify_image"],
            "Filter",
            [lambda_retry, endpoint_retry],
            catches("Classify"),
        ),
        "Filter": _lambda_task(
            function_arns["filter_inferences"],
            "Route",
            [lambda_retry],
            catches("Filter", [_catch([e], _review_state(e)) for e in REVIEW_ERRORS]),
        ),
        "Route": _lambda_task(
            function_arns["route_driver"], "RouteChoice", [lambda_retry], catches("Route")
        ),
        "RouteChoice": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.route", "StringEquals": r, "Next": _route_state_name(r)}
                for r in distinct_routes
            ]
            + [{"Variable": "$.route", "StringEquals": REJECTED_ROUTE, "Next": REJECTED_STATE}],
            "Default": "NoRoute",
        },
        **{
            _review_state(error): {
                "Type": "Pass",
                "Comment": f"{error}: the case goes to a person with reason {reason.value!r}.",
                "Result": reason.value,
                "ResultPath": "$.reason",
                "Next": "PublishForReview",
            }
            for error, reason in REVIEW_ERRORS.items()
        },
        "PublishForReview": {
            "Type": "Task",
            "Comment": "Hand the case to a person instead of dropping it.",
            "Resource": "arn:aws:states:::sns:publish",
            "Parameters": {
                "TopicArn": review_topic_arn,
                "Subject": "Driver image needs human review",
                "Message.$": "States.JsonToString($)",
            },
            "ResultSelector": {"MessageId.$": "$.MessageId"},
            "ResultPath": "$.review",
            "Retry": [_retry(SNS_TRANSIENT_ERRORS, 2, retry_interval_seconds, 4)],
            "Catch": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "ResultPath": "$.review_error",
                    "Next": "ReviewNotPublished",
                }
            ],
            "Next": AWAIT_REVIEW_STATE,
        },
        AWAIT_REVIEW_STATE: _await_review(
            review_queue_url, wait_for_review, review_timeout_seconds, retry_interval_seconds
        ),
        REJECTED_STATE: {
            "Type": "Succeed",
            "Comment": "A person saw no vehicle; the route step told the driver so.",
        },
        "ReviewNotQueued": {
            "Type": "Fail",
            "Comment": "A low-confidence case could not be put on the review queue.",
            "Error": "ReviewNotQueued",
            "CausePath": "$.review_error.Cause",
        },
        "ReviewNotPublished": {
            "Type": "Fail",
            "Comment": "A low-confidence case could not be handed to review.",
            "Error": "ReviewNotPublished",
            "CausePath": "$.review_error.Cause",
        },
        "NoRoute": {
            "Type": "Fail",
            "Comment": "The route step returned a route the definition does not know.",
            "Error": "InvalidEvent",
            "Cause": "route_driver returned a route outside the configured routes",
        },
        "UnexpectedError": {
            "Type": "Fail",
            "Comment": "Anything not named: a bug or a misconfiguration; the Cause says which.",
            "ErrorPath": "$.error.Error",
            "CausePath": "$.error.Cause",
        },
    }
    for error in (
        "InvalidEvent",
        "ImageNotFound",
        "InvalidImage",
        "ImageTooLarge",
        "EndpointError",
    ):
        states[error] = _fail(error, f"Named error {error}: the Cause carries the message.")
    if wait_for_review:
        states[REVIEW_EXPIRED_STATE] = {
            "Type": "Fail",
            "Comment": "Nobody answered in time: the driver was not routed (the case stays in "
            "the review queue or its DLQ; an answer now still labels the image).",
            "Error": "ReviewExpired",
            "Cause": f"no review answer within {review_timeout_seconds} s",
        }
    else:
        # Only the waiting review path can expire (an unreachable state is invalid ASL).
        states[REVIEW_STATE] = {
            "Type": "Succeed",
            "Comment": "Queued for human review; without a callback the driver is not routed.",
        }
    for route in distinct_routes:
        states[_route_state_name(route)] = {
            "Type": "Succeed",
            "Comment": f"Driver routed: {route}",
        }
    return {
        "Comment": "Scones Unlimited: classify a driver's vehicle image and route the driver.",
        "StartAt": "Serialize",
        "States": states,
    }
