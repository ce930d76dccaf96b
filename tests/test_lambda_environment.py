"""lambdas/environment.py: the one builder of the workflow functions' environment that the
Pulumi component, local mode and the tests deploy (docs/design.md, "Environment variables")."""

from __future__ import annotations

import json

import pytest

from lambdas.config import load_settings
from lambdas.environment import EnvironmentConflict, merged_environment, workflow_environments
from lambdas.safe_mode.flag import PARAMETER_ENV
from lambdas.workflow_definition import FUNCTION_KEYS
from local.deploy import function_environment

ARGS = {
    "service_name": "scones-dev",
    "classes": ("bicycle", "motorcycle"),
    "endpoint_name": "ep",
    "confidence_threshold": 0.93,
    "routes": {"motorcycle": "distant", "bicycle": "nearby"},
    "routing_topic_arn": "arn:aws:sns:us-east-1:123456789012:routing",
}


def test_each_function_gets_the_common_and_only_its_own_variables() -> None:
    envs = workflow_environments(**ARGS)
    assert set(envs) == set(FUNCTION_KEYS)
    for env in envs.values():
        assert env["CLASSES"] == '["bicycle", "motorcycle"]'
        assert env["POWERTOOLS_SERVICE_NAME"] == "scones-dev"
    assert "ENDPOINT_NAME" not in envs["serialize_image"]
    assert envs["classify_image"]["ENDPOINT_NAME"] == "ep"
    assert "CAPTURE_S3_URI" not in envs["classify_image"]
    assert envs["filter_inferences"]["CONFIDENCE_THRESHOLD"] == "0.93"
    assert json.loads(envs["route_driver"]["ROUTES"]) == ARGS["routes"]
    optional = workflow_environments(
        **ARGS, capture_s3_uri="s3://b/capture", safe_mode_parameter="/scones/dev/safe-mode"
    )
    assert optional["classify_image"]["CAPTURE_S3_URI"] == "s3://b/capture"
    assert optional["filter_inferences"][PARAMETER_ENV] == "/scones/dev/safe-mode"


def test_the_handlers_read_back_what_the_builder_writes() -> None:
    """The variables the builder writes are the ones lambdas/config.py parses."""
    env = merged_environment(workflow_environments(**ARGS))
    settings = load_settings(env)
    assert settings.confidence_threshold == 0.93
    assert settings.routes == ARGS["routes"]
    assert tuple(settings.classes) == ARGS["classes"]


def test_merging_refuses_functions_that_disagree() -> None:
    with pytest.raises(EnvironmentConflict, match="CLASSES"):
        merged_environment({"a": {"CLASSES": "[1]"}, "b": {"CLASSES": "[2]"}})


def test_local_mode_deploys_the_cloud_variables_plus_its_endpoints() -> None:
    local = function_environment(
        moto_url="http://127.0.0.1:1",
        endpoint_url="http://127.0.0.1:2",
        routing_topic_arn=ARGS["routing_topic_arn"],
        classes=ARGS["classes"],
        routes=ARGS["routes"],
        threshold=0.93,
    )
    cloud = merged_environment(
        workflow_environments(
            **{**ARGS, "service_name": "scones-local", "endpoint_name": local["ENDPOINT_NAME"]},
            safe_mode_parameter=local[PARAMETER_ENV],
        )
    )
    assert {k: local[k] for k in cloud} == cloud
    assert local["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == "http://127.0.0.1:2"
