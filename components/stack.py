"""The whole stack: settings -> components, in dependency order. __main__.py calls `deploy`.

Artifacts are built from the repository at deploy time, by the same functions local mode and
the tests use: the staged data set (training.stage), the training source bundle
(training.bundle) and the Lambda zip (lambdas.package), under build/pulumi/.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.alarms import AlarmTopic, AlarmTopicArgs
from components.batch_workflow import BatchWorkflow, BatchWorkflowArgs
from components.context import StackContext
from components.dashboard import Dashboard, DashboardArgs
from components.data_staging import CAPTURE_PREFIX, INTAKE_PREFIX, DataStaging, DataStagingArgs
from components.drift_monitor import DriftMonitor, DriftMonitorArgs
from components.encryption_key import EncryptionKey, EncryptionKeyArgs
from components.images import pytorch_image_uri
from components.inference_functions import (
    InferenceFunctions,
    InferenceFunctionsArgs,
    powertools_layer_arn,
)
from components.inference_workflow import InferenceWorkflow, InferenceWorkflowArgs
from components.model_endpoint import VARIANT_NAME, ModelEndpoint, ModelEndpointArgs
from components.model_training import DescribeJob, ModelTraining, ModelTrainingArgs
from components.safe_mode import SafeMode, SafeModeArgs, parameter_arn
from components.settings import Settings, validate_stack_name
from lambdas.batch_workflow_definition import DEFAULT_INPUT_PREFIXES as BATCH_INPUT_PREFIXES
from lambdas.safe_mode.flag import parameter_name as safe_mode_parameter_name

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUILD_DIR = REPO_ROOT / "build" / "pulumi"


@dataclass
class Artifacts:
    staged_dir: Path
    source_bundle: Path
    # One zip per function (its handler's imports): the four steps, summarize_batch, safe_mode.
    lambda_zips: dict[str, Path]
    drift_zip: Path
    drift_layer_zip: Path


def build_artifacts(settings: Settings, build_dir: Path = DEFAULT_BUILD_DIR) -> Artifacts:
    """Stage the data (reused while archive and classes are unchanged) and build the bundles."""
    from components.batch_workflow import SUMMARIZE_HANDLER
    from components.safe_mode import HANDLER as SAFE_MODE_HANDLER
    from lambdas.detect_drift.package import build_function_zip, ensure_layer
    from lambdas.package import HANDLERS, build_function_zips
    from training.bundle import build_source_bundle
    from training.cifar import resolve_archive

    archive = resolve_archive(settings.cifar_archive, build_dir / "cifar-cache")
    staged = build_dir / "staged"
    stat = archive.stat()
    stamp = json.dumps(
        {"archive": str(archive.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns,
         "classes": list(settings.classes)},
        sort_keys=True,
    )
    stamp_file = build_dir / "staged.stamp"
    if not (
        (staged / "manifest.json").is_file()
        and stamp_file.is_file()
        and stamp_file.read_text() == stamp
    ):
        from training.stage import stage_dataset

        stage_dataset(archive, staged, list(settings.classes))
        stamp_file.write_text(stamp)
    return Artifacts(
        staged_dir=staged,
        source_bundle=build_source_bundle(build_dir / "sourcedir.tar.gz"),
        lambda_zips=build_function_zips(
            build_dir / "lambdas",
            {**HANDLERS, "summarize_batch": SUMMARIZE_HANDLER, "safe_mode": SAFE_MODE_HANDLER},
        ),
        drift_zip=build_function_zip(build_dir / "drift.zip"),
        # numpy + Pillow wheels from $SCONES_WHEELHOUSE / the wheel cache, else PyPI (once).
        drift_layer_zip=ensure_layer(build_dir / "drift-layer.zip"),
    )


@dataclass(frozen=True)
class SharedBase:
    """What every later component builds on: the context (key and bucket in it), the key and
    bucket components themselves, and the endpoint's fixed name."""

    context: StackContext
    key: EncryptionKey
    staging: DataStaging
    endpoint_name: str


