"""Settled at preview, not at create time: names derived from the stack name, and the endpoint
config's KMS key on instance types with local storage.

Sources: aws_s3_bucket's bucket_prefix is at most 37 characters (Terraform AWS provider,
internal/service/s3/bucket.go, and its documentation); SageMaker names match
``^[a-zA-Z0-9](-*[a-zA-Z0-9])*$`` with at most 63 characters (SageMaker API reference,
CreateEndpoint EndpointName); Lambda function names at most 64 (Lambda API reference,
CreateFunction FunctionName); "You can't request a KmsKeyId when using an instance type with
local storage" (SageMaker API reference, CreateEndpointConfig KmsKeyId).
"""

from __future__ import annotations

import json

import pytest

from components.settings import Settings, StackNameError, validate_stack_name


@pytest.mark.parametrize("stack", ["dev", "prod", "eu-prod-2", "a" * 24])
def test_usable_stack_names_pass(stack: str) -> None:
    validate_stack_name(stack)


@pytest.mark.parametrize(
    ("stack", "what"),
    [("a" * 40, "bucket prefix"), ("Prod", "bucket prefix"), ("my_stack", "bucket prefix"),
     ("a" * 25, "bucket prefix")],
)
def test_unusable_stack_names_fail_naming_the_derived_name(stack: str, what: str) -> None:
    with pytest.raises(StackNameError) as raised:
        validate_stack_name(stack)
    message = str(raised.value)
    assert repr(stack) in message and what in message and "at most 24" in message


def test_the_program_refuses_a_long_stack_name_before_any_resource(artifacts) -> None:
    from components.stack import deploy

    with pytest.raises(StackNameError, match="pulumi stack name"):
        deploy(Settings(), stack="s" * 40, region="eu-west-1", artifacts=artifacts)


@pytest.mark.parametrize(
    ("instance_type", "with_key"),
    [("ml.m5.large", True), ("ml.c5.xlarge", True), ("ml.m5d.large", False),
     ("ml.g4dn.xlarge", False), ("ml.g5.2xlarge", False)],
)
def test_endpoint_config_key_only_without_instance_storage(
    run_stack, instance_type: str, with_key: bool
) -> None:
    endpoint = {"instanceType": instance_type, "initialInstanceCount": 1, "minInstances": 1,
                "maxInstances": 2, "targetInvocationsPerInstance": 300}
    run = run_stack("prod", {"scones:alarmEmail": "ops@example.com",
                             "scones:endpoint": json.dumps(endpoint)})
    config = run.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    assert ("kmsKeyArn" in config) == with_key
    # Data Capture stays encrypted with the stack's key either way.
    assert config["dataCaptureConfig"]["kmsKeyId"] == run.one("aws:kms/key:Key").outputs["arn"]
