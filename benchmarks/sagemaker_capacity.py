"""Capacity of SageMaker's real serving stack beside the local server and the in-process bound.

    .venv/bin/python -m benchmarks.sagemaker_capacity [--model DIR|model.tar.gz] \\
        [--requests 3000] [--compare-before] [--rounds N] [--env NAME=VALUE] \\
        [--out benchmarks/results/sagemaker_capacity.json]

One run, same machine, same client (benchmarks.serve_benchmark's: keep-alive connections, one
32x32 PNG per request, POST /invocations), 1 and 4 concurrent clients, against:
- the real stack (local.sagemaker_serving: TorchServe + sagemaker-pytorch-inference, started as
  the image's entrypoint does, with the Model's environment, training.serving_environment);
- `python -m local.endpoint_server` (the same torch thread count);
- in-process, no HTTP: the three hooks on one thread (the bound a worker cannot beat);
- with --compare-before, also the real stack as it was before (the same artifact without
  model.ts, i.e. the eager network, and TorchServe's synchronous logging) and the bound on the
  eager network: before and after in one run, the real-stack runs interleaved --rounds times
  (the medians are reported, every round is kept).
The model is --model, else the cached default model of local mode with its code/ rewritten from
this checkout and, if it predates it, the frozen module model.ts added (training.serving_module):
the artifact the next training job would ship. Targets (issue 18): real stack
>= 400 req/s at 4 clients with p99 <= 20 ms, p50 <= 6 ms at 1 client. Reported, never asserted;
the result file records the machine's load average before and after, since the CPU is shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.serve_benchmark import ServerProcess, in_process, run_load, sample_png

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "sagemaker_capacity.json"
CACHE = Path.home() / ".cache" / "scones-unlimited" / "models"
# What --compare-before changes back in the Model's environment: TorchServe's default.
BEFORE_ENVIRONMENT = {"TS_ASYNC_LOGGING": "false"}
TARGETS = {"rps_4_clients": 400.0, "p99_ms_4_clients": 20.0, "p50_ms_1_client": 6.0}


def current_artifact(source: Path | None, work: Path) -> Path:
    """model.tar.gz of `source` (or the newest cached model) with code/ from this checkout."""
    from training.serving_module import SERVING_MODULE_FILE, freeze_artifact
    from training.train import pack_model, write_code_dir

    if source is None:
        candidates = sorted(CACHE.glob("*/model_meta.json"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise SystemExit(f"no cached model under {CACHE}: pass --model")
        source = candidates[-1].parent
    model_dir = work / "model"
    if source.is_dir():
        shutil.copytree(source, model_dir)
    else:
        import tarfile

        model_dir.mkdir()
        with tarfile.open(source) as archive:
            archive.extractall(model_dir, filter="data")
    write_code_dir(model_dir / "code")
    if not (model_dir / SERVING_MODULE_FILE).is_file():
        freeze_artifact(model_dir)  # what training.train now ships beside model.pth
    return pack_model(model_dir, work / "model.tar.gz")


def eager_artifact(model_dir: Path, work: Path) -> Path:
    """model.tar.gz of `model_dir` without model.ts: the eager network, as served before it."""
    from training.serving_module import SERVING_MODULE_FILE, SERVING_MODULE_KEY
    from training.train import pack_model

    eager_dir = work / "model-eager"
    shutil.copytree(model_dir, eager_dir)
    (eager_dir / SERVING_MODULE_FILE).unlink()
    meta_path = eager_dir / "model_meta.json"
    meta = json.loads(meta_path.read_text())
    meta.pop(SERVING_MODULE_KEY)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return pack_model(eager_dir, work / "model-eager.tar.gz")


def _load(port: int, body: bytes, requests: int) -> dict[str, Any]:
    return {
        "1_client": run_load(port, body, 1, requests // 2, 200),
        "4_clients": run_load(port, body, 4, requests, 200),
    }


def _median_rows(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per client count, the median of each figure over the rounds."""
    import statistics

    return {
        clients: {
            key: statistics.median(run[clients][key] for run in runs)
            for key in runs[0][clients]
        }
        for clients in runs[0]
    }


