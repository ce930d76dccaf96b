"""ModelTraining: a SageMaker training job running training/train.py on the PyTorch image.

The job's name is a hash of data, code, image and hyperparameters (plus the attempt number from
``scones:trainingAttempt`` after the first), so `pulumi up` starts a new job only when one of
them changes (a TrainingJob cannot be updated in place; a new name means a new job).

What a failed job does. The quality gate is in the script: below `min-accuracy` it exits
non-zero and the job fails. The provider's create waits for the job (InProgress -> Completed or
Stopped; terraform-provider-aws internal/service/sagemaker/training_job.go,
waitTrainingJobCreated) and on Failed returns "unexpected state 'Failed'" without SageMaker's
FailureReason and without writing state, so `pulumi up` stops there (before the endpoint; the
live endpoint keeps its model) and the job's name stays taken: SageMaker keeps failed jobs and
names are unique per account and Region. The next preview therefore describes the job that
would be created (``describe_job``): a Failed or Stopped job with that name stops the preview
with ``TrainingJobNameTaken``, which carries the FailureReason (the script's message naming the
accuracy and the floor) and says how to retry. A Stopped job (also the provider's target state:
it is in the state) never yields a model either, so it is refused the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.bucket_layout import LABELLED_MANIFESTS_PREFIX, LABELLED_PREFIX
from components.context import StackContext
from components.data_staging import CODE_PREFIX, MODELS_PREFIX
from components.iam import assume_role_policy, statement
from components.images import image_pull_statements
from components.model_registration import ModelRegistration
from components.roles import role_with_policy

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRAINING_VOLUME_GB = 30
# A margin beyond MaxRuntimeInSeconds for the phases around training (instance provisioning,
# image download, model upload), whose length SageMaker does not bound; chosen, not measured.
TRAINING_OVERHEAD_SECONDS = 3600


def training_create_timeout_minutes(max_runtime_seconds: int) -> int:
    """How long `pulumi up` waits for the job: its runtime limit plus the unmetered phases."""
    return -(-(max_runtime_seconds + TRAINING_OVERHEAD_SECONDS) // 60)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def training_hyperparameters(
    *,
    epochs: int,
    seed: int,
    min_accuracy: float,
    threshold: float,
    classes: Sequence[str],
) -> dict[str, str]:
    """The script's own arguments (--epochs ... --classes a,b), as SageMaker passes them."""
    return {
        "epochs": str(epochs),
        "seed": str(seed),
        "min-accuracy": repr(float(min_accuracy)),
        "threshold": repr(float(threshold)),
        "classes": ",".join(classes),
    }


def training_job_name(
    stack: str,
    *,
    data_hash: str,
    code_hash: str,
    image_uri: str,
    hyperparameters: Mapping,
    resources: Mapping | None = None,
    attempt: int = 1,
    labelled_snapshot: str | None = None,
) -> str:
    """scones-<stack>-<20 hex digits>[-r<attempt>]: at most 63 characters (SageMaker's limit).

    Every TrainingJob input that forces a replacement and comes from config is in the hash
    (in training_job.go every argument is RequiresReplace): data, code, image, hyperparameters
    and `resources` (instance type, volume, runtime limit), so a replacement always has a new
    name and never collides with the job it replaces.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be at least 1, got {attempt}")
    parts = {"data": data_hash, "code": code_hash, "image": image_uri, "hp": dict(hyperparameters)}
    if resources:
        parts["resources"] = dict(resources)
    if labelled_snapshot:  # the reviewers' labelled set is training data too
        parts["labelled"] = labelled_snapshot
    identity = json.dumps(parts, sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
    suffix = "" if attempt == 1 else f"-r{attempt}"
    return f"scones-{stack[:34 - len(suffix)]}-{digest}{suffix}"


class TrainingJobNameTaken(RuntimeError):
    """The job this deploy would create already exists and can never yield a model."""


# Describe a training job by name: the DescribeTrainingJob answer, or None if there is none.
DescribeJob = Callable[[str], Mapping | None]


def check_job_name_free(name: str, job: Mapping | None, *, attempt: int) -> None:
    """Raise TrainingJobNameTaken (with SageMaker's reason) if `job` is a Failed/Stopped `name`.

    InProgress and Completed are left alone: that is the job of this stack's state (or one a
    `pulumi up` still waits for), and the provider reports a true name clash itself.
    """
    if job is None or job.get("TrainingJobStatus") not in ("Failed", "Stopped"):
        return
    status = job["TrainingJobStatus"]
    reason = job.get("FailureReason") or job.get("SecondaryStatus") or "no reason given"
    raise TrainingJobNameTaken(
        f"training job {name} {status}: {reason}. SageMaker keeps the job and its name, so the "
        "same inputs cannot train again under it. Fix the cause (for a failed quality gate: "
        "more epochs, other data or scones:minAccuracy), or retry the same inputs with "
        f"`pulumi config set scones:trainingAttempt {attempt + 1}`. The endpoint keeps serving "
        "its current model."
    )


def sagemaker_job_describer(region: str) -> DescribeJob:
    """DescribeTrainingJob with the deployer's credentials; None when no such job exists."""

    def describe(name: str) -> Mapping | None:
        import boto3
        from botocore.exceptions import ClientError

        client = boto3.client("sagemaker", region_name=region)
        try:
            return client.describe_training_job(TrainingJobName=name)
        except ClientError as exc:
            # SageMaker answers an unknown job with ValidationException "Requested resource
            # not found" (the message terraform-provider-aws's findTrainingJobByName matches).
            if "Requested resource not found" in str(exc):
                return None
            raise

    return describe


