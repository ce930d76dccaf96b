"""The ASL definition executed by moto's interpreter, with the real handlers run in-process
from the real zip: every path, and a catalogue of bad events each ending in its named state."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fake_endpoint import FakeEndpoint, error, gate_failed, ok
from moto import mock_aws
from workflow_support import (
    BUCKET,
    ENDPOINT,
    Workflow,
    big_png_bytes,
    deploy,
    jpeg_bytes,
    png_bytes,
    png_chunk,
)

from default_task import DEFAULT_ROUTES
from lambdas import aws
from lambdas.defaults import WORKFLOW_FUNCTIONS
from local import lambda_runtime

PNG_OK = png_bytes(seed=1)
JPEG_OK = jpeg_bytes(seed=2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workflow, FakeEndpoint]]:
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"
    )
    aws.reset_clients()
    tmp = tmp_path_factory.mktemp("workflow")
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        FakeEndpoint(ENDPOINT) as endpoint,
        lambda_runtime.installed(tmp / "code"),
    ):
        wf = deploy(tmp, endpoint_url=endpoint.url)
        objects = {
            "test/bicycle_s_000001.png": PNG_OK,
            "test/motorcycle_s_000002.jpg": JPEG_OK,
            "test/notes.png": b"these are not the pixels you are looking for\n",
            "test/truncated.png": PNG_OK[: len(PNG_OK) // 2],
            "test/header_only.png": PNG_OK[:33],
            "test/empty.png": b"",
            "test/bad_crc.png": PNG_OK[:40] + bytes([PNG_OK[40] ^ 0xFF]) + PNG_OK[41:],
            "test/truncated.jpg": JPEG_OK[: len(JPEG_OK) - 10],
            "test/huge.png": big_png_bytes(),
            "test/image.gif": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
            "test/no_idat.png": PNG_OK[:33] + png_chunk(b"IEND", b""),
        }
        for key, body in objects.items():
            wf.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        yield wf, endpoint
    aws.reset_clients()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _event(key: str, **extra: object) -> dict[str, object]:
    return {"s3_bucket": BUCKET, "s3_key": key, **extra}


def _run(wf: Workflow, event: object) -> tuple[dict, str]:
    arn = wf.start(event)
    desc = wf.wait(arn)
    return desc, wf.final_state(arn)


def _cause(desc: dict) -> dict:
    return json.loads(desc["cause"])


def test_bicycle_png_is_routed_nearby_and_published(stack: tuple[Workflow, FakeEndpoint]) -> None:
    wf, endpoint = stack
    endpoint.answers.append(ok([0.97, 0.03]))
    desc, final = _run(wf, _event("test/bicycle_s_000001.png", driver_id="d-42"))
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert final == "Routed_nearby"
    out = json.loads(desc["output"])
    assert out == {
        "s3_bucket": BUCKET,
        "s3_key": "test/bicycle_s_000001.png",
        "driver_id": "d-42",
        "inferences": [0.97, 0.03],
        "gate": {"in_distribution": True, "failed": [], "scores": {}},
        "label": "bicycle",
        "confidence": 0.97,
        "route": "nearby",
        "decided_by": "model",
    }
    request = endpoint.requests[-1]
    assert request["content_type"] == "image/png" and request["body"] == PNG_OK
    messages = wf.messages(wf.routing_queue)
    assert {"driver_id": "d-42", "label": "bicycle", "route": "nearby"}.items() <= messages[
        -1
    ].items()


def test_motorcycle_jpeg_is_routed_distant(stack: tuple[Workflow, FakeEndpoint]) -> None:
    wf, endpoint = stack
    endpoint.answers.append(ok([0.01, 0.99]))
    desc, final = _run(wf, _event("test/motorcycle_s_000002.jpg"))
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert final == "Routed_distant"
    assert json.loads(desc["output"])["route"] == "distant"
    assert endpoint.requests[-1]["content_type"] == "image/jpeg"
    assert wf.messages(wf.routing_queue)[-1]["route"] == "distant"


def _pending(wf: Workflow) -> list:
    from review.cases import list_cases

    return list_cases(wf.sqs, wf.cases_queue, wf.cases_dlq, ["bicycle", "motorcycle"])


def _answer(wf: Workflow, case_id: str, label: str):
    from review.cases import answer_case

    return answer_case(
        sqs=wf.sqs,
        sfn=wf.sfn,
        s3=wf.s3,
        queue_url=wf.cases_queue,
        dead_letter_queue_url=wf.cases_dlq,
        data_bucket=BUCKET,
        classes=["bicycle", "motorcycle"],
        case_id=case_id,
        label=label,
        reviewer="arn:aws:iam::123456789012:user/rita",
        model_version="model-abc",
    )


def test_low_confidence_waits_on_the_review_queue_and_a_person_routes_the_driver(
    stack: tuple[Workflow, FakeEndpoint],
) -> None:
    """The callback pattern (sqs:sendMessage.waitForTaskToken + SendTaskSuccess; Step Functions
    developer guide, "Wait for a Callback with Task Token",
    https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token)
    as moto 5.2.5's interpreter runs it: the case waits, the answer resumes it at Route."""
    wf, endpoint = stack
    endpoint.answers.append(ok([0.61, 0.39]))
    arn = wf.start(_event("test/bicycle_s_000001.png", driver_id="d-7"))
    desc = wf.wait(arn)
    assert desc["status"] == "RUNNING" and wf.final_state(arn) == "AwaitReview"
    assert wf.messages(wf.review_queue)[-1]["driver_id"] == "d-7"  # reviewers are notified
    (case,) = [c for c in _pending(wf) if c.execution_arn == arn]
    assert case.image == f"s3://{BUCKET}/test/bicycle_s_000001.png"
    assert case.probabilities == {"bicycle": 0.61, "motorcycle": 0.39}
    assert case.reason == "low_confidence" and "0.6100" in case.detail
    assert case.driver_id == "d-7" and case.waiting
    assert wf.messages(wf.routing_queue) == []  # not routed before a person answers

    answer = _answer(wf, case.case_id, "motorcycle")  # the person overrules the model
    assert answer.outcome == "routed"
    desc = wf.wait(arn, stop_at_review=False)
    assert desc["status"] == "SUCCEEDED" and wf.final_state(arn) == "Routed_distant"
    (event,) = wf.messages(wf.routing_queue)
    assert event["driver_id"] == "d-7" and event["route"] == "distant"
    assert event["label"] == "motorcycle" and event["decided_by"] == "person"
    assert event["reviewer"] == "arn:aws:iam::123456789012:user/rita" and event["decided_at"]
    stored = wf.s3.get_object(Bucket=BUCKET, Key=answer.labelled_key)
    assert answer.labelled_key.startswith("labelled/motorcycle/")
    assert stored["Body"].read() == PNG_OK
    assert stored["Metadata"] == {
        "case-id": case.case_id,
        "reviewer": "arn:aws:iam::123456789012:user/rita",
        "decided-at": answer.decided_at,
        "model-version": "model-abc",
        "source": case.image,
    }
    assert [c for c in _pending(wf) if c.case_id == case.case_id] == []


