"""The bootstrap program: AWS roles per stack and the GitHub settings the workflows rely on.

`build(settings)` creates, for each stack of the main program (dev, prod):
- GitHub's OIDC identity provider in that stack's AWS account (once per account);
- ``github-scones-readonly-<stack>`` (previews, drift: AWS ReadOnlyAccess, plus the state
  backend when there is one) and ``github-scones-deploy-<stack>`` (deploy, destroy: the policy
  policies.deploy_policy derives from the main program's name prefix);
- the GitHub environment ``<stack>`` (deployments from main only; prod with required
  reviewers) and the variables the workflows read;
and once: the ruleset that protects main and, optionally, the state bucket and KMS key of a
self-managed backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_github as github

from bootstrap.naming import name_prefix
from bootstrap.policies import (
    GITHUB_OIDC_AUDIENCE,
    GITHUB_OIDC_HOST,
    StateBackend,
    deploy_policy,
    deploy_trust_subjects,
    github_trust_policy,
    readonly_inline_policy,
    readonly_trust_subjects,
)
from bootstrap.settings import STACKS, AwsAccount, BootstrapSettings

READONLY_MANAGED_POLICY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
SECRETS_KEY_ALIAS = "alias/github-scones-pulumi-secrets"


def role_name(kind: str, stack: str) -> str:
    """CI role names start with github-, never with the main program's scones-<stack> prefix."""
    return f"github-scones-{kind}-{stack}"


def build(settings: BootstrapSettings) -> dict[str, Any]:
    """Creates the CI resources of every stack and returns the stack outputs (role ARNs, URL)."""
    # Read before anything is created: a pattern without a fixed stack prefix stops here.
    prefixes = {stack: name_prefix(stack) for stack in STACKS}
    providers: dict[str, aws.Provider] = {}
    oidc: dict[str | None, aws.iam.OpenIdConnectProvider] = {}
    identities: dict[str, pulumi.Output[str]] = {}
    for stack in STACKS:
        account = settings.accounts[stack]
        providers[stack], identities[stack] = _aws_provider(stack, account)
        # One provider per account: two stacks with the same profile share an account, and IAM
        # allows one provider per URL in an account.
        if account.profile not in oidc:
            oidc[account.profile] = _github_oidc_provider(stack, providers[stack])

    roles = {
        stack: _ci_roles(settings, stack, providers[stack],
                         oidc[settings.accounts[stack].profile].arn)
        for stack in STACKS
    }
    # After the roles: S3 and KMS reject resource policies that name roles which do not exist
    # yet ("Invalid principal"), and the role ARNs below make Pulumi wait for them.
    backend = _state_backend(settings, providers, roles) if settings.state_backend else None
    for stack in STACKS:
        _ci_role_policies(settings, stack, providers[stack], roles[stack], identities[stack],
                          prefixes[stack], backend)

    _github_settings(settings, roles, backend)
    return _stack_outputs(settings, roles, backend)


def _aws_provider(stack: str, account: AwsAccount) -> tuple[aws.Provider, pulumi.Output[str]]:
    """The AWS provider of a stack's account, and that account's ID (as the provider sees it)."""
    provider = aws.Provider(f"aws-{stack}", region=account.region, profile=account.profile)
    account_id = aws.get_caller_identity_output(
        opts=pulumi.InvokeOutputOptions(provider=provider)
    ).account_id
    return provider, account_id


def _github_oidc_provider(stack: str, provider: aws.Provider) -> aws.iam.OpenIdConnectProvider:
    """GitHub's OIDC identity provider, which the CI roles' trust policies federate with."""
    return aws.iam.OpenIdConnectProvider(
        f"github-oidc-{stack}",
        url=f"https://{GITHUB_OIDC_HOST}",
        client_id_lists=[GITHUB_OIDC_AUDIENCE],
        opts=pulumi.ResourceOptions(provider=provider),
    )


