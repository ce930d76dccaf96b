"""`python -m local review --outputs FILE list|answer|serve` against a deployed stack, here moto:
the same CLI and page as local mode, reading the stack's outputs and using the caller's
credentials. The routing workflow (STANDARD: the case waits for its task token) and its EXPRESS
form (no callback: the answer calls the route step itself) both route the driver with the
person's decision; answers store labelled images with their provenance; only the reviewer
role's statements (components/function_policies.py) let a caller answer, under moto's IAM
authorization (https://docs.getmoto.org/en/latest/docs/iam.html)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fake_endpoint import FakeEndpoint, ok
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count
from workflow_support import ACCOUNT, BUCKET, ENDPOINT, REGION, Workflow, deploy, png_bytes

from components.function_policies import function_statements, reviewer_statements
from default_task import DEFAULT_ROUTES
from lambdas import aws
from lambdas.review_reasons import ReviewReason
from lambdas.workflow_definition import REVIEW_STATE, build_definition
from local import lambda_runtime
from local.review_cli import main as review_main

CLASSES = ["bicycle", "motorcycle"]
JOB = "scones-dev-0123456789abcdef0123"


def _cli_lines(text: str) -> str:
    """The CLI's output without the in-process handlers' one-line JSON logs and metrics
    (Powertools); the CLI's own JSON is indented, so none of its lines starts with '{"'."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith('{"'))


class Cloud:
    def __init__(self, wf: Workflow, endpoint: FakeEndpoint, outputs: Path, express: str):
        self.wf, self.endpoint, self.outputs_file, self.express_arn = wf, endpoint, outputs, express
        self.outputs = json.loads(outputs.read_text())

    def review(self, capsys, *args: str, session=None) -> tuple[int, str, str]:
        code = review_main(["--outputs", str(self.outputs_file), *args], session=session)
        out = capsys.readouterr()
        return code, _cli_lines(out.out), _cli_lines(out.err)

    def waiting_case(self, key: str, probs: list[float], driver: str) -> tuple[str, str]:
        """Start the STANDARD workflow on `key`; return (execution ARN, case id) once it waits."""
        self.endpoint.answers.append(ok(probs))
        arn = self.wf.start({"s3_bucket": BUCKET, "s3_key": key, "driver_id": driver})
        assert self.wf.wait(arn)["status"] == "RUNNING"
        return arn, arn.rsplit(":", 1)[1]

    def express_case(self, key: str, probs: list[float], driver: str) -> str:
        """Run the EXPRESS form on `key`: it ends at once, the case left on the queue."""
        self.endpoint.answers.append(ok(probs))
        name = f"express-{driver}"
        arn = self.wf.sfn.start_execution(
            stateMachineArn=self.express_arn, name=name,
            input=json.dumps({"s3_bucket": BUCKET, "s3_key": key, "driver_id": driver}),
        )["executionArn"]
        desc = self.wf.wait(arn, stop_at_review=False)
        assert desc["status"] == "SUCCEEDED" and self.wf.final_state(arn) == REVIEW_STATE
        return name


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    saved = {k: os.environ.get(k) for k in
             ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(
        AWS_DEFAULT_REGION=REGION, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"
    )
    aws.reset_clients()
    tmp = tmp_path_factory.mktemp("review-cloud")
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        FakeEndpoint(ENDPOINT) as endpoint,
        lambda_runtime.installed(tmp / "code"),
    ):
        wf = deploy(tmp, endpoint_url=endpoint.url)
        for i in range(4):
            wf.s3.put_object(Bucket=BUCKET, Key=f"intake/driver-{i}.png", Body=png_bytes(seed=i))
        lam = boto3.client("lambda", region_name=REGION)
        arns = {f["FunctionName"].removeprefix("scones-"): f["FunctionArn"]
                for f in lam.list_functions()["Functions"]}
        sm = wf.sfn.describe_state_machine(stateMachineArn=wf.state_machine_arn)
        review_topic = json.loads(sm["definition"])["States"]["PublishForReview"]["Parameters"][
            "TopicArn"]
        # scones:workflowType EXPRESS: the same definition without the callback.
        express = wf.sfn.create_state_machine(
            name="scones-test-express", type="EXPRESS", roleArn=sm["roleArn"],
            definition=json.dumps(build_definition(
                arns, review_topic_arn=review_topic, review_queue_url=wf.cases_queue,
                wait_for_review=False, routes=DEFAULT_ROUTES)),
        )["stateMachineArn"]
        outputs = tmp / "outputs.json"
        # What `pulumi stack output --json` prints for these keys (components/stack.py).
        outputs.write_text(json.dumps({
            "bucket": BUCKET,
            "classes": CLASSES,
            "reviewQueueUrl": wf.cases_queue,
            "reviewDeadLetterQueueUrl": wf.cases_dlq,
            "routeFunctionArn": arns["route_driver"],
            "stateMachineArn": wf.state_machine_arn,
            "trainingJobName": JOB,
            "retrainAfterLabels": 2,
            "labelledSnapshot": "",
        }))
        yield Cloud(wf, endpoint, outputs, express)
    aws.reset_clients()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _drain(wf: Workflow) -> list[dict]:
    out = wf.sqs.receive_message(QueueUrl=wf.routing_queue, MaxNumberOfMessages=10)
    for m in out.get("Messages", []):
        wf.sqs.delete_message(QueueUrl=wf.routing_queue, ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in out.get("Messages", [])]


