"""Key properties as deployed: encryption, capture, scaling, functions, workflow, alarms."""

from __future__ import annotations

import json
import re

import pytest
from pulumi_support import ACCOUNT, LAYER_ARN, REGION

from components.inference_functions import powertools_layer_parameter
from components.model_training import training_job_name
from lambdas.defaults import WORKFLOW_FUNCTIONS
from lambdas.workflow_definition import build_definition

KEY_ARN_RE = re.compile(rf"^arn:aws:kms:{REGION}:{ACCOUNT}:key/")


@pytest.fixture(params=["dev", "prod"])
def run(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


def test_key_rotates(run) -> None:
    key = run.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True


def test_bucket_is_private_encrypted_versioned(run) -> None:
    key_arn = run.one("aws:kms/key:Key").outputs["arn"]
    bucket = run.one("aws:s3/bucket:Bucket")
    assert bucket.inputs["bucketPrefix"] == f"scones-{run.stack}-data-"
    name = bucket.outputs["bucket"]
    pab = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert pab["bucket"] == name
    assert all(pab[f] is True for f in ("blockPublicAcls", "blockPublicPolicy",
                                        "ignorePublicAcls", "restrictPublicBuckets"))
    sse = run.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs["rules"][0]
    assert sse["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": key_arn
    }
    versioning = run.one("aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    rules = run.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    ).inputs["rules"]
    capture_rule = next(r for r in rules if r["id"] == "expire-captured-traffic")
    assert capture_rule["filter"] == {"prefix": "capture/"}
    assert capture_rule["expiration"]["days"] == 90
    policy = json.loads(run.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]
    assert run.one("aws:s3/bucketNotification:BucketNotification").inputs["eventbridge"] is True


def test_retain_data_per_stack(dev, prod) -> None:
    assert dev.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is True
    assert prod.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is False


def test_staged_data_uploaded_under_the_job_channels(run) -> None:
    objects = {
        r.inputs["key"]: r.inputs
        for r in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
        if r.name.startswith("data-")
    }
    prefix = run.components["staging"].data_prefix
    assert set(objects) == {f"{prefix}/manifest.json", f"{prefix}/train/dataset.npz",
                            f"{prefix}/test/dataset.npz"}
    assert all(o["serverSideEncryption"] == "aws:kms" for o in objects.values())
    job = run.one("aws:sagemaker/trainingJob:TrainingJob").inputs
    bucket = run.outputs["bucket"]
    channels = {c["channelName"]: c["dataSource"]["s3DataSource"]["s3Uri"]
                for c in job["inputDataConfigs"]}
    assert channels == {"train": f"s3://{bucket}/{prefix}/train/",
                        "test": f"s3://{bucket}/{prefix}/test/"}


def test_training_job(run, request: pytest.FixtureRequest) -> None:
    job = run.one("aws:sagemaker/trainingJob:TrainingJob").inputs
    hp = job["hyperParameters"]
    source = run.named("training-source").inputs
    bucket = run.outputs["bucket"]
    assert json.loads(hp["sagemaker_program"]) == "train.py"
    assert json.loads(hp["sagemaker_submit_directory"]) == f"s3://{bucket}/{source['key']}"
    assert float(hp["min-accuracy"]) == {"dev": 0.8, "prod": 0.85}[run.stack]
    assert hp["epochs"] == {"dev": "30", "prod": "300"}[run.stack]
    assert hp["classes"] == "bicycle,motorcycle"
    assert job["algorithmSpecification"]["trainingImage"].endswith(":2.6.0-cpu-py312")
    assert "/pytorch-training:" in job["algorithmSpecification"]["trainingImage"]
    assert job["outputDataConfig"]["s3OutputPath"] == f"s3://{bucket}/models"
    assert KEY_ARN_RE.match(job["outputDataConfig"]["kmsKeyId"])
    assert len(job["trainingJobName"]) <= 63
    assert job["trainingJobName"] == run.outputs["trainingJobName"]
    registration = run.one("pulumi-python:dynamic:Resource").inputs
    assert registration["job_name"] == job["trainingJobName"]
    group = run.one("aws:sagemaker/modelPackageGroup:ModelPackageGroup").inputs
    assert registration["group_name"] == group["modelPackageGroupName"]


def test_job_name_changes_only_with_its_inputs() -> None:
    base = {"data_hash": "d", "code_hash": "c", "image_uri": "i", "hyperparameters": {"e": "1"}}
    name = training_job_name("dev", **base)
    assert name == training_job_name("dev", **base)
    for field, value in [("data_hash", "d2"), ("code_hash", "c2"), ("image_uri", "i2"),
                         ("hyperparameters", {"e": "2"})]:
        assert training_job_name("dev", **{**base, field: value}) != name, field
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", training_job_name("x" * 80, **base))


def test_model_serves_the_training_artifact(run) -> None:
    model = run.one("aws:sagemaker/model:Model").inputs
    container = model["primaryContainer"]
    assert container["modelDataUrl"] == run.outputs["modelDataUrl"]
    assert container["environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert "/pytorch-inference:2.6.0-cpu-py312" in container["image"]
    assert model["enableNetworkIsolation"] is (run.stack == "prod")  # serverless: unsupported


def test_blue_green_with_rollback_on_the_endpoint_alarms(run) -> None:
    endpoint = run.one("aws:sagemaker/endpoint:Endpoint").inputs
    config = run.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    assert endpoint["name"] == f"scones-{run.stack}"
    assert endpoint["endpointConfigName"] == config.outputs["name"]
    deployment = endpoint["deploymentConfig"]
    policy = deployment["blueGreenUpdatePolicy"]
    assert policy["trafficRoutingConfiguration"] == {
        "type": "ALL_AT_ONCE", "waitIntervalInSeconds": 300
    }
    rollback = {a["alarmName"] for a in deployment["autoRollbackConfiguration"]["alarms"]}
    assert rollback == {run.named("alarms-endpoint-5xx").outputs["name"],
                        run.named("alarms-endpoint-latency-p99").outputs["name"]}


def test_prod_endpoint_captures_encrypted(prod) -> None:
    config = prod.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    assert "name" not in config.inputs  # auto-named: a new model never clashes with the live one
    capture = config.inputs["dataCaptureConfig"]
    assert capture["enableCapture"] is True
    assert capture["initialSamplingPercentage"] == 50
    assert KEY_ARN_RE.match(capture["kmsKeyId"])
    assert capture["destinationS3Uri"] == f"s3://{prod.outputs['bucket']}/capture"
    assert sorted(o["captureMode"] for o in capture["captureOptions"]) == ["Input", "Output"]
    (variant,) = config.inputs["productionVariants"]
    assert variant["instanceType"] == "ml.m5.large"


def test_prod_autoscaling_bounds(prod) -> None:
    target = prod.one("aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (1, 4)
    assert target["resourceId"] == "endpoint/scones-prod/variant/AllTraffic"
    assert target["scalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    policy = prod.one("aws:appautoscaling/policy:Policy").inputs
    tracking = policy["targetTrackingScalingPolicyConfiguration"]
    assert tracking["targetValue"] == 300
    assert tracking["predefinedMetricSpecification"]["predefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )


def test_dev_endpoint_serverless_and_lambda_writes_capture(dev) -> None:
    config = dev.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    assert "dataCaptureConfig" not in config
    (variant,) = config["productionVariants"]
    assert variant["serverlessConfig"] == {"memorySizeInMb": 2048, "maxConcurrency": 2}
    classify = dev.named("functions-classify-image").inputs
    assert classify["environment"]["variables"]["CAPTURE_S3_URI"] == (
        f"s3://{dev.outputs['bucket']}/capture"
    )


def test_prod_lambda_leaves_capture_to_sagemaker(prod) -> None:
    env = prod.named("functions-classify-image").inputs["environment"]["variables"]
    assert "CAPTURE_S3_URI" not in env


def test_functions(run) -> None:
    functions = {r.name: r.inputs for r in run.of_type("aws:lambda/function:Function")}
    log_groups = {r.inputs["name"]: r.inputs for r in run.of_type(
        "aws:cloudwatch/logGroup:LogGroup")}
    retention = {"dev": 7, "prod": 90}[run.stack]
    for step in ("serialize_image", "classify_image", "filter_inferences", "route_driver"):
        fn = functions[f"functions-{step.replace('_', '-')}"]
        assert fn["handler"] == f"lambdas.{step}.handler.lambda_handler"
        assert fn["runtime"] == "python3.12"
        assert fn["layers"] == [LAYER_ARN]
        assert fn["tracingConfig"] == {"mode": "Active"}
        env = fn["environment"]["variables"]
        assert json.loads(env["CLASSES"]) == ["bicycle", "motorcycle"]
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "SconesUnlimited/Inference"
        assert env["POWERTOOLS_SERVICE_NAME"] == f"scones-{run.stack}"
        log_group = fn["loggingConfig"]["logGroup"]
        assert log_group == f"/aws/lambda/{fn['name']}"
        assert log_groups[log_group]["retentionInDays"] == retention
    assert functions["functions-classify-image"]["environment"]["variables"][
        "ENDPOINT_NAME"] == f"scones-{run.stack}"
    assert functions["functions-filter-inferences"]["environment"]["variables"][
        "CONFIDENCE_THRESHOLD"] == "0.93"
    route_env = functions["functions-route-driver"]["environment"]["variables"]
    assert json.loads(route_env["ROUTES"]) == {"bicycle": "nearby", "motorcycle": "distant"}
    assert route_env["ROUTING_TOPIC_ARN"] == run.outputs["routingTopicArn"]


def test_powertools_layer_resolved_for_the_pinned_version(pulumi_mocks, dev) -> None:
    names = {args["name"] for token, args in pulumi_mocks.calls
             if token == "aws:ssm/getParameter:getParameter"}
    assert names == {powertools_layer_parameter()}
    assert powertools_layer_parameter() == "/aws/service/powertools/python/x86_64/python3.12/3.37.0"


def test_state_machine_definition_as_deployed(run) -> None:
    machine = run.one("aws:sfn/stateMachine:StateMachine", "workflow-state-machine").inputs
    arns = {
        step: run.named(f"functions-{step.replace('_', '-')}").outputs["arn"]
        for step in WORKFLOW_FUNCTIONS
    }
    expected = build_definition(
        arns,
        review_topic_arn=run.outputs["reviewTopicArn"],
        review_queue_url=run.outputs["reviewQueueUrl"],
        # Express workflows cannot wait for a task token: dev queues the case and ends.
        wait_for_review=run.stack == "prod",
        routes={"bicycle": "nearby", "motorcycle": "distant"},
    )
    assert json.loads(machine["definition"]) == expected
    assert machine["type"] == {"dev": "EXPRESS", "prod": "STANDARD"}[run.stack]
    assert machine["tracingConfiguration"] == {"enabled": True}
    logging = machine["loggingConfiguration"]
    assert logging["level"] == "ALL" and logging["includeExecutionData"] is False
    log_group = run.named("workflow-logs")
    assert logging["logDestination"] == log_group.outputs["arn"] + ":*"


def test_s3_upload_under_intake_starts_the_workflow(run) -> None:
    bucket = run.outputs["bucket"]
    rule = run.named("workflow-intake-rule").inputs
    assert json.loads(rule["eventPattern"]) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": "intake/"}]}},
    }
    target = run.named("workflow-intake-target").inputs
    assert target["arn"] == run.outputs["stateMachineArn"]
    assert target["roleArn"] == run.named("workflow-events-role").outputs["arn"]
    transformer = target["inputTransformer"]
    # Render an S3 event the way EventBridge does (unquoted placeholders get JSON values).
    s3_event = {"detail": {"bucket": {"name": bucket},
                           "object": {"key": "intake/bicycle_s_000513.png"}}}
    rendered = transformer["inputTemplate"]
    for placeholder, path in transformer["inputPaths"].items():
        value = s3_event
        for part in path.removeprefix("$.").split("."):
            value = value[part]
        rendered = rendered.replace(f"<{placeholder}>", json.dumps(value))
    assert json.loads(rendered) == {"s3_bucket": bucket, "s3_key": "intake/bicycle_s_000513.png"}


def test_alarms(run) -> None:
    topic = run.outputs["alarmTopicArn"]
    alarms = {
        r.name: r.inputs
        for r in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if not r.name.startswith("alarms-drift-")  # tests/infra/test_drift_monitor.py
    }
    assert set(alarms) >= {"alarms-endpoint-5xx", "alarms-endpoint-latency-p99",
                           "alarms-workflow-failed", "alarms-low-confidence-rate"}
    assert all(a["alarmActions"] == [topic] for a in alarms.values())
    five = alarms["alarms-endpoint-5xx"]
    assert (five["metricName"], five["threshold"]) == ("Invocation5XXErrors", 0)
    assert five["dimensions"] == {
        "EndpointName": f"scones-{run.stack}", "VariantName": "AllTraffic"
    }
    latency = alarms["alarms-endpoint-latency-p99"]
    assert (latency["extendedStatistic"], latency["threshold"]) == ("p99", 500_000)
    failed = alarms["alarms-workflow-failed"]
    assert failed["dimensions"] == {"StateMachineArn": run.outputs["stateMachineArn"]}
    low = alarms["alarms-low-confidence-rate"]
    assert (low["namespace"], low["metricName"], low["statistic"]) == (
        "SconesUnlimited/Inference", "LowConfidence", "Average")
    assert low["threshold"] == 0.6
    assert run.one("aws:sns/topic:Topic", "alarms-topic").inputs["kmsMasterKeyId"]
    body = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    status = next(w for w in body["widgets"] if w["type"] == "alarm")
    arns = sorted(r.outputs["arn"] for r in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
    assert status["properties"]["alarms"] == arns
    assert all(w["x"] + w["width"] <= 24 for w in body["widgets"])


def test_prod_alarm_email(prod, dev) -> None:
    sub = prod.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert (sub["protocol"], sub["endpoint"]) == ("email", "routing-ops@example.com")
    assert sub["topic"] == prod.outputs["alarmTopicArn"]
    assert not dev.of_type("aws:sns/topicSubscription:TopicSubscription")


def test_every_alarm_and_graph_the_components_expose_is_on_the_dashboard(dev) -> None:
    body = json.loads(dev.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    exposed = [c for c in dev.components.values() if hasattr(c, "dashboard_widgets")]
    assert {type(c).__name__ for c in exposed} == {
        "ModelEndpoint", "InferenceFunctions", "InferenceWorkflow", "DriftMonitor", "SafeMode"
    }
    review = dev.components["workflow"].review
    widgets = sum(len(c.dashboard_widgets) for c in [*exposed, review])
    assert len(body["widgets"]) == 1 + widgets  # the alarm status first
    alarms = [a for c in [*exposed, review] for a in getattr(c, "alarms", [])]
    assert len(alarms) == len(dev.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
def test_train_script_accepts_the_job_hyperparameters(
    prod, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The training toolkit passes non-sagemaker_ hyperparameters as `--name value` arguments
    and the channels / model dir as SM_ environment variables."""
    from training.train import parse_args

    for var, channel in (("SM_CHANNEL_TRAIN", "data/train"), ("SM_CHANNEL_TEST", "data/test"),
                         ("SM_MODEL_DIR", "model")):
        monkeypatch.setenv(var, f"/opt/ml/{channel}")

    hp = prod.one("aws:sagemaker/trainingJob:TrainingJob").inputs["hyperParameters"]
    argv = [part for k, v in sorted(hp.items()) if not k.startswith("sagemaker_")
            for part in (f"--{k}", v)]
    args = parse_args(argv)
    assert (args.epochs, args.min_accuracy, args.threshold) == (300, 0.85, 0.93)
    assert args.classes == "bicycle,motorcycle"


def test_deployed_code_holds_the_configured_entry_points(dev, artifacts) -> None:
    """Handlers and sagemaker_program name files that are in the uploaded archives."""
    import tarfile
    import zipfile

    for fn in dev.within("scones:workflow:InferenceFunctions"):
        if fn.type == "aws:lambda/function:Function":
            module, function = fn.inputs["handler"].rsplit(".", 1)
            step = module.split(".")[1]  # lambdas.<step>.handler: the zip of that step
            with zipfile.ZipFile(artifacts.lambda_zips[step]) as bundle:
                path = module.replace(".", "/") + ".py"
                assert path in bundle.namelist(), path
                assert f"def {function}(" in bundle.read(path).decode()
    with tarfile.open(artifacts.source_bundle) as source:
        assert "train.py" in source.getnames()
        assert "training/train.py" in source.getnames()
