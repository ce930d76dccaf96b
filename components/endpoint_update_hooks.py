"""What an update of an auto-scaled endpoint needs around it, as Pulumi resource hooks.

SageMaker refuses an UpdateEndpoint that changes the instance type of a variant registered for
auto scaling; the documented procedure is to deregister the scalable target first (which also
deletes its scaling policies) and register it and its policy again after the update (SageMaker
developer guide, "Update endpoints that use auto scaling",
https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-update.html; Application Auto
Scaling API reference, DeregisterScalableTarget: "Deregistering a scalable target deletes the
scaling policies and the scheduled actions that are associated with it").

The provider's update calls UpdateEndpoint with the endpoint and config names and the
deployment config only (terraform-provider-aws internal/service/sagemaker/endpoint.go,
resourceEndpointUpdate), never RetainAllVariantProperties, so the new fleet starts at the new
config's InitialInstanceCount however far auto scaling had scaled out (the same page: with
RetainAllVariantProperties "the latest DesiredInstanceCount" would be kept instead). After the
update the hook sets the variant back to the desired count it had before (bounded by the
target's maximum) with UpdateEndpointWeightsAndCapacities.

After a blue/green rollback the endpoint is InService again, on the *old* config, so the
provider's waiter (WaitUntilEndpointInService) succeeds and the update reads the live (old)
config name back (endpoint.go, resourceEndpointRead: ``d.Set("endpoint_config_name",
endpoint.EndpointConfigName)``). `pulumi up` would then go on to delete the replaced config and
Model, which the endpoint still runs on. ``rollback_check`` compares the live config with the
one Pulumi deployed and fails the deployment, naming the rollback ("An error from an
`after_${action}` hook fails the deployment": pulumi SDK, pulumi/resource_hooks.py,
ResourceHookBinding): Pulumi deletes replaced resources at the end of an update and leaves
them pending deletion when it fails (pulumi/pulumi issues 9979, 14740), so that `up` keeps them;
docs/deploying.md says what the next `up` does.

``plan_update`` and ``rolled_back`` are the decisions, pure functions; the hooks only read and
write AWS around them. They run in `pulumi up` (not in preview), with the deployer's
credentials, and only when the endpoint is updated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@dataclass(frozen=True)
class ScalingSpec:
    """The scalable target and target-tracking policy, as both Pulumi and the hooks create them."""

    endpoint_name: str
    variant_name: str
    min_capacity: int
    max_capacity: int
    target_invocations_per_instance: float
    scale_out_cooldown: int = 60  # scale out fast for bursts of drivers
    scale_in_cooldown: int = 300  # and in slowly, to avoid flapping

    @property
    def resource_id(self) -> str:
        return f"endpoint/{self.endpoint_name}/variant/{self.variant_name}"

    def policy_configuration(self) -> dict[str, Any]:
        """TargetTrackingScalingPolicyConfiguration in pulumi-aws's (snake_case) shape."""
        return {
            "target_value": self.target_invocations_per_instance,
            "predefined_metric_specification": {
                "predefined_metric_type": "SageMakerVariantInvocationsPerInstance"
            },
            "scale_out_cooldown": self.scale_out_cooldown,
            "scale_in_cooldown": self.scale_in_cooldown,
        }

    def put_scaling_policy_request(self, policy_name: str) -> dict[str, Any]:
        """The same policy as an Application Auto Scaling PutScalingPolicy request."""
        return {
            "PolicyName": policy_name,
            "ServiceNamespace": "sagemaker",
            "ResourceId": self.resource_id,
            "ScalableDimension": SCALABLE_DIMENSION,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": self.target_invocations_per_instance,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                "ScaleOutCooldown": self.scale_out_cooldown,
                "ScaleInCooldown": self.scale_in_cooldown,
            },
        }


@dataclass(frozen=True)
class UpdatePlan:
    suspend_scaling: bool  # deregister before UpdateEndpoint, register again after it
    restore_instance_count: int | None  # set the variant back to this count after the update


def plan_update(
    *,
    old_instance_type: str | None,
    new_instance_type: str | None,
    desired_instance_count: int | None,
    new_initial_instance_count: int | None,
    max_capacity: int,
) -> UpdatePlan:
    """What an endpoint update from the old to the new config needs (None: unknown/serverless)."""
    suspend = (
        old_instance_type is not None
        and new_instance_type is not None
        and old_instance_type != new_instance_type
    )
    restore = None
    if (
        desired_instance_count is not None
        and new_initial_instance_count is not None
        and desired_instance_count > new_initial_instance_count
    ):
        restore = min(desired_instance_count, max_capacity)
    return UpdatePlan(suspend_scaling=suspend, restore_instance_count=restore)


