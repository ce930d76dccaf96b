"""Safe mode: the flag's value, the switch's commands, the safe-mode handler and the filter step
against moto's SSM, and the state machine sending every request to review while it is on.

The alarm event below has the shape CloudWatch sends to EventBridge ("CloudWatch Alarm State
Change", Amazon CloudWatch user guide, "Alarm events and EventBridge",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from fake_endpoint import FakeEndpoint, ok
from moto import mock_aws
from workflow_support import BUCKET, Workflow, deploy, png_bytes

from default_task import DEFAULT_CLASSES
from lambdas import aws
from lambdas.errors import InvalidEvent, SafeMode
from lambdas.safe_mode import flag
from lambdas.safe_mode.commands import Command, parse_command
from lambdas.safe_mode.flag import INITIAL, SafeModeFlagError, SafeModeState
from local import lambda_runtime

NAME = "/scones-test/safe-mode"
KEY = "arn:aws:kms:us-east-1:123456789012:key/stack-key"
ALARM = "scones-test-alarms-drift-input-psi-a1b2c3"


class Context:
    function_name = "scones-test-fn"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:scones-test-fn"
    memory_limit_in_mb = 256
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/scones-test-fn"
    log_stream_name = "s"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def alarm_event(state: str = "ALARM") -> dict:
    return {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-12-02T07:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}"],
        "detail": {
            "alarmName": ALARM,
            "state": {
                "value": state,
                "reason": "Threshold Crossed: 1 datapoint [1.7] was greater than 0.25",
                "timestamp": "2026-12-02T07:00:00.000+0000",
            },
            "previousState": {"value": "OK"},
        },
    }


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for key in list(os.environ):
        if key.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("SAFE_MODE_PARAMETER", NAME)
    monkeypatch.setenv("CLASSES", json.dumps(list(DEFAULT_CLASSES)))  # as deployed
    aws.reset_clients()
    with mock_aws():
        client = boto3.client("ssm", region_name="us-east-1")
        flag.write_state(client, NAME, INITIAL, key_id=KEY)
        flag.clear_cache()
        yield client
    aws.reset_clients()
    flag.clear_cache()


# --- the value ---------------------------------------------------------------------------------


def test_the_state_round_trips_and_a_malformed_value_is_named() -> None:
    state = SafeModeState(on=True, changed_at="2026-12-02T07:00:00Z", changed_by="x", reason="y")
    assert SafeModeState.from_json(state.to_json()) == state
    for raw, match in (
        ("on", "not JSON"),
        ('{"on": true}', "expected keys"),
        ('{"on": "yes", "changed_at": "", "changed_by": "", "reason": ""}', "boolean"),
    ):
        with pytest.raises(SafeModeFlagError, match=match):
            SafeModeState.from_json(raw)


def test_enter_and_clear_change_the_flag_once_and_always_name_the_stack_key(ssm) -> None:
    state, changed = flag.enter(ssm, NAME, by="alarm:a", reason="drift", key_id=KEY)
    assert changed and state.on and state.changed_by == "alarm:a" and state.changed_at
    assert flag.read_state(ssm, NAME) == state
    # Already on: the first cause stays on record.
    again, changed = flag.enter(ssm, NAME, by="alarm:b", reason="more drift", key_id=KEY)
    assert not changed and again == state
    # moto keeps a SecureString as "kms:<key id>:<value>": the write named the stack key.
    raw = ssm.get_parameter(Name=NAME, WithDecryption=False)["Parameter"]
    assert raw["Type"] == "SecureString" and raw["Value"].startswith(f"kms:{KEY}:")
    off, changed = flag.clear(ssm, NAME, by="ops@example.com", key_id=KEY)
    assert changed and not off.on and off.changed_by == "ops@example.com"
    assert flag.clear(ssm, NAME, by="ops@example.com", key_id=KEY) == (off, False)
    # A malformed value is replaced by a well-formed one rather than left unreadable.
    ssm.put_parameter(Name=NAME, Value="garbage", Type="SecureString", Overwrite=True)
    fixed, changed = flag.enter(ssm, NAME, by="me", reason="test", key_id=KEY)
    assert changed and flag.read_state(ssm, NAME) == fixed


# --- the commands ------------------------------------------------------------------------------


def test_an_alarm_going_to_alarm_enters_and_nothing_else_clears() -> None:
    command = parse_command(alarm_event("ALARM"))
    assert command.action == "enter" and command.by == f"alarm:{ALARM}"
    assert ALARM in command.reason and "greater than 0.25" in command.reason
    assert parse_command(alarm_event("OK")).action == "ignore"
    assert parse_command(alarm_event("INSUFFICIENT_DATA")).action == "ignore"
    config_change = {**alarm_event(), "detail-type": "CloudWatch Alarm Configuration Change"}
    assert parse_command(config_change).action == "ignore"


def test_direct_commands_are_checked() -> None:
    assert parse_command({"action": "status"}) == Command("status")
    assert parse_command({"action": "clear", "by": "rita"}) == Command("clear", by="rita")
    assert parse_command({"action": "enter", "by": "rita", "reason": "fog"}).reason == "fog"
    for event, match in (
        ({"action": "clear"}, "'by'"),
        ({"action": "enter", "by": "rita"}, "'reason'"),
        ({"action": "reset"}, "one of status, enter, clear"),
        ({"action": "status", "force": True}, "unknown field"),
        ({"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change"},
         "alarmName"),
        ([], "JSON object"),
    ):
        with pytest.raises(InvalidEvent, match=match):
            parse_command(event)


# --- the safe-mode handler ---------------------------------------------------------------------


def _emf(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def test_the_handler_enters_on_the_alarm_and_clears_on_request(ssm, capsys, monkeypatch) -> None:
    from lambdas.safe_mode.handler import lambda_handler

    monkeypatch.setenv("SAFE_MODE_KEY_ID", KEY)
    capsys.readouterr()
    answer = lambda_handler(alarm_event(), Context())
    assert answer["action"] == "enter" and answer["changed"] is True
    assert answer["safe_mode"]["on"] is True
    assert answer["safe_mode"]["changed_by"] == f"alarm:{ALARM}"
    metrics = _emf(capsys.readouterr().out)
    assert [m["SafeModeEntered"] for m in metrics if "SafeModeEntered" in m] == [[1.0]]

    # A second drift alarm, and the alarm returning to OK, change nothing.
    assert lambda_handler(alarm_event(), Context())["changed"] is False
    assert lambda_handler(alarm_event("OK"), Context())["safe_mode"]["on"] is True
    assert not [m for m in _emf(capsys.readouterr().out) if "SafeModeEntered" in m]

    status = lambda_handler({"action": "status"}, Context())
    assert status["safe_mode"]["on"] is True and status["changed"] is False
    cleared = lambda_handler({"action": "clear", "by": "ops@example.com"}, Context())
    assert cleared["changed"] is True and cleared["safe_mode"]["on"] is False
    assert [m["SafeModeCleared"] for m in _emf(capsys.readouterr().out)
            if "SafeModeCleared" in m] == [[1.0]]
    assert flag.read_state(ssm, NAME).on is False


# --- the filter step ---------------------------------------------------------------------------


def _filter(event: dict) -> dict:
    from lambdas.filter_inferences.handler import lambda_handler

    return lambda_handler(event, Context())


EVENT = {"s3_bucket": BUCKET, "s3_key": "k.png", "inferences": [0.97, 0.03]}


def test_in_safe_mode_the_filter_sends_even_a_confident_answer_to_review(ssm, capsys) -> None:
    assert _filter(EVENT)["label"] == "bicycle"  # off: routed on the model
    flag.enter(ssm, NAME, by=f"alarm:{ALARM}", reason="drift alarm fired", key_id=KEY)
    flag.clear_cache()  # in the function: at most CACHE_SECONDS later
    capsys.readouterr()
    with pytest.raises(SafeMode, match=r"^safe_mode: .*alarm:.*best class 'bicycle' has "
                       r"confidence 0\.9700: needs human review"):
        _filter(EVENT)
    reviews = [m for m in _emf(capsys.readouterr().out) if "SentToReview" in m]
    assert [(m["reason"], m["SentToReview"]) for m in reviews] == [("safe_mode", [1.0])]
    (declared,) = reviews[0]["_aws"]["CloudWatchMetrics"]
    assert any("reason" in dims for dims in declared["Dimensions"])
    assert declared["Namespace"] == "SconesUnlimited/Inference"
    with pytest.raises(InvalidEvent, match="3 inferences for 2 classes"):
        _filter({**EVENT, "inferences": [0.5, 0.3, 0.2]})
    flag.clear(ssm, NAME, by="ops", key_id=KEY)
    flag.clear_cache()
    assert _filter(EVENT)["label"] == "bicycle"


def test_an_unreadable_flag_fails_closed_to_review(ssm) -> None:
    ssm.put_parameter(Name=NAME, Value="not json", Type="SecureString", Overwrite=True)
    flag.clear_cache()
    with pytest.raises(SafeMode, match="could not be read"):
        _filter(EVENT)
    ssm.delete_parameter(Name=NAME)
    flag.clear_cache()
    with pytest.raises(SafeMode, match="could not be read"):
        _filter(EVENT)


def test_without_a_flag_configured_the_filter_routes(ssm, monkeypatch) -> None:
    monkeypatch.delenv("SAFE_MODE_PARAMETER")
    flag.enter(ssm, NAME, by="me", reason="on, but this function has no flag", key_id=KEY)
    assert flag.current(os.environ) is None
    assert _filter(EVENT)["label"] == "bicycle"


# --- through the state machine -----------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    saved = {k: os.environ.get(k) for k in
             ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"
    )
    aws.reset_clients()
    flag.clear_cache()
    tmp: Path = tmp_path_factory.mktemp("safe-mode-workflow")
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        FakeEndpoint("scones-test-endpoint") as endpoint,
        lambda_runtime.installed(tmp / "code"),
    ):
        ssm = boto3.client("ssm", region_name="us-east-1")
        flag.write_state(ssm, NAME, INITIAL, key_id=KEY)
        wf: Workflow = deploy(
            tmp, endpoint_url=endpoint.url, extra_env={"SAFE_MODE_PARAMETER": NAME}
        )
        wf.s3.put_object(Bucket=BUCKET, Key="test/bicycle_s_000001.png", Body=png_bytes(seed=1))
        yield SimpleNamespace(wf=wf, endpoint=endpoint, ssm=ssm)
    aws.reset_clients()
    flag.clear_cache()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_the_state_machine_sends_every_request_to_review_in_safe_mode(workflow) -> None:
    wf, endpoint, ssm = workflow.wf, workflow.endpoint, workflow.ssm
    event = {"s3_bucket": BUCKET, "s3_key": "test/bicycle_s_000001.png", "driver_id": "d-1"}
    flag.enter(ssm, NAME, by=f"alarm:{ALARM}", reason="drift alarm fired", key_id=KEY)
    flag.clear_cache()
    endpoint.answers.append(ok([0.99, 0.01]))  # confident: would be routed
    arn = wf.start(event)
    desc = wf.wait(arn)
    assert desc["status"] == "RUNNING" and wf.final_state(arn) == "AwaitReview"
    (message,) = wf.messages(wf.review_queue)  # the review topic's message: the whole case
    assert message["reason"] == "safe_mode" and message["error"]["Error"] == "SafeMode"
    assert message["inferences"] == [0.99, 0.01] and message["driver_id"] == "d-1"
    assert json.loads(message["error"]["Cause"])["errorMessage"].startswith("safe_mode:")
    assert wf.messages(wf.routing_queue) == []

    flag.clear(ssm, NAME, by="ops", key_id=KEY)
    flag.clear_cache()
    endpoint.answers.append(ok([0.99, 0.01]))
    arn = wf.start(event, name="after-clear")
    desc = wf.wait(arn)
    assert desc["status"] == "SUCCEEDED" and wf.final_state(arn) == "Routed_nearby"


def test_a_low_confidence_case_carries_its_reason_too(workflow) -> None:
    wf, endpoint = workflow.wf, workflow.endpoint
    endpoint.answers.append(ok([0.6, 0.4]))
    event = {"s3_bucket": BUCKET, "s3_key": "test/bicycle_s_000001.png"}
    arn = wf.start(event, name="low")
    wf.wait(arn)
    assert wf.final_state(arn) == "AwaitReview"
    messages = wf.messages(wf.review_queue)
    assert messages[-1]["reason"] == "low_confidence"
    assert messages[-1]["error"]["Error"] == "LowConfidence"
