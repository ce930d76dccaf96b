"""components.settings: defaults, both stacks' config, and bad values rejected by key."""

from __future__ import annotations

import json

import pytest
from pulumi_support import stack_config

from components.settings import InstanceEndpoint, ServerlessEndpoint, Settings, SettingsError


def settings_for(config: dict[str, str]) -> Settings:
    return Settings.from_mapping(lambda key: config.get(f"scones:{key}"))


def test_defaults_follow_design() -> None:
    s = Settings.from_mapping(lambda key: None)
    assert s.classes == ("bicycle", "motorcycle")
    assert s.routes == {"bicycle": "nearby", "motorcycle": "distant"}
    assert s.confidence_threshold == 0.93
    assert s.workflow_type == "STANDARD"
    assert s.retain_data is False
    assert s.endpoint == InstanceEndpoint()
    assert s.alarm_email is None


def test_dev_stack_is_small_and_disposable() -> None:
    s = settings_for(stack_config("dev"))
    assert s.endpoint == ServerlessEndpoint(memory_size_mb=2048, max_concurrency=2)
    assert s.serverless
    assert s.retain_data is False
    assert s.workflow_type == "EXPRESS"


def test_prod_stack_scales_and_retains() -> None:
    s = settings_for(stack_config("prod"))
    assert s.endpoint == InstanceEndpoint("ml.m5.large", 1, 1, 4, 300.0)
    assert s.retain_data is True
    assert s.workflow_type == "STANDARD"
    assert s.data_capture_percent == 50
    assert s.min_accuracy == 0.85


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("confidenceThreshold", "1.5", "scones:confidenceThreshold"),
        ("confidenceThreshold", "high", "scones:confidenceThreshold"),
        ("minAccuracy", "0", "scones:minAccuracy"),
        ("dataCapturePercent", "150", "scones:dataCapturePercent"),
        ("dataCapturePercent", "2.5", "scones:dataCapturePercent"),
        ("alarmEmail", "not-an-address", "scones:alarmEmail"),
        ("trainingInstanceType", "m5.large", "scones:trainingInstanceType"),
        ("epochs", "0", "scones:epochs"),
        ("retainData", "yes", "scones:retainData"),
        ("workflowType", "FAST", "scones:workflowType"),
        ("logRetentionDays", "10", "scones:logRetentionDays"),
        ("classes", '["bicycle"]', "scones:classes"),
        ("classes", '["bicycle", "bicycle"]', "scones:classes"),
        ("classes", "[bicycle", "scones:classes"),
        ("classes", '["bicycle", "none"]', "scones:classes"),
        # A class set the default routes do not cover must say where each class goes.
        ("classes", '["bicycle", "bus"]', "scones:routes"),
        ("routes", '{"bicycle": "nearby"}', "scones:routes"),
        ("routes", '{"bicycle": "a", "motorcycle": "b", "bus": "c"}', "scones:routes"),
        ("routes", '["nearby", "distant"]', "scones:routes"),
        ("routes", '{"bicycle": "near by", "motorcycle": "distant"}', "scones:routes.bicycle"),
        ("routes", '{"bicycle": "", "motorcycle": "distant"}', "scones:routes.bicycle"),
        ("routes", '{"bicycle": "rejected", "motorcycle": "x"}', "scones:routes.bicycle"),
        ("routes", "{bicycle: nearby", "scones:routes"),
        ("endpoint", '{"instanceType": "big"}', "scones:endpoint.instanceType"),
        ("endpoint", '{"minInstances": 3, "maxInstances": 2}', "scones:endpoint.minInstances"),
        ("endpoint", '{"instanceCount": 2}', "scones:endpoint"),
        (
            "endpoint",
            json.dumps({"serverless": {"memorySizeMb": 1000}}),
            "scones:endpoint.serverless.memorySizeMb",
        ),
        ("latencyP99Ms", "-1", "scones:latencyP99Ms"),
    ],
)
def test_bad_value_names_its_key(key: str, value: str, named: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings_for({f"scones:{key}": value})
    assert info.value.key == named
    assert str(info.value).startswith(named + ":")


def test_routes_cover_any_class_set_in_class_order() -> None:
    s = settings_for({
        "scones:classes": '["bus", "man", "woman"]',
        "scones:routes": '{"woman": "pedestrian", "bus": "traffic", "man": "pedestrian"}',
    })
    assert s.classes == ("bus", "man", "woman")
    assert list(s.routes.items()) == [
        ("bus", "traffic"), ("man", "pedestrian"), ("woman", "pedestrian")
    ]
    # The default routes serve any subset of the default classes they cover.
    assert settings_for({"scones:classes": '["motorcycle", "bicycle"]'}).routes == {
        "motorcycle": "distant", "bicycle": "nearby"
    }


def test_roadway_stack_is_a_second_task_by_config_only() -> None:
    s = settings_for(stack_config("roadway"))
    assert s.classes == ("man", "woman", "bus", "pickup_truck")
    assert set(s.routes.values()) == {"pedestrian", "traffic"}
    assert s.routes["man"] == s.routes["woman"] == "pedestrian"


def test_bad_config_fails_the_program_naming_the_key(run_stack) -> None:
    with pytest.raises(SettingsError, match=r"^scones:workflowType: must be one of"):
        run_stack("dev", {"scones:workflowType": "FAST"})
    # Routes are checked at preview too, before any resource (the message names the key).
    missing = r"^scones:routes: no route for class\(es\) \['motorcycle'\]"
    with pytest.raises(SettingsError, match=missing):
        run_stack("dev", {"scones:routes": '{"bicycle": "nearby"}'})