class EndpointRolledBack(RuntimeError):
    """SageMaker rolled the endpoint back: it runs the previous config, not the deployed one."""


def rolled_back(deployed_config: str | None, live_config: str | None) -> bool:
    return bool(deployed_config and live_config and deployed_config != live_config)


def rollback_message(endpoint_name: str, deployed_config: str, live_config: str) -> str:
    return (
        f"endpoint {endpoint_name} rolled back to {live_config}: the blue/green deployment of "
        f"{deployed_config} tripped a rollback alarm during its baking period. The endpoint "
        "serves the previous model; this `pulumi up` stops here so that the previous config "
        "and Model stay in place. Investigate the alarms, then `pulumi refresh` and fix or "
        "revert the change before the next `pulumi up`."
    )


def _prop(props: Mapping[str, Any] | None, *names: str) -> Any:
    for name in names:
        if props and props.get(name):
            return props[name]
    return None


def _variant(sagemaker: Any, config_name: str, variant_name: str) -> Mapping[str, Any]:
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    return next(
        (v for v in config["ProductionVariants"] if v["VariantName"] == variant_name), {}
    )


def endpoint_hooks(
    endpoint_name: str, region: str, scaling: ScalingSpec | None, policy_name: str
) -> pulumi.ResourceHookBinding:
    """Hooks around the endpoint's updates: the rollback check, and for an auto-scaled endpoint
    (`scaling`) suspending/restoring its scaling and capacity."""
    spec = scaling
    plans: dict[str, UpdatePlan] = {}

    def clients() -> tuple[Any, Any]:
        import boto3

        return (
            boto3.client("sagemaker", region_name=region),
            boto3.client("application-autoscaling", region_name=region),
        )

    def check_rollback(args: pulumi.ResourceHookArgs) -> None:
        deployed = _prop(args.new_inputs, "endpointConfigName", "endpoint_config_name")
        sagemaker, _ = clients()
        live = sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
        if rolled_back(deployed, live):
            raise EndpointRolledBack(rollback_message(endpoint_name, deployed, live))

    if spec is None:
        return pulumi.ResourceHookBinding(
            after_update=[pulumi.ResourceHook(f"{endpoint_name}-rollback-check", check_rollback)]
        )

    def before_update(args: pulumi.ResourceHookArgs) -> None:
        old_config = _prop(args.old_outputs, "endpointConfigName", "endpoint_config_name")
        new_config = _prop(args.new_inputs, "endpointConfigName", "endpoint_config_name")
        if not old_config or not new_config or old_config == new_config:
            return
        sagemaker, autoscaling = clients()
        old, new = (_variant(sagemaker, c, spec.variant_name) for c in (old_config, new_config))
        live = sagemaker.describe_endpoint(EndpointName=spec.endpoint_name)
        current = next(
            (v for v in live.get("ProductionVariants", [])
             if v.get("VariantName") == spec.variant_name),
            {},
        )
        plan = plan_update(
            old_instance_type=old.get("InstanceType"),
            new_instance_type=new.get("InstanceType"),
            desired_instance_count=current.get("DesiredInstanceCount"),
            new_initial_instance_count=new.get("InitialInstanceCount"),
            max_capacity=spec.max_capacity,
        )
        plans[args.urn] = plan
        if plan.suspend_scaling:
            autoscaling.deregister_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=spec.resource_id,
                ScalableDimension=SCALABLE_DIMENSION,
            )

    def after_update(args: pulumi.ResourceHookArgs) -> None:
        plan = plans.pop(args.urn, None)
        if plan is None:
            return
        sagemaker, autoscaling = clients()
        if plan.restore_instance_count is not None:
            sagemaker.update_endpoint_weights_and_capacities(
                EndpointName=spec.endpoint_name,
                DesiredWeightsAndCapacities=[
                    {"VariantName": spec.variant_name,
                     "DesiredInstanceCount": plan.restore_instance_count}
                ],
            )
        if plan.suspend_scaling:
            autoscaling.register_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=spec.resource_id,
                ScalableDimension=SCALABLE_DIMENSION,
                MinCapacity=spec.min_capacity,
                MaxCapacity=spec.max_capacity,
            )
            autoscaling.put_scaling_policy(**spec.put_scaling_policy_request(policy_name))

    return pulumi.ResourceHookBinding(
        before_update=[pulumi.ResourceHook(f"{endpoint_name}-suspend-scaling", before_update)],
        # The rollback check first: a rolled-back update must not be followed by restoring.
        after_update=[
            pulumi.ResourceHook(f"{endpoint_name}-rollback-check", check_rollback),
            pulumi.ResourceHook(f"{endpoint_name}-resume-scaling", after_update),
        ],
    )