def test_out_of_distribution_goes_to_review_with_its_reason_even_when_confident(
    stack: tuple[Workflow, FakeEndpoint],
) -> None:
    """The endpoint's gate failed (a night shot, docs/safety.md): the confident prediction is
    not routed; the case waits for a person with the reason in the review message and list."""
    wf, endpoint = stack
    endpoint.answers.append(
        ok([0.99, 0.01], gate_failed("brightness", "input_quality", "brightness 0.05 (too dark)"))
    )
    arn = wf.start(_event("test/bicycle_s_000001.png", driver_id="d-8"))
    desc = wf.wait(arn)
    assert desc["status"] == "RUNNING" and wf.final_state(arn) == "AwaitReview"
    published = wf.messages(wf.review_queue)[-1]
    assert published["error"]["Error"] == "OutOfDistribution"
    assert published["gate"]["in_distribution"] is False
    (case,) = [c for c in _pending(wf) if c.execution_arn == arn]
    assert case.reason == "out_of_distribution"
    assert case.detail.startswith("out_of_distribution: input quality: brightness 0.05 (too dark)")
    assert wf.messages(wf.routing_queue) == []
    _answer(wf, case.case_id, "none")
    assert wf.wait(arn, stop_at_review=False)["status"] == "SUCCEEDED"
    assert wf.final_state(arn) == "RejectedByReviewer"
    (told,) = wf.messages(wf.routing_queue)  # the driver hears the photo was rejected
    assert told["route"] == "rejected"


