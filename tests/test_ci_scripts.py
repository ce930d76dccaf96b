"""The scripts the GitHub workflows run: post-deploy smoke test (against moto), the dataset
archive provider, and the destroy summary."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import boto3
import pytest
from moto import mock_aws

SCRIPTS = Path(__file__).resolve().parent.parent / ".github" / "scripts"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sfn-role"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"ci_{name}", SCRIPTS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


smoke = _load("smoke_test")
fetch = _load("fetch_cifar_archive")
destroy = _load("destroy_summary")

SUCCEED = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
LOW_CONFIDENCE = {
    "StartAt": "Filter",
    "States": {
        "Filter": {"Type": "Fail", "Error": "LowConfidence", "Cause": "confidence 0.61 < 0.93"}
    },
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SFN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        s3.create_bucket(Bucket="stack-bucket")
        yield s3, sfn


def _machine(sfn, definition: dict, name: str = "workflow", kind: str = "STANDARD") -> str:
    return sfn.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=ROLE, type=kind
    )["stateMachineArn"]


def _png(tmp_path: Path, name: str = "bicycle_s_000513.png") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    return path


def _no_sleep(_: float) -> None:
    return None


def test_standard_success_starts_one_execution_with_the_design_event(aws, tmp_path) -> None:
    s3, sfn = aws
    arn = _machine(sfn, SUCCEED)
    folder = tmp_path / "test"
    folder.mkdir()
    _png(folder, "motorcycle_s_000001.png")
    _png(folder, "bicycle_s_000002.png")
    (folder / "dataset.npz").write_bytes(b"not an image")

    key, result = smoke.run_smoke_test(
        s3, sfn, bucket="stack-bucket", state_machine_arn=arn, image=folder,
        trigger_wait_s=0, poll_s=0.05, sleep=_no_sleep, run_id="42",
    )

    assert result.succeeded and result.status == "SUCCEEDED"
    assert key.startswith("intake/smoke-tests/smoke-42-") and key.endswith(".png")
    # The first image by name was uploaded, bytes intact, and left for the workflow to read.
    body = s3.get_object(Bucket="stack-bucket", Key=key)["Body"].read()
    assert body == (folder / "bicycle_s_000002.png").read_bytes()
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    sent = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert sent == {"s3_bucket": "stack-bucket", "s3_key": key, "driver_id": "smoke-test"}


def test_failed_execution_fails_the_smoke_test_with_its_error(aws, tmp_path, capsys) -> None:
    s3, sfn = aws
    arn = _machine(sfn, LOW_CONFIDENCE)
    s3.put_object(Bucket="stack-bucket", Key="intake/bike.png", Body=b"x")

    rc = smoke.main([
        "--bucket", "stack-bucket", "--state-machine-arn", arn,
        "--key", "intake/bike.png", "--poll", "0.05",
    ])

    assert rc == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "LowConfidence" in err and "0.61" in err


def test_main_succeeds_and_writes_the_job_summary(aws, tmp_path, monkeypatch) -> None:
    _, sfn = aws
    arn = _machine(sfn, SUCCEED)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_RUN_ID", "777")

    rc = smoke.main([
        "--bucket", "stack-bucket", "--state-machine-arn", arn,
        "--image", str(_png(tmp_path)), "--trigger-wait", "0", "--poll", "0.05",
    ])

    assert rc == 0
    text = summary.read_text()
    assert "SUCCEEDED" in text and "s3://stack-bucket/intake/smoke-tests/smoke-777-" in text


def test_follows_the_execution_the_upload_triggered(aws, tmp_path) -> None:
    s3, sfn = aws
    arn = _machine(sfn, SUCCEED)
    # An unrelated execution must not be mistaken for ours.
    sfn.start_execution(
        stateMachineArn=arn, name="other",
        input=json.dumps({"s3_bucket": "stack-bucket", "s3_key": "intake/other.png"}),
    )
    triggered: list[str] = []
    real_upload = smoke.upload_image

    def upload_then_trigger(s3c, bucket, path, name, prefix):
        # Stands in for the stack's EventBridge rule reacting to the new object.
        key = real_upload(s3c, bucket, path, name, prefix)
        event = {"s3_bucket": bucket, "s3_key": key}
        triggered.append(sfn.start_execution(
            stateMachineArn=arn, name="from-eventbridge", input=json.dumps(event)
        )["executionArn"])
        return key

    smoke_upload = smoke.upload_image
    smoke.upload_image = upload_then_trigger
    try:
        _, result = smoke.run_smoke_test(
            s3, sfn, bucket="stack-bucket", state_machine_arn=arn, image=_png(tmp_path),
            trigger_wait_s=1, poll_s=0.05, sleep=_no_sleep,
        )
    finally:
        smoke.upload_image = smoke_upload

    assert result.execution_arn == triggered[0] and result.succeeded
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 2  # no third one


def test_picks_the_first_staged_image_under_a_prefix(aws) -> None:
    s3, sfn = aws
    arn = _machine(sfn, SUCCEED)
    for key in ("intake/b.png", "intake/a.jpg", "intake/a.txt", "other/0.png"):
        s3.put_object(Bucket="stack-bucket", Key=key, Body=b"x")
    key, result = smoke.run_smoke_test(
        s3, sfn, bucket="stack-bucket", state_machine_arn=arn, prefix="intake/",
        poll_s=0.05, sleep=_no_sleep,
    )
    assert key == "intake/a.jpg" and result.succeeded


def test_no_image_and_missing_key_are_named_errors(aws) -> None:
    s3, sfn = aws
    arn = _machine(sfn, SUCCEED)
    with pytest.raises(smoke.NoTestImage, match="intake/"):
        smoke.run_smoke_test(s3, sfn, bucket="stack-bucket", state_machine_arn=arn,
                             prefix="intake/")
    with pytest.raises(smoke.NoTestImage, match=r"gone\.png"):
        smoke.run_smoke_test(s3, sfn, bucket="stack-bucket", state_machine_arn=arn,
                             key="intake/gone.png")
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []


def test_empty_stack_outputs_are_rejected() -> None:
    with pytest.raises(SystemExit) as exc:
        smoke.parse_args(["--bucket", "", "--state-machine-arn", "arn:x"])
    assert exc.value.code == 2


class _StuckSfn:
    """A state machine whose execution never finishes (moto's always do)."""

    def describe_state_machine(self, stateMachineArn):
        return {"type": "STANDARD"}

    def start_execution(self, **kwargs):
        return {"executionArn": "arn:exec:stuck"}

    def describe_execution(self, executionArn):
        return {"status": "RUNNING"}


def test_gives_up_after_the_timeout() -> None:
    ticks = iter(range(0, 10_000, 5))
    with pytest.raises(smoke.ExecutionTimedOut, match="RUNNING after 30 s"):
        smoke.run_standard(
            _StuckSfn(), "arn:sm", "n", {}, timeout_s=30, poll_s=5,
            sleep=_no_sleep, clock=lambda: float(next(ticks)),
        )


class _ExpressSfn:
    def __init__(self, status: str) -> None:
        self.status = status
        self.calls: list[dict] = []

    def describe_state_machine(self, stateMachineArn):
        return {"type": "EXPRESS"}

    def start_sync_execution(self, **kwargs):
        self.calls.append(kwargs)
        return {"executionArn": "arn:exec:express", "status": self.status,
                "error": "EndpointError" if self.status == "FAILED" else None}


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED"])
def test_express_machines_run_synchronously(aws, status) -> None:
    s3, _ = aws
    s3.put_object(Bucket="stack-bucket", Key="intake/x.png", Body=b"x")
    sfn = _ExpressSfn(status)
    _, result = smoke.run_smoke_test(
        s3, sfn, bucket="stack-bucket", state_machine_arn="arn:sm", key="intake/x.png"
    )
    assert result.succeeded == (status == "SUCCEEDED")
    (call,) = sfn.calls
    assert json.loads(call["input"])["s3_key"] == "intake/x.png"


def test_execution_names_are_valid_and_unique() -> None:
    names = {smoke.execution_name("run/1 2") for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert len(name) <= 80 and all(c.isalnum() or c in "-_" for c in name)


def test_input_matching() -> None:
    assert smoke.input_names_key('{"s3_bucket": "b", "s3_key": "k"}', "b", "k")
    assert smoke.input_names_key('{"s3_key": "k"}', "b", "k")
    assert not smoke.input_names_key('{"s3_bucket": "other", "s3_key": "k"}', "b", "k")
    assert not smoke.input_names_key("not json", "b", "k")
    assert not smoke.input_names_key('["k"]', "b", "k")


# --- fetch_cifar_archive.py ------------------------------------------------------------------


def test_archive_from_env_path(tmp_path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"data")
    assert fetch.resolve({"SCONES_CIFAR_ARCHIVE": str(archive)}, tmp_path / "c") == archive
    with pytest.raises(fetch.ArchiveFetchError, match="is not a file"):
        fetch.resolve({"SCONES_CIFAR_ARCHIVE": str(tmp_path / "nope")}, tmp_path / "c")


def test_archive_download_is_hash_checked_and_cached(tmp_path) -> None:
    source = tmp_path / "src" / "cifar-100-vehicles-dev.tar.gz"
    source.parent.mkdir()
    source.write_bytes(b"archive bytes")
    sha = hashlib.sha256(b"archive bytes").hexdigest()
    env = {"SCONES_CIFAR_ARCHIVE_URL": source.as_uri(), "SCONES_CIFAR_ARCHIVE_SHA256": sha}
    cache = tmp_path / "cache"

    got = fetch.resolve(env, cache, dev_subset=True)
    assert got == (cache / source.name).resolve() and got.read_bytes() == b"archive bytes"
    source.unlink()  # a second run uses the cached copy
    assert fetch.resolve(env, cache, dev_subset=True) == got
    assert [p.name for p in cache.iterdir()] == [source.name]  # no partial files left


def test_archive_with_wrong_hash_is_rejected_and_not_kept(tmp_path) -> None:
    source = tmp_path / "dev.tar.gz"
    source.write_bytes(b"tampered")
    cache = tmp_path / "cache"
    env = {"SCONES_CIFAR_ARCHIVE_URL": source.as_uri(), "SCONES_CIFAR_ARCHIVE_SHA256": "0" * 64}
    with pytest.raises(fetch.ArchiveFetchError, match="SHA-256"):
        fetch.resolve(env, cache, dev_subset=True)
    assert list(cache.iterdir()) == []
    with pytest.raises(fetch.ArchiveFetchError, match="SCONES_CIFAR_ARCHIVE_SHA256 is not"):
        fetch.resolve({"SCONES_CIFAR_ARCHIVE_URL": source.as_uri()}, cache, dev_subset=True)
    with pytest.raises(fetch.ArchiveFetchError, match="64 hex"):
        fetch.resolve(
            {"SCONES_CIFAR_ARCHIVE_URL": source.as_uri(), "SCONES_CIFAR_ARCHIVE_SHA256": "abc"},
            cache, dev_subset=True,
        )


NAMES = ["apple", "bicycle", "cloud", "motorcycle"]


def _official_like(path: Path, train_labels: list[int], test_labels: list[int]) -> Path:
    """A small archive in the official layout (protocol-2 pickles, all label names)."""
    import io
    import pickle
    import tarfile

    import numpy as np

    def batch(labels: list[int], tag: str) -> dict:
        n = len(labels)
        return {
            b"filenames": [
                f"{tag}_{i:03d}_{NAMES[lab]}.png".encode() for i, lab in enumerate(labels)
            ],
            b"batch_label": tag.encode(),
            b"fine_labels": labels,
            b"coarse_labels": [lab * 10 for lab in labels],
            b"data": (np.arange(n * 3072) % 251).astype(np.uint8).reshape(n, 3072),
        }

    meta = {b"fine_label_names": [n.encode() for n in NAMES], b"coarse_label_names": [b"x"]}
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in (("train", batch(train_labels, "tr")), ("test", batch(test_labels, "te")),
                          ("meta", meta)):
            data = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_derived_dev_archive_keeps_the_first_images_of_each_class(tmp_path) -> None:
    from training.cifar import load_cifar
    from training.errors import EmptyClass

    official = _official_like(
        tmp_path / "official.tar.gz",
        train_labels=[1, 0, 3, 1, 2, 1, 3, 3, 1, 0, 3],
        test_labels=[3, 0, 1, 2, 1],
    )
    out = fetch.derive_dev_archive(official, tmp_path / "out" / "dev.tar.gz", train_per_class=2)
    subset = load_cifar(out, ["bicycle", "motorcycle"])
    full = load_cifar(official, ["bicycle", "motorcycle"])

    # bicycle rows 0, 3 and motorcycle rows 2, 6 of the train batch, in archive order
    assert subset.train.filenames == [
        "tr_000_bicycle.png", "tr_002_motorcycle.png", "tr_003_bicycle.png",
        "tr_006_motorcycle.png",
    ]
    keep = [full.train.filenames.index(f) for f in subset.train.filenames]
    assert (subset.train.images == full.train.images[keep]).all()
    assert subset.test.filenames == full.test.filenames  # every test image of the classes
    assert (subset.test.images == full.test.images).all()
    # All label names stay, so a valid name without images is still "valid but empty".
    with pytest.raises(EmptyClass):
        load_cifar(out, ["bicycle", "apple"])
    # Deterministic bytes: the cache key and the staged manifest's MD5 stay stable.
    again = fetch.derive_dev_archive(official, tmp_path / "again.tar.gz", train_per_class=2)
    assert again.read_bytes() == out.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["dev.tar.gz"]


def test_deriving_from_the_dev_archive_reproduces_it(tmp_path, dev_archive) -> None:
    # The dev archive is itself in the official layout with 400 + 100 per class, so deriving
    # from it must give back the same images, labels and names.
    from training.cifar import load_cifar

    out = fetch.derive_dev_archive(dev_archive, tmp_path / "derived.tar.gz")
    a = load_cifar(dev_archive, ["bicycle", "motorcycle"])
    b = load_cifar(out, ["bicycle", "motorcycle"])
    for split in ("train", "test"):
        x, y = getattr(a, split), getattr(b, split)
        assert x.filenames == y.filenames and (x.labels == y.labels).all()
        assert (x.images == y.images).all()
    assert (len(b.train), len(b.test)) == (800, 200)


def test_dev_subset_falls_back_to_deriving_from_the_official_archive(
    tmp_path, monkeypatch
) -> None:
    import training.cifar

    official = _official_like(tmp_path / "cifar-100-python.tar.gz", [1, 3, 1], [3, 1])
    calls = []
    monkeypatch.setattr(
        training.cifar, "resolve_archive", lambda a, c: calls.append((a, c)) or official
    )
    cache = tmp_path / "cache"

    got = fetch.resolve({}, cache, dev_subset=True)
    assert got == (cache / fetch.DERIVED_NAME).resolve()
    first = got.read_bytes()
    assert fetch.resolve({}, cache, dev_subset=True).read_bytes() == first
    # Without --dev-subset the official archive itself is the training data; a URL is ignored.
    env = {"SCONES_CIFAR_ARCHIVE_URL": "file:///nowhere", "SCONES_CIFAR_ARCHIVE_SHA256": "0" * 64}
    assert fetch.resolve(env, cache) == official.resolve()
    assert calls == [(None, cache)] * 3


def test_loader_errors_become_fetch_errors(tmp_path, monkeypatch) -> None:
    import training.cifar
    from training.errors import DownloadUnavailable

    def offline(archive, cache_dir):
        raise DownloadUnavailable("no network")

    monkeypatch.setattr(training.cifar, "resolve_archive", offline)
    # CI exports SCONES_CIFAR_ARCHIVE; main() must go to the (offline) download here.
    monkeypatch.delenv("SCONES_CIFAR_ARCHIVE", raising=False)
    with pytest.raises(fetch.ArchiveFetchError, match="DownloadUnavailable: no network"):
        fetch.resolve({}, tmp_path)
    assert fetch.main(["--cache-dir", str(tmp_path), "--github-env", str(tmp_path / "e")]) == 1


# --- destroy_summary.py ----------------------------------------------------------------------


def _export(path: Path, resources: list[dict]) -> Path:
    path.write_text(json.dumps({"version": 3, "deployment": {"resources": resources}}))
    return path


def _res(name: str, rtype: str, **extra) -> dict:
    return {"urn": f"urn:pulumi:dev::scones::{rtype}::{name}", "type": rtype,
            "id": f"{name}-id", **extra}


def test_destroy_summary_splits_deleted_retained_and_left(tmp_path, monkeypatch) -> None:
    stack = _res("dev", "pulumi:pulumi:Stack")
    provider = _res("default", "pulumi:providers:aws")
    fn = _res("classify", "aws:lambda/function:Function")
    bucket = _res("data", "aws:s3/bucket:Bucket", retainOnDelete=True)
    endpoint = _res("endpoint", "aws:sagemaker/endpoint:Endpoint", protect=True)
    before = _export(tmp_path / "before.json", [stack, provider, fn, bucket, endpoint])
    after = _export(tmp_path / "after.json", [stack, endpoint])
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    assert destroy.main(["--stack", "dev", "--before", str(before), "--after", str(after),
                         "--outcome", "failure"]) == 0

    text = summary.read_text()
    assert "1 deleted, 1 kept in AWS (retainOnDelete), 1 still in the stack." in text
    deleted = text.split("### Deleted")[1].split("###")[0]
    assert "`classify`" in deleted and "`data`" not in deleted
    assert "`data-id`" in text.split("kept in AWS (retainOnDelete)\n")[1].split("###")[0]
    assert "`endpoint`" in text.split("Still in the stack")[1]
    assert "pulumi:providers" not in text and "pulumi:pulumi:Stack" not in text


def test_destroy_summary_of_a_missing_or_empty_stack(tmp_path) -> None:
    text = destroy.summarize(
        "prod", destroy.load_resources(tmp_path / "none.json"), {}, "skipped"
    )
    assert "0 deleted" in text and "held no resources" in text
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(SystemExit, match="not a pulumi stack export"):
        destroy.load_resources(bad)


# --- choosing a confident image with the deployed model -----------------------------------------


def test_most_confident_index_prefers_correct_and_sure() -> None:
    import numpy as np

    probs = np.array([[0.99, 0.01], [0.6, 0.4], [0.02, 0.98], [0.97, 0.03]])
    labels = np.array([1, 0, 1, 0])  # row 0 is sure but wrong
    assert smoke.most_confident_index(probs, labels) == 2
    assert smoke.most_confident_index(probs, np.array([0, 1, 1, 1])) == 0
    assert smoke.most_confident_index(np.array([[0.9, 0.1]]), np.array([1])) is None


def _staged_split(folder: Path, filenames: list[str], labels: list[int]) -> None:
    import numpy as np

    folder.mkdir(parents=True)
    np.savez(
        folder / "dataset.npz",
        images=np.zeros((len(filenames), 32, 32, 3), np.uint8),
        labels=np.array(labels, np.int64),
        filenames=np.array(filenames),
        classes=np.array(["bicycle", "motorcycle"]),
    )
    for name in filenames:
        _png(folder, name)


def test_main_sends_the_image_the_deployed_model_is_surest_about(
    aws, tmp_path, monkeypatch
) -> None:
    import numpy as np

    import training.evaluate

    s3, sfn = aws
    arn = _machine(sfn, SUCCEED)
    test_dir = tmp_path / "test"
    _staged_split(test_dir, ["a_bike.png", "b_moto.png", "c_bike.png"], [0, 1, 0])
    (test_dir / "c_bike.png").write_bytes(b"\x89PNG the chosen one")
    s3.put_object(Bucket="stack-bucket", Key="models/job/output/model.tar.gz", Body=b"tar")
    seen_models: list[bytes] = []

    def fake_predict(model_path: Path, images):
        seen_models.append(Path(model_path).read_bytes())
        assert images.shape == (3, 32, 32, 3)
        return np.array([[0.7, 0.3], [0.2, 0.8], [0.995, 0.005]]), None

    monkeypatch.setattr(training.evaluate, "predict_probabilities", fake_predict)
    rc = smoke.main([
        "--bucket", "stack-bucket", "--state-machine-arn", arn, "--image", str(test_dir),
        "--model-data-url", "s3://stack-bucket/models/job/output/model.tar.gz",
        "--trigger-wait", "0", "--poll", "0.05",
    ])

    assert rc == 0 and seen_models == [b"tar"]
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    key = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])[
        "s3_key"
    ]
    assert s3.get_object(Bucket="stack-bucket", Key=key)["Body"].read() == b"\x89PNG the chosen one"


