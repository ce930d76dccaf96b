"""Lifecycle invariants of the workflow as deployed: no alarm on a designed outcome, and the
workflow's and EventBridge's roles trusted only for this stack's resources.

Sources:
- Step Functions counts an execution in ExecutionsFailed when it ends in a Fail state and in
  ExecutionsSucceeded when it ends in a Succeed state (Step Functions developer guide,
  "Execution metrics": https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html).
- Confused-deputy guards in trust policies: aws:SourceArn / aws:SourceAccount (Step Functions
  developer guide, "Cross-service confused deputy prevention"; EventBridge user guide,
  "Preventing the confused deputy problem"; IAM user guide, "The confused deputy problem").
"""

from __future__ import annotations

import json

import pytest
from pulumi_support import ACCOUNT

# Outcomes the product designs for: they must end in a Succeed state.
DESIGNED_OUTCOMES = {"LowConfidence", "OutOfDistribution"}


@pytest.fixture(params=["dev", "prod"])
def run(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


def _end_states(states: dict, start: str) -> set[str]:
    """Where a designed path can end: follow Next, and a Choice's branches (its Default only
    guards against outputs outside the contract, e.g. NoRoute)."""
    ends, todo, seen = set(), [start], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        if "Next" in state:
            todo.append(state["Next"])
        elif state["Type"] == "Choice":
            todo.extend(c["Next"] for c in state["Choices"])
        else:
            ends.add(name)
    return ends


def test_no_alarm_fires_on_a_designed_outcome(run) -> None:
    """The workflow-failed alarm counts ExecutionsFailed; a low-confidence image (about 40% of
    clean traffic) is handed to review and must end in a Succeed state."""
    alarm = run.named("alarms-workflow-failed").inputs
    assert alarm["metricName"] == "ExecutionsFailed"
    workflow = run.one("aws:sfn/stateMachine:StateMachine", "workflow-state-machine")
    states = json.loads(workflow.inputs["definition"])["States"]
    handled = 0
    for state in states.values():
        for catch in state.get("Catch", []):
            if set(catch["ErrorEquals"]) & DESIGNED_OUTCOMES:
                for end in _end_states(states, catch["Next"]):
                    assert states[end]["Type"] == "Succeed", (catch, end)
                handled += 1
    assert handled == len(DESIGNED_OUTCOMES)  # one catch each, into its Review_<error> state
    # Fail states exist only for real failures.
    fail_errors = {s.get("Error") for s in states.values() if s["Type"] == "Fail"}
    assert not fail_errors & DESIGNED_OUTCOMES


def test_dashboard_shows_review_apart_from_failures(run) -> None:
    body = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    (widget,) = [w for w in body["widgets"]
                 if w.get("properties", {}).get("title") == "Workflow outcomes"]
    metrics = [m[1] for m in widget["properties"]["metrics"]]
    assert {"ExecutionsFailed", "ExecutionsSucceeded", "NumberOfMessagesPublished"} <= set(
        metrics
    )
    review = next(m for m in widget["properties"]["metrics"]
                  if m[1] == "NumberOfMessagesPublished")
    topic = run.named("workflow-review-topic").outputs
    assert review[2:4] == ["TopicName", topic["name"]]


def _trust(run, role: str) -> dict:
    (stmt,) = json.loads(run.named(role).inputs["assumeRolePolicy"])["Statement"]
    return stmt["Condition"]


def test_workflow_role_is_trusted_for_its_state_machine_only(run) -> None:
    condition = _trust(run, "workflow-role")
    assert condition["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert condition["ArnEquals"] == {"aws:SourceArn": run.outputs["stateMachineArn"]}


def test_events_role_is_trusted_for_its_rule_only(run) -> None:
    condition = _trust(run, "workflow-events-role")
    assert condition["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    rule = run.named("workflow-intake-rule").outputs["arn"]
    assert condition["ArnEquals"] == {"aws:SourceArn": rule}


def test_workflow_role_cannot_rewrite_log_resource_policies(run) -> None:
    """logs:PutResourcePolicy on "*" would let the workflow replace any log resource policy of
    the account; the stack creates its log group's delivery policy itself instead."""
    role_name = run.named("workflow-role").outputs["name"]
    (policy,) = [p for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
                 if p.inputs["role"] == role_name]
    actions = {a for s in json.loads(policy.inputs["policy"])["Statement"] for a in s["Action"]}
    assert "logs:PutResourcePolicy" not in actions
    delivery = json.loads(
        run.named("workflow-log-delivery").inputs["policyDocument"]
    )
    (stmt,) = delivery["Statement"]
    log_group = run.named("workflow-logs").outputs["arn"]
    assert stmt["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert stmt["Resource"] == [f"{log_group}:log-stream:*"]
    assert stmt["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