@dataclass
class ModelTrainingArgs:
    context: StackContext
    data_prefix: str
    data_hash: str
    source_bundle: Path
    image_uri: str
    inference_image_uri: str
    instance_type: str
    epochs: int
    min_accuracy: float
    confidence_threshold: float
    classes: Sequence[str]
    seed: int = 0
    max_runtime_seconds: int = 3 * 3600
    # The staged data set's S3 objects: the job reads them, so it is created after them.
    data_objects: Sequence[pulumi.Resource] = ()
    attempt: int = 1
    # Checks at preview that the job's name is not held by a failed job (None: skip, as in
    # tests that have no AWS).
    describe_job: DescribeJob | None = None
    retain_on_delete: bool = False  # retainData: the source bundle stays in the kept bucket
    # scones:labelledSnapshot: the job gets a "labelled" channel over that manifest of
    # labelled/ (local/retrain.py writes it); None trains on the staged data alone.
    labelled_snapshot: str | None = None


def training_role_statements(
    args: ModelTrainingArgs, *, code_key: str, job_name: str, manifest: str | None
) -> list[dict]:
    """What the job's execution role may do: read its data, code and labelled channel, list the
    data channels, write its own model artifacts, pull the image, write its logs and metrics."""
    p = args.context.partition
    log_group = pulumi.Output.concat(
        f"arn:{p}:logs:{args.context.region}:",
        args.context.account_id,
        f":log-group:{TRAINING_LOG_GROUP}",
    )
    # The labelled channel's manifest and the images it lists (labelled/<class>/*).
    labelled_read = (
        [
            statement(
                ["s3:GetObject"],
                [
                    pulumi.Output.concat(args.context.bucket_arn, f"/{manifest}"),
                    pulumi.Output.concat(args.context.bucket_arn, f"/{LABELLED_PREFIX}/*"),
                ],
                sid="ReadLabelledChannel",
            )
        ]
        if manifest
        else []
    )
    return [
        statement(
            ["s3:GetObject"],
            [
                pulumi.Output.concat(args.context.bucket_arn, f"/{args.data_prefix}/*"),
                pulumi.Output.concat(args.context.bucket_arn, f"/{code_key}"),
            ],
            sid="ReadStagedDataAndSourceBundle",
        ),
        *labelled_read,
        statement(
            ["s3:ListBucket"],
            [args.context.bucket_arn],
            sid="ListTheDataChannels",
            condition={"StringLike": {"s3:prefix": [f"{args.data_prefix}/*"]}},
        ),
        statement(
            ["s3:PutObject"],
            # Its own job's prefix only: never the artifact of the model in service.
            [pulumi.Output.concat(args.context.bucket_arn, f"/{MODELS_PREFIX}/{job_name}/*")],
            sid="WriteOwnModelArtifacts",
        ),
        statement(
            ["kms:Decrypt", "kms:GenerateDataKey"],
            [args.context.kms_key_arn],
            sid="UseTheBucketKey",
        ),
        *image_pull_statements(args.image_uri, p, sid="PullTheTrainingImage"),
        statement(["logs:CreateLogGroup"], [log_group], sid="JobLogGroup"),
        statement(
            ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            [pulumi.Output.concat(log_group, ":log-stream:*")],
            sid="JobLogStreams",
        ),
        statement(
            ["cloudwatch:PutMetricData"],
            ["*"],
            sid="JobMetricsHaveNoResourceLevel",
            condition={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}},
        ),
    ]


