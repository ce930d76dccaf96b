"""`python -m local up` deploys the batch workflow and `python -m local batch` runs it end to end
on the moto server: the staged test set, every object accounted for by route or named failure;
refused requests exit non-zero with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from local_cli_support import LocalCli

from lambdas.errors import NAMED_ERRORS
from lambdas.review_reasons import REVIEW_ERRORS


@pytest.mark.slow
def test_local_batch_end_to_end(dev_archive: Path, tmp_path: Path, repo_root: Path) -> None:
    cli = LocalCli(tmp_path, repo_root)
    state_dir, local = cli.state_dir, cli.local

    try:
        # A 2-epoch model is unsure of everything: at 0.93 all images would be LowConfidence and
        # the batch (correctly) over its failure tolerance; 0.5 routes most of them.
        up = local("up", "--archive", str(dev_archive), "--epochs", "2", "--threshold", "0.5")
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((state_dir / "state.json").read_text())
        assert state["batch_state_machine_arn"].endswith(":stateMachine:scones-batch")

        batch = local("batch", f"s3://{state['bucket']}/test/", "--json")
        assert batch.returncode == 0, batch.stdout + batch.stderr
        summary = json.loads(batch.stdout)
        staged = len(list((Path(state["data_dir"]) / "test").iterdir()))
        assert summary["items"] == summary["listed"] == staged
        # The safety gate sends a few images to review even at 0.5 (docs/safety.md).
        decided = summary["routes"], summary["reviews"], summary["failures"]
        assert sum(sum(d.values()) for d in decided) == staged
        assert set(summary["reviews"]) <= set(REVIEW_ERRORS)
        assert set(summary["routes"]) <= {"nearby", "distant"}
        assert set(summary["failures"]) <= set(NAMED_ERRORS)
        assert summary["complete"] is True and summary["unaccounted"] == []

        refused = local("batch", f"s3://{state['bucket']}/models/")
        assert refused.returncode == 1 and "InvalidEvent" in refused.stdout
        wrong_bucket = local("batch", "s3://someone-elses-bucket/test/")
        assert wrong_bucket.returncode == 2 and "not 'someone-elses-bucket'" in wrong_bucket.stderr
    finally:
        down = local("down")
        assert down.returncode == 0, down.stdout + down.stderr
