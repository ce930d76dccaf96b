"""ModelRegistration's provider (the quality gate's stop point) against moto's SageMaker and S3."""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest
from moto import mock_aws

from components.data_staging import staged_data_hash
from components.images import ecr_repository_arn
from components.model_registration import (
    TrainingJobFailed,
    _RegistrationProvider,
    check_job,
    metrics_from_model_tar,
    model_package_request,
    packages_to_delete,
    split_s3_uri,
    wait_for_job,
)

REGION = "eu-west-1"
METRICS = {"test": {"accuracy": 0.91}, "min_accuracy": 0.85}


def model_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch):
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(var, value)
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                "AWS_ENDPOINT_URL_SAGEMAKER"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        yield


def test_completed_job_is_registered_with_its_metrics(aws_env) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    kms_key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    s3.create_bucket(
        Bucket="scones-bucket", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    s3.put_object(
        Bucket="scones-bucket",
        Key="models/job-1/output/model.tar.gz",
        Body=model_tar({"model.pth": b"w", "metrics.json": json.dumps(METRICS).encode()}),
    )
    sagemaker.create_training_job(
        TrainingJobName="job-1",
        AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/r",
        OutputDataConfig={"S3OutputPath": "s3://scones-bucket/models"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    )
    sagemaker.create_model_package_group(ModelPackageGroupName="group")
    result = _RegistrationProvider().create(
        {"job_name": "job-1", "group_name": "group", "image_uri": "inference-image",
         "region": REGION, "kms_key_arn": kms_key}
    )
    assert result.outs["model_data_url"] == "s3://scones-bucket/models/job-1/output/model.tar.gz"
    assert result.outs["test_accuracy"] == 0.91
    package = sagemaker.describe_model_package(ModelPackageName=result.id)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["CustomerMetadataProperties"]["TestAccuracy"] == "0.91"
    stats_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert stats_uri == "s3://scones-bucket/models/job-1/output/metrics.json"
    copied = s3.get_object(Bucket="scones-bucket", Key="models/job-1/output/metrics.json")
    assert json.loads(copied["Body"].read()) == METRICS


def test_failed_job_stops_the_deploy_naming_the_reason() -> None:
    job = {
        "TrainingJobName": "job-2",
        "TrainingJobStatus": "Failed",
        "FailureReason": "AlgorithmError: test accuracy 0.7100 is below the floor 0.8500",
    }
    with pytest.raises(TrainingJobFailed, match=r"job-2 Failed: .*0\.7100.*0\.8500"):
        check_job(job)


def test_wait_for_job_polls_until_terminal() -> None:
    states = iter(["InProgress", "InProgress", "Completed"])
    slept: list[float] = []
    job = wait_for_job(lambda: {"TrainingJobStatus": next(states)}, poll_seconds=5,
                       sleep=slept.append)
    assert job["TrainingJobStatus"] == "Completed" and slept == [5, 5]


def test_metrics_read_from_the_artifact() -> None:
    data = model_tar({"./metrics.json": json.dumps(METRICS).encode()})
    assert metrics_from_model_tar(data) == METRICS
    with pytest.raises(ValueError, match=r"no metrics\.json"):
        metrics_from_model_tar(model_tar({"model.pth": b""}))


def test_request_and_uri_helpers() -> None:
    request = model_package_request(group_name="g", image_uri="i", model_data_url="s3://b/m",
                                    metrics_uri="s3://b/x.json", metrics=METRICS, job_name="j")
    assert request["ModelApprovalStatus"] == "Approved"
    assert request["InferenceSpecification"]["Containers"] == [
        {"Image": "i", "ModelDataUrl": "s3://b/m"}
    ]
    assert split_s3_uri("s3://bucket/a/b.tar.gz") == ("bucket", "a/b.tar.gz")
    with pytest.raises(ValueError):
        split_s3_uri("https://bucket/a")
    assert ecr_repository_arn(
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
    ) == "arn:aws:ecr:eu-west-1:763104351884:repository/pytorch-inference"


def test_data_hash_follows_the_uploaded_bytes(tmp_path) -> None:
    for rel in ("manifest.json", "train/dataset.npz", "test/dataset.npz"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    first = staged_data_hash(tmp_path)
    assert staged_data_hash(tmp_path) == first
    (tmp_path / "test/dataset.npz").write_bytes(b"changed")
    assert staged_data_hash(tmp_path) != first


def test_replaced_models_stay_in_the_registry_until_destroy() -> None:
    # Replacement: the new package exists before the old registration is deleted.
    assert packages_to_delete("arn/1", ["arn/2", "arn/1"]) == []
    # Destroy: the newest registration empties the group so the group can be deleted.
    assert packages_to_delete("arn/2", ["arn/2", "arn/1"]) == ["arn/2", "arn/1"]
    assert packages_to_delete("arn/1", []) == ["arn/1"]
