"""Alarm rules (the one definition cloud and local evaluate), EMF publishing, the handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import boto3
import pytest
from drift_support import confident_probs, scene_images
from moto import mock_aws

from lambdas.detect_drift.publish import emit, metric_points
from lambdas.detect_drift.rules import (
    DriftThresholds,
    ThresholdError,
    alarm_rules,
    evaluate,
)


def _metrics(**overrides):
    m = {
        "ConfidencePSI": 0.1,
        "InputPSI": 0.1,
        "LowConfidenceRate": 0.55,
        "BaselineLowConfidenceRate": 0.5,
        "ClassShare": {"bicycle": 0.5, "motorcycle": 0.5},
    }
    m.update(overrides)
    return m


def _firing(metrics, thresholds=None):
    rules = alarm_rules(["bicycle", "motorcycle"], thresholds or DriftThresholds())
    return {s.key for s in evaluate(metrics, rules) if s.firing}


def test_rules_are_stable_and_cover_every_metric() -> None:
    rules = alarm_rules(["bicycle", "motorcycle"], DriftThresholds())
    assert [r.key for r in rules] == [
        "confidence-psi", "input-psi", "low-confidence-rate",
        "class-share-bicycle", "class-share-motorcycle",
    ]
    assert {r.metric for r in rules} == {
        "ConfidencePSI", "InputPSI", "LowConfidenceRate", "ClassShare"
    }


def test_nothing_fires_on_a_calm_window() -> None:
    assert _firing(_metrics()) == set()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"ConfidencePSI": 0.41}, {"confidence-psi"}),
        ({"InputPSI": 3.0}, {"input-psi"}),
        # relative to the baseline's rate: 0.71 - 0.5 > 0.2 fires, 0.69 - 0.5 does not
        ({"LowConfidenceRate": 0.71}, {"low-confidence-rate"}),
        ({"LowConfidenceRate": 0.69}, set()),
        ({"LowConfidenceRate": 0.9, "BaselineLowConfidenceRate": None}, set()),
        # 0.8 vs expected 0.5 is 0.3 > 0.25 for both classes of a two-class model
        ({"ClassShare": {"bicycle": 0.8, "motorcycle": 0.2}},
         {"class-share-bicycle", "class-share-motorcycle"}),
        # exactly at the threshold does not fire (GreaterThanThreshold)
        ({"ConfidencePSI": 0.4, "ClassShare": {"bicycle": 0.75, "motorcycle": 0.25}}, set()),
    ],
)
def test_each_rule_fires_above_its_threshold(overrides, expected) -> None:
    assert _firing(_metrics(**overrides)) == expected


def test_missing_metrics_never_fire() -> None:
    assert _firing({}) == set()
    assert _firing({"ClassShare": {"bicycle": 1.0}}) == {"class-share-bicycle"}


def test_expected_class_share_is_configurable() -> None:
    t = DriftThresholds(expected_class_share={"bicycle": 0.8, "motorcycle": 0.2})
    assert _firing(_metrics(ClassShare={"bicycle": 0.8, "motorcycle": 0.2}), t) == set()
    assert _firing(_metrics(), t) == {"class-share-bicycle", "class-share-motorcycle"}
    with pytest.raises(ThresholdError, match="no value"):
        alarm_rules(["bicycle", "car"], t)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"confidence_psi": 0},
        {"input_psi": float("nan")},
        {"low_confidence_increase": 1.5},
        {"class_share_tolerance": 0},
        {"min_samples": 0},
        {"expected_class_share": {"a": 0.2, "b": 0.2}},
    ],
)
def test_threshold_validation(kwargs) -> None:
    with pytest.raises(ThresholdError):
        DriftThresholds(**kwargs)


def test_thresholds_travel_through_the_environment_unchanged() -> None:
    """environment() is what the component deploys and from_environment() what the detector
    reads: the round trip is the identity, and unset variables keep the defaults."""
    t = DriftThresholds(
        confidence_psi=0.35, input_psi=0.3, low_confidence_increase=0.15,
        class_share_tolerance=0.2, min_samples=40,
        expected_class_share={"bicycle": 0.7, "motorcycle": 0.3},
    )
    assert DriftThresholds.from_environment(t.environment()) == t
    assert "EXPECTED_CLASS_SHARE" not in DriftThresholds().environment()
    assert DriftThresholds.from_environment({}) == DriftThresholds()
    with pytest.raises(ThresholdError, match="min_samples must be a whole number"):
        DriftThresholds.from_environment({"DRIFT_MIN_SAMPLES": "0"})


def _report(status="ok"):
    return {
        "status": status,
        "counts": {"valid": 120, "corrupt": 3},
        "metrics": {
            "LowConfidenceRate": 0.1, "BaselineLowConfidenceRate": 0.08,
            "MeanConfidence": 0.95, "ConfidencePSI": 0.05,
            "InputPSI": 0.4, "ClassShare": {"bicycle": 0.6, "motorcycle": 0.4},
            "InputPSIByStatistic": {"brightness": 0.4, "contrast": 0.1},
        },
    }


def test_metric_points_dimensions() -> None:
    points = metric_points(_report(), "dev", "ep")
    names = [(p.name, tuple(sorted(p.dimensions.items()))) for p in points]
    base = (("Endpoint", "ep"), ("Stack", "dev"))
    assert ("ConfidencePSI", base) in names
    assert ("ClassShare", (("Class", "bicycle"), *base)) in names
    assert ("InputPSI", (*base, ("Statistic", "brightness"))) in names
    assert len(points) == 2 + 5 + 2 + 2


@pytest.mark.parametrize("status", ["no_traffic", "insufficient_data"])
def test_quiet_windows_publish_volume_only(status) -> None:
    points = metric_points(_report(status), "dev", "ep")
    assert [p.name for p in points] == ["WindowRequests", "CorruptCaptureRecords"]


def test_emit_writes_emf_without_service_dimension(capsys, monkeypatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "scones-drift")
    emit(metric_points(_report(), "dev", "ep"), "SconesUnlimited/Inference")
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert len(blobs) == 1 + 2 + 2  # base set, one per class, one per statistic
    for blob in blobs:
        directive = blob["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "SconesUnlimited/Inference"
        dims = directive["Dimensions"][0]
        assert "service" not in dims
        assert {"Stack", "Endpoint"} <= set(dims)
    base = next(b for b in blobs if "ConfidencePSI" in b)
    assert base["ConfidencePSI"] == [0.05]
    assert base["WindowRequests"] == [120.0]


def test_handler_end_to_end(monkeypatch, capfd, baseline, write_capture) -> None:
    env = {
        "CAPTURE_S3_URI": "s3://bkt/capture",
        "REPORT_S3_URI": "s3://bkt/reports",
        "BASELINE_S3_URI": "s3://bkt/model/baseline.json",
        "ENDPOINT_NAME": "ep",
        "STACK_NAME": "dev",
        "WINDOW_MINUTES": "30",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "scones-drift",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        from lambdas.aws import reset_clients

        reset_clients()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bkt")
        s3.put_object(Bucket="bkt", Key="model/baseline.json", Body=json.dumps(baseline))
        tick = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        dark = (scene_images(120, seed=81) // 3).astype("uint8")
        write_capture(s3, "bkt", "capture", "ep", "AllTraffic",
                      list(zip(dark, confident_probs(120, seed=82), strict=True)),
                      tick - timedelta(minutes=20))
        from lambdas.detect_drift.handler import lambda_handler

        context = SimpleNamespace(
            function_name="detect-drift", memory_limit_in_mb=1024, aws_request_id="r-1",
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:detect-drift",
        )
        out = lambda_handler({"time": "2026-03-01T12:00:30Z", "source": "aws.events"}, context)
        reset_clients()
        assert out["status"] == "drift"
        assert out["counts"]["valid"] == 120
        assert out["report"] == "s3://bkt/reports/ep/2026/03/01/120000Z.json"
        stored = json.loads(s3.get_object(Bucket="bkt", Key="reports/ep/2026/03/01/120000Z.json")
                            ["Body"].read())
        assert stored["drift"] is True
    logged = capfd.readouterr().out
    assert '"InputPSI"' in logged and "SconesUnlimited/Inference" in logged