def script_mode_hyperparameters(
    hyperparameters: Mapping[str, str], submit_dir: pulumi.Output[str], region: str
) -> pulumi.Output[dict[str, str]]:
    """Script mode (sagemaker-training-toolkit) reads its settings from these hyperparameters,
    JSON-encoded as the SageMaker SDK writes them; the rest become the script's arguments."""
    return submit_dir.apply(
        lambda uri: {
            **hyperparameters,
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(uri),
            "sagemaker_region": json.dumps(region),
            "sagemaker_container_log_level": "20",
        }
    )


def _channel(name: str, data_type: str, s3_uri: pulumi.Input[str]) -> dict:
    """One File-mode input channel over S3 (a prefix, or a manifest of keys)."""
    return {
        "channel_name": name,
        "data_source": {
            "s3_data_source": {
                "s3_data_type": data_type,
                "s3_uri": s3_uri,
                "s3_data_distribution_type": "FullyReplicated",
            }
        },
        "input_mode": "File",
    }


def input_channels(args: ModelTrainingArgs, manifest: str | None) -> list[dict]:
    """The train and test channels over the staged data, and the labelled channel if any."""
    channels = [
        _channel(
            channel,
            "S3Prefix",
            pulumi.Output.concat(
                "s3://", args.context.bucket_name, f"/{args.data_prefix}/{channel}/"
            ),
        )
        for channel in ("train", "test")
    ]
    if manifest:
        # SageMaker downloads exactly the manifest's keys (S3DataSource ManifestFile,
        # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html)
        # into /opt/ml/input/data/labelled, which training.train reads as
        # SM_CHANNEL_LABELLED (--labelled): staged data + labelled images, the test channel
        # unchanged. That each file lands under its path relative to the manifest's prefix
        # (<class>/<file>, the layout training.labelled reads) is not stated on that page
        # and was not checked against AWS here: the job's metrics.json `data` counts (which
        # `local retrain --stack` prints) show whether the labelled images were used.
        channels.append(
            _channel(
                "labelled",
                "ManifestFile",
                pulumi.Output.concat("s3://", args.context.bucket_name, f"/{manifest}"),
            )
        )
    return channels


