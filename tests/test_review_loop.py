"""The review loop end to end in local mode: `up --threshold 0.999` sends every image to review,
`review list --json` shows the cases, `review answer` and the review page (in a real headless
Chromium) route the drivers through the same route step and store the labelled images, and an
unanswered case ends in ReviewExpired and can still be labelled."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from browser_support import Browser, chromium_path
from local_cli_support import LocalCli

REVIEW_TIMEOUT_S = 60


def _client(service: str, url: str):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _final_state(sfn, arn: str) -> str:
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    details = [e["stateEnteredEventDetails"] for e in events if "stateEnteredEventDetails" in e]
    return details[-1]["name"]


def _wait_done(sfn, arn: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            return desc
        assert time.monotonic() < deadline, f"{arn} still RUNNING"
        time.sleep(0.5)


def _routing_events(sqs, queue: str) -> list[dict]:
    """Routing events published since the last call (each is consumed: deleted once read)."""
    out = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    messages = out.get("Messages", [])
    for m in messages:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


class LocalStack(LocalCli):
    def start(self) -> None:
        self.state = json.loads((self.state_dir / "state.json").read_text())
        self.sfn = _client("stepfunctions", self.state["moto_url"])
        self.sqs = _client("sqs", self.state["moto_url"])
        self.s3 = _client("s3", self.state["moto_url"])
        self.routing = self.state["observer_queues"]["scones-routing"]

    def cases(self) -> dict[str, dict]:
        listed = self.local("review", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        return {c["execution_arn"]: c for c in json.loads(listed.stdout)}


@pytest.fixture(scope="module")
def stack(dev_archive: Path, tmp_path_factory: pytest.TempPathFactory, repo_root: Path):
    """`up --threshold 0.999` (every image goes to review), then `run` with three events."""
    stack = LocalStack(tmp_path_factory.mktemp("review-loop"), repo_root)
    try:
        up = stack.local(
            "up",
            "--archive",
            str(dev_archive),
            "--epochs",
            "2",
            "--threshold",
            "0.999",
            "--review-timeout",
            str(REVIEW_TIMEOUT_S),
        )
        assert up.returncode == 0, up.stdout + up.stderr
        stack.start()
        run = stack.local("run", "--events", "3", "--concurrency", "3", "--seed", "2")
        assert run.returncode == 0, run.stdout + run.stderr
        report = json.loads(next((stack.state_dir / "runs").glob("run-*.json")).read_text())
        assert [r["outcome"] for r in report["results"]] == ["needs_review"] * 3
        stack.run_arns = [r["execution_arn"] for r in report["results"]]
        assert _routing_events(stack.sqs, stack.routing) == []  # nobody routed automatically
        yield stack
    finally:
        down = stack.local("down")
        assert down.returncode == 0, down.stderr


@pytest.mark.slow
def test_review_list_and_answer_route_the_driver_and_store_the_label(stack: LocalStack) -> None:
    cases = stack.cases()
    assert set(stack.run_arns) <= set(cases)
    first = cases[stack.run_arns[0]]
    assert first["image"].startswith(f"s3://{stack.state['bucket']}/test/")
    assert set(first["probabilities"]) == {"bicycle", "motorcycle"}
    # The reason the workflow gave the case (ReviewReason), the filter's message as detail.
    assert first["reason"] == "low_confidence" and "below the threshold" in first["detail"]
    assert first["age_seconds"] >= 0

    refused = stack.local("review", "answer", first["case_id"], "tricycle")
    assert refused.returncode == 1 and "UnknownLabel" in refused.stderr

    answered = stack.local("review", "answer", first["case_id"], "bicycle")
    assert answered.returncode == 0, answered.stdout + answered.stderr
    desc = _wait_done(stack.sfn, stack.run_arns[0], 30)
    assert desc["status"] == "SUCCEEDED"
    assert _final_state(stack.sfn, stack.run_arns[0]) == "Routed_nearby"
    (event,) = _routing_events(stack.sqs, stack.routing)
    assert event["label"] == "bicycle" and event["route"] == "nearby"
    assert event["decided_by"] == "person" and event["reviewer"] and event["decided_at"]
    bucket = stack.state["bucket"]
    (obj,) = stack.s3.list_objects_v2(Bucket=bucket, Prefix="labelled/bicycle/")["Contents"]
    meta = stack.s3.head_object(Bucket=bucket, Key=obj["Key"])["Metadata"]
    assert meta["case-id"] == first["case_id"] and meta["reviewer"] == event["reviewer"]
    assert meta["model-version"] == Path(stack.state["model_dir"]).name
    assert meta["source"] == first["image"]
    assert first["case_id"] not in {c["case_id"] for c in stack.cases().values()}
    # One label so far, of scones:retrainAfterLabels' default (the same default as the cloud).
    from components.settings import Settings

    n = Settings.from_mapping(lambda _key: None).retrain_after_labels
    listed = stack.local("review", "list")
    assert f"labels since the last retrain: 1 of {n}" in listed.stdout, listed.stdout


@pytest.mark.slow
def test_the_review_page_answers_a_case_in_headless_chromium(
    stack: LocalStack, tmp_path: Path
) -> None:
    if chromium_path() is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    cases = stack.cases()
    by_id = {c["case_id"]: arn for arn, c in cases.items()}
    serve = subprocess.Popen(
        stack.command("review", "serve"),
        cwd=stack.repo_root,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = serve.stdout.readline() if serve.stdout else ""
        assert "http://127.0.0.1:" in line, line
        browser = Browser(tmp_path / "chromium")
        try:
            browser.open(line.split()[2])
            shown = browser.wait_for(
                "[...document.querySelectorAll('.case')].map(e => e.dataset.caseId)"
            )
            assert set(shown) == set(by_id)
            # The image came from the data bucket through the page (a 32x32 CIFAR picture).
            assert browser.wait_for("document.querySelector('.case img').naturalWidth") == 32
            labels = browser.wait_for("document.getElementById('labels').textContent")
            assert labels.startswith("Labels since the last retrain: "), labels
            shot = os.environ.get("SCONES_REVIEW_SCREENSHOT")
            if shot:  # docs/review-page.png
                browser.screenshot(Path(shot))
            browser.press("2")  # "motorcycle", for the highlighted (oldest) case
            status = browser.wait_for("document.getElementById('status').textContent")
            assert status.startswith(shown[0]) and "routed" in status, status
        finally:
            browser.close()
    finally:
        serve.terminate()
        serve.wait(timeout=10)
    arn = by_id[shown[0]]
    _wait_done(stack.sfn, arn, 30)
    assert _final_state(stack.sfn, arn) == "Routed_distant"
    (event,) = _routing_events(stack.sqs, stack.routing)
    assert event["label"] == "motorcycle" and event["decided_by"] == "person"


@pytest.mark.slow
def test_an_unanswered_case_expires_and_can_still_be_labelled(stack: LocalStack) -> None:
    last = stack.cases()[stack.run_arns[2]]
    desc = _wait_done(stack.sfn, stack.run_arns[2], REVIEW_TIMEOUT_S + 30)
    assert (desc["status"], desc["error"]) == ("FAILED", "ReviewExpired")
    assert _final_state(stack.sfn, stack.run_arns[2]) == "ReviewExpired"
    late = stack.local("review", "answer", last["case_id"], "motorcycle")
    assert late.returncode == 2 and "expired" in late.stdout, late.stdout + late.stderr
    assert "labelled/motorcycle/" in late.stdout
    assert _routing_events(stack.sqs, stack.routing) == []


@pytest.mark.slow
def test_retrain_uses_the_labelled_images_and_keeps_the_model_only_past_the_gate(
    stack: LocalStack,
) -> None:
    """After the answers above (all of test images, so dropped: the evaluation set stays
    unseen), one photo a person labelled that no split holds; retrain trains on it."""
    import io

    import numpy as np
    from PIL import Image

    bucket = stack.state["bucket"]
    test_key = sorted(
        o["Key"] for o in stack.s3.list_objects_v2(Bucket=bucket, Prefix="test/")["Contents"]
    )[0]
    pixels = np.asarray(
        Image.open(io.BytesIO(stack.s3.get_object(Bucket=bucket, Key=test_key)["Body"].read()))
    )
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels[:, ::-1])).save(buf, format="PNG")
    stack.s3.put_object(Bucket=bucket, Key="labelled/bicycle/intake-photo.png", Body=buf.getvalue())

    kept = stack.local("retrain", "--epochs", "2", "--min-accuracy", "0")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    (line,) = [x for x in kept.stdout.splitlines() if x.startswith("data:")]
    data = json.loads(line.removeprefix("data:"))
    assert data["labelled_used"]["bicycle"] == 1
    assert data["labelled_dropped"]["in_test_split"] >= 2  # the answered cases' test images
    assert "quality gate passed" in kept.stdout
    listed = stack.local("review", "list")
    assert "labels since the last retrain: 0 of" in listed.stdout, listed.stdout

    refused = stack.local("retrain", "--epochs", "2", "--min-accuracy", "0.999")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "new model discarded" in refused.stdout
