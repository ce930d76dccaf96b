"""The four handlers: pure logic, then each handler against moto (S3, SNS) and the scripted
SageMaker runtime (real HTTP), including the capture records classify writes itself."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from fake_endpoint import FakeEndpoint, error, ok
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from workflow_support import jpeg_bytes, png_bytes

from default_task import DEFAULT_CLASSES, DEFAULT_ROUTES
from lambdas import aws
from lambdas.capture_format import capture_key, capture_record
from lambdas.classify_image.handler import capture_location
from lambdas.classify_image.logic import parse_probabilities
from lambdas.config import load_settings, parse_routes, parse_threshold
from lambdas.errors import (
    ConfigurationError,
    EndpointError,
    ImageNotFound,
    ImageTooLarge,
    InvalidEvent,
    InvalidImage,
    LowConfidence,
    RoutingError,
)
from lambdas.events import SERIALIZE_INPUT, validate_event
from lambdas.filter_inferences.logic import decide
from lambdas.image_format import JPEG, PNG, detect_image_type
from lambdas.route_driver.logic import choose_route, make_publisher
from lambdas.serialize_image.logic import MAX_STATE_BYTES, check_fits

PNG_OK = png_bytes(seed=3)
JPEG_OK = jpeg_bytes(seed=4)
BUCKET = "handler-bucket"


# ---------------------------------------------------------------- pure functions


def test_detects_png_and_jpeg_by_content_not_name() -> None:
    assert detect_image_type(PNG_OK) == PNG
    assert detect_image_type(JPEG_OK) == JPEG
    with pytest.raises(InvalidImage, match="not a PNG or JPEG"):
        detect_image_type(b"plain text pretending\n")
    with pytest.raises(InvalidImage, match="empty"):
        detect_image_type(b"")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_truncation_of_a_png_or_jpeg_is_rejected(data: st.DataObject) -> None:
    original = data.draw(st.sampled_from([PNG_OK, JPEG_OK]))
    cut = data.draw(st.integers(min_value=0, max_value=len(original) - 3))
    with pytest.raises(InvalidImage):
        detect_image_type(original[:cut])


def test_corrupt_png_crc_is_rejected() -> None:
    damaged = bytearray(PNG_OK)
    damaged[45] ^= 0xFF  # inside IDAT
    with pytest.raises(InvalidImage, match="CRC"):
        detect_image_type(bytes(damaged))


@pytest.mark.parametrize(
    "event",
    [
        [],
        "s",
        {"s3_bucket": "ok-bucket"},
        {"s3_bucket": "ok-bucket", "s3_key": None},
        {"s3_bucket": "ok-bucket", "s3_key": "a.png", "more": 1},
    ],
)
def test_entry_validation_names_the_problem(event: Any) -> None:
    with pytest.raises(InvalidEvent, match="serialize_image"):
        validate_event(event, SERIALIZE_INPUT, "serialize_image")


def test_state_budget_is_below_the_step_functions_limit() -> None:
    event = {"s3_bucket": BUCKET, "s3_key": "k.png"}
    check_fits(event, 150_000)
    with pytest.raises(ImageTooLarge, match="262144"):
        check_fits(event, 200_000)
    assert MAX_STATE_BYTES < 256 * 1024


def test_settings_parse_and_name_the_bad_key() -> None:
    s = load_settings(
        {
            "CLASSES": '["a", "b", "c"]',
            "CONFIDENCE_THRESHOLD": "0.5",
            "ROUTES": '{"a": "x", "b": "y", "c": "z"}',
        }
    )
    assert s.classes == ("a", "b", "c") and s.confidence_threshold == 0.5
    # The task is deploy config: a function given none refuses to guess one.
    with pytest.raises(ConfigurationError, match="CLASSES is not set"):
        load_settings({})
    with pytest.raises(ConfigurationError, match="ROUTES is not set"):
        load_settings({"CLASSES": '["a", "b"]'})
    with pytest.raises(ConfigurationError, match="CONFIDENCE_THRESHOLD"):
        parse_threshold({"CONFIDENCE_THRESHOLD": "1.5"})
    with pytest.raises(ConfigurationError, match="ROUTES"):
        parse_routes({"ROUTES": '{"bicycle": "nearby"}'}, ("bicycle", "motorcycle"))


def test_decide_threshold_is_inclusive_and_low_confidence_is_named() -> None:
    assert decide([0.93, 0.07], ("bicycle", "motorcycle"), 0.93) == ("bicycle", 0.93)
    assert decide([0.01, 0.99], ("bicycle", "motorcycle"), 0.93) == ("motorcycle", 0.99)
    with pytest.raises(LowConfidence, match=r"0\.9290"):
        decide([0.929, 0.071], ("bicycle", "motorcycle"), 0.93)
    with pytest.raises(InvalidEvent):
        decide([0.2, 0.3, 0.5], ("bicycle", "motorcycle"), 0.5)


@pytest.mark.parametrize("body", ["[0.5]", "[0.9, 0.9]", '{"p": 1}', "nan", "[true, false]"])
def test_endpoint_answers_that_are_not_distributions_are_endpoint_errors(body: str) -> None:
    with pytest.raises(EndpointError):
        parse_probabilities(body, ("bicycle", "motorcycle"))


def test_routes_and_publisher_choice() -> None:
    assert choose_route("bicycle", {"bicycle": "nearby"}) == "nearby"
    with pytest.raises(InvalidEvent, match="no route"):
        choose_route("tricycle", {"bicycle": "nearby"})
    with pytest.raises(ConfigurationError, match="exactly one"):
        make_publisher({}, lambda _s: None)
    with pytest.raises(ConfigurationError, match="exactly one"):
        make_publisher({"ROUTING_TOPIC_ARN": "t", "ROUTING_EVENT_BUS": "b"}, lambda _s: None)


def test_capture_record_and_key_match_the_design_format() -> None:
    when = dt.datetime(2025, 10, 4, 8, 44, 11, 123456, tzinfo=dt.UTC)
    record = capture_record(b"\x89PNG", "image/png", "[0.8227, 0.1772]", when, "id-1")
    assert record == {
        "captureData": {
            "endpointInput": {
                "observedContentType": "image/png",
                "mode": "INPUT",
                "data": base64.b64encode(b"\x89PNG").decode(),
                "encoding": "BASE64",
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": "[0.8227, 0.1772]",
                "encoding": "JSON",
            },
        },
        "eventMetadata": {"eventId": "id-1", "inferenceTime": "2025-10-04T08:44:11Z"},
        "eventVersion": "0",
    }
    key = capture_key("capture", "ep", "AllTraffic", when, "u-1")
    assert key == "capture/ep/AllTraffic/2025/10/04/08/44-11-123-u-1.jsonl"
    location = capture_location("s3://b/some/prefix/")
    assert (location.bucket, location.prefix) == ("b", "some/prefix")
    with pytest.raises(ConfigurationError):
        capture_location("b/prefix")


# ---------------------------------------------------------------- handlers with moto


class Context:
    function_name = "test-fn"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-fn"
    memory_limit_in_mb = 128
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/test-fn"
    log_stream_name = "s"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    for key in list(os.environ):
        if key.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    # The task, as every deployment sets it (the functions have no default task).
    monkeypatch.setenv("CLASSES", json.dumps(list(DEFAULT_CLASSES)))
    monkeypatch.setenv("ROUTES", json.dumps(dict(DEFAULT_ROUTES)))
    aws.reset_clients()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="test/bike.png", Body=PNG_OK)
        s3.put_object(Bucket=BUCKET, Key="test/moto.jpg", Body=JPEG_OK)
        s3.put_object(Bucket=BUCKET, Key="test/notes.png", Body=b"not an image")
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="routing")["TopicArn"]
        queue = sqs.create_queue(QueueName="routing")["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(
            TopicArn=topic, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"}
        )
        yield SimpleNamespace(s3=s3, sns=sns, sqs=sqs, topic=topic, queue=queue)
    aws.reset_clients()


def test_serialize_handler_reads_and_encodes(aws_env: SimpleNamespace) -> None:
    from lambdas.serialize_image.handler import lambda_handler

    out = lambda_handler(
        {"s3_bucket": BUCKET, "s3_key": "test/bike.png", "driver_id": "d"}, Context()
    )
    assert base64.b64decode(out["image_data"]) == PNG_OK
    assert out["inferences"] == [] and out["driver_id"] == "d"
    with pytest.raises(ImageNotFound, match=r"test/none\.png"):
        lambda_handler({"s3_bucket": BUCKET, "s3_key": "test/none.png"}, Context())
    with pytest.raises(ImageNotFound, match="bucket"):
        lambda_handler({"s3_bucket": "other-bucket", "s3_key": "x.png"}, Context())
    with pytest.raises(InvalidImage):
        lambda_handler({"s3_bucket": BUCKET, "s3_key": "test/notes.png"}, Context())


def test_classify_handler_calls_the_endpoint_and_captures(
    aws_env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambdas.classify_image.handler import lambda_handler

    with FakeEndpoint("ep-1") as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", endpoint.url)
        monkeypatch.setenv("ENDPOINT_NAME", "ep-1")
        monkeypatch.setenv("CAPTURE_S3_URI", f"s3://{BUCKET}/capture")
        aws.reset_clients()
        endpoint.answers.append(ok([0.2, 0.8]))
        event = {
            "s3_bucket": BUCKET,
            "s3_key": "test/moto.jpg",
            "inferences": [],
            "image_data": base64.b64encode(JPEG_OK).decode(),
        }
        out = lambda_handler(event, Context())
        assert out == {
            "s3_bucket": BUCKET,
            "s3_key": "test/moto.jpg",
            "inferences": [0.2, 0.8],
            "gate": {"in_distribution": True, "failed": [], "scores": {}},
        }
        assert endpoint.requests[-1]["content_type"] == "image/jpeg"
        assert endpoint.requests[-1]["accept"] == "application/vnd.scones.gate+json"
        assert endpoint.requests[-1]["body"] == JPEG_OK
        keys = [
            o["Key"]
            for o in aws_env.s3.list_objects_v2(Bucket=BUCKET, Prefix="capture/")["Contents"]
        ]
        assert len(keys) == 1 and keys[0].startswith("capture/ep-1/AllTraffic/")
        line = aws_env.s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read().decode()
        record = json.loads(line)
        assert base64.b64decode(record["captureData"]["endpointInput"]["data"]) == JPEG_OK
        output = record["captureData"]["endpointOutput"]
        assert json.loads(output["data"])["probabilities"] == [0.2, 0.8]
        assert output["observedContentType"] == "application/vnd.scones.gate+json"

        endpoint.answers.append(error("ThrottlingException", 400, "slow down"))
        from lambdas.errors import EndpointUnavailable

        with pytest.raises(EndpointUnavailable):
            lambda_handler(event, Context())
        with pytest.raises(InvalidEvent, match="base64"):
            lambda_handler({**event, "image_data": "***"}, Context())
    # endpoint gone: connection refused is transient, not a crash
    with pytest.raises(EndpointUnavailable, match="unreachable"):
        lambda_handler(event, Context())


def test_classify_without_endpoint_name_is_a_configuration_error(
    aws_env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambdas.classify_image.handler import lambda_handler

    monkeypatch.delenv("ENDPOINT_NAME", raising=False)
    with pytest.raises(ConfigurationError, match="ENDPOINT_NAME"):
        lambda_handler({"s3_bucket": BUCKET, "s3_key": "k", "image_data": "AA=="}, Context())


def test_filter_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    from lambdas.filter_inferences.handler import lambda_handler

    monkeypatch.setenv("CONFIDENCE_THRESHOLD", "0.9")
    monkeypatch.setenv("CLASSES", json.dumps(list(DEFAULT_CLASSES)))
    base = {"s3_bucket": BUCKET, "s3_key": "k.png"}
    out = lambda_handler({**base, "inferences": [0.95, 0.05]}, Context())
    assert (out["label"], out["confidence"]) == ("bicycle", 0.95)
    with pytest.raises(LowConfidence):
        lambda_handler({**base, "inferences": [0.55, 0.45]}, Context())
    with pytest.raises(InvalidEvent):
        lambda_handler({**base, "inferences": ["a", "b"]}, Context())


def test_route_handler_publishes_the_routing_event(
    aws_env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambdas.route_driver.handler import lambda_handler

    monkeypatch.setenv("ROUTING_TOPIC_ARN", aws_env.topic)
    event = {
        "s3_bucket": BUCKET,
        "s3_key": "k.png",
        "driver_id": "d-9",
        "label": "motorcycle",
        "confidence": 0.97,
        "inferences": [0.03, 0.97],
    }
    assert lambda_handler(event, Context())["route"] == "distant"
    msgs = aws_env.sqs.receive_message(QueueUrl=aws_env.queue)["Messages"]
    assert json.loads(msgs[0]["Body"]) == {
        "driver_id": "d-9",
        "label": "motorcycle",
        "confidence": 0.97,
        "route": "distant",
        "decided_by": "model",
        "image": f"s3://{BUCKET}/k.png",
    }
    monkeypatch.setenv("ROUTING_TOPIC_ARN", aws_env.topic + "-missing")
    with pytest.raises(RoutingError, match="not published"):
        lambda_handler(event, Context())


def test_route_step_routes_a_persons_decision_the_same_way(
    aws_env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After review the event carries ``decision`` instead of the filter's label/confidence:
    the same handler routes it (decided_by person), rejects on "none", refuses anything else."""
    from lambdas.route_driver.handler import lambda_handler

    monkeypatch.setenv("ROUTING_TOPIC_ARN", aws_env.topic)
    case = {
        "s3_bucket": BUCKET,
        "s3_key": "k.png",
        "driver_id": "d-3",
        "inferences": [0.6, 0.4],
        "error": {"Error": "LowConfidence", "Cause": "{}"},
    }
    who = {"reviewer": "arn:aws:iam::1:user/rita", "decided_at": "2026-12-02T01:00:00Z"}
    out = lambda_handler({**case, "decision": {"label": "motorcycle", **who}}, Context())
    assert (out["route"], out["label"], out["decided_by"]) == ("distant", "motorcycle", "person")
    rejected = lambda_handler({**case, "decision": {"label": "none", **who}}, Context())
    assert rejected["route"] == "rejected"
    bodies = [
        json.loads(m["Body"])
        for m in aws_env.sqs.receive_message(QueueUrl=aws_env.queue, MaxNumberOfMessages=10)[
            "Messages"
        ]
    ]
    assert {
        "driver_id": "d-3",
        "label": "motorcycle",
        "confidence": None,
        "route": "distant",
        "decided_by": "person",
        **who,
        "image": f"s3://{BUCKET}/k.png",
    } in bodies
    (rejection,) = [b for b in bodies if b["route"] == "rejected"]
    assert rejection["message"].startswith("We could not see a vehicle")
    with pytest.raises(InvalidEvent, match="tricycle"):
        lambda_handler({**case, "decision": {"label": "tricycle", **who}}, Context())
    with pytest.raises(InvalidEvent):  # who decided is part of the contract
        lambda_handler({**case, "decision": {"label": "bicycle"}}, Context())
    with pytest.raises(InvalidEvent):  # neither the model's nor a person's decision
        lambda_handler(case, Context())


def test_route_handler_can_publish_to_eventbridge(
    aws_env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambdas.route_driver.handler import lambda_handler

    events = boto3.client("events", region_name="us-east-1")
    events.create_event_bus(Name="routing")
    monkeypatch.delenv("ROUTING_TOPIC_ARN", raising=False)
    monkeypatch.setenv("ROUTING_EVENT_BUS", "routing")
    event = {"s3_bucket": BUCKET, "s3_key": "k.png", "label": "bicycle", "confidence": 0.99}
    assert lambda_handler(event, Context())["route"] == "nearby"