def test_a_person_rejecting_the_photo_tells_the_driver(
    stack: tuple[Workflow, FakeEndpoint],
) -> None:
    wf, endpoint = stack
    endpoint.answers.append(ok([0.52, 0.48]))
    arn = wf.start(_event("test/bicycle_s_000001.png", driver_id="d-8"))
    wf.wait(arn)
    (case,) = [c for c in _pending(wf) if c.execution_arn == arn]
    answer = _answer(wf, case.case_id, "none")
    assert (answer.outcome, answer.labelled_key) == ("rejected", None)
    desc = wf.wait(arn, stop_at_review=False)
    assert desc["status"] == "SUCCEEDED" and wf.final_state(arn) == "RejectedByReviewer"
    (event,) = wf.messages(wf.routing_queue)
    assert event["route"] == "rejected" and event["driver_id"] == "d-8"
    assert event["decided_by"] == "person" and "photo" in event["message"]


def test_a_label_outside_the_classes_is_refused_before_anything_is_written(
    stack: tuple[Workflow, FakeEndpoint],
) -> None:
    from review.cases import UnknownCase, UnknownLabel

    wf, endpoint = stack
    endpoint.answers.append(ok([0.5, 0.5]))
    arn = wf.start(_event("test/bicycle_s_000001.png"))
    wf.wait(arn)
    (case,) = [c for c in _pending(wf) if c.execution_arn == arn]
    with pytest.raises(UnknownLabel, match="tricycle"):
        _answer(wf, case.case_id, "tricycle")
    with pytest.raises(UnknownCase):
        _answer(wf, "no-such-case", "bicycle")
    assert [c.case_id for c in _pending(wf) if c.execution_arn == arn] == [case.case_id]
    assert wf.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    _answer(wf, case.case_id, "bicycle")
    assert wf.wait(arn, stop_at_review=False)["status"] == "SUCCEEDED"
    wf.messages(wf.routing_queue)  # drain


def test_an_unanswered_case_expires_into_its_named_state_and_stays_answerable(
    stack: tuple[Workflow, FakeEndpoint],
) -> None:
    """TimeoutSeconds on the callback task raises States.Timeout (Step Functions developer
    guide, "Task": TimeoutSeconds; error names, "States.Timeout"), caught into ReviewExpired."""
    from lambdas.workflow_definition import build_definition

    wf, endpoint = stack
    lam = boto3.client("lambda", region_name="us-east-1")
    arns = {
        f["FunctionName"].removeprefix("scones-"): f["FunctionArn"]
        for f in lam.list_functions()["Functions"]
    }
    topic = next(
        t["TopicArn"] for t in wf.sns.list_topics()["Topics"] if t["TopicArn"].endswith("review")
    )
    definition = build_definition(
        arns, review_topic_arn=topic, review_queue_url=wf.cases_queue, review_timeout_seconds=1,
        routes=DEFAULT_ROUTES,
    )
    sm = wf.sfn.create_state_machine(
        name="scones-test-short-review",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/scones-test-role",
    )["stateMachineArn"]
    endpoint.answers.append(ok([0.6, 0.4]))
    arn = wf.sfn.start_execution(
        stateMachineArn=sm, name="expires", input=json.dumps(_event("test/bicycle_s_000001.png"))
    )["executionArn"]
    deadline = time.monotonic() + 30
    while wf.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    desc = wf.sfn.describe_execution(executionArn=arn)
    assert (desc["status"], desc["error"], wf.final_state(arn)) == (
        "FAILED",
        "ReviewExpired",
        "ReviewExpired",
    )
    # Nothing is lost: the case is still on the queue; answering it now labels the image.
    (case,) = [c for c in _pending(wf) if c.execution_arn == arn]
    answer = _answer(wf, case.case_id, "bicycle")
    assert answer.outcome == "expired" and answer.labelled_key.startswith("labelled/bicycle/")
    assert wf.messages(wf.routing_queue) == []