@dataclass(frozen=True)
class Model:
    training: ModelTraining
    endpoint: ModelEndpoint


@dataclass(frozen=True)
class Workflow:
    functions: InferenceFunctions
    workflow: InferenceWorkflow
    batch: BatchWorkflow


@dataclass(frozen=True)
class Monitoring:
    drift: DriftMonitor
    safe_mode: SafeMode


def deploy(
    settings: Settings,
    *,
    stack: str,
    region: str,
    artifacts: Artifacts,
    describe_training_job: DescribeJob | None = None,
) -> dict:
    """Create every component; returns the stack outputs (and the components, under `_`).

    `describe_training_job` (components.model_training.sagemaker_job_describer in
    __main__.py) lets the preview refuse a job name a failed job holds; None skips that check.
    """
    validate_stack_name(stack)  # at preview, before any name reaches AWS
    base = shared_base(settings, stack=stack, region=region, artifacts=artifacts)
    alarm_topic = AlarmTopic(
        "alarms", AlarmTopicArgs(context=base.context, alarm_email=settings.alarm_email)
    )
    model = deploy_model(settings, base, artifacts, alarm_topic, describe_training_job)
    workflow = deploy_workflow(settings, base, artifacts, alarm_topic, model)
    monitoring = deploy_monitoring(settings, base, artifacts, alarm_topic, model, workflow)
    dashboard = stack_dashboard(base.context, alarm_topic, model, workflow, monitoring)
    return stack_outputs(settings, base, alarm_topic, dashboard, model, workflow, monitoring)


def shared_base(
    settings: Settings, *, stack: str, region: str, artifacts: Artifacts
) -> SharedBase:
    """The stack's KMS key and bucket (with the staged data), and the context built on them."""
    account_id = aws.get_caller_identity_output().account_id
    # Resolved before any resource: a Region without the pinned layer stops the preview here.
    powertools = powertools_layer_arn(region, settings.powertools_layer_arn)
    adopt = settings.adopt
    key = EncryptionKey(
        "key",
        EncryptionKeyArgs(
            stack=stack,
            account_id=account_id,
            retain_on_delete=settings.retain_data,
            adopt_key_id=adopt.kms_key_id if adopt else None,
        ),
    )
    staging = DataStaging(
        "data",
        DataStagingArgs(
            staged_dir=artifacts.staged_dir,
            kms_key_arn=key.arn,
            retain_data=settings.retain_data,
            stack=stack,
            adopt_bucket=adopt.bucket if adopt else None,
        ),
    )
    if staging.classes != list(settings.classes):
        raise ValueError(
            f"scones:classes {list(settings.classes)} differ from the staged data's "
            f"{staging.classes}"
        )
    context = StackContext(
        stack=stack,
        region=region,
        account_id=account_id,
        kms_key_arn=key.arn,
        bucket_name=staging.bucket_name,
        bucket_arn=staging.bucket_arn,
        log_retention_days=settings.log_retention_days,
        powertools_layer_arn=powertools,
    )
    return SharedBase(
        context=context, key=key, staging=staging, endpoint_name=f"scones-{stack}"
    )


