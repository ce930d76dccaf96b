"""The detector over DESIGN-format capture files in moto S3."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import boto3
import numpy as np
import pytest
from drift_support import CLASSES, capture_line, confident_probs, png_bytes, scene_images
from moto import mock_aws

from lambdas.detect_drift import capture
from lambdas.detect_drift.capture import list_capture_keys
from lambdas.detect_drift.detector import (
    BaselineUnavailable,
    InvalidWindow,
    detect,
    load_baseline,
    report_key,
    window_bounds,
    write_report,
)
from lambdas.detect_drift.rules import DriftThresholds
from lambdas.detect_drift.settings import load_settings
from lambdas.errors import ConfigurationError
from lambdas.s3_uri import parse_s3_uri

BUCKET = "scones-data"
ENDPOINT = "scones-ep"
VARIANT = "AllTraffic"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _env(**overrides: str) -> dict[str, str]:
    env = {
        "CAPTURE_S3_URI": f"s3://{BUCKET}/capture",
        "REPORT_S3_URI": f"s3://{BUCKET}/drift-reports",
        "BASELINE_S3_URI": f"s3://{BUCKET}/model/baseline.json",
        "ENDPOINT_NAME": ENDPOINT,
        "STACK_NAME": "test",
    }
    env.update(overrides)
    return env


@pytest.fixture
def s3(baseline):
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="model/baseline.json", Body=json.dumps(baseline))
        yield client


def _records(images, probs):
    return list(zip(images, probs, strict=True))


def test_empty_window_is_no_traffic_not_drift(s3, baseline) -> None:
    settings = load_settings(_env())
    report = detect(s3, settings, T0, T0 + timedelta(hours=1))
    assert report["status"] == "no_traffic"
    assert report["drift"] is False
    assert report["counts"]["files"] == 0
    assert report["metrics"] == {"count": 0}
    assert all(not a["firing"] for a in report["alarms"])


def test_clean_window_is_ok_and_metrics_are_right(s3, baseline, write_capture) -> None:
    images = scene_images(200, seed=11)
    probs = confident_probs(200, seed=12)
    probs[:20] = [0.6, 0.4]  # 10 % low-confidence bicycles
    write_capture(s3, BUCKET, "capture", ENDPOINT, VARIANT, _records(images, probs),
                  T0 + timedelta(minutes=5), per_file=50)
    settings = load_settings(_env())
    report = detect(s3, settings, T0, T0 + timedelta(hours=1))
    assert report["status"] == "ok", report["reasons"]
    m = report["metrics"]
    assert m["count"] == 200
    assert report["counts"] == {
        "files": 4, "lines": 200, "valid": 200, "corrupt": 0, "corrupt_by_reason": {},
        "outside_window": 0, "truncated": False,
    }
    conf = np.round(probs.max(axis=1), 4)
    assert m["LowConfidenceRate"] == pytest.approx(np.mean(conf < 0.93))
    assert m["MeanConfidence"] == pytest.approx(conf.mean())
    bikes = float(np.mean(probs.argmax(axis=1) == 0))
    assert m["ClassShare"] == pytest.approx({"bicycle": bikes, "motorcycle": 1 - bikes})
    assert m["InputPSI"] < 0.25
    assert set(m["InputPSIByStatistic"]) == set(baseline["statistics"])
    assert json.loads(json.dumps(report)) == report


def test_darkened_traffic_is_drift_with_reasons(s3, write_capture) -> None:
    images = (scene_images(100, seed=21) * 0.35).astype(np.uint8)
    write_capture(s3, BUCKET, "capture", ENDPOINT, VARIANT,
                  _records(images, confident_probs(100, seed=22)), T0 + timedelta(minutes=1))
    report = detect(s3, load_settings(_env()), T0, T0 + timedelta(hours=1))
    assert report["status"] == "drift"
    assert report["metrics"]["InputPSIByStatistic"]["brightness"] > 1.0
    assert any(r.startswith("input-psi: InputPSI") for r in report["reasons"])
    firing = {a["key"] for a in report["alarms"] if a["firing"]}
    assert "input-psi" in firing
    assert "confidence-psi" not in firing


def test_low_confidence_alarm_is_relative_to_the_baseline(s3, write_capture) -> None:
    images = scene_images(120, seed=25)
    probs = confident_probs(120, seed=26)
    probs[:36] = [0.7, 0.3]  # 30 % below 0.93, where the baseline had none
    write_capture(s3, BUCKET, "capture", ENDPOINT, VARIANT, _records(images, probs), T0)
    report = detect(s3, load_settings(_env()), T0, T0 + timedelta(hours=1))
    m = report["metrics"]
    assert m["BaselineLowConfidenceRate"] == 0.0
    assert m["LowConfidenceRate"] == pytest.approx(0.3)
    firing = {a["key"] for a in report["alarms"] if a["firing"]}
    assert "low-confidence-rate" in firing and "input-psi" not in firing
    # at a threshold neither the window nor the baseline falls below, nothing increases
    lenient = detect(s3, load_settings(_env(CONFIDENCE_THRESHOLD="0.5")), T0,
                     T0 + timedelta(hours=1))
    assert lenient["metrics"]["LowConfidenceRate"] == 0.0
    assert "low-confidence-rate" not in {a["key"] for a in lenient["alarms"] if a["firing"]}


def test_corrupt_lines_are_counted_never_fatal(s3, write_capture) -> None:
    images = scene_images(40, seed=31)
    probs = confident_probs(40, seed=32)
    when = T0 + timedelta(minutes=2)
    good = capture_line(when, png_bytes(images[0]), probs[0])
    rec = json.loads(good)
    bad_b64 = json.loads(good)
    bad_b64["captureData"]["endpointInput"]["data"] = "@@not base64@@"
    not_image = json.loads(good)
    not_image["captureData"]["endpointInput"]["data"] = base64.b64encode(b"hello").decode()
    bad_out = json.loads(good)
    bad_out["captureData"]["endpointOutput"]["data"] = "[0.5]"
    bad_sum = json.loads(good)
    bad_sum["captureData"]["endpointOutput"]["data"] = "[0.9, 0.9]"
    bad_time = json.loads(good)
    bad_time["eventMetadata"]["inferenceTime"] = "yesterday"
    no_meta = {k: v for k, v in rec.items() if k != "eventMetadata"}
    corrupt = [
        '{"captureData": {"endpointInput"',  # truncated line (a partial write)
        "[1, 2, 3]",
        json.dumps(no_meta),
        json.dumps(bad_b64),
        json.dumps(not_image),
        json.dumps(bad_out),
        json.dumps(bad_sum),
        json.dumps(bad_time),
    ]
    records = _records(images, probs)
    mixed = records[:20] + corrupt + records[20:]
    write_capture(s3, BUCKET, "capture", ENDPOINT, VARIANT, mixed, when, per_file=16)
    # a binary blob that is not even UTF-8 in its own file
    s3.put_object(
        Bucket=BUCKET,
        Key=f"capture/{ENDPOINT}/{VARIANT}/2026/03/01/10/05-00-000-x.jsonl",
        Body=b"\xff\xfe\x00garbage\n",
    )
    settings = load_settings(_env(DRIFT_MIN_SAMPLES="30"))
    report = detect(s3, settings, T0, T0 + timedelta(hours=1))
    assert report["counts"]["valid"] == 40
    assert report["counts"]["corrupt"] == 9
    assert report["counts"]["corrupt_by_reason"] == {
        "bad_encoding": 1, "bad_image": 1, "bad_output": 2, "bad_time": 1,
        "invalid_json": 3, "missing_field": 1,
    }
    assert len(report["corrupt_examples"]) == 9
    assert all(":" in e["source"] for e in report["corrupt_examples"])
    assert report["status"] in ("ok", "drift")


def test_thousands_of_records_across_many_files_and_pages(
    s3, write_capture, monkeypatch
) -> None:
    records = _records(scene_images(3000, seed=41), confident_probs(3000, seed=42))
    # 3000 records, 10 per file: 300 files over 50 minutes across an hour boundary; listing
    # pages of 40 keys make each hour folder span several ListObjectsV2 pages.
    monkeypatch.setattr(capture, "LIST_PAGE_SIZE", 40)
    start = T0 + timedelta(minutes=30)
    write_capture(s3, BUCKET, "capture", ENDPOINT, VARIANT, records, start, per_file=10,
                  spacing=timedelta(seconds=1))
    settings = load_settings(_env())
    window = (T0, T0 + timedelta(hours=2))
    calls = []
    real = s3.list_objects_v2
    monkeypatch.setattr(s3, "list_objects_v2", lambda **kw: calls.append(kw) or real(**kw))
    keys = list_capture_keys(s3, settings.capture, ENDPOINT, VARIANT, *window)
    assert len(keys) == 300
    assert len(calls) > 300 / 40
    assert len({k.split("/")[-2] for k in keys}) == 2  # hours 10 and 11
    report = detect(s3, settings, *window)
    assert report["counts"]["valid"] == 3000
    assert report["counts"]["files"] == 300
    assert report["status"] == "ok"


def test_window_bounds_filter_records_and_files(s3, write_capture) -> None:
    images = scene_images(120, seed=51)
    probs = confident_probs(120, seed=52)
    # one record a minute from 09:00 to 10:59 across many files
    write_capture(s3, BUCKET, "capture", ENDPOINT, VARIANT, _records(images, probs),
                  T0 - timedelta(hours=1), per_file=7, spacing=timedelta(minutes=1))
    settings = load_settings(_env())
    report = detect(s3, settings, T0, T0 + timedelta(minutes=30))
    assert report["counts"]["valid"] == 30
    # files that started up to FILE_SLACK before the window are read, their early records
    # counted as outside the window
    assert 0 < report["counts"]["outside_window"] <= 7
    keys = list_capture_keys(s3, settings.capture, ENDPOINT, VARIANT, T0,
                             T0 + timedelta(minutes=30))
    assert len(keys) < 10


def test_insufficient_data(s3, write_capture) -> None:
    write_capture(s3, BUCKET, "capture", ENDPOINT, VARIANT,
                  _records(scene_images(5, seed=61) // 4, confident_probs(5, seed=62)), T0)
    report = detect(s3, load_settings(_env()), T0, T0 + timedelta(hours=1))
    assert report["status"] == "insufficient_data"
    assert report["drift"] is False
    assert report["metrics"]["count"] == 5


def test_truncates_at_max_records(s3, write_capture) -> None:
    write_capture(s3, BUCKET, "capture", ENDPOINT, VARIANT,
                  _records(scene_images(60, seed=71), confident_probs(60, seed=72)), T0)
    report = detect(s3, load_settings(_env(MAX_RECORDS="40")), T0, T0 + timedelta(hours=1))
    assert report["counts"]["valid"] == 40
    assert report["counts"]["truncated"] is True


def test_report_written_under_report_prefix(s3, baseline) -> None:
    settings = load_settings(_env())
    end = T0 + timedelta(hours=1)
    report = detect(s3, settings, T0, end)
    key = write_report(s3, settings.report, ENDPOINT, report, end)
    assert key == report_key(parse_s3_uri(f"s3://{BUCKET}/drift-reports"), ENDPOINT, end)
    assert key == f"drift-reports/{ENDPOINT}/2026/03/01/110000Z.json"
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert stored["status"] == "no_traffic"


def test_baseline_problems_are_named(s3) -> None:
    with pytest.raises(BaselineUnavailable, match="cannot read"):
        load_baseline(s3, BUCKET, "missing.json")
    s3.put_object(Bucket=BUCKET, Key="bad.json", Body=b'{"version": 1}')
    with pytest.raises(BaselineUnavailable, match="malformed"):
        load_baseline(s3, BUCKET, "bad.json")


def test_baseline_read_from_model_tar(s3, baseline, tmp_path) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("model.pth", b"weights"), ("baseline.json", json.dumps(baseline))):
            raw = data if isinstance(data, bytes) else data.encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    s3.put_object(Bucket=BUCKET, Key="models/job/output/model.tar.gz", Body=buf.getvalue())
    assert load_baseline(s3, BUCKET, "models/job/output/model.tar.gz") == baseline
    s3.put_object(Bucket=BUCKET, Key="broken.tar.gz", Body=b"not gzip")
    with pytest.raises(BaselineUnavailable, match=r"tar\.gz"):
        load_baseline(s3, BUCKET, "broken.tar.gz")


def test_classes_must_match_baseline(s3) -> None:
    settings = load_settings(_env(CLASSES='["cat", "dog"]'))
    with pytest.raises(ConfigurationError, match="differ"):
        detect(s3, settings, T0, T0 + timedelta(hours=1))


def test_window_bounds() -> None:
    now = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)
    assert window_bounds({}, now, 60) == (
        datetime(2026, 3, 1, 11, 34, tzinfo=UTC), datetime(2026, 3, 1, 12, 34, tzinfo=UTC)
    )
    scheduled = {"time": "2026-03-01T09:00:12Z", "source": "aws.events"}
    assert window_bounds(scheduled, now, 15)[1] == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    explicit = {"window_start": "2026-03-01T08:00:00Z", "window_end": "2026-03-01T08:30:00Z"}
    assert window_bounds(explicit, now, 60) == (
        datetime(2026, 3, 1, 8, 0, tzinfo=UTC), datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    )
    with pytest.raises(InvalidWindow):
        window_bounds({"window_start": "2026-03-01T09:00:00Z",
                       "window_end": "2026-03-01T08:00:00Z"}, now, 60)
    with pytest.raises(InvalidWindow):
        window_bounds({"time": 5}, now, 60)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ENDPOINT_NAME": ""}, "ENDPOINT_NAME"),
        ({"CAPTURE_S3_URI": "/tmp/capture"}, "CAPTURE_S3_URI"),
        ({"BASELINE_S3_URI": "s3://bucket"}, "BASELINE_S3_URI"),
        ({"WINDOW_MINUTES": "0"}, "WINDOW_MINUTES"),
        ({"CONFIDENCE_THRESHOLD": "1.5"}, "CONFIDENCE_THRESHOLD"),
        ({"DRIFT_INPUT_PSI": "-1"}, "input_psi"),
        ({"DRIFT_LOW_CONFIDENCE_INCREASE": "abc"}, "DRIFT_LOW_CONFIDENCE_INCREASE"),
        ({"EXPECTED_CLASS_SHARE": '{"bicycle": 0.9, "motorcycle": 0.3}'}, "sum to 1"),
        ({"EXPECTED_CLASS_SHARE": "[1]"}, "EXPECTED_CLASS_SHARE"),
    ],
)
def test_settings_errors_name_the_variable(overrides, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(_env(**overrides))


def test_settings_defaults_match_rules() -> None:
    settings = load_settings(_env())
    assert settings.thresholds == DriftThresholds()
    assert settings.variant == VARIANT
    assert settings.window_minutes == 60
    assert CLASSES  # the fixture's classes are the defaults'
