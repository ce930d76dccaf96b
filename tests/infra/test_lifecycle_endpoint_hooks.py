"""The endpoint's update hooks against moto's SageMaker and Application Auto Scaling: what they
read and write around an update (components/endpoint_update_hooks.py has the AWS sources).

moto has no UpdateEndpoint, which the hooks never call (the provider does): the "update" between
the two hooks is the state moto already holds, so the endpoint staying on its old config is
exactly what a rollback looks like to the after-update check.
"""

from __future__ import annotations

import boto3
import pulumi
import pytest
from moto import mock_aws

from components.endpoint_update_hooks import (
    SCALABLE_DIMENSION,
    EndpointRolledBack,
    ScalingSpec,
    endpoint_hooks,
)

REGION = "eu-west-1"
ENDPOINT = "scones-prod"
POLICY = f"{ENDPOINT}-invocations-per-instance"
SPEC = ScalingSpec(endpoint_name=ENDPOINT, variant_name="AllTraffic", min_capacity=1,
                   max_capacity=4, target_invocations_per_instance=300.0)


def _client(service: str):
    return boto3.client(service, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.fixture
def aws(pulumi_mocks):  # the mocks let the hooks register, as in a program
    with mock_aws():
        sm = _client("sagemaker")
        sm.create_model(ModelName="model", ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                        PrimaryContainer={"Image": "1.dkr.ecr.eu-west-1.amazonaws.com/x:1"})
        for name, instance_type in (("config-old", "ml.m5.large"), ("config-same", "ml.m5.large"),
                                    ("config-bigger", "ml.c5.xlarge")):
            sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
                "VariantName": "AllTraffic", "ModelName": "model",
                "InstanceType": instance_type, "InitialInstanceCount": 1}])
        sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="config-old")
        scaling = _client("application-autoscaling")
        scaling.register_scalable_target(
            ServiceNamespace="sagemaker", ResourceId=SPEC.resource_id,
            ScalableDimension=SCALABLE_DIMENSION, MinCapacity=1, MaxCapacity=4)
        scaling.put_scaling_policy(**SPEC.put_scaling_policy_request(POLICY))
        yield sm, scaling


def _args(new_config: str) -> pulumi.ResourceHookArgs:
    return pulumi.ResourceHookArgs(
        urn=f"urn:pulumi:prod::scones::aws:sagemaker/endpoint:Endpoint::{ENDPOINT}",
        id=ENDPOINT, name="endpoint-endpoint", type="aws:sagemaker/endpoint:Endpoint",
        old_outputs={"endpointConfigName": "config-old"},
        new_inputs={"endpointConfigName": new_config},
    )


def _hooks():
    binding = endpoint_hooks(ENDPOINT, REGION, SPEC, POLICY)
    before = binding.before_update[0].callback
    check, resume = (h.callback for h in binding.after_update)
    return before, check, resume


def _targets(scaling) -> list:
    return scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]


def test_instance_type_change_deregisters_then_restores_scaling(aws) -> None:
    _, scaling = aws
    before, _, resume = _hooks()
    args = _args("config-bigger")
    before(args)
    assert _targets(scaling) == []  # SageMaker would refuse the update otherwise
    resume(args)
    (target,) = _targets(scaling)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    policies = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert [p["PolicyName"] for p in policies] == [POLICY]


def test_model_change_keeps_scaling_and_restores_the_scaled_out_count(aws) -> None:
    sm, scaling = aws
    sm.update_endpoint_weights_and_capacities(  # auto scaling had scaled out to 3
        EndpointName=ENDPOINT,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}])
    before, _, resume = _hooks()
    args = _args("config-same")
    before(args)
    assert len(_targets(scaling)) == 1  # same instance type: nothing to suspend
    sm.update_endpoint_weights_and_capacities(  # the update starts the config's 1 instance
        EndpointName=ENDPOINT,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 1}])
    resume(args)
    (variant,) = sm.describe_endpoint(EndpointName=ENDPOINT)["ProductionVariants"]
    assert variant["DesiredInstanceCount"] == 3


def test_rollback_fails_the_deployment_by_name(aws) -> None:
    _, check, _ = _hooks()
    with pytest.raises(EndpointRolledBack, match="rolled back to config-old"):
        check(_args("config-bigger"))  # the endpoint still runs config-old
    check(pulumi.ResourceHookArgs(urn="u", id=ENDPOINT, name="n", type="t",
                                  new_inputs={"endpointConfigName": "config-old"}))