def _answer_everything(cloud: Cloud, capsys) -> None:
    _, out, _ = cloud.review(capsys, "list", "--json")
    for case in json.loads(out):
        cloud.review(capsys, "--reviewer", "cleanup", "answer", case["case_id"], "none")
    _drain(cloud.wf)


def test_list_and_answer_route_a_waiting_case_with_the_callers_identity(cloud, capsys) -> None:
    _answer_everything(cloud, capsys)
    arn, case_id = cloud.waiting_case("intake/driver-0.png", [0.55, 0.45], "d-100")
    code, out, err = cloud.review(capsys, "list", "--json")
    assert code == 0, err
    (case,) = [c for c in json.loads(out) if c["case_id"] == case_id]
    assert case["image"] == f"s3://{BUCKET}/intake/driver-0.png" and case["waiting"]
    assert case["reason"] == ReviewReason.LOW_CONFIDENCE and "0.5500" in case["detail"]
    assert case["probabilities"] == {"bicycle": 0.55, "motorcycle": 0.45}
    assert "task_token" not in case and "receipt_handle" not in case

    code, out, err = cloud.review(capsys, "answer", case_id, "motorcycle")
    assert code == 0, err
    assert "driver routed as motorcycle" in out
    desc = cloud.wf.wait(arn, stop_at_review=False)
    assert desc["status"] == "SUCCEEDED" and cloud.wf.final_state(arn) == "Routed_distant"
    (event,) = _drain(cloud.wf)
    # The caller's identity (sts:GetCallerIdentity with the caller's credentials).
    caller = boto3.client("sts", region_name=REGION).get_caller_identity()["Arn"]
    assert (event["driver_id"], event["route"], event["decided_by"]) == (
        "d-100", "distant", "person")
    assert event["reviewer"] == caller and event["decided_at"]
    (obj,) = cloud.wf.s3.list_objects_v2(Bucket=BUCKET, Prefix="labelled/motorcycle/")[
        "Contents"]
    meta = cloud.wf.s3.head_object(Bucket=BUCKET, Key=obj["Key"])["Metadata"]
    assert meta == {"case-id": case_id, "reviewer": caller, "decided-at": event["decided_at"],
                    "model-version": JOB, "source": case["image"]}


