"""SageMaker's real PyTorch serving stack (TorchServe + sagemaker-pytorch-inference, the PyTorch
2.6 inference DLC's versions) against local.endpoint_server, through local.sagemaker_serving.

Starts the real stack twice per module (a good artifact, a broken one), ~5 s each. Skips, saying
why, where Java, TorchServe or the toolkit are missing. The stack's behaviour these tests pin:
- the toolkit imports the artifact's code/inference.py (training/sagemaker_entry.py) and calls
  its transform_fn (sagemaker_inference/transformer.py `_validate_user_module_and_set_functions`);
- TorchServe's /ping answers 200 Healthy once its port is open, before and whatever model_fn
  does (seen here; docs/sagemaker-parity.md): only invocations tell a broken artifact.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_support import encode, make_artifact, random_rgb

from local import sagemaker_serving as harness
from training.serving_module import freeze_artifact
from training.train import pack_model, write_code_dir

REASON = harness.unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"real serving stack: {REASON}")

IMAGES = [encode(random_rgb(32, 32, seed)) for seed in range(20)] + [
    encode(random_rgb(48, 40, 99)),  # resized and cropped by predict_fn
    encode(random_rgb(32, 32, 7), "JPEG", quality=90),
]


@pytest.fixture(scope="module")
def artifact_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model.tar.gz as the training job packs it (code/ and the frozen model.ts included)."""
    root = tmp_path_factory.mktemp("artifact")
    model_dir = make_artifact(root / "model")
    freeze_artifact(model_dir)
    write_code_dir(model_dir / "code")
    return pack_model(model_dir, root / "model.tar.gz")


@pytest.fixture(scope="module")
def real_url(artifact_tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("opt-ml")
    with harness.ServingStack(artifact_tarball, root) as stack:
        stack.wait_ready(IMAGES[0])
        yield stack.url


@pytest.fixture(scope="module")
def local_url(artifact_tarball: Path) -> Iterator[str]:
    with harness.local_server(artifact_tarball) as url:
        yield url


def test_a_broken_artifact_answers_model_load_failed_at_once(
    artifact_tarball: Path, tmp_path: Path
) -> None:
    """(First in the module: the module's stack starts after it; one runs at a time.)

    Without the model.ts its meta names: the real stack answers 500 ModelLoadFailed (JSON)
    instead of hanging; the local server answers the same. /ping stays 200 in the real stack
    (TorchServe's own)."""
    model_dir = harness.layout_model_dir(artifact_tarball, tmp_path / "source")
    (model_dir / "model.ts").unlink()
    with harness.ServingStack(model_dir, tmp_path / "opt-ml") as stack:
        answer = None
        for _ in range(100):  # the worker loads in ~1-2 s; each try returns at once
            answer = harness.request(
                f"{stack.url}/invocations", IMAGES[0], {"Content-Type": "image/png"}, timeout=10
            )
            if answer.status != 503:
                break
        assert answer is not None and answer.status == 500
        assert json.loads(answer.body)["error"] == "ModelLoadFailed"
        assert harness.request(f"{stack.url}/ping").status == 200
    shutil.rmtree(tmp_path / "source", ignore_errors=True)


def test_the_real_stack_loads_the_artifacts_entry_module(
    artifact_tarball: Path, tmp_path: Path
) -> None:
    """The model dir is laid out as /opt/ml/model; the toolkit finds code/inference.py there."""
    model_dir = harness.layout_model_dir(artifact_tarball, tmp_path)
    entry = (model_dir / "code" / "inference.py").read_text()
    assert "def transform_fn(" in entry and "\ndef input_fn(" not in entry
    assert (model_dir / "model.ts").is_file() and (model_dir / "code" / "training").is_dir()
    assert (model_dir / "code" / "training" / "serving_module.py").is_file()


def test_probabilities_are_identical(real_url: str, local_url: str) -> None:
    report = harness.compare(real_url, local_url, IMAGES)
    images = [d for d in report["differences"] if d["case"].startswith("image")]
    assert images == []
    answer = harness.describe(
        harness.request(f"{real_url}/invocations", IMAGES[0], {"Content-Type": "image/png"})
    )
    assert answer["status"] == 200 and sum(answer["body"]) == pytest.approx(1.0)


@pytest.mark.parametrize("case", [name for name, _, _ in harness.error_cases(IMAGES[0])])
def test_error_answers_are_the_same_pure_json(real_url: str, local_url: str, case: str) -> None:
    """Same status and the same {"error", "message"} body: no traceback, no 500 for PNG-as-JSON."""
    _, body, headers = next(c for c in harness.error_cases(IMAGES[0]) if c[0] == case)
    real = harness.describe(harness.request(f"{real_url}/invocations", body, headers))
    local = harness.describe(harness.request(f"{local_url}/invocations", body, headers))
    assert real["json"], f"the real stack's body is not JSON: {real['body']!r}"
    assert real == local
    assert set(real["body"]) == {"error", "message"} and real["status"] >= 400
