"""ModelTraining: a SageMaker training job running training/train.py on the PyTorch image.

The job's name is a hash of data, code, image and hyperparameters, so `pulumi up` starts a new
job only when one of them changes (a TrainingJob cannot be updated in place; a new name means a
new job). The quality gate is in the script: below `min-accuracy` it exits non-zero, the job
fails, `pulumi up` stops with SageMaker's failure reason (which carries the script's message
naming the accuracy and the floor) and the endpoint keeps serving its current model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.data_staging import CODE_PREFIX, MODELS_PREFIX
from components.iam import assume_role_policy, document, statement
from components.images import ecr_repository_arn
from components.model_registration import ModelRegistration

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


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
    stack: str, *, data_hash: str, code_hash: str, image_uri: str, hyperparameters: Mapping
) -> str:
    """scones-<stack>-<20 hex digits>: at most 63 characters, as SageMaker requires."""
    identity = json.dumps(
        {"data": data_hash, "code": code_hash, "image": image_uri, "hp": dict(hyperparameters)},
        sort_keys=True,
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
    return f"scones-{stack[:34]}-{digest}"


@dataclass
class ModelTrainingArgs:
    stack: str
    region: str
    account_id: pulumi.Input[str]
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
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
    partition: str = "aws"


class ModelTraining(pulumi.ComponentResource):
    job: aws.sagemaker.TrainingJob
    job_name: str
    model_data_url: pulumi.Output[str]
    model_package_group: aws.sagemaker.ModelPackageGroup

    def __init__(
        self, name: str, args: ModelTrainingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:training:ModelTraining", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        p = args.partition
        code_hash = file_sha256(args.source_bundle)
        code_key = f"{CODE_PREFIX}/training/{code_hash[:16]}/sourcedir.tar.gz"
        self.source = aws.s3.BucketObjectv2(
            f"{name}-source",
            bucket=args.bucket_name,
            key=code_key,
            source=pulumi.FileAsset(str(args.source_bundle)),
            server_side_encryption="aws:kms",
            kms_key_id=args.kms_key_arn,
            opts=child,
        )
        logs = f"arn:{p}:logs:{args.region}:"
        log_group = pulumi.Output.concat(logs, args.account_id, f":log-group:{TRAINING_LOG_GROUP}")
        self.role = aws.iam.Role(
            f"{name}-role",
            description=f"scones {args.stack}: SageMaker training job execution role",
            assume_role_policy=assume_role_policy(
                "sagemaker.amazonaws.com", source_account=args.account_id
            ),
            opts=child,
        )
        self.role_policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=document(
                [
                    statement(
                        ["s3:GetObject"],
                        [
                            pulumi.Output.concat(args.bucket_arn, f"/{args.data_prefix}/*"),
                            pulumi.Output.concat(args.bucket_arn, f"/{code_key}"),
                        ],
                        sid="ReadStagedDataAndSourceBundle",
                    ),
                    statement(
                        ["s3:ListBucket"],
                        [args.bucket_arn],
                        sid="ListTheDataChannels",
                        condition={"StringLike": {"s3:prefix": [f"{args.data_prefix}/*"]}},
                    ),
                    statement(
                        ["s3:PutObject"],
                        [pulumi.Output.concat(args.bucket_arn, f"/{MODELS_PREFIX}/*")],
                        sid="WriteModelArtifacts",
                    ),
                    statement(
                        ["kms:Decrypt", "kms:GenerateDataKey"],
                        [args.kms_key_arn],
                        sid="UseTheBucketKey",
                    ),
                    statement(
                        ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                         "ecr:GetDownloadUrlForLayer"],
                        [ecr_repository_arn(args.image_uri, p)],
                        sid="PullTheTrainingImage",
                    ),
                    statement(
                        ["ecr:GetAuthorizationToken"], ["*"], sid="EcrLoginHasNoResourceLevel"
                    ),
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
                        condition={
                            "StringLike": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}
                        },
                    ),
                ]
            ),
            opts=child,
        )
        hyperparameters = training_hyperparameters(
            epochs=args.epochs,
            seed=args.seed,
            min_accuracy=args.min_accuracy,
            threshold=args.confidence_threshold,
            classes=args.classes,
        )
        self.job_name = training_job_name(
            args.stack,
            data_hash=args.data_hash,
            code_hash=code_hash,
            image_uri=args.image_uri,
            hyperparameters=hyperparameters,
        )
        submit_dir = pulumi.Output.concat("s3://", args.bucket_name, f"/{code_key}")
        # Script mode (sagemaker-training-toolkit) reads its settings from these hyperparameters,
        # JSON-encoded as the SageMaker SDK writes them; the rest become the script's arguments.
        all_hyperparameters = submit_dir.apply(
            lambda uri: {
                **hyperparameters,
                "sagemaker_program": json.dumps("train.py"),
                "sagemaker_submit_directory": json.dumps(uri),
                "sagemaker_region": json.dumps(args.region),
                "sagemaker_container_log_level": "20",
            }
        )
        output_path = pulumi.Output.concat("s3://", args.bucket_name, f"/{MODELS_PREFIX}")
        channels = [
            {
                "channel_name": channel,
                "data_source": {
                    "s3_data_source": {
                        "s3_data_type": "S3Prefix",
                        "s3_uri": pulumi.Output.concat(
                            "s3://", args.bucket_name, f"/{args.data_prefix}/{channel}/"
                        ),
                        "s3_data_distribution_type": "FullyReplicated",
                    }
                },
                "input_mode": "File",
            }
            for channel in ("train", "test")
        ]
        self.job = aws.sagemaker.TrainingJob(
            f"{name}-job",
            training_job_name=self.job_name,
            role_arn=self.role.arn,
            algorithm_specification={
                "training_image": args.image_uri,
                "training_input_mode": "File",
            },
            hyper_parameters=all_hyperparameters,
            input_data_configs=channels,
            output_data_config={"s3_output_path": output_path, "kms_key_id": args.kms_key_arn},
            resource_config={
                "instance_type": args.instance_type,
                "instance_count": 1,
                "volume_size_in_gb": 30,
            },
            stopping_condition={"max_runtime_in_seconds": args.max_runtime_seconds},
            # The role's policy must exist before SageMaker assumes it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role_policy, self.source]),
        )
        self.model_package_group = aws.sagemaker.ModelPackageGroup(
            f"{name}-registry",
            model_package_group_name=f"scones-{args.stack}-vehicle-classifier",
            model_package_group_description="Models that passed the training quality gate",
            opts=child,
        )
        # Waits for the job: a failed quality gate stops `pulumi up` here, before the endpoint.
        self.registration = ModelRegistration(
            f"{name}-model-package",
            job_name=self.job.training_job_name,
            group_name=self.model_package_group.model_package_group_name,
            image_uri=args.inference_image_uri,
            region=args.region,
            kms_key_arn=args.kms_key_arn,
            opts=child,
        )
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