def test_an_express_case_is_routed_through_the_route_step_after_the_answer(
    cloud, capsys
) -> None:
    """EXPRESS workflows cannot wait for a task token ("Optimized integrations for Step
    Functions": Express Workflows do not support .waitForTaskToken,
    https://docs.aws.amazon.com/step-functions/latest/dg/connect-supported-services.html): the
    execution has ended, and the answer routes the driver by calling the route step with the
    same input a waiting execution would give it."""
    _answer_everything(cloud, capsys)
    routed = cloud.express_case("intake/driver-1.png", [0.6, 0.4], "d-201")
    rejected = cloud.express_case("intake/driver-2.png", [0.5, 0.5], "d-202")
    assert _drain(cloud.wf) == []  # nobody routed yet
    _, out, _ = cloud.review(capsys, "list", "--json")
    listed = {c["case_id"]: c for c in json.loads(out)}
    assert not listed[routed]["waiting"] and listed[routed]["driver_id"] == "d-201"

    code, out, err = cloud.review(capsys, "--reviewer", "rita", "answer", routed, "bicycle")
    assert code == 0, err
    assert "driver routed as bicycle (route nearby)" in out
    (event,) = _drain(cloud.wf)
    assert {k: event[k] for k in ("driver_id", "label", "route", "decided_by", "reviewer")} == {
        "driver_id": "d-201", "label": "bicycle", "route": "nearby", "decided_by": "person",
        "reviewer": "rita"}
    assert event["confidence"] is None and event["image"].endswith("intake/driver-1.png")

    code, out, err = cloud.review(capsys, "--reviewer", "rita", "answer", rejected, "none")
    assert code == 0 and "photo rejected" in out, err
    (event,) = _drain(cloud.wf)
    assert (event["driver_id"], event["route"], event["label"]) == ("d-202", "rejected", "none")
    assert "new photo" in event["message"]
    _, out, _ = cloud.review(capsys, "list", "--json")
    assert {routed, rejected}.isdisjoint(c["case_id"] for c in json.loads(out))


def test_a_refused_route_keeps_the_case_queued(cloud, capsys) -> None:
    """The route step refuses a decision it cannot route (here: the outputs name a route
    function that is not the route step): nothing is deleted, the answer can be given again."""
    _answer_everything(cloud, capsys)
    case_id = cloud.express_case("intake/driver-3.png", [0.6, 0.4], "d-301")
    broken = dict(cloud.outputs, routeFunctionArn=cloud.outputs["routeFunctionArn"].replace(
        "route_driver", "filter_inferences"))
    bad = cloud.outputs_file.with_name("broken-outputs.json")
    bad.write_text(json.dumps(broken))
    code = review_main(["--outputs", str(bad), "--reviewer", "r", "answer", case_id, "bicycle"])
    err = _cli_lines(capsys.readouterr().err)
    assert code == 1 and "RouteRefused" in err, err
    _, out, _ = cloud.review(capsys, "list", "--json")
    assert case_id in {c["case_id"] for c in json.loads(out)}
    code, _, err = cloud.review(capsys, "--reviewer", "r", "answer", case_id, "bicycle")
    assert code == 0, err
    assert [e["driver_id"] for e in _drain(cloud.wf)] == ["d-301"]


def test_list_says_when_enough_new_labels_call_for_a_retrain(cloud, capsys) -> None:
    """scones:retrainAfterLabels (2 in these outputs): labelled/ against the snapshot the
    current model trained on (none yet)."""
    _answer_everything(cloud, capsys)
    labelled = cloud.wf.s3.list_objects_v2(Bucket=BUCKET, Prefix="labelled/").get("KeyCount", 0)
    assert labelled >= 2  # the answers above
    code, out, _ = cloud.review(capsys, "list")
    assert code == 0
    assert f"labels since the last retrain: {labelled} of 2" in out and "retrain now" in out


def test_missing_outputs_are_a_named_error(cloud, capsys, tmp_path: Path) -> None:
    partial = tmp_path / "outputs.json"
    partial.write_text(json.dumps({"bucket": BUCKET}))
    assert review_main(["--outputs", str(partial), "list"]) == 1
    err = capsys.readouterr().err
    assert "TargetError" in err and "reviewQueueUrl" in err


def test_the_review_page_answers_a_cloud_case(cloud, capsys) -> None:
    from local.review_cli import cloud_target, read_outputs
    from review.page import make_server

    _answer_everything(cloud, capsys)
    arn, case_id = cloud.waiting_case("intake/driver-0.png", [0.51, 0.49], "d-400")
    server = make_server(cloud_target(read_outputs(None, cloud.outputs_file)), reviewer="pia")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = urllib.request.urlopen(f"{base}/").read().decode()
        token = page.split('data-token="', 1)[1].split('"', 1)[0]
        cases = json.loads(urllib.request.urlopen(f"{base}/api/cases").read())
        assert [c["case_id"] for c in cases] == [case_id]
        labels = json.loads(urllib.request.urlopen(f"{base}/api/labels").read())
        labelled = cloud.wf.s3.list_objects_v2(Bucket=BUCKET, Prefix="labelled/")["KeyCount"]
        assert (labels["known"], labels["new"], labels["retrain_after"]) == (True, labelled, 2)
        assert labels["due"] == (labelled >= 2)
        image = urllib.request.urlopen(f"{base}/image/{case_id}").read()
        assert image == png_bytes(seed=0)
        request = urllib.request.Request(
            f"{base}/api/answer", method="POST",
            data=json.dumps({"case_id": case_id, "label": "bicycle"}).encode(),
            headers={"Content-Type": "application/json", "X-Review-Token": token},
        )
        answer = json.loads(urllib.request.urlopen(request).read())
    finally:
        server.shutdown()
        server.server_close()
    assert answer["outcome"] == "routed" and answer["reviewer"] == "pia"
    assert cloud.wf.wait(arn, stop_at_review=False)["status"] == "SUCCEEDED"
    assert cloud.wf.final_state(arn) == "Routed_nearby"
    (event,) = _drain(cloud.wf)
    assert (event["driver_id"], event["reviewer"], event["decided_by"]) == (
        "d-400", "pia", "person")


