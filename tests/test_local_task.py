"""Issue 17 parts 1 and 3 through local mode, offline: any class set with its routes, and the
roadway task from its stack file, on small archives in the official CIFAR-100 format.

Each runs ``python -m local up`` (stage, train two epochs, moto, endpoint, deploy, smoke
execution), ``run`` and ``down`` as a user does; what is asserted is the class set end to end:
the model's classes, the endpoint's answer length, filter and routes (every route taken), and
one drift class share per class in ``local monitor``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
from local_cli_support import LocalCli
from task_archives import official_names, write_task_archive

from local.processes import is_alive


def _captured_outputs(state: dict) -> list[list[float]]:
    s3 = boto3.client(
        "s3", endpoint_url=state["moto_url"], region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    listing = s3.list_objects_v2(Bucket=state["bucket"], Prefix="capture/")
    outputs = []
    for obj in listing.get("Contents", []):
        body = s3.get_object(Bucket=state["bucket"], Key=obj["Key"])["Body"].read()
        for line in body.splitlines():
            record = json.loads(line)
            answer = json.loads(record["captureData"]["endpointOutput"]["data"])
            # The classify step asks for the gate answer type (docs/design.md): its probabilities.
            outputs.append(answer["probabilities"] if isinstance(answer, dict) else answer)
    return outputs


def _up_run_down(cli: LocalCli, up_args: list[str], classes: list[str], routes: dict) -> dict:
    pids: list[int] = []
    try:
        up = cli.local("up", "--epochs", "2", "--threshold", "0.5", *up_args)
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((cli.state_dir / "state.json").read_text())
        pids = [p["pid"] for p in state["processes"].values()]
        assert state["classes"] == classes and state["routes"] == routes

        run = cli.local("run", "--events", "30", "--concurrency", "4", "--seed", "3")
        assert run.returncode == 0, run.stdout + run.stderr
        report = json.loads(next((cli.state_dir / "runs").glob("run-*.json")).read_text())
        results = report["results"]
        assert len(results) == 30
        assert {r["predicted"] for r in results} <= set(classes)
        allowed = {"needs_review", *(f"routed:{route}" for route in routes.values())}
        outcomes = {r["outcome"] for r in results}
        assert outcomes <= allowed, outcomes
        # Colour-coded classes are easy: every route is taken, each by its own classes.
        assert {f"routed:{route}" for route in routes.values()} <= outcomes, outcomes
        for r in results:
            if r["outcome"].startswith("routed:"):
                assert r["outcome"] == f"routed:{routes[r['predicted']]}", r

        # The endpoint answers one probability per class (the smoke run and `run` captured).
        # The endpoint flushes its capture buffer on a timer: wait for this run's records.
        deadline = time.monotonic() + 30
        outputs = _captured_outputs(state)
        while len(outputs) < len(results) and time.monotonic() < deadline:
            time.sleep(1)
            outputs = _captured_outputs(state)
        assert len(outputs) >= len(results)
        assert all(len(o) == len(classes) for o in outputs)

        # Drift: one class-share rule (and CloudWatch alarm in the cloud) per class.
        monitor = cli.local("monitor", "--json", "--all", "--no-report", "--no-safe-mode")
        assert monitor.returncode == 0, monitor.stdout + monitor.stderr
        drift, _ = json.JSONDecoder().raw_decode(monitor.stdout[monitor.stdout.index("{"):])
        assert drift["baseline"]["classes"] == classes
        assert sorted(r["key"] for r in drift["alarms"] if r["metric"] == "ClassShare") == sorted(
            f"class-share-{c}" for c in classes
        )
        return {"state": state, "report": report, "monitor": monitor.stdout}
    finally:
        down = cli.local("down")
        assert down.returncode == 0, down.stderr
        assert not any(is_alive(p) for p in pids)


def test_three_classes_with_custom_routes(dev_archive: Path, tmp_path: Path, repo_root: Path):
    classes = ["bus", "man", "tractor"]
    archive = write_task_archive(
        tmp_path / "cifar-100-python.tar.gz", official_names(dev_archive), classes
    )
    routes = {"bus": "lane", "man": "kerb", "tractor": "field"}
    _up_run_down(
        LocalCli(tmp_path, repo_root),
        ["--archive", str(archive), "--classes", ",".join(classes),
         "--routes", "bus=lane,man=kerb,tractor=field"],
        classes,
        routes,
    )


def test_roadway_task_from_its_stack_file(dev_archive: Path, tmp_path: Path, repo_root: Path):
    """Pulumi.roadway.yaml's class set and routes, no option but the file and the archive."""
    classes = ["man", "woman", "bus", "pickup_truck"]
    archive = write_task_archive(
        tmp_path / "cifar-100-python.tar.gz", official_names(dev_archive), classes, seed=1
    )
    _up_run_down(
        LocalCli(tmp_path, repo_root),
        ["--archive", str(archive), "--config", str(repo_root / "Pulumi.roadway.yaml")],
        classes,
        {"man": "pedestrian", "woman": "pedestrian", "bus": "traffic", "pickup_truck": "traffic"},
    )


def test_local_task_options_are_checked_as_the_stack_config_is(repo_root: Path) -> None:
    import pytest

    from local.cli import task_settings

    assert task_settings("a,b,c", "a=x,b=y,c=x", None) == (
        ["a", "b", "c"], {"a": "x", "b": "y", "c": "x"}, 0.93
    )
    assert task_settings('["a", "b"]', '{"a": "x", "b": "y"}', 0.0)[2] == 0.0  # all routed
    roadway = task_settings(None, None, None, repo_root / "Pulumi.roadway.yaml")
    assert roadway[0] == ["man", "woman", "bus", "pickup_truck"]
    assert task_settings(None, "man=p,woman=p,bus=t,pickup_truck=t", 0.5,
                         repo_root / "Pulumi.roadway.yaml")[1:] == (
        {"man": "p", "woman": "p", "bus": "t", "pickup_truck": "t"}, 0.5
    )
    for args, named in [
        (("a,b,c", "a=x,b=y", None), "--routes: scones:routes: no route for class(es) ['c']"),
        (("a,b", "a=x,b", None), "--routes: expected class=route pairs"),
        (("a,b", "a=x,b=no way", None), "--routes: scones:routes.b"),
        (("a", None, None), "--classes: scones:classes"),
        (("bus,man", None, None), "--routes: scones:routes: no route"),
        ((None, None, 1.5), "--threshold: must be within [0, 1]"),
    ]:
        with pytest.raises(SystemExit) as info:
            task_settings(*args)
        assert str(info.value).startswith(named), (args, str(info.value))