def deploy_model(
    settings: Settings,
    base: SharedBase,
    artifacts: Artifacts,
    alarm_topic: AlarmTopic,
    describe_training_job: DescribeJob | None,
) -> Model:
    """The training job (and its registered model package) and the endpoint serving it."""
    region, staging = base.context.region, base.staging
    instance_for_lookup = (
        "ml.m5.large" if settings.serverless else settings.endpoint.instance_type  # type: ignore[union-attr]
    )
    inference_image = pytorch_image_uri(region, "inference", instance_for_lookup)
    training = ModelTraining(
        "training",
        ModelTrainingArgs(
            context=base.context,
            data_prefix=staging.data_prefix,
            data_hash=staging.data_hash,
            source_bundle=artifacts.source_bundle,
            image_uri=pytorch_image_uri(region, "training", settings.training_instance_type),
            inference_image_uri=inference_image,
            instance_type=settings.training_instance_type,
            epochs=settings.epochs,
            min_accuracy=settings.min_accuracy,
            confidence_threshold=settings.confidence_threshold,
            classes=settings.classes,
            data_objects=staging.objects,
            attempt=settings.training_attempt,
            describe_job=describe_training_job,
            retain_on_delete=settings.retain_data,
            labelled_snapshot=settings.labelled_snapshot,
        ),
    )
    endpoint = ModelEndpoint(
        "endpoint",
        ModelEndpointArgs(
            context=base.context,
            endpoint_name=base.endpoint_name,
            model_data_url=training.model_data_url,
            image_uri=inference_image,
            endpoint=settings.endpoint,
            data_capture_percent=settings.data_capture_percent,
            alarm_topic=alarm_topic,
            latency_p99_ms=settings.latency_p99_ms,
        ),
    )
    return Model(training=training, endpoint=endpoint)


def deploy_workflow(
    settings: Settings,
    base: SharedBase,
    artifacts: Artifacts,
    alarm_topic: AlarmTopic,
    model: Model,
) -> Workflow:
    """The four step functions, the per-image workflow (with review) and the batch workflow."""
    context = base.context
    routes = dict(settings.routes)
    # Where images to classify live: intake/, and the batch workflow's inputs.
    image_prefixes = list(
        dict.fromkeys([INTAKE_PREFIX, *(p.rstrip("/") for p in BATCH_INPUT_PREFIXES)])
    )
    functions = InferenceFunctions(
        "functions",
        InferenceFunctionsArgs(
            context=context,
            lambda_zips=artifacts.lambda_zips,
            endpoint_name=model.endpoint.endpoint_name,
            endpoint_arn=model.endpoint.endpoint_arn,
            classes=settings.classes,
            confidence_threshold=settings.confidence_threshold,
            routes=routes,
            alarm_topic=alarm_topic,
            low_confidence_rate_max=settings.low_confidence_rate_max,
            capture_s3_uri=model.endpoint.lambda_capture_s3_uri,
            read_prefixes=image_prefixes,
            # SafeMode (below, after the drift alarms it watches) creates this parameter.
            safe_mode_parameter=safe_mode_parameter_name(context.stack),
            safe_mode_parameter_arn=parameter_arn(
                context.stack, context.region, context.account_id, context.partition
            ),
        ),
    )
    workflow = InferenceWorkflow(
        "workflow",
        InferenceWorkflowArgs(
            context=context,
            alarm_topic=alarm_topic,
            function_arns=functions.function_arns,
            routes=routes,
            workflow_type=settings.workflow_type,
            review_image_prefixes=image_prefixes,
            review_timeout_seconds=settings.review_timeout_seconds,
        ),
    )
    # The batch workflow: the per-image states over every object under a prefix.
    batch = BatchWorkflow(
        "batch",
        BatchWorkflowArgs(
            context=context,
            lambda_zip=artifacts.lambda_zips["summarize_batch"],
            function_arns=functions.function_arns,
            review_topic_arn=workflow.review_topic.arn,
            review_queue_url=workflow.review.queue.url,
            review_queue_arn=workflow.review.queue.arn,
            routes=routes,
            service_name=functions.service_name,
            input_prefixes=BATCH_INPUT_PREFIXES,
        ),
    )
    return Workflow(functions=functions, workflow=workflow, batch=batch)


