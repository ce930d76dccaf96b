"""local/moto_speedups.py: each shortcut gives moto's own answers (the state-machine tests run
every workflow path with and without them); here, the pieces one at a time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import moto_backend_speedups, moto_speedups

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


@pytest.fixture
def speedups() -> Iterator[None]:
    moto_speedups.install()
    try:
        yield
    finally:
        moto_speedups.uninstall()


def _depth_scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every ApproximateNumberOfMessages* count moto computes."""
    from moto.sqs.models import Queue

    seen: list[str] = []
    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        original = Queue.__dict__[name]

        def counted(self: Any, _original: Any = original, _name: str = name) -> Any:
            seen.append(_name)
            return _original.fget(self)

        monkeypatch.setattr(Queue, name, property(counted))
    return seen


def _sqs_story(sqs: Any) -> dict[str, Any]:
    """Standard and FIFO queues (content-based dedup on, off) through send, receive, attributes."""
    standard = sqs.create_queue(QueueName="plain", Attributes={"DelaySeconds": "0"})["QueueUrl"]
    dedup = sqs.create_queue(
        QueueName="dedup.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    explicit = sqs.create_queue(QueueName="explicit.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    for i in range(5):
        sqs.send_message(QueueUrl=standard, MessageBody=f"m{i}")
        sqs.send_message(QueueUrl=dedup, MessageBody="same", MessageGroupId="g")
    sqs.send_message(QueueUrl=standard, MessageBody="later", DelaySeconds=60)
    refused = []
    try:
        sqs.send_message(QueueUrl=explicit, MessageBody="x", MessageGroupId="g")
    except sqs.exceptions.ClientError as exc:
        refused.append(exc.response["Error"]["Code"])
    sqs.send_message(
        QueueUrl=explicit, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d"
    )
    received = sqs.receive_message(QueueUrl=standard, MaxNumberOfMessages=2)["Messages"]
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
        "DelaySeconds",
        "FifoQueue",
        "ContentBasedDeduplication",
    ]

    def attrs(url: str) -> dict[str, str]:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]

    return {
        "received": sorted(m["Body"] for m in received),
        "refused": refused,
        "standard": attrs(standard),
        "dedup": attrs(dedup),
        "explicit": attrs(explicit),
    }