def _role_session(name: str, statements: list[dict]) -> boto3.session.Session:
    """A moto role with `statements` inline, assumed (before authorization is switched on)."""
    iam = boto3.client("iam", region_name=REGION)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    if statements:
        iam.put_role_policy(RoleName=name, PolicyName="own", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
    creds = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=role["Arn"], RoleSessionName=name)["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"], region_name=REGION)


def test_only_the_reviewer_statements_let_a_caller_answer(cloud, capsys) -> None:
    """With every request authenticated and authorized (moto's IAM authorization on), the
    reviewer role's statements list and answer a case; the route step's own role (it publishes
    routing events) and a role without statements are refused and change nothing."""
    _answer_everything(cloud, capsys)
    arn, case_id = _callback_only_case(cloud)
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    queue_arns = [
        cloud.wf.sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        for u in (cloud.wf.cases_queue, cloud.wf.cases_dlq)
    ]
    reviewer = _role_session("scones-test-reviewer", reviewer_statements(
        bucket_arn=bucket_arn, kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/none",
        queue_arns=queue_arns, route_function_arn=cloud.outputs["routeFunctionArn"]))
    router = _role_session("scones-test-router", function_statements(
        "route_driver", bucket_arn=bucket_arn, kms_key_arn="arn:aws:kms:::key/none",
        endpoint_arn="arn:aws:sagemaker:::endpoint/none",
        routing_topic_arn=f"arn:aws:sns:{REGION}:{ACCOUNT}:scones-routing",
        writes_capture=False))
    nobody = _role_session("scones-test-nobody", [])
    results: dict[str, tuple[int, str, str]] = {}

    def check() -> None:
        for who, session in (("router", router), ("nobody", nobody)):
            results[f"{who}-list"] = cloud.review(capsys, "list", "--json", session=session)
            results[f"{who}-answer"] = cloud.review(
                capsys, "--reviewer", who, "answer", case_id, "bicycle", session=session)
        results["reviewer-list"] = cloud.review(capsys, "list", "--json", session=reviewer)
        results["reviewer-answer"] = cloud.review(
            capsys, "answer", case_id, "bicycle", session=reviewer)

    set_initial_no_auth_action_count(0)(check)()
    for who in ("router", "nobody"):
        for step in ("list", "answer"):
            code, _, err = results[f"{who}-{step}"]
            assert code == 1 and "AccessDenied" in err, (who, step, err)
    code, out, err = results["reviewer-list"]
    assert code == 0 and case_id in {c["case_id"] for c in json.loads(out)}, err
    code, out, err = results["reviewer-answer"]
    assert code == 0 and "routed" in out, err
    deadline = time.monotonic() + 30
    while cloud.wf.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    desc = cloud.wf.sfn.describe_execution(executionArn=arn)
    assert desc["status"] == "SUCCEEDED"
    assert json.loads(desc["output"])["decision"]["reviewer"].endswith(
        "assumed-role/scones-test-reviewer/scones-test-reviewer")
    # The labelled image was stored once, by the reviewer (the refused callers wrote nothing).
    stored = [
        cloud.wf.s3.head_object(Bucket=BUCKET, Key=o["Key"])["Metadata"]
        for o in cloud.wf.s3.list_objects_v2(Bucket=BUCKET, Prefix="labelled/")["Contents"]
    ]
    assert [m["reviewer"] for m in stored if m["case-id"] == case_id] == [
        json.loads(desc["output"])["decision"]["reviewer"]]


