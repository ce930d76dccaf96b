"""Local mode: the run summary, event mix, monitor dispatch, and `up`/`run`/`down` end to end
on the dev archive with a short training run and the real local endpoint."""

from __future__ import annotations

import json
import os
import sys
import time
import types
from pathlib import Path

import pytest
from local_cli_support import LocalCli

from local.processes import is_alive
from local.runner import Result, bad_event_catalogue, make_events, percentile, summarize


def _r(outcome: str, true: str | None, pred: str | None, ms: float, expected=None) -> Result:
    return Result("img", true, pred, 0.9 if pred else None, outcome, "X", ms, expected)


def test_summary_counts_accuracy_and_latency() -> None:
    results = [
        _r("routed:nearby", "bicycle", "bicycle", 10),
        _r("routed:distant", "bicycle", "motorcycle", 20),
        _r("needs_review", "motorcycle", "motorcycle", 30),
        _r("InvalidImage", None, None, 40, expected="InvalidImage"),
        _r("ImageNotFound", None, None, 50, expected="InvalidEvent"),
    ]
    s = summarize(results, wall_s=2.0)
    assert s["accuracy_routed"] == 0.5
    assert s["accuracy_all_predictions"] == pytest.approx(2 / 3)
    assert s["outcomes"] == {
        "ImageNotFound": 1,
        "InvalidImage": 1,
        "needs_review": 1,
        "routed:distant": 1,
        "routed:nearby": 1,
    }
    assert s["bad_events_in_expected_state"] == 1 and len(s["unexpected"]) == 1
    assert s["latency_ms"]["p50"] == 30 and s["throughput_per_s"] == 2.5
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([], 50) is None


def test_event_mix_is_seeded_and_bad_events_name_their_state() -> None:
    items = [(f"test/{i}.png", "bicycle" if i % 2 else "motorcycle") for i in range(50)]
    a = make_events(items, "b", 20, 12, seed=3)
    assert a == make_events(items, "b", 20, 12, seed=3)
    assert len(a) == 32 and sum(s.expected_error is not None for s in a) == 12
    assert {s.expected_error for s in bad_event_catalogue("b")} == {
        "InvalidEvent",
        "ImageNotFound",
        "InvalidImage",
        "ImageTooLarge",
    }


def test_monitor_subcommand_dispatches_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    from local import cli

    seen: list[list[str]] = []
    fake = types.ModuleType("local.monitor")
    fake.main = lambda argv: seen.append(list(argv)) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "local.monitor", fake)
    monkeypatch.setenv("SCONES_STATE_DIR", "before")  # restored after the test
    assert cli.main(["--state-dir", "x", "monitor", "--window", "1h"]) == 0
    assert seen == [["--window", "1h"]]
    assert os.environ["SCONES_STATE_DIR"] == "x"


@pytest.mark.slow
def test_up_run_down_end_to_end(dev_archive: Path, tmp_path: Path, repo_root: Path) -> None:
    cli = LocalCli(tmp_path, repo_root)
    state_dir, local = cli.state_dir, cli.local

    pids: list[int] = []
    try:
        up = local("up", "--archive", str(dev_archive), "--epochs", "2")
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((state_dir / "state.json").read_text())
        pids = [p["pid"] for p in state["processes"].values()]
        assert state["status"] == "up" and all(is_alive(p) for p in pids)
        assert state["moto_url"].startswith("http://127.0.0.1:")
        assert state["endpoint_url"].startswith("http://127.0.0.1:")

        again = local("up", "--archive", str(dev_archive), "--epochs", "2")
        assert again.returncode == 0 and "already up" in again.stdout

        run = local(
            "run", "--events", "12", "--bad-events", "10", "--concurrency", "4", "--seed", "1"
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "accuracy" in run.stdout and "throughput" in run.stdout
        report = json.loads(next((state_dir / "runs").glob("run-*.json")).read_text())
        results, summary = report["results"], report["summary"]
        assert len(results) == 22 and summary["bad_events_in_expected_state"] == 10
        good = [r for r in results if r["expected_error"] is None]
        # Every good event got a real prediction from the trained model on the local endpoint.
        assert all(r["predicted"] in ("bicycle", "motorcycle") for r in good)
        assert all(
            r["outcome"] in ("needs_review", "routed:nearby", "routed:distant") for r in good
        )
        assert all(r["latency_ms"] > 0 for r in results)

        # The endpoint captured the requests into the local S3 (flushed on its timer).
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=state["moto_url"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        deadline = time.monotonic() + 30
        captured = 0
        while time.monotonic() < deadline and captured < len(good):
            listing = s3.list_objects_v2(Bucket=state["bucket"], Prefix="capture/")
            keys = [o["Key"] for o in listing.get("Contents", [])]
            captured = sum(
                len(s3.get_object(Bucket=state["bucket"], Key=k)["Body"].read().splitlines())
                for k in keys
            )
            time.sleep(1)
        assert captured >= len(good)
    finally:
        down = local("down")
    assert down.returncode == 0, down.stderr
    assert not state_dir.exists()
    assert not any(is_alive(p) for p in pids)  # no orphan servers
