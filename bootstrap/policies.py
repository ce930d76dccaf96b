"""The CI roles' trust and permission policies, as plain dicts derived from names.

Nothing here talks to AWS: program.py turns these documents into roles, and tests/bootstrap
evaluates them with an IAM policy evaluator (@cloud-copilot/iam-simulate) against the tokens
GitHub issues and the requests the main program makes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_AUDIENCE = "sts.amazonaws.com"
# Powertools for AWS Lambda publishes its layers from this account and their ARNs in public SSM
# parameters under /aws/service/powertools/
# (https://docs.powertools.aws.dev/lambda/python/latest/#lambda-layer).
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
POWERTOOLS_PARAMETER_PATH = "/aws/service/powertools/"
# Services the stack hands its roles to (iam:PassedToService).
PASSED_TO_SERVICES = (
    "events.amazonaws.com",
    "lambda.amazonaws.com",
    "sagemaker.amazonaws.com",
    "states.amazonaws.com",
)
# Where Lambda, SageMaker endpoints and Step Functions (vended logs) put their log groups.
LOG_GROUP_PATHS = ("/aws/lambda/", "/aws/sagemaker/Endpoints/", "/aws/vendedlogs/states/")
AUTOSCALING_SERVICE_LINKED_ROLE = "sagemaker.application-autoscaling.amazonaws.com"


@dataclass(frozen=True)
class GitHubRepository:
    """A repository and the numeric IDs that GitHub's immutable `sub` claim carries."""

    owner: str
    name: str
    owner_id: int
    repository_id: int
    accept_legacy_subject: bool = True

    def subjects(self, claim: str) -> list[str]:
        """The `sub` values a token for `claim` (``environment:dev``, ``pull_request``) has.

        Repositories created on or after 2026-07-15 (and older ones that opted in) get
        ``repo:OWNER@OWNER_ID/REPO@REPO_ID:<claim>``; older ones ``repo:OWNER/REPO:<claim>``
        (configure-aws-credentials README at the pinned commit e6de054, "Immutable subject
        claims"; GitHub docs, "About security hardening with OpenID Connect").
        """
        immutable = f"repo:{self.owner}@{self.owner_id}/{self.name}@{self.repository_id}:{claim}"
        if not self.accept_legacy_subject:
            return [immutable]
        return [immutable, f"repo:{self.owner}/{self.name}:{claim}"]


def github_trust_policy(provider_arn: str, subjects: Sequence[str]) -> dict[str, Any]:
    """Trust for GitHub's OIDC tokens whose `sub` is exactly one of `subjects`.

    StringEquals only: a StringLike pattern such as ``repo:OWNER/*`` would trust every
    repository, branch and environment it matches.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GitHubActionsOidc",
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": GITHUB_OIDC_AUDIENCE,
                        f"{GITHUB_OIDC_HOST}:sub": sorted(subjects),
                    }
                },
            }
        ],
    }


def deploy_trust_subjects(repo: GitHubRepository, stack: str) -> list[str]:
    """Deploys and destroys run in the stack's environment (deploy.yml, destroy.yml)."""
    return repo.subjects(f"environment:{stack}")


def readonly_trust_subjects(repo: GitHubRepository) -> list[str]:
    """Previews run for pull requests, the drift check on main (schedule / manual runs)."""
    return repo.subjects("pull_request") + repo.subjects("ref:refs/heads/main")


@dataclass(frozen=True)
class StateBackend:
    """A self-managed Pulumi backend: an S3 bucket and, for `awskms://`, a KMS key."""

    bucket_arn: str
    kms_key_arn: str | None


def _names(prefix: str) -> list[str]:
    """The physical names of one stack: exactly `prefix`, or `prefix-` followed by anything."""
    return [prefix, f"{prefix}-*"]


def _stmt(sid: str, actions: Iterable[str], resources: Iterable[str], **condition: Any) -> dict:
    result: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": sorted(set(resources)),
    }
    if condition:
        result["Condition"] = condition
    return result


@dataclass(frozen=True)
class _Stack:
    """Where one stack's resources are: the ARN partition, region, account and physical names."""

    partition: str
    region: str
    account_id: str
    names: tuple[str, ...]

    @property
    def in_region(self) -> dict[str, Any]:
        """The condition that limits a statement on `*` to the stack's region."""
        return {"StringEquals": {"aws:RequestedRegion": self.region}}


