"""Lifecycle invariants of the endpoint: blue/green rollback can read its alarms, and an update of
an auto-scaled endpoint neither fails on an instance-type change nor shrinks a scaled-out fleet.

Sources:
- "Ensure that your IAM execution role has permission to perform the cloudwatch:DescribeAlarms
  action on the auto-rollback alarms you specify" (SageMaker developer guide, "Auto-Rollback
  Configuration and Monitoring",
  https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html).
- "If the update would change the instance type for any model that is a target for auto
  scaling, the update fails" ... deregister, update, register again (SageMaker developer guide,
  "Update endpoints that use auto scaling",
  https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-update.html).
- The provider's UpdateEndpoint sends EndpointName, EndpointConfigName and DeploymentConfig only
  (terraform-provider-aws internal/service/sagemaker/endpoint.go, resourceEndpointUpdate), not
  RetainAllVariantProperties, so the new config's InitialInstanceCount is what runs after it.
"""

from __future__ import annotations

import json

import pytest


def plan_update(**kwargs):
    from components.endpoint_update_hooks import plan_update

    return plan_update(**kwargs)


@pytest.fixture(params=["dev", "prod"])
def run(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


def _policy(run, role: str) -> list[dict]:
    role_name = run.named(role).outputs["name"]
    (policy,) = [p for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
                 if p.inputs["role"] == role_name]
    return json.loads(policy.inputs["policy"])["Statement"]


def test_execution_role_can_describe_exactly_the_rollback_alarms(run) -> None:
    endpoint = run.one("aws:sagemaker/endpoint:Endpoint").inputs
    rollback_names = {
        a["alarmName"]
        for a in endpoint["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
    }
    alarms = {a.outputs["name"]: a.outputs["arn"]
              for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert rollback_names and rollback_names <= set(alarms)
    granted = [s for s in _policy(run, "endpoint-role")
               if "cloudwatch:DescribeAlarms" in s["Action"]]
    assert len(granted) == 1
    assert sorted(granted[0]["Resource"]) == sorted(alarms[n] for n in rollback_names)


def test_prod_endpoint_updates_run_the_scaling_hooks(prod) -> None:
    """The hooks and the Pulumi resources describe one scalable target and one policy."""
    from components.endpoint_update_hooks import ScalingSpec

    policy = prod.one("aws:appautoscaling/policy:Policy").inputs
    target = prod.one("aws:appautoscaling/target:Target").inputs
    spec = ScalingSpec(
        endpoint_name="scones-prod",
        variant_name="AllTraffic",
        min_capacity=target["minCapacity"],
        max_capacity=target["maxCapacity"],
        target_invocations_per_instance=300.0,
    )
    assert target["resourceId"] == spec.resource_id
    request = spec.put_scaling_policy_request(policy["name"])
    configured = policy["targetTrackingScalingPolicyConfiguration"]
    assert request["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == (
        configured["targetValue"]
    )
    assert request["TargetTrackingScalingPolicyConfiguration"]["ScaleInCooldown"] == (
        configured["scaleInCooldown"]
    )
    assert request["ResourceId"] == target["resourceId"]
    # The endpoint runs the hooks around its updates (Pulumi resource option "hooks":
    # https://www.pulumi.com/docs/iac/concepts/options/hooks/).
    hooks = prod.one("aws:sagemaker/endpoint:Endpoint").options.hooks
    assert hooks == {
        "before_update": ("scones-prod-suspend-scaling",),
        "after_update": ("scones-prod-rollback-check", "scones-prod-resume-scaling"),
    }


def test_dev_serverless_endpoint_has_only_the_rollback_check(dev) -> None:
    assert dev.one("aws:sagemaker/endpoint:Endpoint").options.hooks == {
        "after_update": ("scones-dev-rollback-check",)
    }


def test_a_rollback_is_detected_and_named() -> None:
    """After a rollback the endpoint is InService on the previous config: the provider's waiter
    succeeds and its read records the live (old) config name (endpoint.go), so only comparing
    the live config with the deployed one shows that the new model is not serving."""
    from components.endpoint_update_hooks import rollback_message, rolled_back

    assert rolled_back("endpoint-config-new", "endpoint-config-old")
    assert not rolled_back("endpoint-config-new", "endpoint-config-new")
    message = rollback_message("scones-prod", "endpoint-config-new", "endpoint-config-old")
    assert "rolled back to endpoint-config-old" in message and "pulumi refresh" in message


def test_instance_type_change_suspends_scaling() -> None:
    plan = plan_update(old_instance_type="ml.m5.large", new_instance_type="ml.c5.xlarge",
                       desired_instance_count=1, new_initial_instance_count=1, max_capacity=4)
    assert plan.suspend_scaling and plan.restore_instance_count is None


def test_model_change_keeps_the_instance_type_and_restores_a_scaled_out_fleet() -> None:
    """A new model (same instance type) updates in place, and a fleet auto scaling had grown
    to 3 is set back to 3 after the update instead of staying at the config's 1."""
    plan = plan_update(old_instance_type="ml.m5.large", new_instance_type="ml.m5.large",
                       desired_instance_count=3, new_initial_instance_count=1, max_capacity=4)
    assert not plan.suspend_scaling and plan.restore_instance_count == 3
    capped = plan_update(old_instance_type="ml.m5.large", new_instance_type="ml.m5.large",
                         desired_instance_count=6, new_initial_instance_count=1, max_capacity=4)
    assert capped.restore_instance_count == 4


def test_serverless_or_unchanged_needs_nothing() -> None:
    assert plan_update(old_instance_type=None, new_instance_type=None,
                       desired_instance_count=None, new_initial_instance_count=None,
                       max_capacity=1) == plan_update(
        old_instance_type="ml.m5.large", new_instance_type="ml.m5.large",
        desired_instance_count=1, new_initial_instance_count=1, max_capacity=2)