def deploy_monitoring(
    settings: Settings,
    base: SharedBase,
    artifacts: Artifacts,
    alarm_topic: AlarmTopic,
    model: Model,
    workflow: Workflow,
) -> Monitoring:
    """The drift detector with its alarms, and the safe mode those alarms switch on."""
    drift = DriftMonitor(
        "drift",
        DriftMonitorArgs(
            context=base.context,
            function_zip=artifacts.drift_zip,
            layer_zip=artifacts.drift_layer_zip,
            endpoint_name=base.endpoint_name,
            variant_name=VARIANT_NAME,
            capture_prefix=CAPTURE_PREFIX,
            baseline_s3_uri=model.training.model_data_url,
            classes=settings.classes,
            confidence_threshold=settings.confidence_threshold,
            thresholds=settings.drift_thresholds(),
            schedule_minutes=settings.drift_schedule_minutes,
            window_minutes=settings.drift_window_minutes,
            alarm_topic=alarm_topic,
        ),
    )
    # A drift alarm switches the workflow into safe mode (every request to review).
    safe_mode = SafeMode(
        "safe-mode",
        SafeModeArgs(
            context=base.context,
            lambda_zip=artifacts.lambda_zips["safe_mode"],
            alarm_names=[alarm.name for alarm in drift.drift_alarms.values()],
            service_name=workflow.functions.service_name,
        ),
    )
    return Monitoring(drift=drift, safe_mode=safe_mode)


def stack_dashboard(
    context: StackContext,
    alarm_topic: AlarmTopic,
    model: Model,
    workflow: Workflow,
    monitoring: Monitoring,
) -> Dashboard:
    """The dashboard over every component's alarms and graphs: serving, review, the steps,
    the workflow, drift, safe mode."""
    shown = [
        model.endpoint,
        workflow.workflow.review,
        workflow.functions,
        workflow.workflow,
        monitoring.drift,
    ]
    return Dashboard(
        "dashboard",
        DashboardArgs(
            context=context,
            alarm_topic=alarm_topic,
            alarms=[alarm for component in shown for alarm in component.alarms],
            widgets=[
                *(widget for component in shown for widget in component.dashboard_widgets),
                *monitoring.safe_mode.dashboard_widgets,
            ],
        ),
    )


def stack_outputs(
    settings: Settings,
    base: SharedBase,
    alarm_topic: AlarmTopic,
    dashboard: Dashboard,
    model: Model,
    workflow: Workflow,
    monitoring: Monitoring,
) -> dict:
    """The stack outputs __main__.py exports, and every component under `_` (for tests)."""
    staging, functions, review = base.staging, workflow.functions, workflow.workflow.review
    return {
        "bucket": staging.bucket_name,
        "endpointName": model.endpoint.endpoint_name,
        "stateMachineArn": workflow.workflow.state_machine.arn,
        "batchStateMachineArn": workflow.batch.state_machine.arn,
        "alarmTopicArn": alarm_topic.topic.arn,
        "routingTopicArn": functions.routing_topic.arn,
        "reviewTopicArn": workflow.workflow.review_topic.arn,
        "reviewQueueUrl": review.queue.url,
        "reviewDeadLetterQueueUrl": review.dead_letter_queue.url,
        "reviewerRoleArn": review.reviewer_role.arn,
        # For `python -m local review|retrain --stack` (local/review_cli.py, local/retrain.py).
        "routeFunctionArn": functions.function_arns["route_driver"],
        "classes": list(settings.classes),
        "retrainAfterLabels": settings.retrain_after_labels,
        "labelledSnapshot": settings.labelled_snapshot or "",
        "dashboardUrl": dashboard.dashboard_url,
        "trainingJobName": model.training.job_name,
        "modelDataUrl": model.training.model_data_url,
        "intakeUri": pulumi.Output.concat("s3://", staging.bucket_name, f"/{INTAKE_PREFIX}/"),
        "safeModeParameter": monitoring.safe_mode.parameter_name,
        "safeModeFunctionName": monitoring.safe_mode.function.name,
        "_": {
            "key": base.key,
            "staging": staging,
            "alarms": alarm_topic,
            "dashboard": dashboard,
            "training": model.training,
            "endpoint": model.endpoint,
            "functions": functions,
            "workflow": workflow.workflow,
            "batch": workflow.batch,
            "drift": monitoring.drift,
            "safe_mode": monitoring.safe_mode,
        },
    }


def region_from_config() -> str:
    region = pulumi.Config("aws").get("region") or os.environ.get("AWS_REGION")
    if not region:
        raise ValueError("aws:region is not set: pulumi config set aws:region eu-west-1")
    return region
