"""Local batch throughput: 1,000 images under one prefix through the batch workflow.

    .venv/bin/python -m benchmarks.batch_benchmark [--archive A] [--images 1000]
        [--concurrency 8,16,32] [--repeats 1] [--out benchmarks/results/batch.json]

Brings up its own local stack (`python -m local --state-dir TMP up`, the trained model from the
model cache; never a user's .scones/), copies the staged test images under `batch/bench/`
until there are ``--images`` objects (distinct keys, the same pixels repeated), and for each
MaxConcurrency deploys the local batch definition (to_inline_map of the cloud one) and runs
`local.batch.run_batch` over the prefix: wall time from the listing to the last summary,
images per second, and the summary's accounting (every listed object must have a route or a
named failure: ``lost`` counts those that do not). Target (reported, never asserted): >= 40
images/s with nothing lost. The machine's load average is recorded next to every figure: the
two cores are shared, and other work on them changes every number.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "batch.json"
TARGET_IMAGES_PER_S = 40.0
PREFIX = "batch/bench/"


def _local(state_dir: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "local", "--state-dir", str(state_dir), *args]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


def _process_cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stage_prefix(s3: Any, bucket: str, data_dir: Path, n: int) -> int:
    sources = sorted((data_dir / "test").glob("*.png"))
    bodies = [(p.name, p.read_bytes()) for p in sources]

    def put(i: int) -> None:
        name, body = bodies[i % len(bodies)]
        s3.put_object(Bucket=bucket, Key=f"{PREFIX}{i:05d}-{name}", Body=body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(n)))
    return len(sources)


def _deploy(state: dict[str, Any], sfn: Any, concurrency: int) -> str:
    from local.batch import local_definition

    definition = local_definition(
        state["function_arns"],
        summarize_function_arn=state["summarize_function_arn"],
        review_topic_arn=state["topics"]["scones-review"],
        review_queue_url=state["review_queue_url"],
        routes=state["routes"],  # what `local up` deployed
        bucket=state["bucket"],
        max_concurrency=concurrency,
    )
    role = sfn.describe_state_machine(stateMachineArn=state["batch_state_machine_arn"])["roleArn"]
    return sfn.create_state_machine(
        name=f"scones-batch-bench-c{concurrency}-{int(time.time())}",
        definition=json.dumps(definition),
        roleArn=role,
    )["stateMachineArn"]


def _one_run(state: dict[str, Any], sfn: Any, s3: Any, arn: str, expected: int) -> dict[str, Any]:
    from local.batch import run_batch

    moto_pid = int(state["processes"]["moto"]["pid"])
    endpoint_pid = int(state["processes"]["endpoint"]["pid"])
    load_before = os.getloadavg()
    cpu_before = (_process_cpu_s(moto_pid), _process_cpu_s(endpoint_pid))
    run = run_batch(sfn, s3, arn, state["bucket"], PREFIX, inline=True, timeout_s=900)
    cpu_after = (_process_cpu_s(moto_pid), _process_cpu_s(endpoint_pid))
    s = run.summary
    accounted = sum(s.get("routes", {}).values()) + sum(
        v for k, v in s.get("failures", {}).items() if k != "NotRun"
    )
    items = s.get("items", 0)

    def ms_per_image(i: int) -> float | None:
        a, b = cpu_before[i], cpu_after[i]
        return None if a is None or b is None or not items else round((b - a) * 1000 / items, 2)

    return {
        "status": run.status,
        "executions": len(run.execution_arns),
        "listed": run.listed,
        "items": items,
        "wall_s": round(run.wall_s, 3),
        "images_per_s": round(items / run.wall_s, 2) if run.wall_s > 0 else None,
        "routes": s.get("routes"),
        "failures": s.get("failures"),
        "lost": expected - accounted,
        "complete": s.get("complete"),
        "cpu_ms_per_image": {"moto_service": ms_per_image(0), "endpoint": ms_per_image(1)},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", default=os.environ.get("SCONES_CIFAR_ARCHIVE"))
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--concurrency", default="8,16,32")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    from local.deploy import aws_client

    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    state_dir = Path(tempfile.mkdtemp(prefix="scones-batch-bench-"))
    up_args = ["up"] + (["--archive", args.archive] if args.archive else [])
    t0 = time.perf_counter()
    _local(state_dir, *up_args)
    try:
        state = json.loads((state_dir / "state.json").read_text())
        sfn = aws_client("stepfunctions", state["moto_url"])
        s3 = aws_client("s3", state["moto_url"])
        sources = _stage_prefix(s3, state["bucket"], Path(state["data_dir"]), args.images)
        # Warm-up: one small batch through the deployed machine (imports, parse cache).
        from local.batch import run_batch

        warm = run_batch(sfn, s3, state["batch_state_machine_arn"], state["bucket"], "test/",
                         inline=True, timeout_s=300)
        runs: dict[str, list[dict[str, Any]]] = {}
        for concurrency in concurrencies:
            arn = _deploy(state, sfn, concurrency)
            runs[str(concurrency)] = [
                _one_run(state, sfn, s3, arn, args.images) for _ in range(args.repeats)
            ]
            print(f"MaxConcurrency {concurrency}: {runs[str(concurrency)]}", flush=True)
    finally:
        _local(state_dir, "down")
    best = max(
        (r for rs in runs.values() for r in rs), key=lambda r: r["images_per_s"] or 0.0
    )
    result = {
        "benchmark": "local batch workflow (inline-Map form, moto interpreter, in-process "
        "Lambda, local endpoint)",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.batch_benchmark " + " ".join(argv or sys.argv[1:]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "config": {
            "images": args.images,
            "distinct_source_images": sources,
            "prefix": PREFIX,
            "concurrency": concurrencies,
            "repeats": args.repeats,
            "threshold": state.get("threshold"),
            "up_s": round(time.perf_counter() - t0, 1),
        },
        "warm_up": {"items": warm.summary.get("items"), "wall_s": round(warm.wall_s, 2)},
        "target": {"images_per_s": TARGET_IMAGES_PER_S, "lost": 0},
        "runs": runs,
        "best": best,
        "target_met": bool(
            best["images_per_s"] and best["images_per_s"] >= TARGET_IMAGES_PER_S
            and all(r["lost"] == 0 for rs in runs.values() for r in rs)
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("best", "target_met")}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
