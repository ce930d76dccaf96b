"""The deploy role can do everything `pulumi up` / `destroy` of each stack asks of AWS.

Every resource the main program registers for dev and prod (under Pulumi mocks, with the
physical names its autonaming pattern gives them), every request deploy_actions.py derives
from it (create, read, tag, update, replace, delete, iam:PassRole) and every invoke the
program calls, evaluated by @cloud-copilot/iam-simulate against the deploy policy that
bootstrap/policies.py generates for that stack. A request the policy does not allow fails,
with the resource, the action and the ARN.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from bootstrap_support import AutonamingMocks
from deploy_actions import Context, Registered, Request, UnknownResourceType, invoke_requests
from deploy_actions import requests_for as resource_requests
from pulumi_support import ACCOUNT, REGION

from bootstrap.naming import name_prefix
from bootstrap.policies import StateBackend, deploy_policy

# The principal making the requests (the name is what bootstrap gives the role).
ROLE = f"arn:aws:iam::{ACCOUNT}:role/github-scones-deploy-"


def _all_requests(run: AutonamingMocks, ctx: Context) -> list[tuple[str, Request]]:
    found = []
    for record in run.records:
        for request in resource_requests(record, ctx):
            found.append((f"{record.type} {record.name}", request))
    for token, args in run.calls:
        for request in invoke_requests(token, args, ctx):
            found.append((f"invoke {token}", request))
    return found


def resource_policies(run: AutonamingMocks) -> dict[str, dict]:
    """The stack's own resource policies: KMS key policies (by key ARN), bucket policies.

    KMS needs its key policy to allow a request as well (KMS developer guide, "Key policies");
    the stack's key policy delegates to IAM through the account root.
    """
    found: dict[str, dict] = {}
    for r in run.records:
        if r.type == "aws:kms/key:Key" and r.inputs.get("policy"):
            found[r.outputs["arn"]] = json.loads(r.inputs["policy"])
        if r.type == "aws:s3/bucketPolicy:BucketPolicy":
            found[f"arn:aws:s3:::{r.inputs['bucket']}"] = json.loads(r.inputs["policy"])
    return found


def _resource_policy(policies: dict[str, dict], resource: str) -> dict | None:
    if resource in policies:
        return policies[resource]
    if resource.startswith("arn:aws:s3:::"):
        return policies.get(resource.split("/", 1)[0])
    return None


def _as_simulation(
    policy: dict, stack: str, request: Request, policies: dict[str, dict]
) -> dict[str, Any]:
    service = request.action.split(":")[0]
    # IAM is a global service served from us-east-1 (aws:RequestedRegion docs).
    region = "us-east-1" if service == "iam" else REGION
    resource_policy = _resource_policy(policies, request.resource)
    return {
        **({"resourcePolicy": resource_policy} if resource_policy else {}),
        "identityPolicies": [policy],
        "principal": f"{ROLE}{stack}",
        "action": request.action,
        "resource": request.resource,
        "accountId": ACCOUNT,
        "context": {"aws:RequestedRegion": region, "aws:SecureTransport": True,
                    **request.context},
    }


def _denied(
    iam_evaluator, policy: dict, stack: str, requests: list[tuple[str, Request]],
    policies: dict[str, dict] | None = None,
) -> list[str]:
    results = iam_evaluator(
        [_as_simulation(policy, stack, r, policies or {}) for _, r in requests]
    )
    return [
        f"{what}: {r.action} on {r.resource} {r.context or ''} -> {res['decision']}"
        f"{' ' + str(res.get('errors')) if res.get('errors') else ''}"
        for (what, r), res in zip(requests, results, strict=True)
        if res["decision"] != "Allowed"
    ]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_deploy_role_allows_everything_the_stack_needs(
    stack: str, main_stacks: dict[str, AutonamingMocks], iam_evaluator
) -> None:
    run = main_stacks[stack]
    ctx = Context(account=ACCOUNT, region=REGION)
    requests = _all_requests(run, ctx)
    # Sanity: the program really was run (roles, functions, the endpoint and its config...).
    actions = {r.action for _, r in requests}
    assert {"iam:CreateRole", "iam:PassRole", "lambda:CreateFunction",
            "sagemaker:CreateEndpoint", "ssm:GetParameter"} <= actions
    policy = deploy_policy(prefix=name_prefix(stack), account_id=ACCOUNT, region=REGION)
    denied = _denied(iam_evaluator, policy, stack, requests, resource_policies(run))
    assert not denied, f"{len(denied)} of {len(requests)} requests denied:\n" + "\n".join(denied)


def test_deploy_role_of_one_stack_cannot_touch_the_other(
    main_stacks: dict[str, AutonamingMocks], iam_evaluator
) -> None:
    """dev's deploy role, evaluated on prod's resources (same account): nothing named."""
    ctx = Context(account=ACCOUNT, region=REGION)
    named = [
        (what, r) for what, r in _all_requests(main_stacks["prod"], ctx)
        if "scones-prod" in r.resource
    ]
    assert len(named) > 50
    policy = deploy_policy(prefix=name_prefix("dev"), account_id=ACCOUNT, region=REGION)
    denied = _denied(iam_evaluator, policy, "dev", named)
    assert len(denied) == len(named), "dev's deploy role may act on prod resources"


def test_deploy_role_cannot_rewrite_the_ci_roles(iam_evaluator) -> None:
    policy = deploy_policy(prefix=name_prefix("dev"), account_id=ACCOUNT, region=REGION)
    requests = [
        ("ci role", Request(action, f"arn:aws:iam::{ACCOUNT}:role/github-scones-deploy-dev"))
        for action in ("iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:PassRole",
                       "iam:AttachRolePolicy")
    ]
    assert len(_denied(iam_evaluator, policy, "dev", requests)) == len(requests)


def test_an_unknown_resource_type_fails_loudly() -> None:
    unknown = Registered("aws:ec2/instance:Instance", "web", {}, {})
    with pytest.raises(UnknownResourceType, match=r"aws:ec2/instance:Instance.*RULES"):
        resource_requests(unknown, Context(account=ACCOUNT, region=REGION))
    with pytest.raises(UnknownResourceType, match="INVOKES"):
        invoke_requests("aws:ec2/getAmi:getAmi", {}, Context(account=ACCOUNT, region=REGION))


# IAM counts an inline role policy's characters without white space, at most 10,240 for all of
# a role's inline policies together; the deploy role has this one
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
ROLE_POLICY_QUOTA = 10_240
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"  # a key ID's length and shape


@pytest.mark.parametrize(
    ("stack", "partition", "region"),
    [("dev", "aws", REGION), ("prod", "aws", REGION), ("prod", "aws-us-gov", "us-gov-west-1")],
)
def test_deploy_policy_is_a_valid_role_policy_in_its_partition(
    stack: str, partition: str, region: str
) -> None:
    """Unique Sids, the size quota with the state backend's statements, ARNs in its partition.

    IAM requires a policy's Sids to be unique
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_sid.html).
    """
    backend = StateBackend(
        bucket_arn=f"arn:{partition}:s3:::pulumi-state-0123456789abcdef",
        kms_key_arn=f"arn:{partition}:kms:{region}:{ACCOUNT}:key/{KEY_ID}",
    )
    policy = deploy_policy(
        prefix=name_prefix(stack),
        account_id=ACCOUNT,
        region=region,
        partition=partition,
        backend=backend,
    )
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids)), sids
    assert {s["Sid"] for s in policy["Statement"]} >= {"StateWrite", "StackSecretsKey"}
    size = len("".join(json.dumps(policy, sort_keys=True).split()))
    assert size <= ROLE_POLICY_QUOTA, f"{size} characters"
    arns = [r for s in policy["Statement"] for r in s["Resource"] if r != "*"]
    assert arns and all(r.startswith(f"arn:{partition}:") for r in arns), arns
