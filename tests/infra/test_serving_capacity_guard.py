"""Workers x torch threads the Model's environment gives the PyTorch inference container never
exceed the endpoint instance's vCPUs (2 workers x 2 threads on 2 vCPUs served ~12x fewer
requests than 2 x 1: docs/sagemaker-parity.md).

Worker count as the image decides it: its entrypoint writes the vCPU count to
SAGEMAKER_MODEL_SERVER_WORKERS (aws/deep-learning-containers
pytorch/inference/docker/build_artifacts/torchserve-entrypoint.py); any SAGEMAKER_TS_* variable
switches to a per-model config whose workers default to 1 (sagemaker-pytorch-inference 2.0.25,
sagemaker_pytorch_serving_container/torchserve.py and ts_environment.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pulumi_support import REGION

from training.serving_environment import (
    INSTANCE_VCPUS,
    serving_environment,
    threads_for,
    workers_for,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _model_environment(run) -> dict[str, str]:
    return run.one("aws:sagemaker/model:Model").inputs["primaryContainer"]["environment"]


def test_the_model_sets_the_serving_environment_contract(dev, prod) -> None:
    for run in (dev, prod):
        assert _model_environment(run) == serving_environment(REGION)


def test_workers_times_threads_fit_the_endpoint_instance(prod) -> None:
    config = prod.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    (variant,) = config["productionVariants"]
    instance_type = variant["instanceType"]
    assert instance_type in INSTANCE_VCPUS, f"add {instance_type}'s vCPUs to INSTANCE_VCPUS"
    vcpus = INSTANCE_VCPUS[instance_type]
    env = _model_environment(prod)
    assert workers_for(env, vcpus) * threads_for(env) <= vcpus


def _configured_instance_types() -> set[str]:
    """Endpoint instance types any stack can choose: each Pulumi.<stack>.yaml's, the default."""
    import yaml

    from components.settings import InstanceEndpoint

    found = {InstanceEndpoint().instance_type}
    for path in sorted(REPO_ROOT.glob("Pulumi.*.yaml")):
        config = (yaml.safe_load(path.read_text()) or {}).get("config", {})
        endpoint = config.get("scones:endpoint") or {}
        if isinstance(endpoint, dict) and "instanceType" in endpoint:
            found.add(endpoint["instanceType"])
    return found


def test_every_configured_endpoint_instance_type_is_known_and_fits() -> None:
    env = serving_environment("us-east-1")
    for instance_type in sorted(_configured_instance_types()):
        assert instance_type in INSTANCE_VCPUS, f"add {instance_type}'s vCPUs to INSTANCE_VCPUS"
        vcpus = INSTANCE_VCPUS[instance_type]
        assert workers_for(env, vcpus) * threads_for(env) <= vcpus, instance_type


@pytest.mark.parametrize("instance_type", sorted(INSTANCE_VCPUS))
def test_every_known_instance_type_fits(instance_type: str) -> None:
    vcpus = INSTANCE_VCPUS[instance_type]
    env = serving_environment("us-east-1")
    assert workers_for(env, vcpus) * threads_for(env) <= vcpus
    # ...and uses them all: one single-threaded worker per vCPU (no SAGEMAKER_TS_* override).
    assert workers_for(env, vcpus) == vcpus and threads_for(env) == 1


def test_the_guard_catches_oversubscription_and_the_ts_variable_pitfall() -> None:
    env = serving_environment("us-east-1")
    assert workers_for({**env, "SCONES_TORCH_THREADS": "2"}, 2) * threads_for(
        {**env, "SCONES_TORCH_THREADS": "2"}
    ) > 2
    # One SAGEMAKER_TS_* variable alone drops the container to a single worker.
    assert workers_for({**env, "SAGEMAKER_TS_RESPONSE_TIMEOUT": "30"}, 2) == 1
    with pytest.raises(ValueError, match="SCONES_TORCH_THREADS"):
        threads_for({"SAGEMAKER_PROGRAM": "inference.py"})
