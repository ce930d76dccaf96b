"""local/moto_speedups.py: each shortcut gives moto's own answers (the state-machine tests run
every workflow path with and without them); here, the pieces one at a time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

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
    gone = first.replace(":execution:m:", ":execution:gone:")  # no such state machine
    for unknown in (first + "-unknown", "not-an-arn", gone):
        try:
            sfn.describe_execution(executionArn=unknown)
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
    assert baseline[5] == "InvalidArn"  # moto's validation, kept in the indexed lookup
    assert baseline[6] == "ExecutionDoesNotExist"


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


def test_direct_lambda_invoke_uses_the_account_moto_s_api_uses(
    echo_function: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend account comes from the client's own access key (as moto's API layer reads
    it from the request signature) or MOTO_ACCOUNT_ID, never from botocore's private state."""
    import json

    client, _ = echo_function
    iam = boto3.client("iam", region_name=REGION)
    other = "111122223333"
    monkeypatch.setenv("MOTO_ACCOUNT_ID", other)
    iam.create_user(UserName="caller")
    key = iam.create_access_key(UserName="caller")["AccessKey"]
    role = iam.create_role(RoleName="other-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    monkeypatch.delenv("MOTO_ACCOUNT_ID")
    caller = boto3.client(
        "lambda",
        region_name=REGION,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    direct = moto_speedups.DirectLambdaClient(caller, REGION)
    assert direct.access_key() == key["AccessKeyId"]
    # The function below lives in the key's account only; moto's API finds it there.
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("other_account.py", "def handler(event, context):\n    return {'ok': 1}\n")
    caller.create_function(
        FunctionName="elsewhere",
        Runtime="python3.12",
        Role=role,
        Handler="other_account.handler",
        Code={"ZipFile": buf.getvalue()},
    )
    via_api: list[Any] = []
    original = caller.invoke
    monkeypatch.setattr(
        caller, "invoke", lambda **params: via_api.append(params) or original(**params)
    )
    assert _answer(direct.invoke(FunctionName="elsewhere", Payload=b"{}")) == _answer(
        original(FunctionName="elsewhere", Payload=b"{}")
    )
    assert via_api == []  # served by the backend of the key's account
    # The default account's client does not see it: the API's error, through the API.
    default = moto_speedups.DirectLambdaClient(client, REGION)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        default.invoke(FunctionName="elsewhere", Payload=b"{}")
    # MOTO_ACCOUNT_ID wins over the key, as in moto's API layer.
    monkeypatch.setenv("MOTO_ACCOUNT_ID", other)
    answer = _answer(default.invoke(FunctionName="elsewhere", Payload=json.dumps({}).encode()))
    assert answer["Payload"] == {"ok": 1}


def test_memoised_pure_functions_give_moto_s_and_jsonpath_ng_s_values(speedups: None) -> None:
    import importlib

    import moto.core.utils as utils

    original, _ = moto_backend_speedups._originals["camelcase"]
    for name in ("ListExecutions", "StartExecution", "x", "", "ABCDef", "QueueUrl", "aB1c"):
        assert utils.camelcase_to_underscores(name) == original(name)
    data = {"Payload": {"a": [{"b": 1}, {"b": 2}]}, "error": {"Error": "E"}}
    for module_name in moto_speedups._JSONPATH_USERS:
        module = importlib.import_module(module_name)
        fresh = moto_speedups._originals[f"jsonpath:{module_name}"]
        for path in ("$", "$.Payload", "$.error", "$.Payload.a[1].b", "$.Payload.a[*].b"):
            for _ in range(2):  # the second call is served from the cache
                got = [m.value for m in module.parse(path).find(data)]
                assert got == [m.value for m in fresh(path).find(data)]


def test_own_s3_and_sns_requests_are_served_in_process_by_the_same_backends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Server mode (local/moto_service.py): the handlers' S3/SNS calls addressed to the server
    itself skip HTTP; other services still go over it; the state is the server's."""
    import threading

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    app = DomainDispatcherApplication(create_backend_app)
    over_http: list[str] = []

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        over_http.append(environ["PATH_INFO"])
        return app(environ, start_response)

    httpd = make_server("127.0.0.1", 0, counting, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        s3 = boto3.client("s3", endpoint_url=url, region_name=REGION)
        sns = boto3.client("sns", endpoint_url=url, region_name=REGION)
        sfn = boto3.client("stepfunctions", endpoint_url=url, region_name=REGION)
        assert moto_speedups.install(in_process_dispatch=True, own_netloc=url.split("//")[1])
        try:
            s3.create_bucket(Bucket="in-process")
            s3.put_object(Bucket="in-process", Key="k", Body=b"bytes", Metadata={"a_b": "1"})
            topic = sns.create_topic(Name="in-process")["TopicArn"]
            sns.publish(TopicArn=topic, Message="m")
            assert over_http == []
            sfn.list_state_machines()
            assert len(over_http) == 1  # not S3 or SNS: over HTTP as before
        finally:
            moto_speedups.uninstall()
        # What was written in-process is what the server answers over HTTP.
        got = s3.get_object(Bucket="in-process", Key="k")
        assert got["Body"].read() == b"bytes" and got["Metadata"] == {"a_b": "1"}
        assert topic in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
        assert len(over_http) == 3
        s3.delete_object(Bucket="in-process", Key="k")
        s3.delete_bucket(Bucket="in-process")
        sns.delete_topic(TopicArn=topic)
    finally:
        httpd.shutdown()
        httpd.server_close()


def _task_services(definition: dict[str, Any]) -> set[str]:
    """The service of every Task integration (arn:aws:states:::SERVICE:action) in a definition."""
    found = set()
    for state in definition["States"].values():
        resource = state.get("Resource", "")
        if state["Type"] == "Task" and resource.startswith("arn:aws:states:::"):
            found.add(resource.removeprefix("arn:aws:states:::").split(":", 1)[0])
    return found


def test_every_task_integration_of_the_workflow_reuses_one_client(speedups: None) -> None:
    """A Task kind missing here builds a new boto3 client per execution (~14 ms of the server's
    CPU: the review loop's SQS task did, until it was added)."""
    import importlib

    from lambdas.workflow_definition import FUNCTION_KEYS, build_definition

    definition = build_definition(
        {key: f"arn:aws:lambda:{REGION}:123456789012:function:{key}" for key in FUNCTION_KEYS},
        review_topic_arn=f"arn:aws:sns:{REGION}:123456789012:review",
        review_queue_url=f"https://sqs.{REGION}.amazonaws.com/123456789012/review",
        routes={"bicycle": "nearby", "motorcycle": "distant"},
    )
    services = _task_services(definition)
    assert services >= {"lambda", "sns", "sqs"}
    assert services <= set(moto_speedups.CLIENT_USERS_BY_SERVICE)
    clients = set()
    for service in services:
        module = importlib.import_module(moto_speedups.CLIENT_USERS_BY_SERVICE[service])
        first = module.boto_client_for(REGION, service)
        assert module.boto_client_for(REGION, service) is first
        clients.add(id(first))
    assert len(clients) == len(services)


def test_interpreter_modules_deep_copy_with_json_deepcopy_only_while_installed() -> None:
    import copy
    import importlib
    import inspect

    from local.json_copy import json_deepcopy

    modules = [importlib.import_module(name) for name in moto_speedups._DEEPCOPY_USERS]
    for module in modules:  # each still deep-copies through its `copy` global
        assert module.copy is copy and "copy.deepcopy(" in inspect.getsource(module)
    moto_speedups.install()
    try:
        for module in modules:
            assert module.copy.deepcopy is json_deepcopy
            assert module.copy.copy is copy.copy and module.copy.Error is copy.Error
    finally:
        moto_speedups.uninstall()
    assert all(module.copy is copy for module in modules)


def _serving_traffic() -> None:
    """Responses of every protocol local mode serves: JSON (Step Functions, with a history),
    query (SNS, SQS) and REST-XML (S3)."""
    import json
    import time

    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Result": {"x": [1, 2]}, "ResultPath": "$.a", "Next": "B"},
            "B": {"Type": "Pass", "End": True},
        },
    }
    machine = sfn.create_state_machine(
        name="m", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="e", input='{"k": 1}')
    deadline = time.monotonic() + 10
    while sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sfn.get_execution_history(executionArn=execution["executionArn"])
    sfn.list_executions(stateMachineArn=machine)
    sns, sqs, s3 = (boto3.client(name, region_name=REGION) for name in ("sns", "sqs", "s3"))
    topic = sns.create_topic(Name="t")["TopicArn"]
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    sns.publish(TopicArn=topic, Message="hello", MessageAttributes={
        "kind": {"DataType": "String", "StringValue": "k"}
    })
    sqs.send_message(QueueUrl=queue, MessageBody="m")
    sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=2)
    sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])
    s3.create_bucket(Bucket="speedups-check")
    s3.put_object(Bucket="speedups-check", Key="k", Body=b"data")
    s3.get_object(Bucket="speedups-check", Key="k")["Body"].read()
    s3.list_objects_v2(Bucket="speedups-check")


