"""The safe-mode permissions under the IAM policy simulator (@cloud-copilot/iam-simulate): the
switch may read and write the one flag, the filter step may only read it, and neither may touch
another parameter. (moto's own IAM enforcement cannot show this: it authorizes SSM requests
against "*" only.)

The KMS statements' condition on kms:EncryptionContext:PARAMETER_ARN is checked by its shape in
tests/infra/test_safe_mode_component.py: the simulator reports that context key as ignored
(``ignoredContextKeys``), so it can neither allow nor deny on it.
"""

from __future__ import annotations

import pytest
from pulumi_support import ACCOUNT, REGION

from components.function_policies import function_statements, safe_mode_statements

FLAG = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/scones-dev/safe-mode"
OTHER = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/scones-dev/other"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/scones-dev-safe-mode-a1b2c3"


def _policy(statements: list[dict]) -> dict:
    return {"Version": "2012-10-17", "Statement": statements}


def _decisions(iam_evaluator, policy: dict, requests: list[tuple[str, str, dict]]) -> list[str]:
    results = iam_evaluator([
        {
            "identityPolicies": [policy],
            "principal": ROLE,
            "action": action,
            "resource": resource,
            "accountId": ACCOUNT,
            "context": {"aws:RequestedRegion": REGION, "aws:SecureTransport": True, **context},
        }
        for action, resource, context in requests
    ])
    return [r["decision"] for r in results]


def _requests() -> list[tuple[str, str, dict]]:
    return [
        ("ssm:GetParameter", FLAG, {}),
        ("ssm:PutParameter", FLAG, {}),
        ("ssm:GetParameter", OTHER, {}),
        ("ssm:PutParameter", OTHER, {}),
        ("ssm:DeleteParameter", FLAG, {}),
    ]


def test_the_switch_reads_and_writes_only_the_flag(iam_evaluator) -> None:
    policy = _policy(safe_mode_statements(parameter_arn=FLAG, kms_key_arn=KEY, write=True))
    assert _decisions(iam_evaluator, policy, _requests()) == [
        "Allowed", "Allowed", "ImplicitlyDenied", "ImplicitlyDenied", "ImplicitlyDenied",
    ]


@pytest.mark.parametrize("builder", ["safe_mode_statements", "function_statements"])
def test_the_filter_only_reads_the_flag(iam_evaluator, builder: str) -> None:
    if builder == "safe_mode_statements":
        statements = safe_mode_statements(parameter_arn=FLAG, kms_key_arn=KEY, write=False)
    else:  # what the filter's role really gets
        statements = function_statements(
            "filter_inferences", bucket_arn="arn:aws:s3:::b", kms_key_arn=KEY,
            endpoint_arn="e", routing_topic_arn="t", writes_capture=False,
            safe_mode_parameter_arn=FLAG,
        )
    assert _decisions(iam_evaluator, _policy(statements), _requests()) == [
        "Allowed", "ImplicitlyDenied", "ImplicitlyDenied", "ImplicitlyDenied", "ImplicitlyDenied",
    ]