def _callback_only_case(cloud: Cloud) -> tuple[str, str]:
    """The workflow's own AwaitReview state and review message, ending in Succeed: the answer
    resumes it without the route step's AWS calls, which would run under the test's
    authorization switch with the handlers' test credentials."""
    definition = json.loads(cloud.wf.sfn.describe_state_machine(
        stateMachineArn=cloud.wf.state_machine_arn)["definition"])
    await_review = dict(definition["States"]["AwaitReview"], Next="Done", Catch=[])
    sm = cloud.wf.sfn.create_state_machine(
        name="scones-test-callback-only", roleArn=cloud.wf.sfn.describe_state_machine(
            stateMachineArn=cloud.wf.state_machine_arn)["roleArn"],
        definition=json.dumps({"StartAt": "AwaitReview", "States": {
            "AwaitReview": await_review, "Done": {"Type": "Succeed"}}}),
    )["stateMachineArn"]
    arn = cloud.wf.sfn.start_execution(
        stateMachineArn=sm, name="callback-only",
        input=json.dumps({"s3_bucket": BUCKET, "s3_key": "intake/driver-3.png",
                          "inferences": [0.5, 0.5], "driver_id": "d-500"}),
    )["executionArn"]
    deadline = time.monotonic() + 30
    while not any(c.execution_arn == arn for c in _cases(cloud)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return arn, "callback-only"


def _cases(cloud: Cloud) -> list:
    from review.cases import list_cases

    return list_cases(cloud.wf.sqs, cloud.wf.cases_queue, cloud.wf.cases_dlq, CLASSES)


def test_stack_outputs_come_from_the_pulumi_cli() -> None:
    import subprocess

    from local.review_cli import TargetError, read_outputs, region_of

    outputs = {"bucket": "b", "classes": CLASSES, "reviewDeadLetterQueueUrl": "d",
               "reviewQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/q"}
    seen: list[list[str]] = []

    def runner(code: int, body: dict):
        def run(cmd, **kwargs):
            seen.append(cmd)
            return subprocess.CompletedProcess(cmd, code, json.dumps(body), "no stack dev")
        return run

    assert read_outputs("dev", None, runner(0, outputs)) == outputs
    assert seen == [["pulumi", "stack", "output", "--json", "--stack", "dev"]]
    assert region_of(outputs) == "eu-west-1"
    with pytest.raises(TargetError, match="no stack dev"):
        read_outputs("dev", None, runner(255, {}))
    with pytest.raises(TargetError, match="classes"):
        read_outputs("dev", None, runner(0, {k: v for k, v in outputs.items() if k != "classes"}))


def test_a_case_read_too_often_moves_to_the_dlq_and_is_still_answered(cloud, capsys) -> None:
    """Nothing is lost: SQS moves a message received maxReceiveCount times to the dead-letter
    queue (SQS developer guide, "Using dead-letter queues"; the review queue's redrive policy,
    review.cases.MAX_RECEIVE_COUNT); `review list` shows it there, and answering it still routes
    the driver whose execution waits."""
    from review.cases import MAX_RECEIVE_COUNT

    _answer_everything(cloud, capsys)
    arn, case_id = cloud.waiting_case("intake/driver-2.png", [0.58, 0.42], "d-600")
    for _ in range(MAX_RECEIVE_COUNT):  # every listing is a receive (SQS has no peek)
        assert [c.case_id for c in _cases(cloud) if not c.in_dead_letter_queue] == [case_id]
    (moved,) = _cases(cloud)
    assert moved.case_id == case_id and moved.in_dead_letter_queue
    depth = cloud.wf.sqs.get_queue_attributes(
        QueueUrl=cloud.wf.cases_dlq, AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "1"  # what the DLQ alarm reads
    code, out, err = cloud.review(capsys, "list")
    assert code == 0 and f"{case_id}" in out and "[dead-letter queue]" in out, err
    code, out, err = cloud.review(capsys, "--reviewer", "dee", "answer", case_id, "bicycle")
    assert code == 0 and "driver routed as bicycle" in out, err
    assert cloud.wf.wait(arn, stop_at_review=False)["status"] == "SUCCEEDED"
    assert [e["driver_id"] for e in _drain(cloud.wf)] == ["d-600"]
    assert _cases(cloud) == []
