"""Settled: a Region without the pinned Powertools layer's SSM parameter (aws-powertools issue
7689: https://github.com/aws-powertools/powertools-lambda-python/issues/7689) stops the preview
with a message naming the version, the Region and the config key that pins a layer instead.
"""

from __future__ import annotations

import pytest

from components.inference_functions import (
    PowertoolsLayerUnavailable,
    powertools_layer_parameter,
)
from components.settings import Settings, SettingsError

PINNED = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312:7"


def test_missing_parameter_fails_the_preview_clearly(run_stack, pulumi_mocks) -> None:
    pulumi_mocks.missing_parameters.add(powertools_layer_parameter())
    try:
        with pytest.raises(PowertoolsLayerUnavailable) as raised:
            run_stack("dev")
    finally:
        pulumi_mocks.missing_parameters.clear()
    message = str(raised.value)
    assert powertools_layer_parameter() in message and "eu-west-1" in message
    assert "scones:powertoolsLayerArn" in message


def test_a_pinned_layer_replaces_the_lookup(run_stack, pulumi_mocks) -> None:
    pulumi_mocks.missing_parameters.add(powertools_layer_parameter())
    try:
        run = run_stack("dev", {"scones:powertoolsLayerArn": PINNED})
    finally:
        pulumi_mocks.missing_parameters.clear()
    functions = run.of_type("aws:lambda/function:Function")
    assert len(functions) == 7 and all(PINNED in f.inputs["layers"] for f in functions)


def test_layer_arn_setting_is_validated() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_mapping({"powertoolsLayerArn": "AWSLambdaPowertoolsPythonV3"}.get)
    assert raised.value.key == "scones:powertoolsLayerArn"
