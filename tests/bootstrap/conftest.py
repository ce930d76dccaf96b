"""Fixtures for the bootstrap tests: the IAM evaluator, and programs run under Pulumi mocks.

Pulumi's mocks are process-wide settings (`pulumi.runtime.set_mocks`). Each run here sets them
afresh for its own project and stack, and tests/infra's session fixture sets its own when it
first runs, so the two never share a run.
"""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime.config import set_all_config

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "infra"))  # pulumi_support (imported, not edited)

from bootstrap_support import (  # noqa: E402
    BOOTSTRAP_CONFIG,
    AutonamingMocks,
    evaluate,
    evaluator_command,
    run_bootstrap,
)
from pulumi_support import stack_config  # noqa: E402


@pytest.fixture(scope="session")
def iam_evaluator() -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    command = evaluator_command()
    if command is None:
        pytest.skip("node/npm not on PATH: the IAM evaluator (@cloud-copilot/iam-simulate) runs "
                    "under Node")
    return lambda requests: evaluate(command, requests)


@pytest.fixture(scope="session")
def main_artifacts(tmp_path_factory: pytest.TempPathFactory, dev_archive: Path):
    """The main program's build step, as tests/infra/conftest.py runs it (offline wheels)."""
    from components.settings import Settings
    from components.stack import build_artifacts
    from lambdas.detect_drift.package import pinned_versions

    with pytest.MonkeyPatch.context() as patch:
        if not os.environ.get("SCONES_WHEELHOUSE"):
            wheels = tmp_path_factory.mktemp("wheels")
            for name, version in pinned_versions().items():
                wheel = wheels / f"{name}-{version}-cp312-cp312-manylinux_2_28_x86_64.whl"
                with zipfile.ZipFile(wheel, "w") as zf:
                    zf.writestr(f"{name}/__init__.py", "")
            patch.setenv("SCONES_WHEELHOUSE", str(wheels))
        return build_artifacts(
            Settings(cifar_archive=str(dev_archive)), tmp_path_factory.mktemp("pulumi-build")
        )


def run_main_program(stack: str, artifacts, name_inputs: dict[str, str | None],
                     overrides: dict[str, str] | None = None) -> AutonamingMocks:
    from components.settings import NAMESPACE, Settings
    from components.stack import deploy, region_from_config

    mocks = AutonamingMocks(stack, name_inputs)
    pulumi.runtime.set_mocks(mocks, project="scones", stack=stack, preview=False)
    set_all_config({**stack_config(stack), **(overrides or {})})

    @pulumi.runtime.test
    def program():
        settings = Settings.from_mapping(pulumi.Config(NAMESPACE).get)
        outputs = deploy(settings, stack=stack, region=region_from_config(), artifacts=artifacts)
        outputs.pop("_")
        return pulumi.Output.all(**outputs)

    program()
    return mocks


@pytest.fixture(scope="session")
def main_stacks(main_artifacts) -> dict[str, AutonamingMocks]:
    from deploy_actions import RULES

    names = {typ: rule.name_input for typ, rule in RULES.items()}
    return {
        "dev": run_main_program("dev", main_artifacts, names),
        "prod": run_main_program(
            "prod", main_artifacts, names, {"scones:alarmEmail": "ops@example.com"}
        ),
    }


@pytest.fixture(scope="session")
def bootstrap_run():
    return run_bootstrap(BOOTSTRAP_CONFIG)


@pytest.fixture(scope="session")
def bootstrap_with_backend():
    return run_bootstrap({**BOOTSTRAP_CONFIG, "stateBackend": {"enabled": True, "stack": "prod"}})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pulumi_aws's package import announces every deprecated resource module it loads.
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_aws"))