def test_transient_endpoint_error_is_retried_then_succeeds(
    stack: tuple[Workflow, FakeEndpoint],
) -> None:
    wf, endpoint = stack
    before = len(endpoint.requests)
    endpoint.answers.extend([error("ThrottlingException", 400, "Rate exceeded"), ok([0.02, 0.98])])
    desc, final = _run(wf, _event("test/bicycle_s_000001.png"))
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert final == "Routed_distant"
    assert len(endpoint.requests) == before + 2


def test_endpoint_down_exhausts_retries_into_endpoint_error(
    stack: tuple[Workflow, FakeEndpoint],
) -> None:
    wf, endpoint = stack
    before = len(endpoint.requests)
    endpoint.answers.extend([error("ServiceUnavailable", 503, "down")] * 4)
    desc, final = _run(wf, _event("test/bicycle_s_000001.png"))
    assert (desc["status"], desc["error"], final) == ("FAILED", "EndpointError", "EndpointError")
    assert _cause(desc)["errorType"] == "EndpointUnavailable"
    assert len(endpoint.requests) == before + 4  # first attempt + MaxAttempts (3) retries


LONG_KEY = "test/" + "k" * 1100 + ".png"

# (event, expected error, expected final state); >= 15 bad events, each must end in its state.
BAD_EVENTS = [
    pytest.param({}, "InvalidEvent", id="empty-object"),
    pytest.param({"s3_bucket": BUCKET}, "InvalidEvent", id="missing-key"),
    pytest.param({"s3_key": "test/bicycle_s_000001.png"}, "InvalidEvent", id="missing-bucket"),
    pytest.param({"s3_bucket": BUCKET, "s3_key": 42}, "InvalidEvent", id="key-not-string"),
    pytest.param({"s3_bucket": [BUCKET], "s3_key": "a.png"}, "InvalidEvent", id="bucket-list"),
    pytest.param(_event("test/bicycle_s_000001.png", driver_id=7), "InvalidEvent", id="driver-int"),
    pytest.param(_event("test/bicycle_s_000001.png", s3_Key="x"), "InvalidEvent", id="typo-field"),
    pytest.param(
        _event("test/bicycle_s_000001.png", image_data="AAAA"),
        "InvalidEvent",
        id="injected-image-data",
    ),
    # (A non-object execution input is refused by moto's interpreter before any task runs, so
    # lists/strings are covered by the handler tests, not here.)
    pytest.param({"s3_bucket": None, "s3_key": "a.png"}, "InvalidEvent", id="null-bucket"),
    pytest.param({"s3_bucket": BUCKET, "s3_key": 1.5}, "InvalidEvent", id="key-float"),
    pytest.param({"s3_bucket": "Bad_Bucket!", "s3_key": "a.png"}, "InvalidEvent", id="bad-bucket"),
    pytest.param(_event(""), "InvalidEvent", id="empty-key"),
    pytest.param(_event("test/"), "InvalidEvent", id="folder-key"),
    pytest.param(_event("test/a\nb.png"), "InvalidEvent", id="control-char-key"),
    pytest.param(_event(LONG_KEY), "InvalidEvent", id="key-too-long"),
    pytest.param(
        {"s3_bucket": "no-such-bucket-here", "s3_key": "a.png"},
        "ImageNotFound",
        id="unknown-bucket",
    ),
    pytest.param(_event("test/missing.png"), "ImageNotFound", id="missing-object"),
    pytest.param(_event("../../etc/passwd"), "ImageNotFound", id="path-traversal-key"),
    pytest.param(_event("test/notes.png"), "InvalidImage", id="text-file"),
    pytest.param(_event("test/truncated.png"), "InvalidImage", id="truncated-png"),
    pytest.param(_event("test/header_only.png"), "InvalidImage", id="png-header-only"),
    pytest.param(_event("test/no_idat.png"), "InvalidImage", id="png-without-pixels"),
    pytest.param(_event("test/bad_crc.png"), "InvalidImage", id="corrupt-png"),
    pytest.param(_event("test/empty.png"), "InvalidImage", id="empty-object"),
    pytest.param(_event("test/truncated.jpg"), "InvalidImage", id="truncated-jpeg"),
    pytest.param(_event("test/image.gif"), "InvalidImage", id="gif"),
    pytest.param(_event("test/huge.png"), "ImageTooLarge", id="oversized-image"),
]


