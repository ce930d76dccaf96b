"""Safe mode end to end in local mode, as a user runs it: `up --threshold 0` (the model routes
every image), shifted (night-time) traffic through the endpoint, `local monitor` finds drift and
switches safe mode on, the next executions all wait for a person with reason safe_mode, one
`local safe-mode clear` and the executions are routed on the model again."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from local_cli_support import LocalCli

from lambdas.safe_mode.flag import CACHE_SECONDS


def _client(service: str, url: str):
    return boto3.client(
        service, endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def _await_review_input(sfn, arn: str) -> dict:
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    (entered,) = [
        e["stateEnteredEventDetails"] for e in events
        if e.get("stateEnteredEventDetails", {}).get("name") == "AwaitReview"
    ]
    return json.loads(entered["input"])


def _last_run(state_dir: Path) -> list[dict]:
    newest = max((state_dir / "runs").glob("run-*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text())["results"]


@pytest.mark.slow
def test_drift_switches_safe_mode_on_and_one_command_clears_it(
    dev_archive: Path, tmp_path: Path, repo_root: Path
) -> None:
    cli = LocalCli(tmp_path, repo_root)
    try:
        up = cli.local("up", "--archive", str(dev_archive), "--epochs", "2", "--threshold", "0")
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((cli.state_dir / "state.json").read_text())
        sfn = _client("stepfunctions", state["moto_url"])

        off = cli.local("safe-mode", "status")
        assert off.returncode == 0 and "safe mode: off" in off.stdout, off.stdout + off.stderr
        # Clean traffic from `up`'s smoke run routes (threshold 0: nothing is low-confidence).
        routed = cli.local("run", "--events", "2", "--seed", "3")
        assert routed.returncode == 0, routed.stdout + routed.stderr
        assert {r["outcome"].split(":")[0] for r in _last_run(cli.state_dir)} == {"routed"}

        # Night-time photos: the input statistics move far past the InputPSI alarm.
        traffic = subprocess.run(
            [sys.executable, "-m", "local.traffic", "--images", f"{state['data_dir']}/test",
             "--scenario", "dark", "--count", "150", "--url", state["endpoint_url"]],
            cwd=repo_root, env=cli.env, capture_output=True, text=True, timeout=600,
        )
        assert traffic.returncode == 0, traffic.stdout + traffic.stderr
        # The endpoint flushes capture every 5 s; report-only runs until the window shows it.
        deadline = time.monotonic() + 60
        while True:
            probe = cli.local("monitor", "--json", "--no-report", "--no-safe-mode")
            assert probe.returncode == 0, probe.stderr
            report = json.loads(probe.stdout)
            assert "safe_mode" not in report  # --no-safe-mode only reports
            if report["drift"]:
                break
            assert time.monotonic() < deadline, report["reasons"]
            time.sleep(2)

        monitor = cli.local("monitor", "--no-report")
        assert monitor.returncode == 0, monitor.stdout + monitor.stderr
        assert "WOULD FIRE" in monitor.stdout
        assert "safe mode: ON" in monitor.stdout and "safe-mode clear" in monitor.stdout
        status = cli.local("safe-mode", "status", "--json")
        flag = json.loads(status.stdout)["safe_mode"]
        assert flag["on"] is True and flag["changed_by"] == "local monitor"
        assert "drift alarms would fire" in flag["reason"]

        # Every request now waits for a person, with the reason safe_mode, probabilities kept.
        time.sleep(CACHE_SECONDS + 1)  # the filter step caches the flag for up to 5 s
        held = cli.local("run", "--events", "3", "--seed", "4")
        assert held.returncode == 0, held.stdout + held.stderr
        results = _last_run(cli.state_dir)
        assert [r["outcome"] for r in results] == ["needs_review"] * 3
        for result in results:
            case = _await_review_input(sfn, result["execution_arn"])
            assert case["reason"] == "safe_mode" and case["error"]["Error"] == "SafeMode"
            assert len(case["inferences"]) == 2
            assert result["predicted"] in ("bicycle", "motorcycle")  # the model's view shown
        listed = cli.local("review", "list", "--json")
        # The case's reason, and the filter's message as its detail (review/cases.py).
        listed_cases = json.loads(listed.stdout)
        reasons = {c["execution_arn"]: (c["reason"], c["detail"]) for c in listed_cases}
        assert all(reasons[r["execution_arn"]][0] == "safe_mode" for r in results)
        assert all(reasons[r["execution_arn"]][1].startswith("safe_mode:") for r in results)

        cleared = cli.local("safe-mode", "clear", "--by", "ops@example.com")
        assert cleared.returncode == 0, cleared.stdout + cleared.stderr
        assert "safe mode: off" in cleared.stdout and "ops@example.com" in cleared.stdout
        again = cli.local("safe-mode", "clear")
        assert "unchanged" in again.stdout

        time.sleep(CACHE_SECONDS + 1)
        back = cli.local("run", "--events", "3", "--seed", "5")
        assert back.returncode == 0, back.stdout + back.stderr
        assert {r["outcome"].split(":")[0] for r in _last_run(cli.state_dir)} == {"routed"}
    finally:
        down = cli.local("down")
        assert down.returncode == 0, down.stderr
