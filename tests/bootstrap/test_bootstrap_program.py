"""bootstrap/ under Pulumi mocks: the roles, their trust, and the GitHub settings it creates.

Trust policies are evaluated with @cloud-copilot/iam-simulate's condition evaluator against the
`sub` claims GitHub puts in its OIDC tokens: the legacy ``repo:OWNER/REPO:<context>`` and the
immutable ``repo:OWNER@OWNER_ID/REPO@REPO_ID:<context>`` that repositories created on or after
2026-07-15 get (configure-aws-credentials README at the pinned commit e6de054, "Immutable
subject claims"; GitHub docs, "About security hardening with OpenID Connect").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from bootstrap_support import ACCOUNTS, BOOTSTRAP_CONFIG, BootstrapMocks, run_bootstrap

from bootstrap.settings import DEPLOY_SESSION_SECONDS, BootstrapConfigError, BootstrapSettings

REPO = Path(__file__).resolve().parents[2]
HOST = "token.actions.githubusercontent.com"
LEGACY = "repo:octo-org/scones"
IMMUTABLE = "repo:octo-org@123456/scones@789012"

# docs/ci/trust-policy-deploy-dev.json as main had it (exact legacy subject only).
OLD_DEPLOY_DEV_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{ACCOUNTS['dev']}:oidc-provider/{HOST}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{HOST}:aud": "sts.amazonaws.com",
            f"{HOST}:sub": [f"{LEGACY}:environment:dev"],
        }},
    }],
}


def _resources(mocks: BootstrapMocks, typ: str) -> list[dict[str, Any]]:
    return [r for r in mocks.resources if r["type"] == typ]


def _role(mocks: BootstrapMocks, name: str) -> dict[str, Any]:
    (role,) = [r for r in _resources(mocks, "aws:iam/role:Role") if r["inputs"]["name"] == name]
    return role


def _token_request(trust: dict, role_arn: str, sub: str, aud: str = "sts.amazonaws.com"):
    return {
        "trust": True,
        "resourcePolicy": trust,
        "principal": trust["Statement"][0]["Principal"]["Federated"],
        "action": "sts:AssumeRoleWithWebIdentity",
        "resource": role_arn,
        "accountId": role_arn.split(":")[4],
        "context": {f"{HOST}:sub": sub, f"{HOST}:aud": aud},
    }


def _assumable(iam_evaluator, trust: dict, role_arn: str, subs: list[str]) -> dict[str, bool]:
    results = iam_evaluator([_token_request(trust, role_arn, s) for s in subs])
    return {s: r["decision"] == "Allowed" for s, r in zip(subs, results, strict=True)}


def test_old_trust_policy_rejects_the_immutable_subject(iam_evaluator) -> None:
    """Defect 1 as main had it, and proof the evaluator reads the sub condition at all."""
    role = f"arn:aws:iam::{ACCOUNTS['dev']}:role/github-scones-deploy-dev"
    got = _assumable(iam_evaluator, OLD_DEPLOY_DEV_TRUST, role,
                     [f"{LEGACY}:environment:dev", f"{IMMUTABLE}:environment:dev"])
    assert got == {f"{LEGACY}:environment:dev": True, f"{IMMUTABLE}:environment:dev": False}


CASES = {
    # role: (accepted contexts, rejected contexts)
    "deploy-dev": (["environment:dev"],
                   ["environment:prod", "pull_request", "ref:refs/heads/main",
                    "ref:refs/heads/feature"]),
    "deploy-prod": (["environment:prod"],
                    ["environment:dev", "pull_request", "ref:refs/heads/main"]),
    "readonly-dev": (["pull_request", "ref:refs/heads/main"],
                     ["ref:refs/heads/feature", "environment:dev", "environment:prod"]),
    "readonly-prod": (["pull_request", "ref:refs/heads/main"],
                      ["ref:refs/heads/feature", "environment:prod"]),
}


@pytest.mark.parametrize("role", sorted(CASES))
def test_trust_accepts_both_subject_forms_and_nothing_else(
    role: str, bootstrap_run, iam_evaluator
) -> None:
    mocks, _ = bootstrap_run
    kind, stack = role.split("-")
    resource = _role(mocks, f"github-scones-{kind}-{stack}")
    trust = json.loads(resource["inputs"]["assumeRolePolicy"])
    (stmt,) = trust["Statement"]
    # Each stack's roles trust the OIDC provider of that stack's own account.
    assert stmt["Principal"] == {
        "Federated": f"arn:aws:iam::{ACCOUNTS[stack]}:oidc-provider/{HOST}"
    }
    assert set(stmt["Condition"]) == {"StringEquals"}  # no wildcard subjects
    arn = resource["outputs"]["arn"]
    accepted, rejected = CASES[role]
    subs_ok = [f"{form}:{c}" for c in accepted for form in (LEGACY, IMMUTABLE)]
    subs_bad = [f"{form}:{c}" for c in rejected for form in (LEGACY, IMMUTABLE)] + [
        # another repository of the owner, a recycled name with other IDs, another owner
        f"repo:octo-org/other:{accepted[0]}",
        f"repo:octo-org@123456/scones@999999:{accepted[0]}",
        f"repo:octo-org@654321/scones@789012:{accepted[0]}",
        f"repo:evil/scones:{accepted[0]}",
    ]
    got = _assumable(iam_evaluator, trust, arn, subs_ok + subs_bad)
    assert {s for s, ok in got.items() if ok} == set(subs_ok)
    wrong_audience = iam_evaluator([_token_request(trust, arn, subs_ok[0], aud="sigstore")])
    assert wrong_audience[0]["decision"] != "Allowed"


def test_legacy_subject_can_be_turned_off(iam_evaluator) -> None:
    mocks, _ = run_bootstrap({**BOOTSTRAP_CONFIG, "acceptLegacySubject": False})
    resource = _role(mocks, "github-scones-deploy-dev")
    trust = json.loads(resource["inputs"]["assumeRolePolicy"])
    got = _assumable(iam_evaluator, trust, resource["outputs"]["arn"],
                     [f"{LEGACY}:environment:dev", f"{IMMUTABLE}:environment:dev"])
    assert got == {f"{LEGACY}:environment:dev": False, f"{IMMUTABLE}:environment:dev": True}


def test_one_read_only_role_per_stack_in_its_own_account(bootstrap_run) -> None:
    """Defect 4: prod previews and drift checks must not run with dev's credentials."""
    mocks, outputs = bootstrap_run
    for stack, account in ACCOUNTS.items():
        role = _role(mocks, f"github-scones-readonly-{stack}")
        assert role["outputs"]["arn"].startswith(f"arn:aws:iam::{account}:")
        assert outputs[f"readonlyRoleArn{stack.capitalize()}"] == role["outputs"]["arn"]
        (variable,) = [
            v for v in _resources(mocks, "github:index/actionsVariable:ActionsVariable")
            if v["inputs"]["variableName"] == f"AWS_READONLY_ROLE_ARN_{stack.upper()}"
        ]
        assert variable["inputs"]["value"] == role["outputs"]["arn"]
    providers = _resources(mocks, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert len(providers) == 2  # two accounts (two profiles), one provider each
    assert all(p["inputs"]["clientIdLists"] == ["sts.amazonaws.com"] for p in providers)


def test_stacks_sharing_an_account_share_one_oidc_provider() -> None:
    same = {"dev": {"region": "eu-west-1"}, "prod": {"region": "eu-west-1"}}
    mocks, _ = run_bootstrap({**BOOTSTRAP_CONFIG, "stacks": same})
    assert len(_resources(mocks, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")) == 1


def test_deploy_sessions_outlast_the_longest_deploy_job(bootstrap_run) -> None:
    """configure-aws-credentials asks for 1 h by default (README at e6de054, inputs table:
    role-duration-seconds "Defaults to 1 hour (3600 seconds)"), and STS refuses more than the
    role's MaxSessionDuration (IAM API reference, CreateRole: 3600-43200 s, default 3600).
    deploy.yml's jobs may run 120 minutes (training + a blue/green bake), so the role allows
    what the workflows ask for and the workflows ask for the whole job."""
    mocks, _ = bootstrap_run
    for stack in ACCOUNTS:
        role = _role(mocks, f"github-scones-deploy-{stack}")
        assert role["inputs"]["maxSessionDuration"] == DEPLOY_SESSION_SECONDS
    workflows = REPO / ".github" / "workflows"
    for name in ("deploy.yml", "destroy.yml"):
        doc = yaml.safe_load((workflows / name).read_text(encoding="utf-8"))
        for job in doc["jobs"].values():
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@"):
                    seconds = int(step["with"]["role-duration-seconds"])
                    assert job["timeout-minutes"] * 60 <= seconds <= DEPLOY_SESSION_SECONDS


def test_environments_deploy_from_main_only_and_prod_needs_a_reviewer(bootstrap_run) -> None:
    """Defect 7: the deploy roles trust `environment:<stack>`, so the environment decides which
    branches may take them. "Protected branches only" admits every branch while no branch is
    protected (GitHub docs, "Deployments and environments", Deployment branches and tags:
    "If no branch protection rules are defined for any branch in the repository, then all
    branches can deploy"); a custom policy naming main does not depend on that."""
    mocks, _ = bootstrap_run
    environments = {
        e["inputs"]["environment"]: e["inputs"]
        for e in _resources(mocks, "github:index/repositoryEnvironment:RepositoryEnvironment")
    }
    assert set(environments) == {"dev", "prod"}
    for env in environments.values():
        assert env["deploymentBranchPolicy"] == {
            "customBranchPolicies": True, "protectedBranches": False,
        }
        assert env["canAdminsBypass"] is False
    assert environments["prod"]["reviewers"] == [{"teams": [42], "users": []}]
    assert environments["prod"]["preventSelfReview"] is True
    policies = _resources(mocks, "github:index/repositoryEnvironmentDeploymentPolicy:"
                                 "RepositoryEnvironmentDeploymentPolicy")
    assert sorted((p["inputs"]["environment"], p["inputs"]["branchPattern"]) for p in policies) == [
        ("dev", "main"), ("prod", "main"),
    ]
    variables = {
        (v["inputs"]["environment"], v["inputs"]["variableName"]): v["inputs"]["value"]
        for v in _resources(
            mocks, "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"
        )
    }
    for stack, account in ACCOUNTS.items():
        assert variables[(stack, "AWS_ROLE_ARN")] == (
            f"arn:aws:iam::{account}:role/github-scones-deploy-{stack}"
        )
        assert variables[(stack, "AWS_REGION")] == "eu-west-1"


def test_main_is_protected_by_a_ruleset(bootstrap_run) -> None:
    mocks, _ = bootstrap_run
    (ruleset,) = _resources(mocks, "github:index/repositoryRuleset:RepositoryRuleset")
    inputs = ruleset["inputs"]
    assert inputs["target"] == "branch" and inputs["enforcement"] == "active"
    assert inputs["conditions"]["refName"]["includes"] == ["refs/heads/main"]
    rules = inputs["rules"]
    assert rules["deletion"] is True and rules["nonFastForward"] is True
    assert rules["pullRequest"]["requiredApprovingReviewCount"] >= 1
    contexts = [c["context"] for c in rules["requiredStatusChecks"]["requiredChecks"]]
    assert contexts == BOOTSTRAP_CONFIG["requiredChecks"]
    assert "bypassActors" not in inputs


def test_required_checks_name_real_ci_jobs() -> None:
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    names = {job["name"] for job in ci["jobs"].values()}
    committed = yaml.safe_load((REPO / "bootstrap" / "Pulumi.ci.yaml").read_text())["config"]
    assert set(committed["scones-bootstrap:requiredChecks"]) <= names


def _backend_requests(
    policy: dict, principal: str, bucket: str, key: str, resource_policies: dict[str, dict]
) -> dict[str, dict]:
    cases = {
        "read state": ("s3:GetObject", f"{bucket}/.pulumi/stacks/scones/prod.json"),
        "take lock": ("s3:PutObject", f"{bucket}/.pulumi/locks/scones/prod/x.json"),
        "write state": ("s3:PutObject", f"{bucket}/.pulumi/stacks/scones/prod.json"),
        "decrypt secrets": ("kms:Decrypt", key),
        "encrypt secrets": ("kms:Encrypt", key),
    }
    return {
        what: {"identityPolicies": [policy], "principal": principal, "action": action,
               "resource": resource, "accountId": ACCOUNTS["prod"],
               "resourcePolicy": resource_policies[action.split(":")[0]],
               "context": {"aws:SecureTransport": True}}
        for what, (action, resource) in cases.items()
    }


def test_state_backend_roles_can_use_the_secrets_key(bootstrap_with_backend, iam_evaluator):
    """Defect 9: with `awskms://` secrets a preview decrypts the stack's data key (kms:Decrypt);
    AWS's ReadOnlyAccess does not include it."""
    mocks, outputs = bootstrap_with_backend
    (bucket,) = _resources(mocks, "aws:s3/bucket:Bucket")
    (key,) = _resources(mocks, "aws:kms/key:Key")
    bucket_arn, key_arn = bucket["outputs"]["arn"], key["outputs"]["arn"]
    policies = {
        p["name"]: json.loads(p["inputs"]["policy"])
        for p in _resources(mocks, "aws:iam/rolePolicy:RolePolicy")
    }
    # dev's roles reach the backend in prod's account: the bucket and key policies must also
    # allow them (IAM User Guide, "Cross-account policy evaluation logic").
    (bucket_policy,) = _resources(mocks, "aws:s3/bucketPolicy:BucketPolicy")
    resource_policies = {"s3": json.loads(bucket_policy["inputs"]["policy"]),
                         "kms": json.loads(key["inputs"]["policy"])}
    for stack in ACCOUNTS:
        readonly = policies[f"readonly-{stack}-state-backend"]
        deploy = policies[f"deploy-{stack}-policy"]
        principal = f"arn:aws:iam::{ACCOUNTS[stack]}:role/github-scones-readonly-{stack}"
        cases = _backend_requests(readonly, principal, bucket_arn, key_arn, resource_policies)
        got = dict(zip(cases, iam_evaluator(list(cases.values())), strict=True))
        assert {w: r["decision"] for w, r in got.items()} == {
            "read state": "Allowed", "take lock": "Allowed", "write state": "ImplicitlyDenied",
            "decrypt secrets": "Allowed", "encrypt secrets": "ImplicitlyDenied",
        }
        cases = _backend_requests(deploy, principal.replace("readonly", "deploy"), bucket_arn,
                                  key_arn, resource_policies)
        assert all(r["decision"] == "Allowed" for r in iam_evaluator(list(cases.values())))
    assert outputs["pulumiBackendUrl"] == f"s3://{bucket['outputs']['bucket']}?region=eu-west-1"
    (url,) = [v for v in _resources(mocks, "github:index/actionsVariable:ActionsVariable")
              if v["inputs"]["variableName"] == "PULUMI_BACKEND_URL"]
    assert url["inputs"]["value"] == outputs["pulumiBackendUrl"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"repository": {**BOOTSTRAP_CONFIG["repository"], "ownerId": 0}}, "repository.ownerId"),
        ({"stacks": {"dev": {"region": "eu-west-1"}}}, "exactly"),
        ({"prodReviewers": {"teams": [], "users": []}}, "prodReviewers"),
        ({"stateBackend": {"enabled": True, "stack": "staging"}}, "stateBackend.stack"),
    ],
)
def test_bad_config_is_a_named_error(change: dict, message: str) -> None:
    config = {**BOOTSTRAP_CONFIG, **change}
    with pytest.raises(BootstrapConfigError, match=message):
        BootstrapSettings.from_config(config.get)


