"""The resource graph of both stacks: every component and the children it owns."""

from __future__ import annotations

from collections import Counter

import pytest

COMPONENT_CHILDREN = {
    "scones:security:EncryptionKey": {"aws:kms/key:Key": 1, "aws:kms/alias:Alias": 1},
    "scones:data:DataStaging": {
        "aws:s3/bucket:Bucket": 1,
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": 1,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
        "aws:s3/bucketVersioning:BucketVersioning": 1,
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 1,
        "aws:s3/bucketPolicy:BucketPolicy": 1,
        "aws:s3/bucketNotification:BucketNotification": 1,
        "aws:s3/bucketObjectv2:BucketObjectv2": 3,
    },
    "scones:training:ModelTraining": {
        "aws:s3/bucketObjectv2:BucketObjectv2": 1,
        "aws:iam/role:Role": 1,
        "aws:iam/rolePolicy:RolePolicy": 1,
        "aws:sagemaker/trainingJob:TrainingJob": 1,
        "aws:sagemaker/modelPackageGroup:ModelPackageGroup": 1,
        "pulumi-python:dynamic:Resource": 1,
    },
    "scones:workflow:InferenceFunctions": {
        "aws:sns/topic:Topic": 1,
        "aws:cloudwatch/logGroup:LogGroup": 4,
        "aws:iam/role:Role": 4,
        "aws:iam/rolePolicy:RolePolicy": 4,
        "aws:lambda/function:Function": 4,
    },
    "scones:workflow:InferenceWorkflow": {
        "aws:sns/topic:Topic": 1,
        "aws:cloudwatch/logGroup:LogGroup": 1,
        "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": 1,
        "aws:iam/role:Role": 2,
        "aws:iam/rolePolicy:RolePolicy": 2,
        "aws:sfn/stateMachine:StateMachine": 1,
        "aws:cloudwatch/eventRule:EventRule": 1,
        "aws:cloudwatch/eventTarget:EventTarget": 1,
        "scones:review:ReviewQueue": 1,
    },
    "scones:review:ReviewQueue": {
        "aws:sqs/queue:Queue": 2,
        "aws:iam/role:Role": 1,
        "aws:iam/rolePolicy:RolePolicy": 1,
    },
    "scones:workflow:BatchWorkflow": {
        "aws:cloudwatch/logGroup:LogGroup": 2,
        "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": 1,
        "aws:iam/role:Role": 2,
        "aws:iam/rolePolicy:RolePolicy": 2,
        "aws:lambda/function:Function": 1,
        "aws:sfn/stateMachine:StateMachine": 1,
    },
    "scones:monitoring:DriftMonitor": {
        "aws:cloudwatch/logGroup:LogGroup": 1,
        "aws:iam/role:Role": 1,
        "aws:iam/rolePolicy:RolePolicy": 1,
        "aws:lambda/layerVersion:LayerVersion": 1,
        "aws:lambda/function:Function": 1,
        "aws:cloudwatch/eventRule:EventRule": 1,
        "aws:cloudwatch/eventTarget:EventTarget": 1,
        "aws:lambda/permission:Permission": 1,
    },
    "scones:monitoring:SafeMode": {
        "aws:ssm/parameter:Parameter": 1,
        "aws:cloudwatch/logGroup:LogGroup": 1,
        "aws:iam/role:Role": 1,
        "aws:iam/rolePolicy:RolePolicy": 1,
        "aws:lambda/function:Function": 1,
        "aws:cloudwatch/eventRule:EventRule": 1,
        "aws:cloudwatch/eventTarget:EventTarget": 1,
        "aws:lambda/permission:Permission": 1,
    },
}
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ENDPOINT_COMMON = {
    ALARM: 2,  # 5xx and p99 latency: they also drive the blue/green rollback
    "aws:cloudwatch/logGroup:LogGroup": 1,
    "aws:iam/role:Role": 1,
    "aws:iam/rolePolicy:RolePolicy": 1,
    "aws:sagemaker/model:Model": 1,
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": 1,
    "aws:sagemaker/endpoint:Endpoint": 1,
}


def children(run, component: str) -> Counter:
    return Counter(r.type for r in run.resources if r.parent_types[-1:] == [component])


def alarms_owned(run) -> Counter:
    """Each component's alarms on what it runs; the drift monitor's: confidence PSI, input PSI,
    the low-confidence increase, and one per class."""
    return Counter({
        "scones:workflow:InferenceFunctions": 1,
        "scones:workflow:InferenceWorkflow": 1,
        "scones:review:ReviewQueue": 2,
        "scones:monitoring:DriftMonitor": 3 + len(run.outputs["classes"]),
    })


