"""The BatchWorkflow component under Pulumi mocks, as both stacks deploy it: its resources, its
roles' exact grants and trust, and the batch definition as deployed (wired to the stack's own
functions, bucket and review topic)."""

from __future__ import annotations

import json

import pytest
from pulumi_support import ACCOUNT, REGION

from lambdas.batch_workflow_definition import RESULTS_PREFIX
from lambdas.workflow_definition import (
    AWAIT_REVIEW_STATE,
    REJECTED_STATE,
    REVIEW_EXPIRED_STATE,
    REVIEW_STATE,
)
from policy.rules import policy_problems

COMPONENT = "scones:workflow:BatchWorkflow"


@pytest.fixture(params=["dev", "prod"])
def run(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


def _grants(run, role_name: str) -> dict[str, dict]:
    """Sid -> statement of the inline policy attached to `role_name`."""
    role = run.named(role_name)
    (policy,) = [
        p
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs["role"] == role.outputs["name"]
    ]
    document = json.loads(policy.inputs["policy"])
    assert policy_problems(document) == []
    return {s["Sid"]: s for s in document["Statement"]}


def test_every_resource_is_a_child_of_the_component(run) -> None:
    names = {r.name for r in run.within(COMPONENT)}
    assert names == {
        "batch-summarize-logs",
        "batch-summarize-role",
        "batch-summarize-policy",
        "batch-summarize",
        "batch-logs",
        "batch-log-delivery",
        "batch-role",
        "batch-policy",
        "batch-state-machine",
    }


def test_state_machine_role_grants_exactly_the_batch_needs(run) -> None:
    bucket_arn = f"arn:aws:s3:::{run.outputs['bucket']}"
    key_arn = run.one("aws:kms/key:Key").outputs["arn"]
    name = f"scones-{run.stack}-batch"
    grants = _grants(run, "batch-role")
    assert grants["StartChildWorkflows"]["Resource"] == [
        f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
    ]
    assert grants["ManageChildWorkflows"]["Action"] == [
        "states:DescribeExecution",
        "states:StopExecution",
    ]
    assert grants["ManageChildWorkflows"]["Resource"] == [
        f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{name}/*"
    ]
    listing = grants["ListInputPrefixes"]
    assert (listing["Action"], listing["Resource"]) == (["s3:ListBucket"], [bucket_arn])
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["batch/*", "intake/*"]}}
    assert grants["WriteMapRunResults"]["Resource"] == [f"{bucket_arn}/{RESULTS_PREFIX}*"]
    assert grants["EncryptedBucket"]["Resource"] == [key_arn]
    functions = {r.outputs["arn"] for r in run.of_type("aws:lambda/function:Function")}
    invoked = set(grants["InvokeTheFunctions"]["Resource"])
    assert invoked <= functions and len(invoked) == 5  # the four steps + summarize_batch
    review = run.named("workflow-review-topic").outputs["arn"]
    assert grants["PublishForReview"]["Resource"] == [review]
    assert not any(a.startswith("events:") for s in grants.values() for a in s["Action"])


def test_trust_is_this_account_and_this_state_machine(run) -> None:
    (stmt,) = json.loads(run.named("batch-role").inputs["assumeRolePolicy"])["Statement"]
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:scones-{run.stack}-batch"
    assert stmt["Principal"] == {"Service": "states.amazonaws.com"}
    assert stmt["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": [arn, f"{arn}/*"]},
    }


def test_summarize_role_reads_results_and_lists_inputs_only(run) -> None:
    bucket_arn = f"arn:aws:s3:::{run.outputs['bucket']}"
    grants = _grants(run, "batch-summarize-role")
    assert grants["ListInputAndResults"]["Condition"] == {
        "StringLike": {"s3:prefix": ["batch/*", "intake/*", f"{RESULTS_PREFIX}*"]}
    }
    assert grants["ResultsAndSummary"]["Resource"] == [f"{bucket_arn}/{RESULTS_PREFIX}*"]


def test_definition_as_deployed_is_wired_to_this_stack(run) -> None:
    machine = run.one("aws:sfn/stateMachine:StateMachine", "batch-state-machine").inputs
    assert machine["name"] == f"scones-{run.stack}-batch"
    assert machine["type"] == "STANDARD"
    assert machine["loggingConfiguration"]["includeExecutionData"] is False
    definition = json.loads(machine["definition"])
    m = definition["States"]["ClassifyPrefix"]
    bucket = run.outputs["bucket"]
    assert m["ItemReader"]["Parameters"]["Bucket"] == bucket
    assert m["ResultWriter"]["Parameters"]["Bucket"] == bucket
    per_image = json.loads(
        run.one("aws:sfn/stateMachine:StateMachine", "workflow-state-machine").inputs["definition"]
    )
    items, single = m["ItemProcessor"]["States"], per_image["States"]
    # The same graph, except that the EXPRESS children queue a review case without waiting for
    # an answer (a STANDARD per-image workflow waits; an EXPRESS one queues like the batch).
    waiting_only = {AWAIT_REVIEW_STATE, REVIEW_EXPIRED_STATE, REJECTED_STATE, REVIEW_STATE}
    assert {k: v for k, v in items.items() if k not in waiting_only} == {
        k: v for k, v in single.items() if k not in waiting_only
    }
    assert items[AWAIT_REVIEW_STATE]["Resource"] == "arn:aws:states:::sqs:sendMessage"
    assert items[AWAIT_REVIEW_STATE]["Next"] == REVIEW_STATE
    assert (
        items[AWAIT_REVIEW_STATE]["Parameters"]["QueueUrl"]
        == single[AWAIT_REVIEW_STATE]["Parameters"]["QueueUrl"]
    )
    summarize = run.named("batch-summarize").outputs["arn"]
    assert definition["States"]["Summarize"]["Parameters"]["FunctionName"] == summarize
    assert run.outputs["batchStateMachineArn"].endswith(f":stateMachine:scones-{run.stack}-batch")