class ModelTraining(pulumi.ComponentResource):
    job: aws.sagemaker.TrainingJob
    job_name: str
    model_data_url: pulumi.Output[str]
    model_package_group: aws.sagemaker.ModelPackageGroup

    def __init__(
        self, name: str, args: ModelTrainingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:training:ModelTraining", name, None, opts)
        code_hash = file_sha256(args.source_bundle)
        code_key = f"{CODE_PREFIX}/training/{code_hash[:16]}/sourcedir.tar.gz"
        self.source = self._source_bundle(name, args, code_key)
        hyperparameters = training_hyperparameters(
            epochs=args.epochs,
            seed=args.seed,
            min_accuracy=args.min_accuracy,
            threshold=args.confidence_threshold,
            classes=args.classes,
        )
        self.job_name = self._job_name(args, code_hash, hyperparameters)
        manifest = (
            f"{LABELLED_MANIFESTS_PREFIX}/{args.labelled_snapshot}.json"
            if args.labelled_snapshot
            else None
        )
        self._training_role(name, args, code_key, manifest)
        output_path = pulumi.Output.concat("s3://", args.context.bucket_name, f"/{MODELS_PREFIX}")
        self.job = self._training_job(
            name,
            args,
            hyperparameters=script_mode_hyperparameters(
                hyperparameters,
                pulumi.Output.concat("s3://", args.context.bucket_name, f"/{code_key}"),
                args.context.region,
            ),
            channels=input_channels(args, manifest),
            output_path=output_path,
        )
        self._registry(name, args)
        # TrainingJob has no artifact output; SageMaker's layout is fixed:
        # {s3_output_path}/{job name}/output/model.tar.gz. Gated on the registration so that
        # the endpoint only ever sees a model that passed.
        self.model_data_url = pulumi.Output.all(
            pulumi.Output.concat(
                output_path, "/", self.job.training_job_name, "/output/model.tar.gz"
            ),
            self.registration.model_package_arn,
        ).apply(lambda values: values[0])
        self.register_outputs(
            {
                "jobName": self.job_name,
                "modelDataUrl": self.model_data_url,
                "roleArn": self.role.arn,
                "modelPackageGroup": self.model_package_group.model_package_group_name,
                "modelPackageArn": self.registration.model_package_arn,
            }
        )

    def _source_bundle(
        self, name: str, args: ModelTrainingArgs, code_key: str
    ) -> aws.s3.BucketObjectv2:
        """The training source bundle (training/ and its script), uploaded under code/."""
        return aws.s3.BucketObjectv2(
            f"{name}-source",
            bucket=args.context.bucket_name,
            key=code_key,
            source=pulumi.FileAsset(str(args.source_bundle)),
            server_side_encryption="aws:kms",
            kms_key_id=args.context.kms_key_arn,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=args.retain_on_delete),
        )

    @staticmethod
    def _job_name(
        args: ModelTrainingArgs, code_hash: str, hyperparameters: Mapping[str, str]
    ) -> str:
        """The job's name (see training_job_name), refused if a failed job holds it."""
        job_name = training_job_name(
            args.context.stack,
            data_hash=args.data_hash,
            code_hash=code_hash,
            image_uri=args.image_uri,
            hyperparameters=hyperparameters,
            resources={
                "instance_type": args.instance_type,
                "volume_size_in_gb": TRAINING_VOLUME_GB,
                "max_runtime_in_seconds": args.max_runtime_seconds,
            },
            attempt=args.attempt,
            labelled_snapshot=args.labelled_snapshot,
        )
        if args.describe_job is not None:
            check_job_name_free(job_name, args.describe_job(job_name), attempt=args.attempt)
        return job_name

    def _training_role(
        self, name: str, args: ModelTrainingArgs, code_key: str, manifest: str | None
    ) -> None:
        """The job's execution role and its policy (training_role_statements)."""
        child = pulumi.ResourceOptions(parent=self)
        self.role, self.role_policy = role_with_policy(
            name,
            description=f"scones {args.context.stack}: SageMaker training job execution role",
            trust_policy=assume_role_policy(
                "sagemaker.amazonaws.com", source_account=args.context.account_id
            ),
            statements=training_role_statements(
                args, code_key=code_key, job_name=self.job_name, manifest=manifest
            ),
            opts=child,
        )

    def _training_job(
        self,
        name: str,
        args: ModelTrainingArgs,
        *,
        hyperparameters: pulumi.Input[Mapping[str, str]],
        channels: Sequence[Mapping],
        output_path: pulumi.Output[str],
    ) -> aws.sagemaker.TrainingJob:
        return aws.sagemaker.TrainingJob(
            f"{name}-job",
            training_job_name=self.job_name,
            role_arn=self.role.arn,
            algorithm_specification={
                "training_image": args.image_uri,
                "training_input_mode": "File",
            },
            hyper_parameters=hyperparameters,
            input_data_configs=list(channels),
            output_data_config={
                "s3_output_path": output_path,
                "kms_key_id": args.context.kms_key_arn,
            },
            resource_config={
                "instance_type": args.instance_type,
                "instance_count": 1,
                "volume_size_in_gb": TRAINING_VOLUME_GB,
            },
            stopping_condition={"max_runtime_in_seconds": args.max_runtime_seconds},
            # The role's policy must exist before SageMaker assumes it, and the channels'
            # objects before the job lists them.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.role_policy, self.source, *args.data_objects],
                # The provider waits for the job up to its create timeout, 45 minutes by default
                # (training_job.go: SetDefaultCreateTimeout(45 * time.Minute)), and a timeout
                # leaves no state behind: wait as long as SageMaker may run the job, plus time
                # for provisioning the instance and uploading the model.
                custom_timeouts=pulumi.CustomTimeouts(
                    create=f"{training_create_timeout_minutes(args.max_runtime_seconds)}m"
                ),
                # A finished job does not use its role again: a replaced role (its ARN is
                # RequiresReplace on the job, and not part of the name) must not retrain.
                ignore_changes=["roleArn"],
            ),
        )

    def _registry(self, name: str, args: ModelTrainingArgs) -> None:
        """The model package group and the job's model package in it."""
        child = pulumi.ResourceOptions(parent=self)
        self.model_package_group = aws.sagemaker.ModelPackageGroup(
            f"{name}-registry",
            model_package_group_name=f"scones-{args.context.stack}-vehicle-classifier",
            model_package_group_description="Models that passed the training quality gate",
            opts=child,
        )
        # Waits for the job: a failed quality gate stops `pulumi up` here, before the endpoint.
        self.registration = ModelRegistration(
            f"{name}-model-package",
            job_name=self.job.training_job_name,
            group_name=self.model_package_group.model_package_group_name,
            image_uri=args.inference_image_uri,
            region=args.context.region,
            kms_key_arn=args.context.kms_key_arn,
            opts=child,
        )