def _ci_roles(
    settings: BootstrapSettings,
    stack: str,
    provider: aws.Provider,
    provider_arn: pulumi.Output[str],
) -> dict[str, aws.iam.Role]:
    """A stack's readonly role (with AWS ReadOnlyAccess) and deploy role, trusting GitHub."""
    repo = settings.repository
    provider_opts = pulumi.ResourceOptions(provider=provider)
    readonly = aws.iam.Role(
        f"readonly-{stack}",
        name=role_name("readonly", stack),
        description=f"GitHub Actions: preview and drift check of stack {stack}",
        assume_role_policy=provider_arn.apply(
            lambda arn: json.dumps(github_trust_policy(arn, readonly_trust_subjects(repo)))
        ),
        opts=provider_opts,
    )
    aws.iam.RolePolicyAttachment(
        f"readonly-{stack}-read-only-access",
        role=readonly.name,
        policy_arn=READONLY_MANAGED_POLICY,
        opts=provider_opts,
    )
    deploy = aws.iam.Role(
        f"deploy-{stack}",
        name=role_name("deploy", stack),
        description=f"GitHub Actions: pulumi up / destroy of stack {stack}",
        max_session_duration=settings.deploy_session_seconds,
        assume_role_policy=provider_arn.apply(
            lambda arn: json.dumps(github_trust_policy(arn, deploy_trust_subjects(repo, stack)))
        ),
        opts=provider_opts,
    )
    return {"readonly": readonly, "deploy": deploy}


def _ci_role_policies(
    settings: BootstrapSettings,
    stack: str,
    provider: aws.Provider,
    roles: dict[str, aws.iam.Role],
    account_id: pulumi.Output[str],
    prefix: str,
    backend: pulumi.Output[StateBackend] | None,
) -> None:
    """The deploy role's inline policy and, with a state backend, the readonly role's grant."""
    region = settings.accounts[stack].region
    provider_opts = pulumi.ResourceOptions(provider=provider)
    backend_doc = pulumi.Output.from_input(backend) if backend else None
    aws.iam.RolePolicy(
        f"deploy-{stack}-policy",
        role=roles["deploy"].name,
        policy=pulumi.Output.all(account_id, backend_doc).apply(
            lambda args: json.dumps(
                deploy_policy(prefix=prefix, account_id=args[0], region=region, backend=args[1]),
                sort_keys=True,
            )
        ),
        opts=provider_opts,
    )
    if backend is not None:
        aws.iam.RolePolicy(
            f"readonly-{stack}-state-backend",
            role=roles["readonly"].name,
            policy=backend.apply(lambda b: json.dumps(readonly_inline_policy(b))),
            opts=provider_opts,
        )


def _stack_outputs(
    settings: BootstrapSettings,
    roles: dict[str, dict[str, aws.iam.Role]],
    backend: pulumi.Output[StateBackend] | None,
) -> dict[str, Any]:
    """The role ARNs (deployRoleArnDev, ...) and, with a state backend, pulumiBackendUrl."""
    outputs: dict[str, Any] = {
        f"{kind}RoleArn{stack.capitalize()}": role.arn
        for stack, by_kind in roles.items()
        for kind, role in by_kind.items()
    }
    if backend is not None:
        outputs["pulumiBackendUrl"] = backend.apply(_backend_url(settings))
    return outputs


def _backend_url(settings: BootstrapSettings) -> Callable[[StateBackend], str]:
    """The PULUMI_BACKEND_URL of the state bucket (Pulumi docs, "Using a DIY backend": S3)."""
    region = settings.accounts[settings.state_backend_stack].region

    def url(backend: StateBackend) -> str:
        return f"s3://{backend.bucket_arn.split(':::', 1)[1]}?region={region}"

    return url