def _bound(model_dir: Path, body: bytes) -> dict[str, Any]:
    from training.serving_environment import TORCH_THREADS_PER_WORKER

    bound = in_process(str(model_dir), body, TORCH_THREADS_PER_WORKER, 1000)
    bound["requests_per_s_one_process"] = round(1000 / bound["hooks_without_http"]["mean_ms"], 1)
    return bound


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sagemaker_capacity")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE added to the Model's environment"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="real-stack measurements per configuration (median)"
    )
    parser.add_argument("--skip-local", action="store_true", help="measure the real stack only")
    parser.add_argument(
        "--compare-before",
        action="store_true",
        help="first measure the real stack as before issue 18 part 2 (eager network, no "
        "model.ts, synchronous logging) and the hooks on the eager network",
    )
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.env)
    from local import sagemaker_serving
    from training.serving_environment import TORCH_THREADS_PER_WORKER

    reason = sagemaker_serving.unavailable_reason()
    if reason:
        print(f"sagemaker_capacity: the real stack cannot run here: {reason}", file=sys.stderr)
        return 2
    body = sample_png()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="scones-capacity-") as tmp:
        tarball = current_artifact(args.model, Path(tmp))
        results: dict[str, Any] = {}
        eager = eager_artifact(Path(tmp) / "model", Path(tmp)) if args.compare_before else None
        rounds: dict[str, list[dict[str, Any]]] = {"real_stack_before": [], "real_stack": []}
        for index in range(args.rounds):  # interleaved, so a change in the machine's load
            if eager is not None:  # hits before and after alike
                before_env = {**BEFORE_ENVIRONMENT, **extra_env}
                root = Path(tmp) / f"opt-ml-before-{index}"
                with sagemaker_serving.ServingStack(eager, root, before_env) as stack:
                    stack.wait_ready(body)
                    rounds["real_stack_before"].append(_load(stack.port, body, args.requests))
            root = Path(tmp) / f"opt-ml-{index}"
            with sagemaker_serving.ServingStack(tarball, root, extra_env) as stack:
                stack.wait_ready(body)
                rounds["real_stack"].append(_load(stack.port, body, args.requests))
        for name, runs in rounds.items():
            if runs:
                results[name] = _median_rows(runs)
                results[f"{name}_rounds"] = runs
        if eager is not None:
            results["in_process_eager"] = _bound(Path(tmp) / "model-eager", body)
        if not args.skip_local:
            server = ServerProcess(str(tarball), TORCH_THREADS_PER_WORKER, None)
            try:
                server.wait_ready()
                results["local_server"] = _load(server.port, body, args.requests)
            finally:
                server.stop()
        bound = results["in_process"] = _bound(Path(tmp) / "model", body)
        meta = json.loads((Path(tmp) / "model" / "model_meta.json").read_text())
    real = results["real_stack"]
    met = {
        "rps_4_clients": real["4_clients"]["requests_per_s"] >= TARGETS["rps_4_clients"],
        "p99_ms_4_clients": real["4_clients"]["p99_ms"] <= TARGETS["p99_ms_4_clients"],
        "p50_ms_1_client": real["1_client"]["p50_ms"] <= TARGETS["p50_ms_1_client"],
    }
    report = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "model": {"arch": meta["arch"], "source": str(args.model or "cached default model")},
        "extra_environment": extra_env,
        "torch_threads_per_worker": TORCH_THREADS_PER_WORKER,
        "targets": TARGETS,
        "targets_met": met,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"targets_met": met, "load": report["machine"]}, indent=2))
    for name in ("real_stack_before", "real_stack", "local_server"):
        for clients, row in results.get(name, {}).items():
            print(
                f"{name:13s} {clients:10s} {row['requests_per_s']:7.1f} req/s  "
                f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  errors {row['errors']}"
            )
    if "in_process_eager" in results:
        eager_bound = results["in_process_eager"]
        print(f"in-process eager hooks p50 {eager_bound['hooks_without_http']['p50_ms']} ms, "
              f"forward p50 {eager_bound['forward_batch1']['p50_ms']} ms")
    print(f"in-process    forward p50 {bound['forward_batch1']['p50_ms']} ms")
    print(f"in-process    hooks p50 {bound['hooks_without_http']['p50_ms']} ms, "
          f"{bound['requests_per_s_one_process']} req/s per process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
