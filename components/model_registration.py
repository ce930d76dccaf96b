"""ModelRegistration: waits for the training job, then registers its model in the package group.

pulumi-aws has no ModelPackage resource (only ModelPackageGroup), so this is a Pulumi dynamic
resource calling boto3 with the deployer's credentials. Its create step waits for the job (it
depends on the TrainingJob, whose provider already waited for Completed or Stopped) and raises
for a Stopped job, so `pulumi up` stops before the endpoint is touched and the live endpoint
keeps its model. (A Failed job already stopped `pulumi up` in the TrainingJob's create; the next
preview reports its FailureReason: components/model_training.py.) A completed job's artifact
URI is read from DescribeTrainingJob (not guessed), its metrics.json is copied next to
model.tar.gz and attached as the package's model quality statistics, and the package is
registered Approved.

Dynamic providers are pickled by reference: run `pulumi` from the repository root (where
Pulumi.yaml is) so the provider process can import `components.model_registration`.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pulumi.dynamic

TERMINAL = ("Completed", "Failed", "Stopped")


class TrainingJobFailed(RuntimeError):
    """The training job did not complete (for example the quality gate stopped it)."""


def check_job(job: Mapping[str, Any]) -> str:
    """The artifact URI of a completed job; TrainingJobFailed naming the reason otherwise."""
    status = job["TrainingJobStatus"]
    if status != "Completed":
        reason = job.get("FailureReason", "no reason given")
        raise TrainingJobFailed(
            f"training job {job['TrainingJobName']} {status}: {reason} "
            "(the endpoint keeps its current model)"
        )
    return job["ModelArtifacts"]["S3ModelArtifacts"]


def metrics_from_model_tar(data: bytes) -> dict[str, Any]:
    """metrics.json from a model.tar.gz (as SageMaker packs SM_MODEL_DIR)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.lstrip("./") == "metrics.json":
                handle = tar.extractfile(member)
                if handle is not None:
                    return json.loads(handle.read())
    raise ValueError("model.tar.gz has no metrics.json")


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def model_package_request(
    *,
    group_name: str,
    image_uri: str,
    model_data_url: str,
    metrics_uri: str,
    metrics: Mapping[str, Any],
    job_name: str,
) -> dict[str, Any]:
    """The CreateModelPackage request for one model that passed the quality gate."""
    test = metrics.get("test", {})
    return {
        "ModelPackageGroupName": group_name,
        "ModelPackageDescription": f"trained by {job_name}",
        "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {
            "Containers": [{"Image": image_uri, "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": ["image/png", "image/jpeg", "application/x-image"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}
            }
        },
        "CustomerMetadataProperties": {
            "TrainingJobName": job_name,
            "TestAccuracy": str(test.get("accuracy")),
            "MinAccuracy": str(metrics.get("min_accuracy")),
        },
    }


def packages_to_delete(own_arn: str, newest_first: list[str]) -> list[str]:
    """What deleting this registration removes from the group.

    A replaced registration (a newer model was registered first: Pulumi creates before it
    deletes) removes nothing, so the group keeps every model that ever passed as history. The
    newest one is only deleted when the stack is destroyed; it then empties the group, which
    AWS refuses to delete while it holds packages.
    """
    if newest_first and newest_first[0] != own_arn:
        return []
    return list(newest_first) or [own_arn]


def wait_for_job(
    describe: Callable[[], Mapping[str, Any]],
    *,
    poll_seconds: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Mapping[str, Any]:
    while True:
        job = describe()
        if job["TrainingJobStatus"] in TERMINAL:
            return job
        sleep(poll_seconds)


class _RegistrationProvider(pulumi.dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        import boto3  # only the deploying process needs it

        sagemaker = boto3.client("sagemaker", region_name=props["region"])
        s3 = boto3.client("s3", region_name=props["region"])
        job = wait_for_job(
            lambda: sagemaker.describe_training_job(TrainingJobName=props["job_name"])
        )
        model_data_url = check_job(job)
        bucket, key = split_s3_uri(model_data_url)
        metrics = metrics_from_model_tar(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        metrics_key = key.rsplit("/", 1)[0] + "/metrics.json"
        s3.put_object(
            Bucket=bucket,
            Key=metrics_key,
            Body=json.dumps(metrics, indent=2).encode(),
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=props["kms_key_arn"],
        )
        request = model_package_request(
            group_name=props["group_name"],
            image_uri=props["image_uri"],
            model_data_url=model_data_url,
            metrics_uri=f"s3://{bucket}/{metrics_key}",
            metrics=metrics,
            job_name=props["job_name"],
        )
        arn = sagemaker.create_model_package(**request)["ModelPackageArn"]
        outs = {
            **props,
            "model_package_arn": arn,
            "model_data_url": model_data_url,
            "test_accuracy": float(metrics.get("test", {}).get("accuracy", 0.0)),
        }
        return pulumi.dynamic.CreateResult(id_=arn, outs=outs)

    def diff(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.DiffResult:
        keys = ("job_name", "group_name", "image_uri", "region")
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        return pulumi.dynamic.DiffResult(
            changes=bool(changed), replaces=changed, delete_before_replace=False
        )

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        import boto3

        sagemaker = boto3.client("sagemaker", region_name=props["region"])
        pages = sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=props["group_name"],
            SortBy="CreationTime",
            SortOrder="Descending",
        )
        newest_first = [
            summary["ModelPackageArn"]
            for page in pages
            for summary in page["ModelPackageSummaryList"]
        ]
        for arn in packages_to_delete(_id, newest_first):
            sagemaker.delete_model_package(ModelPackageName=arn)


class ModelRegistration(pulumi.dynamic.Resource):
    model_package_arn: pulumi.Output[str]
    model_data_url: pulumi.Output[str]
    test_accuracy: pulumi.Output[float]

    def __init__(
        self,
        name: str,
        *,
        job_name: pulumi.Input[str],
        group_name: pulumi.Input[str],
        image_uri: str,
        region: str,
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            _RegistrationProvider(),
            name,
            {
                "job_name": job_name,
                "group_name": group_name,
                "image_uri": image_uri,
                "region": region,
                "kms_key_arn": kms_key_arn,
                "model_package_arn": None,
                "model_data_url": None,
                "test_accuracy": None,
            },
            opts,
        )