def test_memoised_attribute_names_are_the_names_moto_s_picker_gives(
    speedups: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    originals = moto_backend_speedups._originals["attribute_names"]
    answers: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for cls, original in originals.items():
        memoised = cls.__dict__["get_possible_keys"]
        assert memoised is not original

        def compared(self: Any, context: Any, _memo: Any = memoised, _moto: Any = original) -> Any:
            got = tuple(_memo(self, context))
            answers.append((got, tuple(_moto(self, context))))
            return got

        monkeypatch.setattr(cls, "get_possible_keys", compared)
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(key, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        _serving_traffic()
    assert len(answers) > 500  # the traffic asked (and repeated) many names
    assert all(got == want for got, want in answers)


def test_attribute_names_are_cached_per_object_class_and_never_with_explicit_aliases(
    speedups: None,
) -> None:
    from moto.core import serialize

    class Execution:  # moto's class-prefix alias: ExecutionArn is also looked up as Arn
        pass

    original = moto_backend_speedups._originals["attribute_names"][serialize.AttributePicker]
    for obj in ({}, Execution(), {}, Execution()):
        context = serialize.AttributePickerContext(obj=obj, key="ExecutionArn", shape=None)  # type: ignore[arg-type]
        picker = serialize.AttributePicker()
        assert tuple(picker.get_possible_keys(context)) == tuple(original(picker, context))
    assert "Arn" in picker.get_possible_keys(context)

    class Thing:
        class Meta:
            serialization_aliases: ClassVar[dict[str, str]] = {"Name": "label"}

    other = Thing()
    other.Meta = SimpleNamespace(serialization_aliases={"Name": "title"})  # type: ignore[assignment]
    picker = serialize.AttributePicker()

    def names(obj: Any) -> tuple[str, ...]:
        context = serialize.AttributePickerContext(obj=obj, key="Name", shape=None)  # type: ignore[arg-type]
        return tuple(picker.get_possible_keys(context))

    assert names(Thing())[0] == "label" and names(other)[0] == "title"
    assert names(Thing())[0] == "label"


def test_backend_for_host_is_moto_s_answer_and_unknown_aws_hosts_are_asked_each_time(
    speedups: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    original = moto_speedups._originals["backend_for_host"]
    app = DomainDispatcherApplication(create_backend_app)
    hosts = [
        "127.0.0.1:5000",
        "localhost",
        "states.us-east-1.amazonaws.com",
        "sns.eu-west-1.amazonaws.com",
        "s3.amazonaws.com",
        "bucket.s3.amazonaws.com",
        "moto_api",
        "sqs",
        None,
    ]
    for host in hosts * 2:  # the second round is served from the cache
        assert app.get_backend_for_host(host) == original(app, host)
    capsys.readouterr()
    for _ in range(2):
        assert app.get_backend_for_host("nothing-here.amazonaws.com") is None
    assert capsys.readouterr().out.count("Unable to find appropriate backend") == 2