def _bucket_statements(stack: _Stack) -> list[dict[str, Any]]:
    """S3: everything on the buckets named for the stack and on their objects."""
    p, names = stack.partition, stack.names
    return [
        _stmt(
            "StackBuckets",
            ["s3:*"],
            [f"arn:{p}:s3:::{n}" for n in names] + [f"arn:{p}:s3:::{n}/*" for n in names],
        ),
    ]


def _sagemaker_statements(stack: _Stack) -> list[dict[str, Any]]:
    """SageMaker: everything on the stack's jobs, models, endpoints and model packages."""
    p, r, a, names = stack.partition, stack.region, stack.account_id, stack.names
    return [
        _stmt(
            "StackSageMaker",
            ["sagemaker:*"],
            [
                f"arn:{p}:sagemaker:{r}:{a}:{kind}/{n}"
                for kind in (
                    "training-job",
                    "model",
                    "endpoint-config",
                    "endpoint",
                    "model-package-group",
                )
                for n in names
            ]
            + [f"arn:{p}:sagemaker:{r}:{a}:model-package/{n}/*" for n in names],
        ),
        # ListModelPackages has no resource type (Service Authorization Reference, SageMaker).
        _stmt("SageMakerListings", ["sagemaker:ListModelPackages"], ["*"]),
    ]


def _lambda_statements(stack: _Stack) -> list[dict[str, Any]]:
    """Lambda: everything on the stack's functions and layers; using the Powertools layer."""
    p, r, a, names = stack.partition, stack.region, stack.account_id, stack.names
    return [
        _stmt(
            "StackFunctionsAndLayers",
            ["lambda:*"],
            [f"arn:{p}:lambda:{r}:{a}:function:{n}" for n in names]
            + [f"arn:{p}:lambda:{r}:{a}:layer:{n}" for n in names]
            + [f"arn:{p}:lambda:{r}:{a}:layer:{n}:*" for n in names],
        ),
        # A function that uses a layer needs lambda:GetLayerVersion on it (Lambda developer
        # guide, "Adding layers to functions").
        _stmt(
            "UsePowertoolsLayer",
            ["lambda:GetLayerVersion"],
            [
                f"arn:{p}:lambda:{r}:{POWERTOOLS_LAYER_ACCOUNT}:layer:AWSLambdaPowertoolsPythonV3-*:*"
            ],
        ),
    ]


def _parameter_statements(stack: _Stack) -> list[dict[str, Any]]:
    """SSM: reading Powertools' public parameters; managing the stack's /<prefix>/ parameters."""
    p, r, a, names = stack.partition, stack.region, stack.account_id, stack.names
    return [
        # The program reads the layer ARN from Powertools' public parameter (defect 3: the
        # read-only role had it through ReadOnlyAccess, the deploy role did not).
        _stmt(
            "ReadPowertoolsParameter",
            ["ssm:GetParameter"],
            # Public parameters have an empty account field in their ARN; `*` matches it.
            [f"arn:{p}:ssm:{r}:*:parameter{POWERTOOLS_PARAMETER_PATH}*"],
        ),
        # The stack's own parameters are named /<prefix>/... (the safe-mode flag,
        # lambdas/safe_mode/flag.py); their values are encrypted with the stack's key.
        _stmt(
            "StackParameters",
            [
                "ssm:PutParameter",
                "ssm:GetParameter",
                "ssm:DeleteParameter",
                "ssm:ListTagsForResource",
                "ssm:AddTagsToResource",
                "ssm:RemoveTagsFromResource",
            ],
            [f"arn:{p}:ssm:{r}:{a}:parameter/{n}/*" for n in names],
        ),
        # DescribeParameters takes no parameter resource (Service Authorization Reference,
        # AWS Systems Manager): the provider's read lists the one name with a filter.
        _stmt("ParameterListings", ["ssm:DescribeParameters"], ["*"], **stack.in_region),
    ]


