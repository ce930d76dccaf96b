"""A Lambda function with its own log group, role and role policy, as every function here has.

``function_with_log_group`` creates, as children of the calling component (so their URNs are
the component's children's):

- ``<prefix>-logs``: the log group ``/aws/lambda/<function name>``, with the stack's retention
  (created here so it has one; Lambda would create it without).
- ``<prefix>-role``: a role only Lambda may assume, on behalf of this account.
- ``<prefix>-policy``: the function's own statements, then what every function needs to run
  (``components.iam.function_runtime_statements``: its own log group, X-Ray).
- the function (``spec.resource_name``): the zip, JSON logs to that log group, active tracing;
  created after its policy and log group, so its first invocation can write both.

``invoked_by_rule`` lets an EventBridge rule (a schedule, an event pattern) invoke a function.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components.context import StackContext
from components.iam import assume_role_policy, function_runtime_statements
from components.roles import role_with_policy
from lambdas.defaults import RUNTIME


def zip_source_hash(zip_path: Path) -> str:
    """Base64 SHA-256 of a deployment zip (or layer): Lambda's CodeSha256 form."""
    return base64.b64encode(hashlib.sha256(Path(zip_path).read_bytes()).digest()).decode()


@dataclass(frozen=True)
class FunctionSpec:
    """What one function is: its names, code, settings and own permissions."""

    resource_name: str  # the Function's Pulumi name
    prefix: str  # its log group, role and policy are <prefix>-logs, -role, -policy
    function_name: str  # the function's name in AWS
    description: str
    role_description: str
    handler: str
    code: Path  # the deployment zip
    layers: Sequence[pulumi.Input[str]]
    environment: Mapping[str, pulumi.Input[str]]
    # The function's own permissions; the runtime statements are added after them.
    statements: Sequence[Mapping[str, Any]]
    memory_size: int = 256
    timeout: int = 15
    log_sid: str = "WriteOwnLogGroup"


@dataclass(frozen=True)
class LambdaFunction:
    function: aws.lambda_.Function
    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    log_group: aws.cloudwatch.LogGroup


def function_with_log_group(
    spec: FunctionSpec,
    *,
    context: StackContext,
    parent: pulumi.Resource,
) -> LambdaFunction:
    """The function, its log group, role and policy, all children of `parent`."""
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(
        f"{spec.prefix}-logs",
        name=f"/aws/lambda/{spec.function_name}",
        retention_in_days=context.log_retention_days,
        opts=child,
    )
    role, policy = role_with_policy(
        spec.prefix,
        description=spec.role_description,
        trust_policy=assume_role_policy("lambda.amazonaws.com", source_account=context.account_id),
        statements=[
            *spec.statements,
            *function_runtime_statements(log_group.arn, log_sid=spec.log_sid),
        ],
        opts=child,
    )
    function = aws.lambda_.Function(
        spec.resource_name,
        name=spec.function_name,
        description=spec.description,
        runtime=RUNTIME,
        architectures=["x86_64"],
        handler=spec.handler,
        code=pulumi.FileArchive(str(spec.code)),
        source_code_hash=zip_source_hash(spec.code),
        role=role.arn,
        layers=list(spec.layers),
        memory_size=spec.memory_size,
        timeout=spec.timeout,
        environment={"variables": dict(spec.environment)},
        tracing_config={"mode": "Active"},
        logging_config={
            "log_format": "JSON",
            "log_group": log_group.name,
            "application_log_level": "INFO",
            "system_log_level": "WARN",
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy, log_group]),
    )
    return LambdaFunction(function=function, role=role, policy=policy, log_group=log_group)


def invoked_by_rule(
    name: str,
    *,
    rule: aws.cloudwatch.EventRule,
    function: aws.lambda_.Function,
    parent: pulumi.Resource,
) -> tuple[aws.cloudwatch.EventTarget, aws.lambda_.Permission]:
    """The rule's target ``<name>-target`` (the function) and ``<name>-invoke``, the function's
    permission for EventBridge to invoke it from that rule only."""
    child = pulumi.ResourceOptions(parent=parent)
    target = aws.cloudwatch.EventTarget(
        f"{name}-target", rule=rule.name, arn=function.arn, opts=child
    )
    permission = aws.lambda_.Permission(
        f"{name}-invoke",
        action="lambda:InvokeFunction",
        function=function.name,
        principal="events.amazonaws.com",
        source_arn=rule.arn,
        opts=child,
    )
    return target, permission
