"""The policy pack's validate functions on the resources the program registers."""

from __future__ import annotations

import copy
import runpy
from pathlib import Path

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_support import Registered

from policy.rules import POLICIES, RESOURCE_POLICIES, STACK_POLICIES, validate_buckets

REPO_ROOT = Path(__file__).resolve().parents[2]


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def resource_args(r: Registered) -> ResourceValidationArgs:
    return ResourceValidationArgs(r.type, r.inputs, r.urn, r.name, _opts(), None)


def stack_args(resources: list[Registered]) -> StackValidationArgs:
    def props(r: Registered) -> dict:
        return {**r.outputs, **r.inputs}  # final state: computed outputs plus the inputs

    return StackValidationArgs(
        [PolicyResource(r.type, props(r), r.urn, r.name, _opts(), None, None, [], {})
         for r in resources]
    )


def violations(resources: list[Registered]) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for policy in RESOURCE_POLICIES:
        for r in resources:
            policy.validate(
                resource_args(r),
                lambda msg, urn=None, p=policy, r=r: found.append((p.name, r.name, msg)),
            )
    for policy in STACK_POLICIES:
        policy.validate(stack_args(resources),
                        lambda msg, urn=None, p=policy: found.append((p.name, urn or "", msg)))
    return found


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_program_passes_the_policy_pack(stack: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(stack)
    assert violations(run.resources) == []


def _with(run, typ: str, name: str | None, change) -> list[Registered]:
    resources = copy.deepcopy(run.resources)
    target = next(r for r in resources if r.type == typ and (name is None or r.name == name))
    change(target)
    return resources


def test_unencrypted_or_public_bucket_is_refused(prod) -> None:
    no_sse = [r for r in prod.resources if "ServerSideEncryption" not in r.type]
    assert any("no SSE-KMS" in msg for _, _, msg in violations(no_sse))
    public = _with(prod, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", None,
                   lambda r: r.inputs.update(restrictPublicBuckets=False))
    assert any("public access block" in msg for _, _, msg in violations(public))


def test_unencrypted_capture_is_refused(prod) -> None:
    resources = _with(
        prod, "aws:sagemaker/endpointConfiguration:EndpointConfiguration", None,
        lambda r: r.inputs["dataCaptureConfig"].pop("kmsKeyId"),
    )
    assert [(p, m) for p, _, m in violations(resources)] == [
        (
            "sagemaker-capture-encrypted",
            "Data Capture has no kmsKeyId (captured images unencrypted)",
        )
    ]


def test_log_group_without_retention_is_refused(dev) -> None:
    resources = _with(dev, "aws:cloudwatch/logGroup:LogGroup", "workflow-logs",
                      lambda r: r.inputs.pop("retentionInDays"))
    assert [(p, n) for p, n, _ in violations(resources)] == [("log-retention-set", "workflow-logs")]


def test_function_without_retained_log_group_is_refused(dev) -> None:
    resources = [r for r in dev.resources if r.name != "functions-route-driver-logs"]
    assert [(p, n) for p, n, _ in violations(resources)] == [
        ("lambda-log-retention", dev.named("functions-route-driver").urn)
    ]


def test_wildcard_role_policy_is_refused(dev) -> None:
    resources = _with(
        dev, "aws:iam/rolePolicy:RolePolicy", "functions-filter-inferences-policy",
        lambda r: r.inputs.update(policy='{"Version": "2012-10-17", "Statement": [{"Effect": '
                                         '"Allow", "Action": "*", "Resource": "*"}]}'),
    )
    found = violations(resources)
    assert {(p, n) for p, n, _ in found} == {
        ("iam-least-privilege", "functions-filter-inferences-policy")
    }


def test_bucket_rule_skips_unknown_names() -> None:
    reported: list[str] = []
    args = StackValidationArgs([PolicyResource("aws:s3/bucket:Bucket", {}, "urn", "b", _opts(),
                                               None, None, [], {})])
    validate_buckets(args, lambda msg, urn=None: reported.append(msg))
    assert reported == []


def test_pack_definition_lists_every_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi_policy

    created = {}

    class FakePack:  # serving the pack needs the Pulumi engine; capture its arguments instead
        def __init__(self, name, policies, **kwargs):
            created.update(name=name, policies=policies)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", FakePack)
    runpy.run_path(str(REPO_ROOT / "policy" / "__main__.py"), run_name="__main__")
    assert created["name"] == "scones-security"
    assert [p.name for p in created["policies"]] == [p.name for p in POLICIES]
    yaml_text = (REPO_ROOT / "policy" / "PulumiPolicy.yaml").read_text()
    assert "name: python" in yaml_text
