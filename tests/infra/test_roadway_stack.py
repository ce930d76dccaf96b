"""Pulumi.roadway.yaml under mocks: the same components on a second image task (people and
vehicles, four CIFAR-100 classes, two routes), by config only.

tests/infra/test_infra_graph.py checks its graph (every component and its children) and its
outputs beside dev and prod; this file checks what the class set changes: the functions' task,
the state machine's route states, one ClassShare alarm per class, the dashboard, and names.
"""

from __future__ import annotations

import json

from pulumi_support import stack_config

from lambdas.config import REJECTED_ROUTE

CLASSES = ["man", "woman", "bus", "pickup_truck"]
ROUTES = {"man": "pedestrian", "woman": "pedestrian", "bus": "traffic", "pickup_truck": "traffic"}


def test_the_stack_file_is_the_task() -> None:
    config = stack_config("roadway")
    assert json.loads(config["scones:classes"]) == CLASSES
    assert json.loads(config["scones:routes"]) == ROUTES


def test_functions_get_the_roadway_task(roadway) -> None:
    functions = [
        r for r in roadway.of_type("aws:lambda/function:Function")
        if "CLASSES" in r.inputs.get("environment", {}).get("variables", {})
    ]
    assert functions  # the classify, filter and route steps (and the batch summary) read it
    for fn in functions:
        env = fn.inputs["environment"]["variables"]
        assert json.loads(env["CLASSES"]) == CLASSES, fn.name
        if "ROUTES" in env:
            assert json.loads(env["ROUTES"]) == ROUTES, fn.name


def test_each_route_is_a_succeed_state(roadway) -> None:
    machine = roadway.one("aws:sfn/stateMachine:StateMachine", "workflow-state-machine")
    states = json.loads(machine.inputs["definition"])["States"]
    routed = {name for name, st in states.items() if name.startswith("Routed_")}
    assert routed == {"Routed_pedestrian", "Routed_traffic"}
    assert all(states[name]["Type"] == "Succeed" for name in routed)
    choices = {
        c["StringEquals"] for st in states.values() if st["Type"] == "Choice"
        for c in st.get("Choices", []) if c.get("Variable") == "$.route"
    }
    # ... plus a reviewer's "none of these" (REJECTED_ROUTE), which ends apart.
    assert choices == {"pedestrian", "traffic", REJECTED_ROUTE}


def test_one_class_share_alarm_per_class(roadway) -> None:
    alarms = roadway.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    share = sorted(a.name for a in alarms if "class-share" in a.name)
    assert share == sorted(f"alarms-drift-class-share-{c}" for c in CLASSES), share
    for name in share:
        (alarm,) = [a for a in alarms if a.name == name]
        assert alarm.inputs["alarmActions"], name  # notifies the alarm topic


def test_dashboard_shows_every_class(roadway) -> None:
    dashboard = roadway.one("aws:cloudwatch/dashboard:Dashboard")
    body = json.loads(dashboard.inputs["dashboardBody"])
    text = json.dumps(body)
    for c in CLASSES:
        assert f'"{c}"' in text, c
    assert dashboard.inputs["dashboardName"] == "scones-roadway"


def test_names_are_the_stacks_own(roadway) -> None:
    assert roadway.outputs["endpointName"] == "scones-roadway"
    for r in roadway.of_type("aws:lambda/function:Function"):
        assert r.outputs["name"].startswith("scones-roadway-"), r.outputs["name"]
    for r in roadway.of_type("aws:sfn/stateMachine:StateMachine"):
        assert r.outputs["name"].startswith("scones-roadway-"), r.outputs["name"]