@pytest.mark.parametrize(("event", "expected"), BAD_EVENTS)
def test_bad_event_ends_in_its_named_failure_state(
    stack: tuple[Workflow, FakeEndpoint], event: object, expected: str
) -> None:
    wf, endpoint = stack
    before = len(endpoint.requests)
    desc, final = _run(wf, event)
    assert desc["status"] == "FAILED"
    assert (desc["error"], final) == (expected, expected), desc.get("cause")
    cause = _cause(desc)
    assert cause["errorType"] == expected and cause["errorMessage"]
    assert len(endpoint.requests) == before  # rejected before reaching the model


def test_routing_publish_failure_is_reported_not_lost(
    stack: tuple[Workflow, FakeEndpoint], tmp_path: Path
) -> None:
    wf, endpoint = stack
    topic = os.environ["ROUTING_TOPIC_ARN"]  # applied by the adapter from the functions' env
    wf.sns.delete_topic(TopicArn=topic)
    try:
        endpoint.answers.append(ok([0.97, 0.03]))
        desc, final = _run(wf, _event("test/bicycle_s_000001.png"))
    finally:
        wf.sns.create_topic(Name=topic.rsplit(":", 1)[1])
    assert (desc["status"], final) == ("FAILED", "UnexpectedError")
    assert desc["error"] == "RoutingError"


def test_review_publish_failure_is_reported_not_dropped(
    stack: tuple[Workflow, FakeEndpoint],
) -> None:
    wf, endpoint = stack
    topic = next(
        t["TopicArn"] for t in wf.sns.list_topics()["Topics"] if t["TopicArn"].endswith("review")
    )
    wf.sns.delete_topic(TopicArn=topic)
    try:
        endpoint.answers.append(ok([0.6, 0.4]))
        desc, final = _run(wf, _event("test/bicycle_s_000001.png"))
    finally:
        wf.sns.create_topic(Name=topic.rsplit(":", 1)[1])
    assert (desc["status"], desc["error"], final) == (
        "FAILED",
        "ReviewNotPublished",
        "ReviewNotPublished",
    )
    assert "SNS" in desc["cause"] or "Topic" in desc["cause"]


def test_concurrent_mix_gives_the_same_outcomes_with_local_speedups(
    stack: tuple[Workflow, FakeEndpoint],
) -> None:
    """local/moto_speedups.py (parse once, shared clients, direct Lambda invokes) must not change
    any outcome, also with executions running at once (retry counters live per execution, not
    in the tree)."""
    from concurrent.futures import ThreadPoolExecutor

    from local import moto_speedups

    wf, endpoint = stack
    bodies = {
        png_bytes(seed=11): ok([0.99, 0.01]),
        png_bytes(seed=12): ok([0.02, 0.98]),
        png_bytes(seed=13): ok([0.55, 0.45]),
    }
    for i, body in enumerate(bodies):
        wf.s3.put_object(Bucket=BUCKET, Key=f"mix/{i}.png", Body=body)
    throttled: set[bytes] = set()

    def responder(body: bytes):
        if body == png_bytes(seed=12) and body not in throttled:
            throttled.add(body)  # the first call for this image is throttled, then retried
            return error("ThrottlingException", 400, "Rate exceeded")
        return bodies[body]

    cases = [
        (_event("mix/0.png"), "SUCCEEDED", "Routed_nearby"),
        (_event("mix/1.png"), "SUCCEEDED", "Routed_distant"),
        (_event("mix/2.png"), "RUNNING", "AwaitReview"),
        (_event("test/truncated.png"), "FAILED", "InvalidImage"),
        (_event("test/missing.png"), "FAILED", "ImageNotFound"),
        ({"s3_bucket": BUCKET}, "FAILED", "InvalidEvent"),
    ] * 3
    endpoint.responder = responder
    # As the local server installs them, the interpreter's Lambda invokes straight to the backend.
    moto_speedups.install(in_process_dispatch=True)
    try:
        with ThreadPoolExecutor(6) as pool:
            arns = list(
                pool.map(lambda c: wf.start(c[0], name=f"mix-{id(c)}-{os.urandom(4).hex()}"), cases)
            )
            results = [(wf.wait(a)["status"], wf.final_state(a)) for a in arns]
    finally:
        moto_speedups.uninstall()
        endpoint.responder = None
    assert results == [(status, state) for _, status, state in cases]
    for case in _pending(wf):  # leave no execution waiting for the tests after this one
        if case.image.endswith("mix/2.png"):
            wf.wait(_answer(wf, case.case_id, "none") and case.execution_arn, stop_at_review=False)
    wf.messages(wf.routing_queue)