def _state_backend(
    settings: BootstrapSettings,
    providers: dict[str, aws.Provider],
    roles: dict[str, dict[str, aws.iam.Role]],
) -> pulumi.Output[StateBackend]:
    """A versioned, private, KMS-encrypted, TLS-only bucket and the awskms secrets key."""
    stack = settings.state_backend_stack
    opts = pulumi.ResourceOptions(provider=providers[stack], protect=True)
    account_id = aws.get_caller_identity_output(
        opts=pulumi.InvokeOutputOptions(provider=providers[stack])
    ).account_id
    # Alternating readonly, deploy (args[1::2] / args[2::2] in the policies' apply).
    ci_roles = [roles[s][kind].arn for s in STACKS for kind in ("readonly", "deploy")]
    key = _secrets_key(account_id, ci_roles, opts)
    bucket = _state_bucket(key, opts)
    aws.s3.BucketPolicy(
        "pulumi-state-tls-only",
        bucket=bucket.id,
        policy=pulumi.Output.all(bucket.arn, *ci_roles).apply(
            lambda args: json.dumps(_state_bucket_policy(args[0], args[1::2], args[2::2]))
        ),
        opts=opts,
    )
    return pulumi.Output.all(bucket.arn, key.arn).apply(
        lambda args: StateBackend(bucket_arn=args[0], kms_key_arn=args[1])
    )


def _secrets_key(
    account_id: pulumi.Output[str],
    ci_roles: list[pulumi.Output[str]],
    opts: pulumi.ResourceOptions,
) -> aws.kms.Key:
    """The KMS key that encrypts the state bucket and backs awskms:// secrets, and its alias."""
    key = aws.kms.Key(
        "pulumi-secrets",
        description="Pulumi state and awskms:// secrets provider of the scones stacks",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=pulumi.Output.all(account_id, *ci_roles).apply(
            lambda args: json.dumps(_secrets_key_policy(args[0], args[1::2], args[2::2]))
        ),
        opts=opts,
    )
    aws.kms.Alias("pulumi-secrets-alias", name=SECRETS_KEY_ALIAS, target_key_id=key.key_id,
                  opts=opts)
    return key


