"""List and answer review cases: one module behind the CLI and the web page.

A case is one message on the review queue (lambdas/workflow_definition.py ``review_message``):
``{"case_id", "execution_arn", "queued_at", "task_token"?, "case": {s3_bucket, s3_key,
driver_id?, inferences, error}}``. Answering a case, in this order:

1. validates the label (a class, or ``NOT_A_VEHICLE``) before anything is written;
2. for a class, copies the image to ``labelled/<class>/<case id>-<sha256 prefix>.<ext>`` in the
   data bucket with its provenance as object metadata (case id, reviewer, time, model version):
   the answer teaches the next model even if the execution can no longer be resumed;
3. sends the decision ``{"label", "reviewer", "decided_at"}``: with SendTaskSuccess when the
   execution waits for it (a task token), which resumes the execution at the route step; for a
   case queued without a callback (an EXPRESS workflow, or a batch child, which cannot wait for
   a token) by invoking the route step's function itself with the case plus ``decision``, the
   input the waiting workflow would give it. Either way the driver is routed (or told the photo
   was rejected) by the same function and the same routing event, marked ``decided_by``
   "person";
4. deletes the message. A case whose execution already expired (TaskTimedOut / unknown token)
   is deleted too and reported as ``expired``: its label is kept, nothing else can be done.
   A refused route call (RouteRefused) leaves the case on the queue.

A case's ``reason`` is whatever the case names: its own ``reason`` field when it carries one,
else the name of the error that sent it to review (``LowConfidence``, or any other gate's);
``detail`` is that error's message. Nothing here knows the list of reasons.

SQS has no "peek": every read counts as a receive. Reads hide messages only for
``LIST_VISIBILITY_SECONDS`` and then make them visible again, and the queue's redrive policy
moves a case received ``MAX_RECEIVE_COUNT`` times without an answer to the dead-letter queue,
which ``list_cases`` reads too (such a case is still answerable while its execution waits).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from components.bucket_layout import LABELLED_PREFIX
from lambdas.config import NOT_A_VEHICLE

# Review queue settings (the cloud component and local mode create the queue with these).
QUEUE_VISIBILITY_SECONDS = 300
QUEUE_RETENTION_SECONDS = 14 * 24 * 3600  # the SQS maximum: a case outlives its timeout
MAX_RECEIVE_COUNT = 50
LIST_VISIBILITY_SECONDS = 5


class ReviewError(Exception):
    """A review request that cannot be carried out; the message says why."""


class UnknownLabel(ReviewError):
    pass


class UnknownCase(ReviewError):
    pass


class RouteRefused(ReviewError):
    """The route step refused the person's decision; the case stays on the queue."""


@dataclass
class Case:
    case_id: str
    image: str  # s3://bucket/key
    reason: str
    probabilities: dict[str, float]
    queued_at: str
    driver_id: str | None
    waiting: bool  # True when the execution waits for the answer (has a task token)
    detail: str = ""  # the message of the error that sent the case to review
    in_dead_letter_queue: bool = False
    age_seconds: float | None = None
    execution_arn: str = ""
    receipt_handle: str = field(default="", repr=False)
    queue_url: str = field(default="", repr=False)
    task_token: str = field(default="", repr=False)
    event: dict[str, Any] = field(default_factory=dict, repr=False)  # the case as queued

    def public(self) -> dict[str, Any]:
        """What `review list --json` and the page show (no token, no receipt handle)."""
        data = asdict(self)
        for secret in ("receipt_handle", "queue_url", "task_token", "event"):
            data.pop(secret)
        return data


@dataclass
class Answer:
    case_id: str
    label: str
    outcome: str  # "routed", "rejected", "expired" or "labelled" (nothing to route with)
    labelled_key: str | None
    reviewer: str
    decided_at: str
    route: str | None = None  # the route the route step chose (None when not routed)


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