def test_missing_model_is_a_named_failure(aws, tmp_path, capsys) -> None:
    _, sfn = aws
    arn = _machine(sfn, SUCCEED)
    test_dir = tmp_path / "test"
    _staged_split(test_dir, ["a.png"], [0])
    rc = smoke.main([
        "--bucket", "stack-bucket", "--state-machine-arn", arn, "--image", str(test_dir),
        "--model-data-url", "s3://stack-bucket/models/none/model.tar.gz",
    ])
    assert rc == 1 and "cannot download s3://stack-bucket/models/none" in capsys.readouterr().err
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []
    with pytest.raises(smoke.SmokeTestError, match="s3://bucket/key"):
        smoke.download_model(None, "stack-bucket/model.tar.gz", tmp_path)


def test_chosen_image_gets_the_same_answer_from_the_serving_hooks(tmp_path) -> None:
    """The choice runs the real serving code on a real (tiny, untrained) artifact; the PNG it
    picks, sent as request bytes through input_fn/predict_fn, gets the confidence reported."""
    import numpy as np
    from PIL import Image
    from serving_support import make_artifact, random_rgb

    from training.inference import input_fn, model_fn, predict_fn

    model_dir = make_artifact(tmp_path / "model")
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    images = np.stack([random_rgb(seed=i) for i in range(12)])
    names = [f"img_{i:02d}.png" for i in range(12)]
    for name, rgb in zip(names, images, strict=True):
        Image.fromarray(rgb).save(test_dir / name)
    model = model_fn(str(model_dir))
    predicted = predict_fn(images, model).argmax(axis=1)
    np.savez(
        test_dir / "dataset.npz", images=images, labels=predicted.astype(np.int64),
        filenames=np.array(names), classes=np.array(["bicycle", "motorcycle"]),
    )

    image, confidence = smoke.choose_confident_image(test_dir, model_dir)

    served = predict_fn(input_fn(image.read_bytes(), "image/png"), model)
    assert float(np.max(served)) == pytest.approx(confidence, abs=1e-5)
    all_conf = predict_fn(images, model).max(axis=1)
    assert confidence == pytest.approx(float(all_conf.max()), abs=1e-5)


def test_unreadable_model_or_split_is_a_smoke_test_error(tmp_path) -> None:
    test_dir = tmp_path / "test"
    _staged_split(test_dir, ["a.png"], [0])
    bad_model = tmp_path / "model.tar.gz"
    bad_model.write_bytes(b"not a tarball")
    with pytest.raises(smoke.SmokeTestError, match="ArtifactError"):
        smoke.choose_confident_image(test_dir, bad_model)
    with pytest.raises(smoke.SmokeTestError, match="StagedDataError"):
        smoke.choose_confident_image(tmp_path, bad_model)  # no dataset.npz there