def test_definition_is_well_formed_asl() -> None:
    from lambdas.errors import NAMED_ERRORS
    from lambdas.review_reasons import REVIEW_ERRORS
    from lambdas.workflow_definition import build_definition

    arns = {
        k: f"arn:aws:lambda:us-east-1:1:function:{k}"
        for k in WORKFLOW_FUNCTIONS
    }
    d = build_definition(
        arns,
        review_topic_arn="arn:aws:sns:us-east-1:1:review",
        review_queue_url="https://sqs.us-east-1.amazonaws.com/1/review-cases",
        routes={"bicycle": "nearby", "motorcycle": "distant", "scooter": "nearby"},
    )
    json.dumps(d)
    states = d["States"]
    assert d["StartAt"] in states
    targets = set()
    for name, state in states.items():
        for key in ("Next", "Default"):
            if key in state:
                targets.add(state[key])
        targets.update(c["Next"] for c in state.get("Catch", []) + state.get("Choices", []))
        for retry in state.get("Retry", []):
            assert retry["IntervalSeconds"] >= 1 and retry["BackoffRate"] > 1
            assert retry["JitterStrategy"] == "FULL"
            assert not set(retry["ErrorEquals"]) & set(NAMED_ERRORS), name
        catches = state.get("Catch", [])
        if catches:
            assert catches[-1]["ErrorEquals"] == ["States.ALL"]
        for value in (state.get("Parameters") or {}).values():
            assert not (isinstance(value, str) and value.lstrip().startswith("{"))
    assert targets <= set(states)
    assert targets | {d["StartAt"]} == set(states)  # every state is reachable
    fail_errors = {s.get("Error") for s in states.values() if s["Type"] == "Fail"}
    # Every named error ends in its Fail state, except the review errors (LowConfidence,
    # SafeMode): each goes through its Review_<error> Pass state, which names the reason.
    assert set(NAMED_ERRORS) - set(REVIEW_ERRORS) <= fail_errors
    assert not set(REVIEW_ERRORS) & fail_errors
    for review_error, reason in REVIEW_ERRORS.items():
        (catch,) = [c for c in states["Filter"]["Catch"] if c["ErrorEquals"] == [review_error]]
        assert states[catch["Next"]] == {
            "Type": "Pass", "Comment": states[catch["Next"]]["Comment"], "Result": reason.value,
            "ResultPath": "$.reason", "Next": "PublishForReview",
        }
    assert states["PublishForReview"]["Next"] == "AwaitReview"
    assert states["AwaitReview"]["Next"] == "Route"
    assert states["AwaitReview"]["Resource"] == "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    assert states["RejectedByReviewer"]["Type"] == "Succeed"
    assert {c["StringEquals"] for c in states["RouteChoice"]["Choices"]} == {
        "nearby",
        "distant",
        "rejected",
    }
    assert states["PublishForReview"]["Resource"] == "arn:aws:states:::sns:publish"
    with pytest.raises(ValueError, match="route_driver"):
        build_definition(
            {k: v for k, v in arns.items() if k != "route_driver"},
            review_topic_arn="t",
            review_queue_url="q",
            routes=DEFAULT_ROUTES,
        )
    with pytest.raises(ValueError, match="routes"):
        build_definition(arns, review_topic_arn="t", review_queue_url="q", routes={})
    with pytest.raises(ValueError, match="reserved"):
        build_definition(
            arns, review_topic_arn="t", review_queue_url="q", routes={"bicycle": "rejected"}
        )
    # EXPRESS workflows cannot wait for a task token: the case is queued, the execution ends.
    express = build_definition(
        arns, review_topic_arn="t", review_queue_url="q", wait_for_review=False,
        routes=DEFAULT_ROUTES,
    )["States"]
    assert express["AwaitReview"]["Resource"] == "arn:aws:states:::sqs:sendMessage"
    assert express["AwaitReview"]["Next"] == "SentToHumanReview"
    assert "task_token.$" not in express["AwaitReview"]["Parameters"]["MessageBody"]
