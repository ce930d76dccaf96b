"""Script mode as SageMaker runs it: training/train.py through sagemaker-training's entry point.

    python -m local.sagemaker_training --archive cifar-100-vehicles-dev.tar.gz --epochs 2 \\
        [--min-accuracy 0.9] [--root DIR] [--out model.tar.gz]

ROOT stands for /opt/ml (SAGEMAKER_BASE_DIR, the toolkit's own variable). Laid out as a
SageMaker training job's container sees it
(https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html):
- ROOT/input/config/hyperparameters.json: the TrainingJob's hyperparameters, every value a
  string, the sagemaker_* ones JSON-encoded as the SDK writes them (components/model_training.py);
- ROOT/input/config/inputdataconfig.json and resourceconfig.json (one host, algo-1);
- ROOT/input/data/{train,test}/: what the channels' S3 prefixes hold (dataset.npz, staged by
  training.stage as the DataStaging component uploads it);
- sagemaker_submit_directory: the source bundle (training.bundle), a local tarball here.
Then it runs the image's `train` command (sagemaker_training.cli.train) with
SAGEMAKER_TRAINING_MODULE=sagemaker_pytorch_container.training:main, as the PyTorch training DLC
sets it (aws/deep-learning-containers pytorch/training/docker/2.6/py3/Dockerfile.cpu). The job's
artifact, ROOT/model, is packed into model.tar.gz as SageMaker uploads it. Prints a JSON report:
exit status, the failure reason SageMaker would show (ROOT/output/failure), the artifact path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.model_training import training_hyperparameters
from training.bundle import ENTRY_POINT, build_source_bundle

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "algo-1"
CHANNELS = ("train", "test")
TRAINING_MODULE = "sagemaker_pytorch_container.training:main"


@dataclass
class JobResult:
    """What a finished job leaves: exit status, FailureReason text, artifact, log."""

    exit_code: int
    failure_reason: str | None
    model_dir: Path
    log: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "failure_reason": self.failure_reason,
            "model_dir": str(self.model_dir),
        }


def unavailable_reason() -> str | None:
    """Why script mode cannot run here, or None."""
    for module in ("sagemaker_training", "sagemaker_pytorch_container"):
        try:
            __import__(module)
        except ImportError:
            return f"python package {module!r} is missing (pip install -r requirements-dev.txt)"
    return None


def hyperparameters(
    source_bundle: Path, *, epochs: int, min_accuracy: float, classes: list[str], region: str
) -> dict[str, str]:
    """hyperparameters.json as the TrainingJob in components/model_training.py sets it."""
    return {
        **training_hyperparameters(
            epochs=epochs, seed=0, min_accuracy=min_accuracy, threshold=0.5, classes=classes
        ),
        "sagemaker_program": json.dumps(ENTRY_POINT),
        "sagemaker_submit_directory": json.dumps(str(source_bundle)),
        "sagemaker_region": json.dumps(region),
        "sagemaker_container_log_level": "20",
    }


def layout_job(
    root: Path,
    staged: Path,
    *,
    epochs: int,
    min_accuracy: float,
    classes: list[str],
    instance_type: str = "ml.m5.xlarge",
    region: str = "us-east-1",
) -> None:
    """Fill ROOT (= /opt/ml) as SageMaker does before it starts the training container."""
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    for channel in CHANNELS:
        target = root / "input" / "data" / channel
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        # Only dataset.npz travels to S3 (components/data_staging.py STAGED_FILES).
        shutil.copyfile(staged / channel / "dataset.npz", target / "dataset.npz")
    bundle = build_source_bundle(root / "source" / "sourcedir.tar.gz")
    hps = hyperparameters(
        bundle, epochs=epochs, min_accuracy=min_accuracy, classes=classes, region=region
    )
    (config / "hyperparameters.json").write_text(json.dumps(hps))
    (config / "inputdataconfig.json").write_text(
        json.dumps(
            {
                channel: {
                    "TrainingInputMode": "File",
                    "S3DistributionType": "FullyReplicated",
                    "RecordWrapperType": "None",
                }
                for channel in CHANNELS
            }
        )
    )
    (config / "resourceconfig.json").write_text(
        json.dumps(
            {
                "current_host": HOST,
                "current_instance_type": instance_type,
                "current_group_name": "homogeneousCluster",
                "hosts": [HOST],
                "instance_groups": [
                    {
                        "instance_group_name": "homogeneousCluster",
                        "instance_type": instance_type,
                        "hosts": [HOST],
                    }
                ],
                "network_interface_name": "eth0",
            }
        )
    )
    for name in ("model", "output"):
        path = root / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir()


def run_job(root: Path, timeout: float = 600.0) -> JobResult:
    """Run the training image's `train` command against ROOT; wait for it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SAGEMAKER_", "SM_", "PYTHONPATH"))
    }
    env.update(
        {
            "SAGEMAKER_BASE_DIR": str(root),
            "SAGEMAKER_TRAINING_MODULE": TRAINING_MODULE,
            "TRAINING_JOB_NAME": "scones-local-script-mode",
            # The one departure from the cloud: no DNS name algo-1 here, and both toolkits
            # retry resolving the hosts for 15 minutes; this, their own switch, skips only that.
            "SM_STUDIO_LOCAL_MODE": "true",
            "AWS_REGION": env.get("AWS_REGION", "us-east-1"),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # The job's code comes from the source bundle only: the repo is not on the path.
    result = subprocess.run(
        [sys.executable, "-c", "from sagemaker_training.cli.train import main; main()"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    failure = root / "output" / "failure"
    return JobResult(
        exit_code=result.returncode,
        failure_reason=failure.read_text() if failure.is_file() else None,
        model_dir=root / "model",
        log=(result.stdout + result.stderr)[-20000:],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.sagemaker_training", description=__doc__)
    parser.add_argument("--archive", required=True, type=Path, help="CIFAR-100 archive (dev)")
    parser.add_argument("--classes", default="bicycle,motorcycle")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--min-accuracy", type=float, default=0.0)
    parser.add_argument("--root", type=Path, help="stands for /opt/ml (default: a temp dir)")
    parser.add_argument("--out", type=Path, help="write the packed model.tar.gz here")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"sagemaker_training: cannot run script mode here: {reason}", file=sys.stderr)
        return 2
    from training.stage import stage_dataset
    from training.train import pack_model

    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    root = args.root or Path(tempfile.mkdtemp(prefix="scones-opt-ml-train-"))
    staged = root.parent / f"{root.name}-staged"
    stage_dataset(args.archive, staged, classes)
    layout_job(root, staged, epochs=args.epochs, min_accuracy=args.min_accuracy, classes=classes)
    result = run_job(root)
    report = result.as_dict()
    if result.exit_code == 0 and args.out:
        report["model_tar"] = str(pack_model(result.model_dir, args.out))
    if result.exit_code != 0:
        report["log_tail"] = result.log[-3000:]
    print(json.dumps(report, indent=2))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