def _reason(case: dict[str, Any]) -> tuple[str, str]:
    """(reason, detail): the case's own ``reason`` if it names one, else its error's name; the
    error's message (the function's errorMessage inside Cause, else Cause itself)."""
    error = case.get("error") if isinstance(case.get("error"), dict) else {}
    cause = error.get("Cause", "")
    try:
        parsed = json.loads(cause) if isinstance(cause, str) else {}
    except ValueError:
        parsed = {}
    parsed = parsed if isinstance(parsed, dict) else {}
    detail = str(parsed.get("errorMessage") or (cause if isinstance(cause, str) else ""))
    own = case.get("reason")
    reason = own if isinstance(own, str) and own else error.get("Error") or parsed.get("errorType")
    return str(reason or "sent to review"), detail


def parse_message(
    message: dict[str, Any], classes: Sequence[str], queue_url: str, now: datetime, dlq: bool
) -> Case:
    """A Case from an SQS message (ReviewError if the body is not a review case)."""
    try:
        body = json.loads(message["Body"])
        case = body["case"]
        image = f"s3://{case['s3_bucket']}/{case['s3_key']}"
        case_id = str(body["case_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ReviewError(f"not a review case message: {exc}") from None
    inferences = case.get("inferences") or []
    queued = _parse_time(body.get("queued_at", ""))
    reason, detail = _reason(case)
    return Case(
        case_id=case_id,
        image=image,
        reason=reason,
        detail=detail,
        probabilities={c: float(p) for c, p in zip(classes, inferences, strict=False)},
        queued_at=str(body.get("queued_at", "")),
        driver_id=case.get("driver_id"),
        waiting=bool(body.get("task_token")),
        in_dead_letter_queue=dlq,
        age_seconds=(now - queued).total_seconds() if queued else None,
        execution_arn=str(body.get("execution_arn", "")),
        receipt_handle=message["ReceiptHandle"],
        queue_url=queue_url,
        task_token=str(body.get("task_token", "")),
        event=dict(case),
    )


def _read_queue(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every visible message, each hidden for a few seconds while reading, then shown again."""
    seen: dict[str, dict[str, Any]] = {}
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=LIST_VISIBILITY_SECONDS,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break
        for m in fresh:
            seen[m["MessageId"]] = m
    for m in seen.values():
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    return list(seen.values())


def list_cases(
    sqs: Any,
    queue_url: str,
    dead_letter_queue_url: str | None,
    classes: Sequence[str],
    now: datetime | None = None,
) -> list[Case]:
    """Pending cases, oldest first: the review queue, then its dead-letter queue."""
    now = now or datetime.now(UTC)
    cases = []
    for url, dlq in ((queue_url, False), (dead_letter_queue_url, True)):
        if not url:
            continue
        for message in _read_queue(sqs, url):
            try:
                cases.append(parse_message(message, classes, url, now, dlq))
            except ReviewError:
                continue  # not ours to answer; it stays on the queue (and reaches the DLQ)
    return sorted(cases, key=lambda c: (c.in_dead_letter_queue, c.queued_at))


def check_label(label: str, classes: Sequence[str]) -> str:
    if label == NOT_A_VEHICLE or label in classes:
        return label
    raise UnknownLabel(
        f"label {label!r} is not a class ({', '.join(classes)}) or {NOT_A_VEHICLE!r}"
    )


def labelled_key(label: str, case_id: str, image_key: str, body: bytes) -> str:
    """Where an answered image lives: content-addressed, so training can deduplicate it."""
    ext = image_key.rsplit(".", 1)[-1].lower() if "." in image_key.rsplit("/", 1)[-1] else "bin"
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", case_id)[:80]
    return f"{LABELLED_PREFIX}/{label}/{safe_id}-{hashlib.sha256(body).hexdigest()[:16]}.{ext}"


def store_labelled(
    s3: Any,
    bucket: str,
    case: Case,
    label: str,
    reviewer: str,
    decided_at: str,
    model_version: str,
) -> str:
    source_bucket, source_key = case.image.removeprefix("s3://").split("/", 1)
    body = s3.get_object(Bucket=source_bucket, Key=source_key)["Body"].read()
    key = labelled_key(label, case.case_id, source_key, body)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        # Provenance travels with the object (S3 user-defined metadata, x-amz-meta-*).
        Metadata={
            "case-id": case.case_id,
            "reviewer": reviewer,
            "decided-at": decided_at,
            "model-version": model_version or "unknown",
            "source": case.image,
        },
    )
    return key


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def answer_case(
    *,
    sqs: Any,
    sfn: Any,
    s3: Any,
    queue_url: str,
    dead_letter_queue_url: str | None,
    data_bucket: str,
    classes: Sequence[str],
    case_id: str,
    label: str,
    reviewer: str,
    model_version: str = "",
    now: datetime | None = None,
    lambda_client: Any = None,
    route_function_arn: str | None = None,
) -> Answer:
    """Answer one pending case (see the module docstring for the order of effects).

    ``lambda_client`` and ``route_function_arn`` route a case queued without a callback;
    without them such a case is only labelled (outcome ``labelled``)."""
    from botocore.exceptions import ClientError

    label = check_label(label, classes)
    if not reviewer:
        raise ReviewError("a reviewer identity is required")
    now = now or datetime.now(UTC)
    decided_at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    found = [
        c for c in list_cases(sqs, queue_url, dead_letter_queue_url, classes, now)
        if c.case_id == case_id
    ]
    if not found:
        raise UnknownCase(f"no pending review case {case_id!r}")
    case = found[0]
    key = None
    if label != NOT_A_VEHICLE:
        key = store_labelled(s3, data_bucket, case, label, reviewer, decided_at, model_version)
    decision = {"label": label, "reviewer": reviewer, "decided_at": decided_at}
    outcome, route = "labelled", None
    if case.task_token:
        try:
            sfn.send_task_success(taskToken=case.task_token, output=json.dumps(decision))
            outcome = "rejected" if label == NOT_A_VEHICLE else "routed"
        except ClientError as exc:
            if _error_code(exc) not in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken"):
                raise  # the message stays: the answer can be given again
            outcome = "expired"
    elif lambda_client is not None and route_function_arn:
        route = route_without_callback(lambda_client, route_function_arn, case, decision)
        outcome = "rejected" if label == NOT_A_VEHICLE else "routed"
    sqs.delete_message(QueueUrl=case.queue_url, ReceiptHandle=case.receipt_handle)
    return Answer(case_id, label, outcome, key, reviewer, decided_at, route)


def route_without_callback(
    lambda_client: Any, function_arn: str, case: Case, decision: dict[str, str]
) -> str:
    """Route a case nobody waits for: the route step's function, given what the waiting
    workflow gives it after AwaitReview (the case plus ``decision``). Returns the route;
    RouteRefused when the function fails (it names why), so the message stays queued."""
    reply = lambda_client.invoke(
        FunctionName=function_arn,
        InvocationType="RequestResponse",
        Payload=json.dumps({**case.event, "decision": decision}).encode(),
    )
    payload = json.loads(reply["Payload"].read() or b"null")
    if reply.get("FunctionError") or not isinstance(payload, dict) or "route" not in payload:
        what = payload if not isinstance(payload, dict) else (
            f"{payload.get('errorType')}: {payload.get('errorMessage')}"
        )
        raise RouteRefused(f"the route step refused case {case.case_id}: {what}")
    return str(payload["route"])


def caller_identity(sts: Any) -> str:
    """The reviewer as IAM knows them (the caller's ARN): who answered, for the record."""
    return str(sts.get_caller_identity()["Arn"])


def awaits_review(history_events: Sequence[dict[str, Any]]) -> bool:
    """True when a RUNNING execution's history (get_execution_history events, oldest first)
    shows it parked at the review step: the case is on the queue, waiting for a person."""
    from lambdas.workflow_definition import AWAIT_REVIEW_STATE

    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in history_events
        if "stateEnteredEventDetails" in e
    ]
    return (
        bool(entered)
        and entered[-1] == AWAIT_REVIEW_STATE
        and history_events[-1].get("type") == "TaskSubmitted"
    )
