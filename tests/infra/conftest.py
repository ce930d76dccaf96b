"""Pulumi mocks for the infrastructure tests: set once per session, with preview=False.

`run_stack(stack, overrides)` runs the real program (components.stack.deploy) against the
stack's Pulumi.<stack>.yaml config and returns every registered resource (type, name, inputs as
the engine sees them, camelCase; outputs; URN, which encodes the parent chain) and the resolved
stack outputs. With preview=False every `apply` runs, so policies and the state machine
definition are checked as they would be deployed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime.config import set_all_config
from pulumi_support import MOCKS, MONITOR, RecordingMocks, StackRun, stack_config


@pytest.fixture(scope="session")
def pulumi_mocks() -> RecordingMocks:
    pulumi.runtime.set_mocks(MOCKS, project="scones", stack="test", preview=False, monitor=MONITOR)
    return MOCKS


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory, dev_archive: Path):
    """The real build step (staging, source bundle, Lambda zip), once per session."""
    from components.settings import Settings
    from components.stack import build_artifacts

    settings = Settings(cifar_archive=str(dev_archive))
    with pytest.MonkeyPatch.context() as patch:  # restored after the build: no leak to others
        if not os.environ.get("SCONES_WHEELHOUSE"):
            # The drift layer's wheels: small stand-ins with the pinned names, so the build step
            # runs offline (tests/drift/test_package.py covers the real layer build).
            wheels = _stand_in_wheels(tmp_path_factory.mktemp("wheels"))
            patch.setenv("SCONES_WHEELHOUSE", str(wheels))
        return build_artifacts(settings, tmp_path_factory.mktemp("pulumi-build"))


@pytest.fixture(scope="session")
def roadway_artifacts(tmp_path_factory: pytest.TempPathFactory, dev_archive: Path):
    """The build step for Pulumi.roadway.yaml's classes, staged from a small archive in the
    official format (the dev archive holds bicycles and motorcycles only)."""
    from pulumi_support import stack_config
    from task_archives import official_names, write_task_archive

    from components.settings import Settings
    from components.stack import build_artifacts

    config = stack_config("roadway")
    settings = Settings.from_mapping(lambda key: config.get(f"scones:{key}"))
    archive = write_task_archive(
        tmp_path_factory.mktemp("roadway-archive") / "cifar-100-python.tar.gz",
        official_names(dev_archive),
        settings.classes,
        train_per_class=8,
        test_per_class=4,
    )
    with pytest.MonkeyPatch.context() as patch:
        if not os.environ.get("SCONES_WHEELHOUSE"):
            patch.setenv("SCONES_WHEELHOUSE", str(_stand_in_wheels(tmp_path_factory.mktemp("w"))))
        return build_artifacts(
            Settings(classes=settings.classes, routes=settings.routes, cifar_archive=str(archive)),
            tmp_path_factory.mktemp("roadway-build"),
        )


def _stand_in_wheels(directory: Path) -> Path:
    import zipfile

    from lambdas.detect_drift.package import pinned_versions

    for name, version in pinned_versions().items():
        wheel = directory / f"{name}-{version}-cp312-cp312-manylinux_2_28_x86_64.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"{name}/__init__.py", "")
    return directory


@pytest.fixture(scope="session")
def run_stack(pulumi_mocks: RecordingMocks, artifacts, request: pytest.FixtureRequest):
    from components.settings import NAMESPACE, Settings
    from components.stack import deploy, region_from_config

    def run(
        stack: str, overrides: Mapping[str, str] | None = None, describe_training_job=None
    ) -> StackRun:
        config = {**stack_config(stack), **(overrides or {})}
        # A stack with its own class set stages its own data (the deploy checks they agree).
        built = request.getfixturevalue("roadway_artifacts") if stack == "roadway" else artifacts
        set_all_config(config)
        pulumi_mocks.records.clear()
        MONITOR.resources.clear()
        MONITOR.options.clear()
        holder: dict[str, Any] = {}
        started = time.perf_counter()

        @pulumi.runtime.test
        def program():
            settings = Settings.from_mapping(pulumi.Config(NAMESPACE).get)
            checks = {} if describe_training_job is None else {
                "describe_training_job": describe_training_job
            }
            outputs = deploy(
                settings, stack=stack, region=region_from_config(), artifacts=built, **checks
            )
            holder["components"] = outputs.pop("_")
            return pulumi.Output.all(**outputs).apply(lambda v: holder.__setitem__("outputs", v))

        program()
        urns = {urn.rsplit("::", 1)[1]: urn for urn in MONITOR.resources}
        records = list(pulumi_mocks.records)
        for record in records:
            record.urn = urns.get(record.name, "")
            record.options = MONITOR.options.get(record.urn, record.options)
        return StackRun(
            stack=stack,
            resources=records,
            outputs=holder["outputs"],
            components=holder["components"],
            seconds=time.perf_counter() - started,
        )

    return run


@pytest.fixture(scope="session")
def dev(run_stack) -> StackRun:
    return run_stack("dev")


@pytest.fixture(scope="session")
def prod(run_stack) -> StackRun:
    return run_stack("prod", {"scones:alarmEmail": "routing-ops@example.com"})


@pytest.fixture(scope="session")
def roadway(run_stack) -> StackRun:
    """Pulumi.roadway.yaml: the second image task, by config only."""
    return run_stack("roadway")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pulumi_aws's package import announces every deprecated resource module it loads.
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_aws"))
