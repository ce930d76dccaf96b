"""The environment the SageMaker Model gives the PyTorch inference container: its one home.

components/model_endpoint.py sets `serving_environment(region)` on the Model; the serving-parity
harness (local/sagemaker_serving.py) starts the real stack with the same dict. What it decides:

- Code: `SAGEMAKER_PROGRAM=inference.py` in `/opt/ml/model/code` (the artifact's own copy of
  training/sagemaker_entry.py).
- Workers: the image's entrypoint overwrites SAGEMAKER_MODEL_SERVER_WORKERS with the vCPU count
  (aws/deep-learning-containers pytorch/inference/docker/build_artifacts/torchserve-entrypoint.py),
  and any SAGEMAKER_TS_* variable switches sagemaker-pytorch-inference to a per-model config whose
  min/max workers default to 1 (sagemaker_pytorch_serving_container/ts_environment.py). So none
  is set: one TorchServe worker per vCPU, TorchServe batching off (batch size 1).
- Threads: one torch intra-op thread per worker (SCONES_TORCH_THREADS, applied by model_fn;
  OMP_NUM_THREADS for the OpenMP pool torch starts at import). Workers x threads must not exceed
  the vCPUs: 2 workers x 2 threads on 2 vCPUs served ~12x fewer requests (docs/sagemaker-parity.md).
- Logging: TS_ASYNC_LOGGING=true. TorchServe writes ~10 log lines per request (access log,
  frontend and backend metrics) through log4j2, synchronously by default, on the cores the
  workers compute on; asynchronous logging (TorchServe's own SageMaker config,
  ts/configs/sagemaker_config.properties in torchserve 0.12.0, sets `async_logging=true`; the
  toolkit's default-ts.properties does not) served ~10 % more requests at 4 clients
  (docs/sagemaker-parity.md). The toolkit's properties set `enable_envvars_config=true`, so
  TorchServe reads TS_<property> variables (pytorch/serve docs/configuration.md, "environment
  variables"); TS_ASYNC_LOGGING is not one of the SAGEMAKER_TS_* worker overrides. Cost: the
  last log lines before a frontend crash can be lost.
"""

from __future__ import annotations

# vCPUs of the instance types the stack may serve on: the EC2 types' "Default vCPUs"
# (https://docs.aws.amazon.com/ec2/latest/instancetypes/gp.html for m5,
# https://docs.aws.amazon.com/ec2/latest/instancetypes/co.html for c5; the ml.* hosting type
# is the EC2 type of the same name). tests/infra/test_serving_capacity_guard.py fails for a
# configured endpoint instance type missing here.
INSTANCE_VCPUS: dict[str, int] = {
    "ml.m5.large": 2,
    "ml.m5.xlarge": 4,
    "ml.m5.2xlarge": 8,
    "ml.m5.4xlarge": 16,
    "ml.c5.large": 2,
    "ml.c5.xlarge": 4,
    "ml.c5.2xlarge": 8,
    "ml.c5.4xlarge": 16,
}
TORCH_THREADS_PER_WORKER = 1
THREADS_ENV = "SCONES_TORCH_THREADS"  # read by training.inference.configure_threads
# Variables whose presence changes the toolkit's worker count (ts_parameters.py).
TS_WORKER_OVERRIDES = (
    "SAGEMAKER_TS_BATCH_SIZE",
    "SAGEMAKER_TS_MAX_BATCH_DELAY",
    "SAGEMAKER_TS_MIN_WORKERS",
    "SAGEMAKER_TS_MAX_WORKERS",
    "SAGEMAKER_TS_RESPONSE_TIMEOUT",
)


def serving_environment(region: str) -> dict[str, str]:
    """The primary container's environment for the Model in `region`."""
    return {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_REGION": region,
        THREADS_ENV: str(TORCH_THREADS_PER_WORKER),
        "OMP_NUM_THREADS": str(TORCH_THREADS_PER_WORKER),
        "TS_ASYNC_LOGGING": "true",
    }


def workers_for(environment: dict[str, str], vcpus: int) -> int:
    """TorchServe workers the image runs with `environment` on `vcpus` (see module docstring)."""
    if any(name in environment for name in TS_WORKER_OVERRIDES):
        return int(environment.get("SAGEMAKER_TS_MAX_WORKERS", "1"))
    return vcpus


def threads_for(environment: dict[str, str]) -> int:
    """torch intra-op threads per worker with `environment` (torch's default is all cores)."""
    raw = environment.get(THREADS_ENV) or environment.get("OMP_NUM_THREADS")
    if raw is None:
        raise ValueError(f"{THREADS_ENV} is unset: each worker would use every core")
    return int(raw)
