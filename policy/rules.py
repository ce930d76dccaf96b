"""The project's security rules as pulumi-policy policies (pure functions over resource props).

policy/__main__.py serves them as a policy pack (`pulumi preview --policy-pack policy`);
tests/infra calls the same validate functions on the resources the program registers.
Props are Pulumi property names (camelCase), as the policy engine passes them.

Wildcard exceptions (each is an Allow with Resource "*" that AWS itself requires):
  - xray:PutTraceSegments, xray:PutTelemetryRecords, xray:GetSamplingRules,
    xray:GetSamplingTargets: X-Ray has no resource-level permissions.
  - logs:CreateLogDelivery, GetLogDelivery, UpdateLogDelivery, DeleteLogDelivery,
    ListLogDeliveries, DescribeResourcePolicies, DescribeLogGroups: Step Functions' CloudWatch
    Logs delivery APIs accept only "*" (Step Functions developer guide). Not PutResourcePolicy:
    account-wide write of every log resource policy; the stack creates its log group's policy.
  - ecr:GetAuthorizationToken: the registry login is account-wide, no resource ARN exists.
  - cloudwatch:PutMetricData: no resource-level permissions; narrowed by a
    cloudwatch:namespace condition, which the rule requires.
  - states:SendTaskSuccess: no resource type in the Service
    Authorization Reference (list_awsstepfunctions.html); the task token, read only from the
    encrypted review queue, is what scopes an answer (components/function_policies.py).
  - KMS key policies: "Resource": "*" there means "this key", and the account-root statement
    with "kms:*" is AWS's default key policy (without it the key can become unmanageable).
Deny statements may use wildcards: they only narrow access (e.g. the bucket's TLS-only Deny).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

RESOURCE_STAR_ACTIONS = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        "ecr:GetAuthorizationToken",
        "cloudwatch:PutMetricData",
        "states:SendTaskSuccess",
    }
)
# Needs a condition to be acceptable with Resource "*".
CONDITION_REQUIRED = {"cloudwatch:PutMetricData": "cloudwatch:namespace"}

# Resource type -> the props holding policy documents.
POLICY_PROPS: dict[str, tuple[str, ...]] = {
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/role:Role": ("assumeRolePolicy",),
    "aws:s3/bucketPolicy:BucketPolicy": ("policy",),
    "aws:kms/key:Key": ("policy",),
    "aws:sns/topicPolicy:TopicPolicy": ("policy",),
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": ("policyDocument",),
}


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _is_account_root(principal: Any) -> bool:
    aws = principal.get("AWS") if isinstance(principal, Mapping) else None
    return bool(aws) and all(
        isinstance(p, str) and p.endswith(":root") for p in _as_list(aws)
    )


def policy_problems(document: Mapping[str, Any], *, key_policy: bool = False) -> list[str]:
    """Scope problems of one IAM policy document (empty list: none)."""
    problems = []
    for index, stmt in enumerate(_as_list(document.get("Statement"))):
        sid = stmt.get("Sid", f"#{index}")
        if stmt.get("Effect") != "Allow":
            continue
        if "NotAction" in stmt or "NotResource" in stmt:
            problems.append(f"statement {sid}: Allow with NotAction/NotResource")
            continue
        actions = [a for a in _as_list(stmt.get("Action")) if isinstance(a, str)]
        resources = _as_list(stmt.get("Resource"))
        if key_policy and _is_account_root(stmt.get("Principal")):
            continue  # AWS's default key policy statement (see module docstring)
        wild_actions = [a for a in actions if "*" in a]
        if wild_actions:
            problems.append(f"statement {sid}: wildcard action(s) {wild_actions}")
        if "*" in resources and not key_policy:
            if "Principal" in stmt:
                problems.append(f"statement {sid}: Resource '*' in a resource policy")
            else:
                not_allowed = sorted(set(actions) - RESOURCE_STAR_ACTIONS)
                if not_allowed:
                    problems.append(f"statement {sid}: Resource '*' for {not_allowed}")
                condition = json.dumps(stmt.get("Condition", {}))
                for action, key in CONDITION_REQUIRED.items():
                    if action in actions and key not in condition:
                        problems.append(
                            f"statement {sid}: {action} on '*' needs a {key} condition"
                        )
        for resource in resources:
            if isinstance(resource, str) and resource != "*" and resource.endswith(":*:*"):
                problems.append(f"statement {sid}: over-broad resource {resource}")
    return problems


def _documents(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for prop in POLICY_PROPS.get(resource_type, ()):
        yield prop, props.get(prop)
    if resource_type == "aws:iam/role:Role":
        for inline in _as_list(props.get("inlinePolicies")):
            if isinstance(inline, Mapping):
                yield "inlinePolicies", inline.get("policy")


def validate_iam_scope(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for prop, raw in _documents(args.resource_type, args.props):
        if not isinstance(raw, str | Mapping):
            continue  # unknown during preview; checked again on update
        try:
            document = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            report_violation(f"{prop} is not valid JSON", None)
            continue
        key_policy = args.resource_type == "aws:kms/key:Key"
        for problem in policy_problems(document, key_policy=key_policy):
            report_violation(f"{prop}: {problem}", None)


def validate_capture_encrypted(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != "aws:sagemaker/endpointConfiguration:EndpointConfiguration":
        return
    variants = _as_list(args.props.get("productionVariants"))
    serverless = any(isinstance(v, Mapping) and v.get("serverlessConfig") for v in variants)
    capture = args.props.get("dataCaptureConfig")
    if not capture:
        if not serverless:
            report_violation("instance endpoint without Data Capture (drift needs it)", None)
        return
    if capture.get("enableCapture") is False:
        report_violation("Data Capture is disabled", None)
    if not capture.get("kmsKeyId"):
        report_violation("Data Capture has no kmsKeyId (captured images unencrypted)", None)


def validate_log_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:cloudwatch/logGroup:LogGroup":
        return
    if not args.props.get("retentionInDays"):
        report_violation("log group without retentionInDays (logs kept forever)", None)


def validate_topic_encrypted(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type == "aws:sns/topic:Topic" and not args.props.get("kmsMasterKeyId"):
        report_violation("SNS topic without kmsMasterKeyId", None)


def validate_buckets(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every bucket has SSE-KMS by default and a public access block with all four flags."""
    def by_bucket(resource_type: str, ok: Callable[[Mapping[str, Any]], bool]) -> set:
        return {
            r.props.get("bucket")
            for r in args.resources
            if r.resource_type == resource_type and ok(r.props)
        }

    encrypted = by_bucket(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        lambda p: any(
            (rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm")
            in ("aws:kms", "aws:kms:dsse")
            for rule in _as_list(p.get("rules"))
        ),
    )
    blocked = by_bucket(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        lambda p: all(
            p.get(flag) is True
            for flag in (
                "blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                "restrictPublicBuckets",
            )
        ),
    )
    for bucket in args.resources:
        if bucket.resource_type not in ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"):
            continue
        name = bucket.props.get("bucket")
        if name is None:
            continue  # name unknown during preview
        if name not in encrypted:
            report_violation(f"bucket {name} has no SSE-KMS default encryption", bucket.urn)
        if name not in blocked:
            report_violation(f"bucket {name} has no full public access block", bucket.urn)


def validate_function_logs(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every Lambda function logs to a log group of this stack that has a retention period
    (otherwise Lambda creates /aws/lambda/<name> itself, keeping logs forever)."""
    retained = {
        r.props.get("name")
        for r in args.resources
        if r.resource_type == "aws:cloudwatch/logGroup:LogGroup" and r.props.get("retentionInDays")
    }
    for fn in args.resources:
        if fn.resource_type != "aws:lambda/function:Function":
            continue
        name = fn.props.get("name")
        group = (fn.props.get("loggingConfig") or {}).get("logGroup") or (
            f"/aws/lambda/{name}" if name else None
        )
        if group is None:
            continue  # unknown during preview
        if group not in retained:
            report_violation(
                f"function {name} logs to {group}, which is no log group with retention here",
                fn.urn,
            )


MANDATORY = EnforcementLevel.MANDATORY

RESOURCE_POLICIES = [
    ResourceValidationPolicy(
        name="iam-least-privilege",
        description="No wildcard IAM actions or resources except where AWS requires them.",
        validate=validate_iam_scope,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="sagemaker-capture-encrypted",
        description="Instance endpoints capture traffic, always encrypted with a KMS key.",
        validate=validate_capture_encrypted,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="log-retention-set",
        description="Every CloudWatch log group has a retention period.",
        validate=validate_log_retention,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="sns-topic-encrypted",
        description="SNS topics are encrypted with a KMS key.",
        validate=validate_topic_encrypted,
        enforcement_level=MANDATORY,
    ),
]
STACK_POLICIES = [
    StackValidationPolicy(
        name="s3-encrypted-and-private",
        description="Buckets have SSE-KMS default encryption and a full public access block.",
        validate=validate_buckets,
        enforcement_level=MANDATORY,
    ),
]
STACK_POLICIES.append(
    StackValidationPolicy(
        name="lambda-log-retention",
        description="Every Lambda function logs to a log group with retention in this stack.",
        validate=validate_function_logs,
        enforcement_level=MANDATORY,
    )
)
POLICIES = [*RESOURCE_POLICIES, *STACK_POLICIES]
