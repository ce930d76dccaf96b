"""training/train.py run as a SageMaker training job runs it (local.sagemaker_training):
sagemaker-training's `train` command with SAGEMAKER_TRAINING_MODULE of the PyTorch training DLC,
/opt/ml/input/config files, channels and the source bundle, on the dev archive, one epoch.

Skips, saying why, where sagemaker-training or sagemaker-pytorch-training is missing. The
trained artifact is served by the real serving stack where that can run (else that part skips).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serving_support import encode, random_rgb

from local import sagemaker_serving, sagemaker_training
from training.stage import stage_dataset
from training.train import pack_model

REASON = sagemaker_training.unavailable_reason()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(REASON is not None, reason=f"script mode: {REASON}"),
]
CLASSES = ["bicycle", "motorcycle"]


@pytest.fixture(scope="module")
def staged(dev_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("staged") / "data"
    stage_dataset(dev_archive, out, CLASSES)
    return out


@pytest.fixture(scope="module")
def job(staged: Path, tmp_path_factory: pytest.TempPathFactory) -> sagemaker_training.JobResult:
    root = tmp_path_factory.mktemp("opt-ml")
    sagemaker_training.layout_job(root, staged, epochs=1, min_accuracy=0.0, classes=CLASSES)
    return sagemaker_training.run_job(root)


def test_the_config_files_are_what_sagemaker_writes(staged: Path, tmp_path: Path) -> None:
    sagemaker_training.layout_job(tmp_path, staged, epochs=3, min_accuracy=0.5, classes=CLASSES)
    config = tmp_path / "input" / "config"
    hps = json.loads((config / "hyperparameters.json").read_text())
    assert all(isinstance(v, str) for v in hps.values())  # the API takes string values only
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert Path(json.loads(hps["sagemaker_submit_directory"])).is_file()
    assert hps["epochs"] == "3" and hps["classes"] == "bicycle,motorcycle"
    assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"train", "test"}
    assert json.loads((config / "resourceconfig.json").read_text())["hosts"] == ["algo-1"]
    assert (tmp_path / "input" / "data" / "train" / "dataset.npz").is_file()


def test_script_mode_trains_a_servable_artifact(
    job: sagemaker_training.JobResult, tmp_path: Path
) -> None:
    assert job.exit_code == 0, job.log[-3000:]
    assert job.failure_reason is None
    for name in ("model.pth", "model_meta.json", "metrics.json", "code/inference.py"):
        assert (job.model_dir / name).is_file(), name
    reason = sagemaker_serving.unavailable_reason()
    if reason:
        pytest.skip(f"artifact trained; the real serving stack cannot run here: {reason}")
    tarball = pack_model(job.model_dir, tmp_path / "model.tar.gz")
    with sagemaker_serving.ServingStack(tarball, tmp_path / "serve") as stack:
        stack.wait_ready(encode(random_rgb()))
        answer = sagemaker_serving.request(
            f"{stack.url}/invocations", encode(random_rgb(32, 32, 5)), {"Content-Type": "image/png"}
        )
    assert answer.status == 200
    assert sum(json.loads(answer.body)) == pytest.approx(1.0)


def test_a_failed_quality_gate_is_the_jobs_failure_reason(staged: Path, tmp_path: Path) -> None:
    """SageMaker shows /opt/ml/output/failure as FailureReason; without train.py writing it the
    toolkit wrote 'ExecuteUserScriptError: ExitCode 3 ErrorMessage ""'."""
    sagemaker_training.layout_job(tmp_path, staged, epochs=1, min_accuracy=0.999, classes=CLASSES)
    result = sagemaker_training.run_job(tmp_path)
    assert result.exit_code != 0
    assert result.failure_reason is not None
    assert result.failure_reason.startswith("QualityGateFailed: test accuracy ")
    assert "below the quality gate floor 0.9990" in result.failure_reason