def test_sqs_send_does_not_scan_the_queue_and_changes_nothing(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    seen = _depth_scans(monkeypatch)
    baseline = _sqs_story(sqs)
    for url in sqs.list_queues()["QueueUrls"]:
        sqs.delete_queue(QueueUrl=url)
    sends_scan_without = bool(seen)

    moto_speedups.install()
    try:
        url = sqs.create_queue(QueueName="depth")["QueueUrl"]
        seen.clear()
        sqs.send_message(QueueUrl=url, MessageBody="x")
        scans_on_send = list(seen)
        sqs.delete_queue(QueueUrl=url)
        with_speedups = _sqs_story(sqs)
    finally:
        moto_speedups.uninstall()

    assert sends_scan_without, "moto without the speedup scans the queue on every send"
    assert scans_on_send == []
    assert with_speedups == baseline
    assert baseline["standard"]["ApproximateNumberOfMessages"] == "3"
    assert baseline["standard"]["ApproximateNumberOfMessagesDelayed"] == "1"
    assert baseline["standard"]["ApproximateNumberOfMessagesNotVisible"] == "2"
    assert baseline["dedup"]["ApproximateNumberOfMessages"] == "1"  # deduplicated by content
    assert baseline["refused"] == ["InvalidParameterValue"]


def test_sqs_shortcut_is_off_outside_send_and_after_uninstall(aws: None, speedups: None) -> None:
    from moto.sqs.models import Queue, sqs_backends

    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    queue: Queue = sqs_backends["123456789012"][REGION].queues["q"]
    assert queue.attributes["ApproximateNumberOfMessages"] == 1
    moto_speedups.uninstall()
    assert "sqs" not in moto_backend_speedups._originals
    assert isinstance(Queue.__dict__["attributes"], property)
    assert queue.attributes["ApproximateNumberOfMessages"] == 1


def test_execution_index_follows_appends_and_rebuilds_for_a_new_list() -> None:
    index = moto_backend_speedups.ExecutionIndex()
    executions = [SimpleNamespace(name=f"n{i}", execution_arn=f"arn:{i}") for i in range(3)]
    assert index.by_arn(executions, "arn:1") is executions[1]
    executions.append(SimpleNamespace(name="n3", execution_arn="arn:3"))
    assert index.by_name(executions, "n3") is executions[3]
    assert index.by_name(executions, "missing") is None
    executions.pop(0)  # shorter (moto never does this): indexed again from scratch
    assert index.by_arn(executions, "arn:0") is None
    other = [SimpleNamespace(name="n1", execution_arn="arn:x")]
    assert index.by_name(other, "n1") is other[0]


def _execution_story(sfn: Any, iam: Any) -> list[Any]:
    """Start, restart (idempotent and not), describe, unknown ARN: moto's answers, as data."""
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    definition = '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}'
    arn = sfn.create_state_machine(name="m", definition=definition, roleArn=role)["stateMachineArn"]
    story: list[Any] = []
    first = sfn.start_execution(stateMachineArn=arn, name="a", input="{}")["executionArn"]
    for i in range(30):
        sfn.start_execution(stateMachineArn=arn, name=f"x{i}", input="{}")
    for name, payload in (("a", "{}"), ("a", '{"k": 1}'), ("b", "{}")):
        try:
            story.append(
                sfn.start_execution(stateMachineArn=arn, name=name, input=payload)["executionArn"]
            )
        except sfn.exceptions.ClientError as exc:
            story.append(exc.response["Error"]["Code"])
    desc = sfn.describe_execution(executionArn=first)
    story.append((desc["executionArn"], desc["name"], desc["input"]))
    try:
        sfn.describe_execution(executionArn=first + "-unknown")
    except sfn.exceptions.ClientError as exc:
        story.append(exc.response["Error"]["Code"])
    story.append(len(sfn.list_executions(stateMachineArn=arn)["executions"]))
    sfn.delete_state_machine(stateMachineArn=arn)
    iam.delete_role(RoleName="r")
    return story


def test_execution_lookups_give_moto_answers(aws: None) -> None:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    baseline = _execution_story(sfn, iam)
    moto_speedups.install()
    try:
        with_speedups = _execution_story(sfn, iam)
    finally:
        moto_speedups.uninstall()
    assert with_speedups == baseline
    # decorator mode runs no interpreter, so "a" is still RUNNING: same input is idempotent
    assert baseline[0].endswith(":execution:m:a")
    assert baseline[1] == "ExecutionAlreadyExists"
    assert baseline[3][1] == "a" and baseline[4] == "ExecutionDoesNotExist"


def test_method_names_and_url_tables_are_moto_values(aws: None, speedups: None) -> None:
    import moto.core.responses as responses
    from moto.s3.models import s3_backends
    from moto.sns.responses import SNSResponse

    original_names = moto_backend_speedups._originals["method_names"]
    assert responses.method_names_from_class(SNSResponse) == original_names(SNSResponse)
    backend = s3_backends["123456789012"]["global"]
    original_urls = moto_backend_speedups._originals["urls"].fget
    assert backend.urls == original_urls(backend)
    backend.urls.clear()  # callers get a copy
    assert backend.urls == original_urls(backend)
    os.environ["MOTO_S3_CUSTOM_ENDPOINTS"] = "http://custom-s3:9000"
    try:
        custom = backend.urls
        assert custom == original_urls(backend)
        assert any("custom-s3" in url for url in custom)
    finally:
        del os.environ["MOTO_S3_CUSTOM_ENDPOINTS"]
    assert not any("custom-s3" in url for url in backend.urls)


LAMBDA_SRC = """
def handler(event, context):
    if "boom" in event:
        raise ValueError("bad value: " + event["boom"])
    if "big" in event:
        return "x" * event["big"]
    return {"seen": event, "fn": context.function_name}
"""


@pytest.fixture
def echo_function(aws: None, tmp_path: Any) -> Iterator[tuple[Any, str]]:
    """A moto Lambda function run in-process by local/lambda_runtime.py; (client, its ARN)."""
    import io
    import json
    import sys
    import zipfile

    from local import lambda_runtime

    package = f"direct_lambda_{os.getpid()}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{package}/__init__.py", "")
        zf.writestr(f"{package}/handler.py", LAMBDA_SRC)
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="direct-lambda",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    client = boto3.client("lambda", region_name=REGION)
    with lambda_runtime.installed(tmp_path):
        arn = client.create_function(
            FunctionName="echo",
            Runtime="python3.12",
            Role=role,
            Handler=f"{package}.handler.handler",
            Code={"ZipFile": buf.getvalue()},
        )["FunctionArn"]
        yield client, arn
    for name in [m for m in sys.modules if m.startswith(package)]:
        del sys.modules[name]


