"""ModelEndpoint: SageMaker Model, EndpointConfiguration and Endpoint (+ autoscaling).

Replacing the model never breaks the live endpoint: Model and EndpointConfiguration are
auto-named (Pulumi adds a random suffix), so a new model yields a new configuration that is
created before the old one is deleted, and the Endpoint (fixed name, which the Lambdas and
alarms use) is updated in place to it with a blue/green deployment that rolls back on the
endpoint alarms (5xx answers, p99 latency: children of this component, on the alarm topic,
exposed with their graphs as `alarms` and `dashboard_widgets`). Serverless endpoints (dev) have
no Data Capture or autoscaling: `capture_s3_uri` is then set for the classify Lambda, which
writes the capture records itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import AlarmTopic, alarm_graph, flat_dimensions, topic_alarm
from components.context import StackContext
from components.data_staging import CAPTURE_PREFIX, MODELS_PREFIX
from components.endpoint_update_hooks import ScalingSpec, endpoint_hooks
from components.iam import assume_role_policy, statement
from components.images import image_pull_statements
from components.roles import role_with_policy
from components.settings import InstanceEndpoint, ServerlessEndpoint
from training.serving_environment import serving_environment

VARIANT_NAME = "AllTraffic"
# Instance families with local NVMe instance storage ("d" families and these GPU families).
# "You can't request a KmsKeyId when using an instance type with local storage" (SageMaker API
# reference, CreateEndpointConfig, KmsKeyId); their volumes are encrypted by the instance's
# hardware module (SageMaker developer guide, "Host instance storage volumes").
_INSTANCE_STORAGE_FAMILY = re.compile(r"^ml\.([a-z]+\d+[a-z]*d[a-z]*|g5|g6|g6e|p5|p5e)\.")


def has_instance_storage(instance_type: str) -> bool:
    return bool(_INSTANCE_STORAGE_FAMILY.match(instance_type))


@dataclass
class ModelEndpointArgs:
    context: StackContext
    endpoint_name: str
    model_data_url: pulumi.Input[str]
    image_uri: str
    endpoint: InstanceEndpoint | ServerlessEndpoint
    data_capture_percent: int
    alarm_topic: AlarmTopic  # the endpoint alarms notify it
    latency_p99_ms: float  # the latency alarm's threshold
    variant_name: str = VARIANT_NAME


def execution_role_statements(
    args: ModelEndpointArgs,
    log_group_arn: pulumi.Input[str],
    rollback_alarm_arns: Sequence[pulumi.Input[str]] = (),
) -> list[dict]:
    """What the model's execution role may do: read the artifact, pull the image, write its
    logs and metrics, write Data Capture (instances), read the rollback alarms."""
    statements = [
        statement(
            ["s3:GetObject"],
            [pulumi.Output.concat(args.context.bucket_arn, f"/{MODELS_PREFIX}/*")],
            sid="ReadModelArtifacts",
        ),
        statement(
            ["kms:Decrypt", "kms:GenerateDataKey"],
            [args.context.kms_key_arn],
            sid="UseTheBucketKey",
        ),
        *image_pull_statements(args.image_uri, args.context.partition, sid="PullTheInferenceImage"),
        statement(
            ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            [pulumi.Output.concat(log_group_arn, ":log-stream:*")],
            sid="EndpointLogStreams",
        ),
        statement(
            ["cloudwatch:PutMetricData"],
            ["*"],
            sid="EndpointMetricsHaveNoResourceLevel",
            condition={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}},
        ),
    ]
    if not isinstance(args.endpoint, ServerlessEndpoint):
        statements.append(
            statement(
                ["s3:PutObject"],
                [pulumi.Output.concat(args.context.bucket_arn, f"/{CAPTURE_PREFIX}/*")],
                sid="WriteDataCapture",
            )
        )
    if rollback_alarm_arns:
        # "Ensure that your IAM execution role has permission to perform the
        # cloudwatch:DescribeAlarms action on the auto-rollback alarms you specify"
        # (SageMaker developer guide, "Auto-Rollback Configuration and Monitoring").
        statements.append(
            statement(
                ["cloudwatch:DescribeAlarms"],
                list(rollback_alarm_arns),
                sid="ReadTheRollbackAlarms",
            )
        )
    return statements


def production_variant(args: ModelEndpointArgs, model_name: pulumi.Input[str]) -> dict:
    """The one production variant: serverless capacity, or instances at full weight."""
    variant: dict = {"variant_name": args.variant_name, "model_name": model_name}
    if isinstance(args.endpoint, ServerlessEndpoint):
        variant["serverless_config"] = {
            "memory_size_in_mb": args.endpoint.memory_size_mb,
            "max_concurrency": args.endpoint.max_concurrency,
        }
    else:
        variant["instance_type"] = args.endpoint.instance_type
        variant["initial_instance_count"] = args.endpoint.initial_instance_count
        variant["initial_variant_weight"] = 1.0
    return variant


def data_capture_config(
    args: ModelEndpointArgs, capture_s3_uri: pulumi.Input[str]
) -> dict | None:
    """SageMaker Data Capture of instance endpoints (serverless endpoints have none)."""
    if isinstance(args.endpoint, ServerlessEndpoint):
        return None
    return {
        "enable_capture": True,
        "initial_sampling_percentage": args.data_capture_percent,
        "destination_s3_uri": capture_s3_uri,
        "kms_key_id": args.context.kms_key_arn,
        "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
        # JSON responses are captured as text (encoding JSON); image bodies as BASE64:
        # the record format docs/design.md fixes and the drift monitor reads.
        "capture_content_type_header": {"json_content_types": ["application/json"]},
    }


def deployment_config(rollback_alarm_names: Sequence[pulumi.Input[str]]) -> dict:
    """Blue/green with a 5-minute baking period watched by the endpoint alarms. (Serverless
    endpoints are excluded from rolling deployments only, not from blue/green.)"""
    return {
        "blue_green_update_policy": {
            "traffic_routing_configuration": {
                "type": "ALL_AT_ONCE",
                "wait_interval_in_seconds": 300,
            },
            "termination_wait_in_seconds": 300,
            "maximum_execution_timeout_in_seconds": 3600,
        },
        "auto_rollback_configuration": {
            "alarms": [{"alarm_name": n} for n in rollback_alarm_names]
        },
    }


def scaling_spec(args: ModelEndpointArgs) -> ScalingSpec | None:
    """Autoscaling of instance endpoints (the target, the policy and the update hooks)."""
    if not isinstance(args.endpoint, InstanceEndpoint):
        return None
    return ScalingSpec(
        endpoint_name=args.endpoint_name,
        variant_name=args.variant_name,
        min_capacity=args.endpoint.min_instances,
        max_capacity=args.endpoint.max_instances,
        target_invocations_per_instance=args.endpoint.target_invocations_per_instance,
    )


def endpoint_alarm_properties(args: ModelEndpointArgs) -> dict[str, dict[str, Any]]:
    """The endpoint's alarms by key: 5xx answers, and p99 model latency above the threshold.
    Both also drive the blue/green auto-rollback, so they are sensitive (1-minute periods)."""
    dims = endpoint_dimensions(args)
    return {
        "endpoint-5xx": {
            "namespace": "AWS/SageMaker",
            "metric_name": "Invocation5XXErrors",
            "dimensions": dims,
            "statistic": "Sum",
            "period": 60,
            "evaluation_periods": 2,
            "datapoints_to_alarm": 2,
            "threshold": 0,
            "comparison_operator": "GreaterThanThreshold",
            "treat_missing_data": "notBreaching",
            "alarm_description": f"{args.endpoint_name} answers 5xx (model/container fault)",
        },
        "endpoint-latency-p99": {
            "namespace": "AWS/SageMaker",
            "metric_name": "ModelLatency",
            "dimensions": dims,
            "extended_statistic": "p99",
            "period": 60,
            "evaluation_periods": 3,
            "datapoints_to_alarm": 3,
            # ModelLatency is reported in microseconds.
            "threshold": args.latency_p99_ms * 1000.0,
            "comparison_operator": "GreaterThanThreshold",
            "treat_missing_data": "notBreaching",
            "alarm_description": (
                f"{args.endpoint_name} ModelLatency p99 above {args.latency_p99_ms:g} ms"
            ),
        },
    }


def endpoint_dimensions(args: ModelEndpointArgs) -> dict[str, str]:
    # The fixed names, not the Endpoint's outputs: the endpoint's rollback watches these
    # alarms, so they exist before it.
    return {"EndpointName": args.endpoint_name, "VariantName": args.variant_name}


class ModelEndpoint(pulumi.ComponentResource):
    alarms: list[aws.cloudwatch.MetricAlarm]
    dashboard_widgets: list[pulumi.Input[dict[str, Any]]]
    model: aws.sagemaker.Model
    config: aws.sagemaker.EndpointConfiguration
    endpoint: aws.sagemaker.Endpoint
    endpoint_name: pulumi.Output[str]
    endpoint_arn: pulumi.Output[str]
    capture_s3_uri: pulumi.Output[str]
    lambda_capture_s3_uri: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: ModelEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:serving:ModelEndpoint", name, None, opts)
        serverless = isinstance(args.endpoint, ServerlessEndpoint)
        self.capture_s3_uri = pulumi.Output.concat(
            "s3://", args.context.bucket_name, f"/{CAPTURE_PREFIX}"
        )
        self._endpoint_alarms(args)
        self._model(name, args)
        self.config = aws.sagemaker.EndpointConfiguration(
            f"{name}-config",
            production_variants=[production_variant(args, self.model.name)],
            data_capture_config=data_capture_config(args, self.capture_s3_uri),
            kms_key_arn=None
            if serverless or has_instance_storage(args.endpoint.instance_type)
            else args.context.kms_key_arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        scaling = scaling_spec(args)
        scaling_policy_name = f"{args.endpoint_name}-invocations-per-instance"
        self._endpoint(name, args, scaling, scaling_policy_name)
        # Serverless endpoints have no Data Capture: the classify Lambda writes the records.
        self.lambda_capture_s3_uri = self.capture_s3_uri if serverless else None
        self.scaling_target = None
        self.scaling_policy = None
        if scaling is not None:
            self._autoscaling(name, args, scaling, scaling_policy_name)
        self.register_outputs(
            {
                "endpointName": self.endpoint_name,
                "endpointArn": self.endpoint_arn,
                "modelName": self.model.name,
                "endpointConfigName": self.config.name,
                "captureS3Uri": self.capture_s3_uri,
            }
        )

    def _endpoint_alarms(self, args: ModelEndpointArgs) -> None:
        """The endpoint alarms (endpoint_alarm_properties) and a graph of each."""
        self.alarms = []
        self.dashboard_widgets = []
        for key, properties in endpoint_alarm_properties(args).items():
            self.alarms.append(
                topic_alarm(key, properties, alarm_topic=args.alarm_topic, parent=self)
            )
            metric = ["AWS/SageMaker", properties["metric_name"],
                      *flat_dimensions(properties["dimensions"])]
            self.dashboard_widgets.append(
                alarm_graph(key, properties, [metric], args.context.region)
            )

    def _model(self, name: str, args: ModelEndpointArgs) -> None:
        """The endpoint's log group, the model's execution role and the SageMaker Model."""
        child = pulumi.ResourceOptions(parent=self)
        # Created here so it has a retention period; SageMaker would create it without one.
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/sagemaker/Endpoints/{args.endpoint_name}",
            retention_in_days=args.context.log_retention_days,
            opts=child,
        )
        self.role, self.role_policy = role_with_policy(
            name,
            description=f"scones {args.context.stack}: SageMaker model execution role",
            trust_policy=assume_role_policy(
                "sagemaker.amazonaws.com", source_account=args.context.account_id
            ),
            statements=execution_role_statements(
                args, self.log_group.arn, [alarm.arn for alarm in self.alarms]
            ),
            opts=child,
        )
        self.model = aws.sagemaker.Model(
            f"{name}-model",
            execution_role_arn=self.role.arn,
            primary_container={
                "image": args.image_uri,
                "model_data_url": args.model_data_url,
                # Workers, threads and code location: training/serving_environment.py.
                "environment": serving_environment(args.context.region),
            },
            # The container needs no network (artifacts and capture are SageMaker's job);
            # Serverless Inference does not support network isolation, so only instances get it.
            enable_network_isolation=not isinstance(args.endpoint, ServerlessEndpoint),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.role_policy, self.log_group]
            ),
        )

    def _endpoint(
        self,
        name: str,
        args: ModelEndpointArgs,
        scaling: ScalingSpec | None,
        scaling_policy_name: str,
    ) -> None:
        self.endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=args.endpoint_name,
            endpoint_config_name=self.config.name,
            deployment_config=deployment_config([alarm.name for alarm in self.alarms]),
            opts=pulumi.ResourceOptions(
                parent=self,
                # The name is fixed (Lambdas, alarms and Data Capture use it) and
                # deployment_config.auto_rollback_configuration forces a new endpoint
                # (terraform-provider-aws internal/service/sagemaker/endpoint.go: ForceNew), e.g.
                # when a rollback alarm is replaced: create-before-delete would collide on the
                # name, so a replacement deletes the old endpoint first.
                delete_before_replace=True,
                hooks=endpoint_hooks(
                    args.endpoint_name, args.context.region, scaling, scaling_policy_name
                ),
            ),
        )
        self.endpoint_name = self.endpoint.name
        self.endpoint_arn = self.endpoint.arn

    def _autoscaling(
        self, name: str, args: ModelEndpointArgs, scaling: ScalingSpec, policy_name: str
    ) -> None:
        # The endpoint's update hooks suspend and restore exactly this target and policy
        # (components/endpoint_update_hooks.py): one ScalingSpec for both.
        resource_id = pulumi.Output.concat(
            "endpoint/", self.endpoint.name, f"/variant/{args.variant_name}"
        )
        self.scaling_target = aws.appautoscaling.Target(
            f"{name}-scaling-target",
            service_namespace="sagemaker",
            resource_id=resource_id,
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=scaling.min_capacity,
            max_capacity=scaling.max_capacity,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.scaling_policy = aws.appautoscaling.Policy(
            f"{name}-scaling-policy",
            name=policy_name,
            policy_type="TargetTrackingScaling",
            service_namespace=self.scaling_target.service_namespace,
            resource_id=self.scaling_target.resource_id,
            scalable_dimension=self.scaling_target.scalable_dimension,
            target_tracking_scaling_policy_configuration=scaling.policy_configuration(),
            # A fixed name (the update hooks put the same policy) on a fixed resource_id,
            # both ForceNew: a replacement must delete the old policy first.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