@pytest.mark.parametrize("stack", ["dev", "prod", "roadway"])
def test_components_own_their_resources(stack: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(stack)
    top = {r.type for r in run.resources if r.parent_types == ["pulumi:pulumi:Stack"]}
    nested = {"scones:review:ReviewQueue"}  # a child of InferenceWorkflow
    assert top == {
        *COMPONENT_CHILDREN.keys() - nested,
        "scones:serving:ModelEndpoint",
        "scones:monitoring:Alarms",
        "scones:monitoring:Dashboard",
    }
    alarms = alarms_owned(run)
    for component, expected in COMPONENT_CHILDREN.items():
        owned = Counter(expected) + Counter({ALARM: alarms[component]})
        assert children(run, component) == owned, component
    # No resource floats outside a component.
    assert all(r.parent_types for r in run.resources)


def test_dev_endpoint_is_serverless_without_autoscaling(dev) -> None:
    assert children(dev, "scones:serving:ModelEndpoint") == Counter(ENDPOINT_COMMON)


def test_prod_endpoint_autoscales(prod) -> None:
    assert children(prod, "scones:serving:ModelEndpoint") == Counter(
        {
            **ENDPOINT_COMMON,
            "aws:appautoscaling/target:Target": 1,
            "aws:appautoscaling/policy:Policy": 1,
        }
    )


def test_alarm_topic_and_dashboard_components(dev, prod) -> None:
    topic = {"aws:sns/topic:Topic": 1}
    assert children(dev, "scones:monitoring:Alarms") == Counter(topic)
    assert children(prod, "scones:monitoring:Alarms") == Counter(
        {**topic, "aws:sns/topicSubscription:TopicSubscription": 1}
    )
    for run in (dev, prod):
        assert children(run, "scones:monitoring:Dashboard") == Counter(
            {"aws:cloudwatch/dashboard:Dashboard": 1}
        )
        assert len(run.of_type(ALARM)) == 4 + 5 + 2


@pytest.mark.parametrize("stack", ["dev", "prod", "roadway"])
def test_alarms_and_dashboard_keep_their_urns_by_alias(
    stack: str, request: pytest.FixtureRequest
) -> None:
    """The alarms and the dashboard were children of the Alarms component: each keeps its name
    and names its URN there as an alias, so `pulumi up` on a stack deployed before moves it to
    its new parent instead of replacing it (Pulumi docs, "aliases":
    https://www.pulumi.com/docs/iac/concepts/options/aliases/)."""
    run = request.getfixturevalue(stack)
    alarm_topic = run.named("alarms-topic").urn.rsplit("$", 1)[0]  # ...$scones:monitoring:Alarms
    moved = [*run.of_type(ALARM), run.one("aws:cloudwatch/dashboard:Dashboard")]
    for resource in moved:
        assert resource.name.startswith("alarms-"), resource.name
        former = f"{alarm_topic}${resource.type}::{resource.name}"
        assert resource.options.aliases == (former,), resource.name
        assert resource.urn != former  # it did move
    # Nothing else names the Alarms component as its former parent. (pulumi-aws gives some
    # resources aliases of its own, e.g. s3 Bucket from BucketV2.)
    others = [r for r in run.resources if not any(r is m for m in moved)]
    assert [
        r.name for r in others if any(a.startswith(f"{alarm_topic}$") for a in r.options.aliases)
    ] == []


@pytest.mark.parametrize("stack", ["dev", "prod", "roadway"])
def test_stack_outputs(stack: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(stack)
    out = run.outputs
    bucket = run.one("aws:s3/bucket:Bucket").outputs["bucket"]
    assert out["bucket"] == bucket
    assert out["endpointName"] == f"scones-{stack}"
    machines = "aws:sfn/stateMachine:StateMachine"
    assert out["stateMachineArn"] == run.one(machines, "workflow-state-machine").outputs["arn"]
    assert out["batchStateMachineArn"] == run.one(machines, "batch-state-machine").outputs["arn"]
    assert out["alarmTopicArn"] == run.named("alarms-topic").outputs["arn"]
    assert out["dashboardUrl"].endswith(f"#dashboards:name=scones-{stack}")
    assert out["modelDataUrl"] == (
        f"s3://{bucket}/models/{out['trainingJobName']}/output/model.tar.gz"
    )
    assert out["intakeUri"] == f"s3://{bucket}/intake/"


def test_main_program_exports_the_stack_outputs(
    pulumi_mocks, artifacts, monkeypatch: pytest.MonkeyPatch, repo_root
) -> None:
    """__main__.py as `pulumi up` runs it: config -> settings -> deploy -> exports."""
    import runpy

    import pulumi
    from pulumi.runtime.config import set_all_config
    from pulumi_support import stack_config

    import components.model_training
    import components.stack

    exported: dict = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exported.__setitem__(name, value))
    # The session's artifacts stand in for build/pulumi (same builders, built once).
    monkeypatch.setattr(components.stack, "build_artifacts", lambda settings: artifacts)
    # No AWS here: no training job of that name exists.
    described: list[str] = []
    monkeypatch.setattr(
        components.model_training,
        "sagemaker_job_describer",
        lambda region: lambda name: described.append(name),
    )
    set_all_config(stack_config("dev"))

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(repo_root / "__main__.py"), run_name="__main__")

    program()
    assert {"bucket", "endpointName", "stateMachineArn", "alarmTopicArn", "dashboardUrl"} <= set(
        exported
    )
    assert not any(name.startswith("_") for name in exported)
    # The preview checked the name of the job it would create (a failed job's name is taken).
    assert described == [exported["trainingJobName"]]
