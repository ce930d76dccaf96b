"""Local mode's drift tools: the traffic scenarios and client, and `python -m local monitor`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import numpy as np
import pytest
from drift_support import capture_key, capture_line, confident_probs, png_bytes, scene_images
from fake_endpoint import FakeEndpoint, error
from moto import mock_aws

from local import monitor
from local.traffic import (
    SCENARIOS,
    EndpointClient,
    TrafficError,
    pattern,
    scenario_sample,
    send,
)
from training.image_stats import batch_statistics

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


# --- traffic -----------------------------------------------------------------------------------


def test_scenarios_shift_the_statistics_they_should() -> None:
    source = scene_images(60, seed=5, size=32)
    clean = batch_statistics(np.stack(scenario_sample("clean", source, 60, seed=1)[0]))

    def stats(name: str) -> dict[str, np.ndarray]:
        return batch_statistics(np.stack(scenario_sample(name, source, 60, seed=1)[0]))

    dark, noise, blur, rot = stats("dark"), stats("noise"), stats("blur"), stats("rotate")
    assert dark["brightness"].mean() == pytest.approx(0.3 * clean["brightness"].mean(), rel=0.05)
    assert noise["sharpness"].mean() > 2 * clean["sharpness"].mean()
    assert blur["sharpness"].mean() < 0.6 * clean["sharpness"].mean()
    # a sideways camera moves the "brighter on top" cue, not the brightness
    assert abs(rot["vertical_balance"]).mean() < 0.5 * abs(clean["vertical_balance"]).mean()
    assert rot["brightness"] == pytest.approx(clean["brightness"])


def test_scenario_sample_is_seeded_and_tracks_sources() -> None:
    source = scene_images(7, seed=6)
    a_imgs, a_idx = scenario_sample("noise", source, 20, seed=3)
    b_imgs, b_idx = scenario_sample("noise", source, 20, seed=3)
    assert np.array_equal(a_idx, b_idx)
    assert all(np.array_equal(x, y) for x, y in zip(a_imgs, b_imgs, strict=True))
    assert sorted(set(a_idx.tolist())) == list(range(7))  # cycles through every source
    clean_imgs, clean_idx = scenario_sample("clean", source, 7, seed=3)
    assert all(np.array_equal(img, source[i]) for img, i in zip(clean_imgs, clean_idx, strict=True))
    pats, idx = scenario_sample("patterns", source, 10, seed=3)
    assert (idx == -1).all()
    assert all(p.shape == (16, 16, 3) and p.dtype == np.uint8 for p in pats)
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario_sample("fog", source, 1)
    assert set(SCENARIOS) == {"clean", "dark", "noise", "blur", "rotate", "patterns"}


def test_patterns_cover_every_family() -> None:
    rng = np.random.default_rng(0)
    imgs = [pattern((32, 32), rng) for _ in range(50)]
    assert len({img.tobytes() for img in imgs}) == 50
    assert {img.shape for img in imgs} == {(32, 32, 3)}


def test_client_posts_png_to_runtime_path_and_names_errors() -> None:
    with FakeEndpoint("ep") as fake:
        client = EndpointClient(fake.url, "ep")
        answers = send(client, scene_images(3, seed=1))
        assert answers == [[0.97, 0.03]] * 3
        assert {r["path"] for r in fake.requests} == {"/endpoints/ep/invocations"}
        assert fake.requests[0]["content_type"] == "image/png"
        assert fake.requests[0]["body"].startswith(b"\x89PNG")
        fake.answers.append(error("ModelError", 424, "boom", 500))
        with pytest.raises(TrafficError, match="424"):
            client.invoke(b"x")
        client.close()
    with pytest.raises(ValueError):
        EndpointClient("ftp://host")


# --- monitor -----------------------------------------------------------------------------------


def _capture_dir(root: Path, images: np.ndarray, probs: np.ndarray, when: datetime) -> None:
    key = capture_key(str(root), "scones-local", "AllTraffic", when)
    lines = [
        capture_line(when + timedelta(seconds=i), png_bytes(img), p)
        for i, (img, p) in enumerate(zip(images, probs, strict=True))
    ]
    lines.insert(3, "{not json")
    path = Path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def files(tmp_path, baseline):
    base = tmp_path / "baseline.json"
    base.write_text(json.dumps(baseline))
    cap = tmp_path / "capture"
    clean, dark = scene_images(120, seed=91), (scene_images(120, seed=92) // 4).astype(np.uint8)
    _capture_dir(cap, clean, confident_probs(120, seed=93), T0)
    _capture_dir(cap, dark, confident_probs(120, seed=94), T0 + timedelta(minutes=5))
    return cap, base


def test_monitor_report_folder_with_plots(files, tmp_path) -> None:
    cap, base = files
    report, page = monitor.run(
        capture=str(cap), baseline_source=str(base), endpoint="scones-local",
        variant="AllTraffic", window_minutes=0, config=None, report_dir=tmp_path / "reports",
        bucket_size=60,
    )
    assert report["status"] == "drift"
    assert report["counts"]["valid"] == 240
    assert report["counts"]["corrupt_by_reason"] == {"invalid_json": 2}
    assert page is not None and page.name == "index.html"
    folder = page.parent
    for name in ("confidence.png", "class_share.png", "psi.png"):
        data = (folder / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
    text = page.read_text()
    assert "WOULD FIRE" in text and "psi.png" in text
    stored = json.loads((folder / "report.json").read_text())
    rows = stored["series"]["buckets"]
    assert [r["count"] for r in rows] == [60, 60, 60, 60]
    # the plots' time series shows the shift: dark buckets have a far larger brightness PSI
    assert rows[-1]["psi"]["brightness"] > 1.0 > rows[0]["psi"]["brightness"]
    summary = monitor.format_summary(report)
    assert "alarms that would fire: input-psi" in summary


def test_monitor_window_and_thresholds_from_config(files, tmp_path) -> None:
    cap, base = files
    config = tmp_path / "Pulumi.dev.yaml"
    config.write_text("config:\n  scones:driftInputPsi: '50'\n  scones:confidenceThreshold: 0.5\n")
    report, page = monitor.run(
        capture=str(cap), baseline_source=str(base), endpoint="scones-local",
        variant="AllTraffic", window_minutes=3, config=config, report_dir=None,
        now=T0 + timedelta(minutes=2),
    )
    assert page is None
    assert report["counts"]["valid"] == 120  # only the clean file's minutes
    assert report["thresholds"]["input_psi"] == 50
    assert report["confidence_threshold"] == 0.5
    assert report["status"] == "ok"
    config.write_text("config:\n  scones:driftInputPsi: nope\n")
    with pytest.raises(monitor.MonitorError, match="scones:driftInputPsi"):
        monitor.run(capture=str(cap), baseline_source=str(base), endpoint="scones-local",
                    variant="AllTraffic", window_minutes=0, config=config, report_dir=None)


def test_monitor_reads_local_s3(baseline, monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="scones-local")
        s3.put_object(Bucket="scones-local", Key="model/baseline.json", Body=json.dumps(baseline))
        lines = [
            capture_line(T0 + timedelta(seconds=i), png_bytes(img), p)
            for i, (img, p) in enumerate(
                zip(scene_images(120, seed=3), confident_probs(120, seed=4), strict=True)
            )
        ]
        s3.put_object(Bucket="scones-local",
                      Key=capture_key("capture", "scones-local", "AllTraffic", T0),
                      Body="\n".join(lines).encode())
        report, _ = monitor.run(
            capture="s3://scones-local/capture", baseline_source="s3://scones-local/model/baseline.json",
            endpoint="scones-local", variant="AllTraffic", window_minutes=0, config=None,
            report_dir=None,
        )
    assert report["status"] == "ok"
    assert report["counts"]["valid"] == 120
    assert [p["name"] for p in report["metric_points"]][:4] == [
        "WindowRequests", "CorruptCaptureRecords", "LowConfidenceRate",
        "BaselineLowConfidenceRate",
    ]


def test_monitor_cli(files, tmp_path, capsys, monkeypatch) -> None:
    cap, base = files
    monkeypatch.setattr(monitor, "STATE_FILE", tmp_path / "none.json")
    args = ["--capture", str(cap), "--baseline", str(base), "--all", "--no-report"]
    assert monitor.main(args) == 0
    assert "status: DRIFT" in capsys.readouterr().out
    assert monitor.main([*args, "--fail-on-drift", "--json"]) == monitor.EXIT_DRIFT
    assert json.loads(capsys.readouterr().out)["drift"] is True
    assert monitor.main(["--capture", str(tmp_path / "nope"), "--baseline", str(base)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert monitor.main(["--capture", str(cap), "--baseline", str(tmp_path / "x.json")]) == 2
    with pytest.raises(SystemExit):
        monitor.main([])  # no local mode state and no flags
