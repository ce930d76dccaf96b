"""IAM policy documents as plain dicts, serialised with json.dumps (never string-formatted),
and the role-plus-inline-policy pair every component's execution role is.

Statements take ``pulumi.Input`` values (ARNs are Outputs), so ``document`` resolves them with
``Output.all`` before dumping. The policy pack (policy/rules.py) and tests/infra parse every
document these helpers produce and check their scope.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

# AWS accepts only Resource "*" for these actions (no resource-level permissions exist), so
# they are the only Allow statements with a wildcard resource; policy/rules.py holds the same
# list and says why for each.
XRAY_WRITE_ACTIONS = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]


def statement(
    actions: Sequence[str],
    resources: Sequence[pulumi.Input[str]],
    *,
    sid: str,
    condition: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One Allow statement; `sid` says why the permission is there."""
    result: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": list(resources),
    }
    if condition:
        result["Condition"] = dict(condition)
    return result


def document(statements: Sequence[Mapping[str, Any]]) -> pulumi.Output[str]:
    """A policy JSON document whose Input values are resolved first."""
    return pulumi.Output.from_input(
        {"Version": "2012-10-17", "Statement": list(statements)}
    ).apply(lambda doc: json.dumps(doc, sort_keys=True))


def assume_role_policy(
    service: str,
    *,
    source_account: pulumi.Input[str] | None = None,
    source_arn: pulumi.Input[str] | None = None,
) -> Any:
    """Trust policy letting one AWS service principal assume the role.

    `source_account` / `source_arn` are the confused-deputy guard: the service may assume the
    role only on behalf of this account / this one resource (IAM user guide, "The confused
    deputy problem": aws:SourceAccount and aws:SourceArn in the trust policy).
    """
    stmt: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    condition: dict[str, Any] = {}
    if source_account is not None:
        condition["StringEquals"] = {"aws:SourceAccount": source_account}
    if source_arn is not None:
        condition["ArnEquals"] = {"aws:SourceArn": source_arn}
    if condition:
        stmt["Condition"] = condition
    return document([stmt])


def log_group_arns(log_group_arn: pulumi.Input[str]) -> list[pulumi.Output[str]]:
    """A log group's ARN and its streams' (PutLogEvents is authorised on the stream)."""
    return [
        pulumi.Output.from_input(log_group_arn),
        pulumi.Output.concat(log_group_arn, ":log-stream:*"),
    ]


def function_runtime_statements(
    log_group_arn: pulumi.Input[str], *, log_sid: str = "WriteOwnLogGroup"
) -> list[dict[str, Any]]:
    """What every Lambda function needs to run: write its own log group (and so its EMF metrics)
    and send X-Ray traces (no resource-level permissions exist for those)."""
    return [
        statement(
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            log_group_arns(log_group_arn),
            sid=log_sid,
        ),
        statement(XRAY_WRITE_ACTIONS, ["*"], sid="XRayHasNoResourceLevel"),
    ]