def _answer(response: dict[str, Any]) -> dict[str, Any]:
    """A Lambda invoke response as the interpreter reads it (no request metadata)."""
    import json

    out = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    out["Payload"] = json.loads(out["Payload"].read())
    if not isinstance(out["Payload"], dict):
        return out
    for varying in ("stackTrace", "requestId"):  # frames above the handler; per invocation
        out["Payload"].pop(varying, None)
    return out


def test_direct_lambda_invoke_gives_the_api_answer(echo_function: tuple[Any, str]) -> None:
    client, arn = echo_function
    direct = moto_speedups.DirectLambdaClient(client, REGION)
    # result, handler error, no payload, a result over moto's 6 MB response limit
    for payload in (b'{"x": 1}', b'{"boom": "y"}', b"", b'{"big": 6100000}'):
        via_api = _answer(client.invoke(FunctionName=arn, Payload=payload))
        assert _answer(direct.invoke(FunctionName=arn, Payload=payload)) == via_api
    assert _answer(direct.invoke(FunctionName="echo", Payload=b"{}"))["Payload"]["fn"] == "echo"
    failed = _answer(direct.invoke(FunctionName=arn, Payload=b'{"boom": "y"}'))
    assert failed["FunctionError"] == "Handled"
    assert failed["Payload"]["errorType"] == "ValueError"
    too_big = _answer(direct.invoke(FunctionName=arn, Payload=b'{"big": 6100000}'))
    assert too_big["FunctionError"] == "Unhandled"
    assert too_big["Payload"]["errorType"] == "Function.ResponseSizeTooLarge"


def test_direct_lambda_invoke_skips_the_api_only_for_plain_invokes(
    echo_function: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, arn = echo_function
    direct = moto_speedups.DirectLambdaClient(client, REGION)
    via_api: list[dict[str, Any]] = []
    original = client.invoke

    def recorded(**params: Any) -> Any:
        via_api.append(params)
        return original(**params)

    monkeypatch.setattr(client, "invoke", recorded)
    assert direct.invoke(FunctionName=arn, Payload=b"{}")["StatusCode"] == 200
    assert via_api == []  # served by the backend
    # An unknown function and other invocation types are the API's: same errors, same answers.
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        direct.invoke(FunctionName=arn + "-missing", Payload=b"{}")
    assert (
        direct.invoke(FunctionName=arn, Payload=b"{}", InvocationType="Event")["StatusCode"] == 202
    )
    assert [p["FunctionName"] for p in via_api] == [arn + "-missing", arn]
    assert direct.meta.region_name == REGION  # the rest of the client is the client's
