"""DriftMonitor under Pulumi mocks: scoped role, schedule, layer, and the drift alarms."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest
from pulumi_support import LAYER_ARN, REGION

from components.alarms import AlarmTopic, AlarmTopicArgs
from components.context import StackContext
from components.dashboard import Dashboard, DashboardArgs
from components.drift_monitor import (
    DriftMonitor,
    DriftMonitorArgs,
    s3_object_arn,
    schedule_expression,
)
from components.inference_functions import powertools_layer_arn
from components.settings import Settings
from lambdas.detect_drift.rules import ENVIRONMENT, DriftThresholds, ThresholdError
from policy.rules import policy_problems

BUCKET_ARN = "arn:aws:s3:::scones-data"
MODEL_URI = "s3://scones-data/models/job-1/output/model.tar.gz"
KEY_ARN = f"arn:aws:kms:{REGION}:123456789012:key/k"


@pytest.fixture(scope="module")
def zips(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("drift-zips")
    (d / "fn.zip").write_bytes(b"function")
    (d / "layer.zip").write_bytes(b"layer")
    return d / "fn.zip", d / "layer.zip"


def _deploy(pulumi_mocks, zips, thresholds: DriftThresholds | None = None, schedule: int = 15):
    settings = Settings()
    pulumi_mocks.records.clear()
    holder = {}

    @pulumi.runtime.test
    def program():
        context = StackContext(
            stack="test", region=REGION, account_id="123456789012", kms_key_arn=KEY_ARN,
            bucket_name="scones-data", bucket_arn=BUCKET_ARN,
            log_retention_days=settings.log_retention_days,
            # The SSM lookup the stack makes (answered by the mocks).
            powertools_layer_arn=powertools_layer_arn(REGION),
        )
        alarms = AlarmTopic("alarms", AlarmTopicArgs(context=context))
        monitor = DriftMonitor("drift", DriftMonitorArgs(
            context=context, function_zip=zips[0], layer_zip=zips[1],
            endpoint_name="scones-test", variant_name="AllTraffic",
            capture_prefix="capture", baseline_s3_uri=MODEL_URI, classes=settings.classes,
            confidence_threshold=settings.confidence_threshold,
            thresholds=thresholds or settings.drift_thresholds(),
            schedule_minutes=schedule, window_minutes=settings.drift_window_minutes,
            alarm_topic=alarms,
        ))
        Dashboard("dashboard", DashboardArgs(
            context=context, alarm_topic=alarms, alarms=monitor.alarms,
            widgets=monitor.dashboard_widgets,
        ))
        holder["monitor"] = monitor
        return alarms.topic.arn.apply(lambda arn: holder.__setitem__("topic", arn))

    program()
    return {r.name: r for r in pulumi_mocks.records}, holder


def test_function_schedule_and_layers(pulumi_mocks, zips) -> None:
    res, _ = _deploy(pulumi_mocks, zips)
    fn = res["drift-function"].inputs
    assert fn["runtime"] == "python3.12"
    assert fn["handler"] == "lambdas.detect_drift.handler.lambda_handler"
    layer_arn = res["drift-numpy-pillow"].outputs["arn"]
    assert fn["layers"] == [LAYER_ARN, layer_arn]
    assert res["drift-numpy-pillow"].inputs["compatibleRuntimes"] == ["python3.12"]
    env = fn["environment"]["variables"]
    assert env["CAPTURE_S3_URI"] == "s3://scones-data/capture"
    assert env["REPORT_S3_URI"] == "s3://scones-data/drift-reports"
    assert env["BASELINE_S3_URI"] == MODEL_URI
    assert env["ENDPOINT_NAME"] == "scones-test"
    assert env["STACK_NAME"] == "test"
    assert env["WINDOW_MINUTES"] == "60"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "SconesUnlimited/Inference"
    # the Lambda's verdict uses exactly the alarms' thresholds
    from lambdas.detect_drift.settings import thresholds_from_env

    assert thresholds_from_env(env) == Settings().drift_thresholds()
    # ... because the component writes exactly the variables the thresholds' own writer does
    drift_variables = {k: v for k, v in env.items() if k in ENVIRONMENT.values()}
    assert drift_variables == Settings().drift_thresholds().environment()
    assert fn["tracingConfig"] == {"mode": "Active"}
    assert res["drift-logs"].inputs["retentionInDays"] == 30
    assert fn["loggingConfig"]["logGroup"] == res["drift-logs"].inputs["name"]
    assert res["drift-schedule"].inputs["scheduleExpression"] == "rate(15 minutes)"
    target = res["drift-target"].inputs
    assert target["arn"] == res["drift-function"].outputs["arn"]
    perm = res["drift-invoke"].inputs
    assert perm["principal"] == "events.amazonaws.com"
    assert perm["sourceArn"] == res["drift-schedule"].outputs["arn"]


def test_role_reads_only_capture_and_model_and_writes_only_reports(pulumi_mocks, zips) -> None:
    res, _ = _deploy(pulumi_mocks, zips)
    policy = json.loads(res["drift-policy"].inputs["policy"])
    assert policy_problems(policy) == []
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["ListCapturePrefixOnly"]["Resource"] == [BUCKET_ARN]
    assert by_sid["ListCapturePrefixOnly"]["Condition"] == {
        "StringLike": {"s3:prefix": ["capture/scones-test/*"]}
    }
    assert by_sid["ReadCapturedTraffic"]["Resource"] == [f"{BUCKET_ARN}/capture/scones-test/*"]
    assert by_sid["ReadModelBaseline"]["Resource"] == [
        "arn:aws:s3:::scones-data/models/job-1/output/model.tar.gz"
    ]
    assert by_sid["WriteDriftReports"]["Action"] == ["s3:PutObject"]
    assert by_sid["WriteDriftReports"]["Resource"] == [f"{BUCKET_ARN}/drift-reports/*"]
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {
        "s3:ListBucket", "s3:GetObject", "s3:PutObject", "kms:Decrypt", "kms:GenerateDataKey",
        "logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    writes = [s for s in policy["Statement"] if "s3:PutObject" in s["Action"]]
    assert len(writes) == 1
    trust = json.loads(res["drift-role"].inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_drift_alarms_notify_and_reach_the_dashboard(pulumi_mocks, zips) -> None:
    res, holder = _deploy(pulumi_mocks, zips)
    topic = holder["topic"]
    alarms = {n: r.inputs for n, r in res.items() if n.startswith("alarms-drift-")}
    assert set(alarms) == {
        "alarms-drift-confidence-psi", "alarms-drift-input-psi",
        "alarms-drift-low-confidence-rate", "alarms-drift-class-share-bicycle",
        "alarms-drift-class-share-motorcycle",
    }
    for a in alarms.values():
        assert a["alarmActions"] == [topic] and a["okActions"] == [topic]
        assert a["comparisonOperator"] == "GreaterThanThreshold"
        assert a["treatMissingData"] == "notBreaching"
    psi = alarms["alarms-drift-input-psi"]
    assert psi["namespace"] == "SconesUnlimited/Inference"
    assert psi["metricName"] == "InputPSI"
    assert psi["dimensions"] == {"Stack": "test", "Endpoint": "scones-test"}
    assert psi["period"] == 900 and psi["statistic"] == "Maximum"
    assert psi["threshold"] == 0.25
    assert alarms["alarms-drift-confidence-psi"]["threshold"] == 0.4
    low = alarms["alarms-drift-low-confidence-rate"]
    assert low["threshold"] == 0.2
    lq = {q["id"]: q for q in low["metricQueries"]}
    assert lq["increase"]["expression"] == "rate - base"
    assert lq["rate"]["metric"]["metricName"] == "LowConfidenceRate"
    assert lq["base"]["metric"]["metricName"] == "BaselineLowConfidenceRate"
    assert lq["base"]["metric"]["dimensions"] == {"Stack": "test", "Endpoint": "scones-test"}
    share = alarms["alarms-drift-class-share-bicycle"]
    assert share["threshold"] == 0.25
    queries = {q["id"]: q for q in share["metricQueries"]}
    assert queries["deviation"]["expression"] == "ABS(share - 0.5)"
    assert queries["share"]["metric"]["dimensions"] == {
        "Stack": "test", "Endpoint": "scones-test", "Class": "bicycle"
    }
    body = json.loads(res["alarms-dashboard"].inputs["dashboardBody"])
    titles = [w["properties"].get("title") for w in body["widgets"]]
    assert "Drift: share of each class" in titles
    assert "Drift: PSI per input statistic" in titles
    status = next(w for w in body["widgets"] if w["type"] == "alarm")
    drift_arns = {res[n].outputs["arn"] for n in alarms}
    assert drift_arns <= set(status["properties"]["alarms"])


def test_configured_mix_and_schedule(pulumi_mocks, zips) -> None:
    thresholds = DriftThresholds(expected_class_share={"bicycle": 0.7, "motorcycle": 0.3})
    res, _ = _deploy(pulumi_mocks, zips, thresholds, schedule=1)
    assert res["drift-schedule"].inputs["scheduleExpression"] == "rate(1 minute)"
    queries = res["alarms-drift-class-share-motorcycle"].inputs["metricQueries"]
    assert next(q for q in queries if q["id"] == "deviation")["expression"] == "ABS(share - 0.3)"
    env = res["drift-function"].inputs["environment"]["variables"]
    assert json.loads(env["EXPECTED_CLASS_SHARE"]) == {"bicycle": 0.7, "motorcycle": 0.3}
    assert env["EXPECTED_CLASS_SHARE"] == thresholds.environment()["EXPECTED_CLASS_SHARE"]


def test_helpers_name_bad_values() -> None:
    assert schedule_expression(30) == "rate(30 minutes)"
    with pytest.raises(ValueError):
        schedule_expression(0)
    assert s3_object_arn("s3://b/k/x.json") == "arn:aws:s3:::b/k/x.json"
    with pytest.raises(ValueError):
        s3_object_arn("s3://bucket-only")
    with pytest.raises(ThresholdError):
        DriftThresholds(expected_class_share={"bicycle": 0.9, "motorcycle": 0.3})
