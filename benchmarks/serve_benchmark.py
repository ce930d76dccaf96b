"""Endpoint latency and throughput on loopback, beside the model's forward pass alone.

    .venv/bin/python -m benchmarks.serve_benchmark [--model DIR|model.tar.gz] [--requests 2000]
        [--concurrency 1,2,4,8] [--threads 1,2] [--out benchmarks/results/serve.json]

Starts `python -m local.endpoint_server` as a separate process (as local mode runs it), waits for
/ping, then sends one 32x32 PNG per request (POST /invocations, keep-alive connections):
- sequential, one client: p50 / p90 / p99 / max latency (targets: p50 <= 3 ms, p99 <= 10 ms),
  once without and once with data capture to a temporary directory;
- N concurrent clients (threads, one connection each): requests/s and latency percentiles.
In-process, with the same torch thread count: the forward pass alone (batch 1) and the three
serving hooks without HTTP. Without --model the artifact is built from the contract with
the training recipe's network (training.train.recipe_arch: mirror-image TTA, precision for
this CPU) and random weights (latency does not depend on the weights); the result file
says which was used. Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "serve.json"
TARGET_P50_MS = 3.0
TARGET_P99_MS = 10.0


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """Latency summary in milliseconds (nearest-rank percentiles)."""
    ordered = sorted(samples_s)
    count = len(ordered)

    def rank(p: float) -> float:
        return ordered[min(count - 1, max(0, int(np.ceil(p / 100 * count)) - 1))] * 1000

    return {
        "count": count,
        "p50_ms": round(rank(50), 3),
        "p90_ms": round(rank(90), 3),
        "p99_ms": round(rank(99), 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def sample_png(seed: int = 0) -> bytes:
    """A 32x32 RGB PNG, the size of the staged CIFAR images."""
    from PIL import Image

    rgb = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def build_random_artifact(model_dir: Path) -> Path:
    """model.pth + model_meta.json per the artifact contract, the recipe's arch, random weights."""
    import torch

    from training.model import build_model
    from training.train import recipe_arch

    arch = recipe_arch(2)
    torch.manual_seed(0)
    model = build_model(arch)
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / "model.pth")
    meta = {
        "arch": arch,
        "classes": ["bicycle", "motorcycle"],
        "input_size": [32, 32],
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "temperature": 1.0,
        "framework": "pytorch",
        "torch_version": torch.__version__,
    }
    (model_dir / "model_meta.json").write_text(json.dumps(meta))
    return model_dir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`python -m local.endpoint_server` in a child process, stopped with SIGTERM."""

    def __init__(self, model: str, threads: int, capture: str | None) -> None:
        self.port = _free_port()
        command = [
            sys.executable,
            "-m",
            "local.endpoint_server",
            "--model",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--threads",
            str(threads),
        ]
        if capture:
            command += ["--capture", capture]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"endpoint server exited: {self.process.stderr.read()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("endpoint server did not become ready")

    def stop(self) -> int:
        self.process.terminate()
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def _client(port: int, body: bytes, count: int, out: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "image/png", "Accept": "application/json"}
    for _ in range(count):
        start = time.perf_counter()
        conn.request("POST", "/invocations", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            errors.append(f"{response.status}: {payload[:200]!r}")
            continue
        out.append(elapsed)
    conn.close()


def run_load(port: int, body: bytes, clients: int, total: int, warmup: int) -> dict[str, Any]:
    """`clients` threads share `total` requests; latency percentiles and requests/s."""
    _client(port, body, warmup, [], [])
    per_client = max(1, total // clients)
    samples: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    threads = [
        threading.Thread(target=_client, args=(port, body, per_client, samples[i], errors))
        for i in range(clients)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    flat = [s for group in samples for s in group]
    result = {"clients": clients, **percentiles(flat), "wall_s": round(wall, 3)}
    result["requests_per_s"] = round(len(flat) / wall, 1)
    result["errors"] = len(errors)
    return result


def in_process(model_dir: str, body: bytes, threads: int, repeats: int) -> dict[str, Any]:
    """Forward pass alone and the three hooks without HTTP, same thread count as the server."""
    import torch

    from training import inference

    model = inference.model_fn(model_dir)
    before = torch.get_num_threads()
    inference.configure_threads(threads)
    x = torch.zeros(1, 3, *model.input_size).contiguous(memory_format=torch.channels_last)
    forward: list[float] = []
    hooks: list[float] = []
    with torch.inference_mode():
        for _ in range(50):
            model.module(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model.module(x)
            forward.append(time.perf_counter() - start)
    for _ in range(50):
        inference.output_fn(inference.predict_fn(inference.input_fn(body, "image/png"), model), "")
    for _ in range(repeats):
        start = time.perf_counter()
        data = inference.input_fn(body, "image/png")
        inference.output_fn(inference.predict_fn(data, model), "application/json")
        hooks.append(time.perf_counter() - start)
    result = {
        "torch_threads": torch.get_num_threads(),
        "forward_batch1": percentiles(forward),
        "hooks_without_http": percentiles(hooks),
    }
    torch.set_num_threads(before)
    return result


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_benchmark")
    parser.add_argument("--model", help="trained artifact (dir or model.tar.gz); default: random")
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", default="1,2,4,8", help="client counts for throughput")
    parser.add_argument("--threads", default="1,2", help="torch thread counts to compare")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    concurrency = [int(c) for c in args.concurrency.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    if args.model:
        model_path, model_source = args.model, f"trained artifact {args.model}"
    else:
        model_path = str(build_random_artifact(workdir / "model"))
        model_source = "random weights, the training recipe's arch (artifact contract)"
    from local.endpoint_server import prepare_model_dir

    model_dir, cleanup = prepare_model_dir(model_path)
    metrics_file = model_dir / "metrics.json"
    if args.model and metrics_file.is_file():
        # Say which trained model this was (its test accuracy), not just where it lay.
        accuracy = json.loads(metrics_file.read_text()).get("test", {}).get("accuracy")
        if accuracy is not None:
            model_source += f" (test accuracy {accuracy:.4f})"
    body = sample_png()
    load_before = os.getloadavg()
    runs = []
    for threads in thread_counts:
        run: dict[str, Any] = {"torch_threads": threads}
        server = ServerProcess(model_path, threads, capture=None)
        try:
            server.wait_ready()
            run["sequential"] = run_load(server.port, body, 1, args.requests, args.warmup)
            run["concurrent"] = [
                run_load(server.port, body, c, args.requests, args.warmup // 4) for c in concurrency
            ]
        finally:
            run["server_exit_code"] = server.stop()
        capture_dir = workdir / f"capture-{threads}"
        server = ServerProcess(model_path, threads, capture=str(capture_dir))
        try:
            server.wait_ready()
            run["sequential_with_capture"] = run_load(
                server.port, body, 1, args.requests, args.warmup
            )
        finally:
            run["server_exit_code_with_capture"] = server.stop()
        lines = sum(len(p.read_text().splitlines()) for p in capture_dir.rglob("*.jsonl"))
        run["captured_records"] = lines
        run["in_process"] = in_process(str(model_dir), body, threads, args.requests)
        runs.append(run)
    cleanup()
    for run in runs:
        run["targets_met"] = {
            "p50": run["sequential"]["p50_ms"] <= TARGET_P50_MS,
            "p99": run["sequential"]["p99_ms"] <= TARGET_P99_MS,
        }
    # The verdict is for the server's default configuration (1 torch thread, see
    # training.inference.configure_threads); other thread counts are there for comparison.
    default = next((r for r in runs if r["torch_threads"] == 1), runs[0])
    result = {
        "benchmark": "serve",
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": _git_commit(),
        "model": model_source,
        "request": f"POST /invocations, one {len(body)}-byte 32x32 PNG, keep-alive connection",
        "server": "python -m local.endpoint_server (separate process), loopback",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "note": "2 cores shared with other work; clients run on the same cores",
        },
        "targets": {"p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS},
        "met": {"torch_threads": default["torch_threads"], **default["targets_met"]},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