def _workflow_statements(stack: _Stack) -> list[dict[str, Any]]:
    """Everything on the stack's state machines (and executions), topics, queues, event rules."""
    p, r, a, names = stack.partition, stack.region, stack.account_id, stack.names
    return [
        _stmt(
            "StackStateMachines",
            ["states:*"],
            [f"arn:{p}:states:{r}:{a}:stateMachine:{n}" for n in names]
            + [f"arn:{p}:states:{r}:{a}:execution:{n}:*" for n in names],
        ),
        _stmt("StackTopics", ["sns:*"], [f"arn:{p}:sns:{r}:{a}:{n}" for n in names]),
        _stmt("StackQueues", ["sqs:*"], [f"arn:{p}:sqs:{r}:{a}:{n}" for n in names]),
        _stmt("StackRules", ["events:*"], [f"arn:{p}:events:{r}:{a}:rule/{n}" for n in names]),
    ]


def _monitoring_statements(stack: _Stack) -> list[dict[str, Any]]:
    """CloudWatch, Logs: the stack's alarms, dashboard, log groups; log delivery in its region."""
    p, r, a, names = stack.partition, stack.region, stack.account_id, stack.names
    return [
        _stmt(
            "StackAlarmsAndDashboard",
            ["cloudwatch:*"],
            [f"arn:{p}:cloudwatch:{r}:{a}:alarm:{n}" for n in names]
            + [f"arn:{p}:cloudwatch::{a}:dashboard/{n}" for n in names],
        ),
        _stmt(
            "StackLogGroups",
            ["logs:*"],
            [
                f"arn:{p}:logs:{r}:{a}:log-group:{group}{n}{suffix}"
                for group in LOG_GROUP_PATHS
                for n in names
                for suffix in ("", ":*")
            ],
        ),
        # DescribeLogGroups and Step Functions' log delivery APIs take no log-group resource
        # (Step Functions developer guide, "IAM policies for logging to CloudWatch Logs").
        _stmt(
            "LogListingsAndDelivery",
            [
                "logs:DescribeLogGroups",
                "logs:CreateLogDelivery",
                "logs:GetLogDelivery",
                "logs:UpdateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:DescribeResourcePolicies",
                "logs:DeleteResourcePolicy",
            ],
            ["*"],
            **stack.in_region,
        ),
    ]


def _key_statements(stack: _Stack) -> list[dict[str, Any]]:
    """KMS: creating keys, everything on keys in the stack's region and account, its aliases."""
    p, r, a, names = stack.partition, stack.region, stack.account_id, stack.names
    return [
        # KMS keys have no name in their ARN; aliases do.
        _stmt("CreateKeys", ["kms:CreateKey", "kms:ListAliases"], ["*"], **stack.in_region),
        _stmt("StackKeys", ["kms:*"], [f"arn:{p}:kms:{r}:{a}:key/*"]),
        _stmt(
            "StackKeyAliases",
            ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
            [f"arn:{p}:kms:{r}:{a}:alias/{n}" for n in names],
        ),
    ]


def _endpoint_autoscaling_statements(stack: _Stack) -> list[dict[str, Any]]:
    """Application Auto Scaling: scaling the stack's endpoints, with the alarms that creates."""
    p, r, a, names = stack.partition, stack.region, stack.account_id, stack.names
    return [
        # A target tracking policy on the endpoint creates its own alarms, named
        # TargetTracking-<resource id>-Alarm{High,Low}-<uuid>, with the caller's permissions
        # (Application Auto Scaling user guide, "Identity-based policy examples": permissions
        # for the target service and CloudWatch).
        _stmt(
            "EndpointScalingAlarms",
            ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
            [
                f"arn:{p}:cloudwatch:{r}:{a}:alarm:TargetTracking-endpoint/{n}/variant/*"
                for n in names
            ],
        ),
        # Scalable targets are identified by IDs AWS assigns.
        _stmt(
            "EndpointAutoscaling",
            ["application-autoscaling:*"],
            [f"arn:{p}:application-autoscaling:{r}:{a}:scalable-target/*"],
        ),
        _stmt(
            "EndpointAutoscalingListings",
            [
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
            ],
            ["*"],
            **stack.in_region,
        ),
    ]