def _secrets_key_policy(
    account_id: str, readonly_arns: list[str], deploy_arns: list[str]
) -> dict[str, Any]:
    """The key policy: the account administers the key, each kind of CI role uses it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersTheKey",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                # Cross-account use needs the key policy too (KMS developer guide,
                # "Allowing users in other accounts to use a KMS key"); a resource
                # policy alone also grants within the account, so each kind of role
                # gets only what its identity policy has.
                "Sid": "ReadOnlyRolesDecrypt",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(readonly_arns)},
                "Action": ["kms:Decrypt", "kms:DescribeKey"],
                "Resource": "*",
            },
            {
                "Sid": "DeployRolesUseTheKey",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(deploy_arns)},
                "Action": [
                    "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey",
                ],
                "Resource": "*",
            },
        ],
    }


def _state_bucket(key: aws.kms.Key, opts: pulumi.ResourceOptions) -> aws.s3.Bucket:
    """The state bucket: versioned, encrypted with the secrets key, closed to the public."""
    bucket = aws.s3.Bucket("pulumi-state", opts=opts)
    aws.s3.BucketVersioning(
        "pulumi-state-versioning",
        bucket=bucket.id,
        versioning_configuration={"status": "Enabled"},
        opts=opts,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        "pulumi-state-encryption",
        bucket=bucket.id,
        rules=[{
            "apply_server_side_encryption_by_default": {
                "sse_algorithm": "aws:kms", "kms_master_key_id": key.arn,
            },
            "bucket_key_enabled": True,
        }],
        opts=opts,
    )
    aws.s3.BucketPublicAccessBlock(
        "pulumi-state-public-access-block",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    return bucket


def _state_bucket_policy(
    bucket_arn: str, readonly_arns: list[str], deploy_arns: list[str]
) -> dict[str, Any]:
    """The bucket policy: TLS only; readonly roles read and take locks, deploy roles write."""
    bucket_and_objects = [bucket_arn, f"{bucket_arn}/*"]
    read = ["s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:GetObjectVersion"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": bucket_and_objects,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "ReadOnlyRolesReadAndLock",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(readonly_arns)},
                "Action": read,
                "Resource": bucket_and_objects,
            },
            {
                "Sid": "ReadOnlyRolesTakeLocks",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(readonly_arns)},
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": f"{bucket_arn}/.pulumi/locks/*",
            },
            {
                "Sid": "DeployRolesReadAndWrite",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(deploy_arns)},
                "Action": [*read, "s3:PutObject", "s3:DeleteObject"],
                "Resource": bucket_and_objects,
            },
        ],
    }


def _github_settings(
    settings: BootstrapSettings,
    roles: dict[str, dict[str, aws.iam.Role]],
    backend: pulumi.Output[StateBackend] | None,
) -> None:
    """Each stack's environment and the variables the workflows read, and main's ruleset."""
    repo = settings.repository.name
    for stack in STACKS:
        environment = _github_environment(settings, stack)
        region = settings.accounts[stack].region
        for variable, value in (
            ("AWS_ROLE_ARN", roles[stack]["deploy"].arn),
            ("AWS_REGION", region),
        ):
            github.ActionsEnvironmentVariable(
                f"environment-{stack}-{variable.lower().replace('_', '-')}",
                repository=repo,
                environment=environment.environment,
                variable_name=variable,
                value=value,
            )
        for variable, value in (
            (f"AWS_READONLY_ROLE_ARN_{stack.upper()}", roles[stack]["readonly"].arn),
            (f"AWS_REGION_{stack.upper()}", region),
        ):
            _repository_variable(repo, variable, value)
    if backend is not None:
        _repository_variable(repo, "PULUMI_BACKEND_URL", backend.apply(_backend_url(settings)))
    _protect_main(repo, settings.required_checks)


def _github_environment(settings: BootstrapSettings, stack: str) -> github.RepositoryEnvironment:
    """The GitHub environment of a stack: deployments from main only, prod with reviewers."""
    repo = settings.repository.name
    reviewers = None
    if stack == "prod":
        reviewers = [github.RepositoryEnvironmentReviewerArgs(
            teams=list(settings.prod_reviewer_teams), users=list(settings.prod_reviewer_users),
        )]
    environment = github.RepositoryEnvironment(
        f"environment-{stack}",
        repository=repo,
        environment=stack,
        reviewers=reviewers,
        prevent_self_review=stack == "prod",
        can_admins_bypass=False,
        # Custom branch policies, not "protected branches": the latter lets every branch
        # deploy when no branch has a branch protection rule (GitHub docs, "Deployments and
        # environments", Deployment branches and tags); the pattern is matched against
        # GITHUB_REF, so "main" admits refs/heads/main only.
        deployment_branch_policy=github.RepositoryEnvironmentDeploymentBranchPolicyArgs(
            protected_branches=False, custom_branch_policies=True,
        ),
    )
    github.RepositoryEnvironmentDeploymentPolicy(
        f"environment-{stack}-main-only",
        repository=repo,
        environment=environment.environment,
        branch_pattern="main",
    )
    return environment


def _repository_variable(repo: str, variable: str, value: pulumi.Input[str]) -> None:
    """A repository-level Actions variable, named variable-<variable in kebab case>."""
    github.ActionsVariable(
        f"variable-{variable.lower().replace('_', '-')}",
        repository=repo,
        variable_name=variable,
        value=value,
    )


def _protect_main(repo: str, required_checks: tuple[str, ...]) -> None:
    """The ruleset on main: no deletion or force push, reviewed pull requests, green checks."""
    # Without a rule on main, any pushed branch could run deploy.yml's jobs in an environment
    # whose branch policy admits it; the ruleset also makes CI a merge requirement.
    github.RepositoryRuleset(
        "protect-main",
        repository=repo,
        name="protect main",
        target="branch",
        enforcement="active",
        conditions=github.RepositoryRulesetConditionsArgs(
            ref_name=github.RepositoryRulesetConditionsRefNameArgs(
                includes=["refs/heads/main"], excludes=[],
            ),
        ),
        rules=github.RepositoryRulesetRulesArgs(
            deletion=True,
            non_fast_forward=True,
            pull_request=github.RepositoryRulesetRulesPullRequestArgs(
                required_approving_review_count=1,
                dismiss_stale_reviews_on_push=True,
                require_last_push_approval=True,
            ),
            required_status_checks=github.RepositoryRulesetRulesRequiredStatusChecksArgs(
                required_checks=[
                    github.RepositoryRulesetRulesRequiredStatusChecksRequiredCheckArgs(context=c)
                    for c in required_checks
                ],
                strict_required_status_checks_policy=True,
            ),
        ),
    )