def test_committed_stack_file_asks_for_the_real_ids() -> None:
    """The example values in bootstrap/Pulumi.ci.yaml fail with the key to set, not later."""
    raw = yaml.safe_load((REPO / "bootstrap" / "Pulumi.ci.yaml").read_text())["config"]
    config = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("scones-bootstrap:")}
    with pytest.raises(BootstrapConfigError, match=r"repository\.ownerId"):
        BootstrapSettings.from_config(config.get)


def test_the_entry_point_runs_the_program_from_its_stack_config() -> None:
    """bootstrap/__main__.py, as `pulumi up` runs it, with the test config."""
    import runpy

    import pulumi
    from pulumi.runtime.config import set_all_config

    mocks = BootstrapMocks()
    pulumi.runtime.set_mocks(mocks, project="scones-bootstrap", stack="ci", preview=False)
    set_all_config({f"scones-bootstrap:{k}": json.dumps(v) for k, v in BOOTSTRAP_CONFIG.items()})

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(REPO / "bootstrap" / "__main__.py"), run_name="__main__")

    program()
    names = {r["inputs"].get("name") for r in _resources(mocks, "aws:iam/role:Role")}
    assert names == {f"github-scones-{k}-{s}" for k in ("deploy", "readonly") for s in ACCOUNTS}


def test_backend_policies_wait_for_the_roles_they_name(bootstrap_with_backend) -> None:
    """S3 and KMS refuse a resource policy naming a role that does not exist yet ("Invalid
    principal"), so the key and bucket policies take the roles' ARNs as inputs."""
    mocks, _ = bootstrap_with_backend
    roles = {r["name"] for r in _resources(mocks, "aws:iam/role:Role")}
    assert len(roles) == 4
    for name in ("pulumi-secrets", "pulumi-state-tls-only"):
        depends_on = {urn.rsplit("::", 1)[1] for urn in mocks.monitor.dependencies[name]}
        assert roles <= depends_on, (name, depends_on)
