"""benchmarks/serve_benchmark.py: its statistics, and one tiny end-to-end run so it cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.serve_benchmark import main, percentiles


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    samples = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    summary = percentiles(samples)
    assert summary["count"] == 100
    assert summary["p50_ms"] == 50.0
    assert summary["p90_ms"] == 90.0
    assert summary["p99_ms"] == 99.0
    assert summary["max_ms"] == 100.0
    assert summary["mean_ms"] == pytest.approx(50.5)


@pytest.mark.slow
def test_a_tiny_run_writes_the_result_file(tmp_path: Path) -> None:
    out = tmp_path / "serve.json"
    code = main(
        ["--requests", "20", "--warmup", "4", "--concurrency", "2", "--threads", "1",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["sequential"]["count"] == 20 and run["sequential"]["errors"] == 0
    assert run["concurrent"][0]["clients"] == 2 and run["concurrent"][0]["errors"] == 0
    assert run["captured_records"] == 24  # every request of the capture run, warm-up included
    assert run["server_exit_code"] == 0 and run["server_exit_code_with_capture"] == 0
    assert run["in_process"]["forward_batch1"]["count"] == 20
    assert result["model"].startswith("random weights")
    assert set(result["met"]) == {"torch_threads", "p50", "p99"}
