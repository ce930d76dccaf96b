"""Retraining in the cloud: `python -m local retrain --stack NAME` snapshots labelled/ into a
SageMaker manifest, sets scones:labelledSnapshot and runs `pulumi up`; the program gives the
training job a labelled channel over that manifest, under a new job name, so the quality gate
(training exits non-zero below minAccuracy: the job fails, `pulumi up` stops before the
endpoint) and the registration / blue-green update apply to the retrained model as to any.

The Pulumi program runs under mocks (tests/infra/pulumi_support.py); the retrain command runs
against moto's S3 with a recorded stand-in for the Pulumi CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

from components.settings import Settings, SettingsError
from local.retrain import (
    EXIT_GATE_FAILED,
    SNAPSHOT_KEY,
    labelled_keys,
    labelled_manifest,
    manifest_key,
    retrain_cloud,
)

SNAPSHOT = "0123456789abcdef"


def _settings(**config: str) -> Settings:
    return Settings.from_mapping(lambda key: config.get(key))


def test_retrain_after_labels_is_a_validated_setting_with_one_default() -> None:
    assert _settings().retrain_after_labels == 200
    assert _settings(retrainAfterLabels="50").retrain_after_labels == 50
    for bad in ("0", "-3", "2.5", "many"):
        with pytest.raises(SettingsError, match="scones:retrainAfterLabels"):
            _settings(retrainAfterLabels=bad)
    assert _settings(labelledSnapshot=SNAPSHOT).labelled_snapshot == SNAPSHOT
    for bad in ("latest", "0123456789ABCDEF", "0123"):
        with pytest.raises(SettingsError, match="scones:labelledSnapshot"):
            _settings(labelledSnapshot=bad)


def test_a_bad_setting_stops_the_preview(run_stack) -> None:
    with pytest.raises(SettingsError, match="retrainAfterLabels"):
        run_stack("dev", {"scones:retrainAfterLabels": "0"})


@pytest.fixture(scope="module")
def retrained(run_stack):
    return run_stack("prod", {"scones:labelledSnapshot": SNAPSHOT})


def test_the_snapshot_adds_a_labelled_channel_under_a_new_job_name(prod, retrained) -> None:
    job = retrained.one("aws:sagemaker/trainingJob:TrainingJob")
    channels = {c["channelName"]: c["dataSource"]["s3DataSource"]
                for c in job.inputs["inputDataConfigs"]}
    bucket = retrained.outputs["bucket"]
    assert channels["labelled"] == {
        "s3DataType": "ManifestFile",
        "s3Uri": f"s3://{bucket}/manifests/labelled/{SNAPSHOT}.json",
        "s3DataDistributionType": "FullyReplicated",
    }
    # The test channel is the staged test split, as before: the evaluation set is unchanged.
    before = {c["channelName"]: c for c in
              prod.one("aws:sagemaker/trainingJob:TrainingJob").inputs["inputDataConfigs"]}
    assert set(before) == {"train", "test"}
    assert channels["test"] == before["test"]["dataSource"]["s3DataSource"]
    # A new labelled set is a new job (names are taken for good once used).
    assert retrained.outputs["trainingJobName"] != prod.outputs["trainingJobName"]
    assert retrained.outputs["labelledSnapshot"] == SNAPSHOT
    assert prod.outputs["labelledSnapshot"] == "" and prod.outputs["retrainAfterLabels"] == 200


def test_the_retrained_job_reads_the_labelled_set_and_gates_the_endpoint(retrained) -> None:
    bucket_arn = f"arn:aws:s3:::{retrained.outputs['bucket']}"
    role = retrained.named("training-role")
    (policy,) = [p for p in retrained.of_type("aws:iam/rolePolicy:RolePolicy")
                 if p.inputs["role"] == role.outputs["name"]]
    reads = [s for s in json.loads(policy.inputs["policy"])["Statement"]
             if s["Sid"] == "ReadLabelledChannel"]
    assert reads[0]["Resource"] == [
        f"{bucket_arn}/manifests/labelled/{SNAPSHOT}.json", f"{bucket_arn}/labelled/*"]
    # The endpoint serves the new job's artifact only through the registration (which waits
    # for the job: a failed gate stops `pulumi up` before the endpoint; test_lifecycle_*).
    job = retrained.outputs["trainingJobName"]
    model = retrained.one("aws:sagemaker/model:Model")
    assert model.inputs["primaryContainer"]["modelDataUrl"] == (
        f"s3://{retrained.outputs['bucket']}/models/{job}/output/model.tar.gz"
    )
    # ... and only once registered: modelDataUrl waits for the model package
    # (components/model_training.py; tests/infra/test_infra_registration.py).
    assert retrained.outputs["modelDataUrl"] == model.inputs["primaryContainer"]["modelDataUrl"]


class FakePulumi:
    """Records the Pulumi CLI calls; `up` succeeds or fails as told."""

    def __init__(self, up_ok: bool, outputs: dict) -> None:
        self.calls: list[list[str]] = []
        self.up_ok, self.outputs = up_ok, outputs

    def __call__(self, cmd, **kwargs) -> subprocess.CompletedProcess:
        self.calls.append(cmd)
        code, out = 0, ""
        if cmd[1] == "up" and not self.up_ok:
            code = 255
        elif cmd[1:3] == ["stack", "output"]:
            out = json.dumps(self.outputs)
        return subprocess.CompletedProcess(cmd, code, out, "" if code == 0 else "training failed")


BUCKET = "scones-prod-data"
JOB = "scones-prod-fedcba9876543210fedc"


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield client


def _label(s3, cls: str, name: str, body: bytes) -> str:
    key = f"labelled/{cls}/{name}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return key


def _png(seed: int) -> bytes:
    import io

    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _outputs(**extra) -> dict:
    return {"bucket": BUCKET, "retrainAfterLabels": 2, "labelledSnapshot": "", **extra}


def test_retrain_snapshots_labelled_and_deploys_through_pulumi(s3, capsys) -> None:
    keys = [_label(s3, "bicycle", "case-1-aaaa.png", _png(1)),
            _label(s3, "motorcycle", "case-2-bbbb.png", _png(2))]
    s3.put_object(Bucket=BUCKET, Key="labelled/README", Body=b"not a label")
    metrics = {"test": {"accuracy": 0.91},
               "data": {"staged": 800, "labelled_used": {"bicycle": 1, "motorcycle": 1}}}
    s3.put_object(Bucket=BUCKET, Key=f"models/{JOB}/output/metrics.json",
                  Body=json.dumps(metrics).encode())
    pulumi = FakePulumi(True, {"trainingJobName": JOB,
                               "modelDataUrl": f"s3://{BUCKET}/models/{JOB}/output/model.tar.gz"})
    assert retrain_cloud("prod", _outputs(), s3, runner=pulumi) == 0
    digest, body = labelled_manifest(BUCKET, keys)
    stored = s3.get_object(Bucket=BUCKET, Key=manifest_key(digest))["Body"].read()
    assert stored == body
    assert json.loads(stored) == [{"prefix": f"s3://{BUCKET}/labelled/"},
                                  "bicycle/case-1-aaaa.png", "motorcycle/case-2-bbbb.png"]
    assert pulumi.calls == [
        ["pulumi", "config", "set", SNAPSHOT_KEY, digest, "--stack", "prod"],
        ["pulumi", "up", "--yes", "--stack", "prod"],
        ["pulumi", "stack", "output", "--json", "--stack", "prod"],
    ]
    out = capsys.readouterr().out
    assert '"labelled_used": {"bicycle": 1, "motorcycle": 1}' in out and JOB in out
    assert "2 new since the last retrain" in out


def test_a_failed_gate_leaves_the_endpoint_and_restores_the_snapshot(s3, capsys) -> None:
    old = [_label(s3, "bicycle", "case-1-aaaa.png", _png(1))]
    current, body = labelled_manifest(BUCKET, old)
    s3.put_object(Bucket=BUCKET, Key=manifest_key(current), Body=body)
    _label(s3, "bicycle", "case-3-cccc.png", _png(3))
    _label(s3, "motorcycle", "case-4-dddd.png", _png(4))
    pulumi = FakePulumi(False, {})
    code = retrain_cloud("prod", _outputs(labelledSnapshot=current), s3, runner=pulumi)
    assert code == EXIT_GATE_FAILED
    assert pulumi.calls[-1] == ["pulumi", "config", "set", SNAPSHOT_KEY, current,
                                "--stack", "prod"]
    assert "the endpoint keeps its current model" in capsys.readouterr().out


def test_retrain_waits_for_enough_new_labels_unless_forced(s3, capsys) -> None:
    pulumi = FakePulumi(True, {})
    assert retrain_cloud("prod", _outputs(), s3, runner=pulumi) == 0
    assert pulumi.calls == [] and "nothing labelled" in capsys.readouterr().out
    keys = [_label(s3, "bicycle", "case-1-aaaa.png", _png(1))]
    assert retrain_cloud("prod", _outputs(), s3, runner=pulumi) == 0
    assert pulumi.calls == [] and "1 new since" in capsys.readouterr().out
    digest, body = labelled_manifest(BUCKET, keys)
    s3.put_object(Bucket=BUCKET, Key=manifest_key(digest), Body=body)
    assert retrain_cloud("prod", _outputs(labelledSnapshot=digest), s3, runner=pulumi,
                         force=True) == 0
    assert pulumi.calls == [] and "already trained on this labelled set" in (
        capsys.readouterr().out)
    assert retrain_cloud("prod", _outputs(), s3, runner=pulumi, force=True) == 0
    assert pulumi.calls[0][:4] == ["pulumi", "config", "set", SNAPSHOT_KEY]


def test_the_manifest_channel_is_what_training_reads(s3, tmp_path: Path) -> None:
    """The channel directory SageMaker fills from the manifest (each entry under its path
    relative to the prefix) is the <class>/<file> layout training.labelled merges, deduplicated
    by pixels and never adding a test image."""
    from training.cifar import Split
    from training.labelled import merge_labelled

    test_png = _png(9)
    keys = [_label(s3, "bicycle", "case-1-aaaa.png", _png(1)),
            _label(s3, "bicycle", "case-1b-aaaa.png", _png(1)),  # the same photo twice
            _label(s3, "motorcycle", "case-9-eeee.png", test_png)]  # a test image
    _, body = labelled_manifest(BUCKET, labelled_keys(s3, BUCKET))
    prefix, *entries = json.loads(body)
    channel = tmp_path / "labelled"
    for entry in entries:
        (channel / entry).parent.mkdir(parents=True, exist_ok=True)
        (channel / entry).write_bytes(
            s3.get_object(Bucket=BUCKET, Key=prefix["prefix"].split("/", 3)[3] + entry)[
                "Body"].read())
    assert sorted(entries) == sorted(k.removeprefix("labelled/") for k in keys)

    import io

    from PIL import Image

    def split(pngs: list[bytes]) -> Split:
        images = np.stack([np.asarray(Image.open(io.BytesIO(p)).convert("RGB")) for p in pngs])
        return Split(images=images, labels=np.zeros(len(pngs), dtype=np.int64),
                     filenames=[f"f{i}.png" for i in range(len(pngs))])

    train, test = split([_png(20)]), split([test_png])
    grown, counts = merge_labelled(train, test, ["bicycle", "motorcycle"], channel)
    assert len(grown) == 2 and len(test) == 1
    assert counts["labelled_used"] == {"bicycle": 1, "motorcycle": 0}
    assert counts["labelled_dropped"]["repeated"] == 1
    assert counts["labelled_dropped"]["in_test_split"] == 1


def test_the_review_timeout_is_a_setting_kept_inside_the_queue_retention(run_stack) -> None:
    """scones:reviewTimeoutSeconds sets AwaitReview's TimeoutSeconds (prod waits: STANDARD);
    at most 7 days, so an expired case still has a week on the queue (14-day retention) to be
    labelled; the queue-age alarm fires before the case expires."""
    assert _settings().review_timeout_seconds == 86400
    for bad in ("59", str(7 * 86400 + 1), "soon"):
        with pytest.raises(SettingsError, match="scones:reviewTimeoutSeconds"):
            _settings(reviewTimeoutSeconds=bad)
    run = run_stack("prod", {"scones:reviewTimeoutSeconds": "3600"})
    machine = run.named("workflow-state-machine")
    definition = json.loads(machine.inputs["definition"])
    assert definition["States"]["AwaitReview"]["TimeoutSeconds"] == 3600
    age = run.named("alarms-review-queue-age").inputs
    assert age["threshold"] == 1800


def test_the_cli_hands_the_stack_outputs_to_the_cloud_retrain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import local.retrain
    from local.cli import main

    outputs = {"bucket": BUCKET, "classes": ["bicycle", "motorcycle"],
               "reviewQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/q",
               "reviewDeadLetterQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/d"}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    seen: list = []
    monkeypatch.setattr(local.retrain, "retrain_cloud",
                        lambda stack, out, s3, force: seen.append((stack, out, force,
                                                                  s3.meta.region_name)) or 0)
    assert main(["retrain", "--stack", "prod", "--outputs", str(path), "--force"]) == 0
    assert seen == [("prod", outputs, True, "eu-west-1")]
    with pytest.raises(SystemExit, match="--stack"):
        main(["retrain", "--outputs", str(path)])