def _role_statements(stack: _Stack) -> list[dict[str, Any]]:
    """IAM: the stack's roles, passing them to its services only, the autoscaling linked role."""
    p, a, names = stack.partition, stack.account_id, stack.names
    return [
        _stmt(
            "StackRoles",
            [
                "iam:CreateRole",
                "iam:DeleteRole",
                "iam:GetRole",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:ListRoleTags",
                "iam:UpdateRole",
                "iam:UpdateRoleDescription",
                "iam:UpdateAssumeRolePolicy",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:ListInstanceProfilesForRole",
                "iam:GetRolePolicy",
                "iam:PutRolePolicy",
                "iam:DeleteRolePolicy",
            ],
            [f"arn:{p}:iam::{a}:role/{n}" for n in names],
        ),
        _stmt(
            "PassStackRolesToItsServicesOnly",
            ["iam:PassRole"],
            [f"arn:{p}:iam::{a}:role/{n}" for n in names],
            StringEquals={"iam:PassedToService": sorted(PASSED_TO_SERVICES)},
        ),
        _stmt(
            "EndpointAutoscalingServiceLinkedRole",
            ["iam:CreateServiceLinkedRole"],
            [
                f"arn:{p}:iam::{a}:role/aws-service-role/"
                f"{AUTOSCALING_SERVICE_LINKED_ROLE}/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
            ],
            StringEquals={"iam:AWSServiceName": AUTOSCALING_SERVICE_LINKED_ROLE},
        ),
    ]


def deploy_policy(
    *,
    prefix: str,
    account_id: str,
    region: str,
    partition: str = "aws",
    backend: StateBackend | None = None,
) -> dict[str, Any]:
    """What `pulumi up` / `pulumi destroy` of one stack needs, on that stack's names only.

    `prefix` is naming.name_prefix(stack), e.g. ``scones-dev``: the autonaming pattern and the
    explicit names in components/ put it at the start of every physical name, and the CI roles
    themselves are named ``github-…`` so they never match it (a deploy role must not be able to
    rewrite its own policy). Resources without a name in their ARN (KMS keys, scaling targets)
    are limited to the stack's region and account instead.
    """
    stack = _Stack(
        partition=partition, region=region, account_id=account_id, names=tuple(_names(prefix))
    )
    statements = [
        *_bucket_statements(stack),
        *_sagemaker_statements(stack),
        *_lambda_statements(stack),
        *_parameter_statements(stack),
        *_workflow_statements(stack),
        *_monitoring_statements(stack),
        *_key_statements(stack),
        *_endpoint_autoscaling_statements(stack),
        *_role_statements(stack),
    ]
    if backend is not None:
        statements += _backend_statements(backend, write=True)
    return {"Version": "2012-10-17", "Statement": statements}


def readonly_inline_policy(backend: StateBackend | None) -> dict[str, Any] | None:
    """What the read-only role needs beyond AWS's ReadOnlyAccess: the self-managed backend.

    ReadOnlyAccess has no kms:Decrypt (a read of data, not of configuration), so an `awskms://`
    secrets provider could not decrypt the stack's data key in a preview (defect 9).
    """
    if backend is None:
        return None
    return {"Version": "2012-10-17", "Statement": _backend_statements(backend, write=False)}


def _backend_statements(backend: StateBackend, *, write: bool) -> list[dict[str, Any]]:
    """State bucket access (Pulumi docs, "State and backends": AWS S3) and the secrets key.

    A preview reads the checkpoint and takes the stack lock, an object under .pulumi/locks/;
    `pulumi up` also writes checkpoints, history and backups. The awskms secrets provider
    decrypts the stack's data key with kms:Decrypt; creating a stack encrypts a new one.
    """
    bucket = backend.bucket_arn
    objects = [f"{bucket}/*"] if write else [f"{bucket}/.pulumi/locks/*"]
    statements = [
        _stmt("StateBucketList", ["s3:ListBucket", "s3:GetBucketLocation"], [bucket]),
        _stmt("StateRead", ["s3:GetObject", "s3:GetObjectVersion"], [f"{bucket}/*"]),
        _stmt(
            "StateLocks" if not write else "StateWrite",
            ["s3:PutObject", "s3:DeleteObject"],
            objects,
        ),
    ]
    if backend.kms_key_arn:
        actions = ["kms:Decrypt", "kms:DescribeKey"]
        if write:
            actions += ["kms:Encrypt", "kms:GenerateDataKey"]
        statements.append(_stmt("StackSecretsKey", actions, [backend.kms_key_arn]))
    return statements
