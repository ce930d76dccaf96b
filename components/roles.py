"""An IAM role with its one inline policy: the pair every component's execution role is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import pulumi
import pulumi_aws as aws

from components.iam import document


class RoleWithPolicy(NamedTuple):
    """A role and its inline policy, as ``role_with_policy`` registers them."""

    role: aws.iam.Role
    policy: aws.iam.RolePolicy


def role_with_policy(
    resource_name_prefix: str,
    *,
    description: str,
    trust_policy: pulumi.Input[str],
    statements: Sequence[Mapping[str, Any]],
    opts: pulumi.ResourceOptions,
) -> RoleWithPolicy:
    """The role ``<prefix>-role`` (`trust_policy` says who may assume it) and its one inline
    policy ``<prefix>-policy`` (``document(statements)``), both registered with `opts`."""
    role = aws.iam.Role(
        f"{resource_name_prefix}-role",
        description=description,
        assume_role_policy=trust_policy,
        opts=opts,
    )
    policy = aws.iam.RolePolicy(
        f"{resource_name_prefix}-policy",
        role=role.id,
        policy=document(statements),
        opts=opts,
    )
    return RoleWithPolicy(role, policy)
