"""The acceptance scenario on a small scale: real endpoint server, real capture, real detector.

A narrow random-weight model (sharpened with a low temperature so its confidences look like a
trained model's) serves the dev archive's test images. Its baseline is built the way training
builds one (held-out images, the model's probabilities). Clean traffic must raise no alarm and
every shift must raise one within 100 requests, with the default thresholds except the expected
class mix, which is the baseline's (a random-weight model does not predict a 50/50 mix).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from serving_support import make_artifact

from benchmarks.drift_benchmark import acceptance, run_scenarios
from lambdas.detect_drift.rules import DriftThresholds
from training.baseline import build_baseline
from training.cifar import load_cifar

CLASSES = ["bicycle", "motorcycle"]


@pytest.mark.slow
def test_clean_traffic_is_quiet_and_every_shift_alarms(dev_archive, tmp_path) -> None:
    from training.inference import model_fn, predict_fn

    data = load_cifar(dev_archive, CLASSES)
    model_dir = make_artifact(tmp_path / "model", temperature=0.003, seed=3)
    model = model_fn(str(model_dir))
    held_out = data.train.images[:600]
    probs = np.asarray(predict_fn(held_out, model))
    baseline = build_baseline(held_out, probs, CLASSES)
    thresholds = dataclasses.replace(
        DriftThresholds(), expected_class_share=baseline["class_mix"]
    )
    results = run_scenarios(
        model_dir,
        data.test.images,
        data.test.labels,
        baseline=baseline,
        thresholds=thresholds,
        confidence_threshold=0.93,
        clean=300,
        shift=100,
        window=100,
        step=20,
        workdir=tmp_path,
    )
    assert results["capture"]["matches_client_answers_in_order"]
    assert results["capture"]["sent"] == 300 + 5 * 100
    clean = results["clean"]
    assert clean["evaluations"] == 11
    assert clean["evaluations_with_alarm"] == 0, clean["max_value_per_alarm"]
    verdict = acceptance(results)
    assert verdict["alarm_within_limit_for_each_shift"], {
        k: v["requests_to_alarm"] for k, v in results["scenarios"].items()
    }
    for name, scenario in results["scenarios"].items():
        assert scenario["firing_before_shift"] == [], name
        assert "input-psi" in scenario["alarms_with_full_window"], name
