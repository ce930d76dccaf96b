"""The per-request safety gate (docs/safety.md): the gate on hand-made images, the filter's
named outcomes and their reasons, the opt-in Accept type served alike in-process, by the local
endpoint and by the SageMaker entry, and the gate's bad inputs named."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import numpy as np
import pytest
from serving_support import encode, make_artifact, random_rgb

from lambdas.classify_image.logic import GATE_CONTENT_TYPE as LAMBDA_GATE_TYPE
from lambdas.classify_image.logic import parse_gated
from lambdas.errors import EndpointError, InvalidEvent, LowConfidence, OutOfDistribution
from lambdas.filter_inferences.logic import decide
from lambdas.review_reasons import REVIEW_METRIC, ReviewReason
from training import inference, sagemaker_entry
from training.cifar import load_cifar
from training.errors import ModelArtifactError
from training.gate import (
    FEATURE_DISTANCE,
    GATE_CONTENT_TYPE,
    GATE_FILE,
    INPUT_QUALITY,
    Gate,
    GateError,
    check,
    fit_gate,
    parse_gate,
)

CLASSES = ("bicycle", "motorcycle")


@pytest.fixture(scope="module")
def photos(dev_archive: Path):
    return load_cifar(dev_archive, list(CLASSES))


@pytest.fixture(scope="module")
def gate(photos) -> Gate:
    """A gate fitted as training fits it, on the dev archive's photos and stand-in features."""
    rng = np.random.default_rng(0)
    labels = photos.train.labels
    feats = rng.normal(size=(len(labels), 8)) + labels[:, None] * 3.0
    val = rng.normal(size=(100, 8))
    return fit_gate(photos.train.images, feats, labels, val, len(CLASSES))


def _centre(gate: Gate) -> np.ndarray:
    return gate.means[0]


def _kinds(verdict: dict) -> set[str]:
    return {f["kind"] for f in verdict["failed"]}


# --- the gate on hand-made images ----------------------------------------------------------


def test_black_image_fails_input_quality_as_too_dark(gate: Gate) -> None:
    verdict = check(np.zeros((32, 32, 3), np.uint8), _centre(gate), gate)
    assert verdict["in_distribution"] is False
    assert _kinds(verdict) == {INPUT_QUALITY}
    assert any("too dark" in f["detail"] for f in verdict["failed"])


def test_night_photos_fail_as_underexposed_even_where_their_mean_brightness_passes(
    gate: Gate, photos
) -> None:
    # x0.35 (the night shots): their mean brightness often stays within the training
    # range, but no pixel is left as bright as a daylight photo's brightest 1 %.
    night = (photos.test.images.astype(np.float64) * 0.35).round().astype(np.uint8)
    verdicts = [check(img, _centre(gate), gate) for img in night]
    lo_brightness = gate.ranges["brightness"][0]
    passes_brightness = [v["scores"]["brightness"] >= lo_brightness for v in verdicts]
    assert np.mean(passes_brightness) > 0.5
    assert all(
        any(f["check"] == "highlights" and "underexposed" in f["detail"] for f in v["failed"])
        for v in verdicts
    )


def test_a_grey_photo_goes_to_review_as_colourless(gate: Gate, photos) -> None:
    colour = photos.test.images[0]
    grey = np.repeat(
        (colour.astype(np.float64) @ [0.299, 0.587, 0.114]).round().astype(np.uint8)[..., None],
        3, axis=2,
    )
    assert gate.ranges["saturation"][0] > 0  # although grey photos are in the training set
    verdict = check(grey, _centre(gate), gate)
    assert [f["check"] for f in verdict["failed"]] == ["saturation"]
    assert "grey-scale" in verdict["failed"][0]["detail"]
    assert "saturation" not in {f["check"] for f in check(colour, _centre(gate), gate)["failed"]}


def test_random_noise_fails_input_quality_as_noisy(gate: Gate) -> None:
    verdict = check(random_rgb(seed=3), _centre(gate), gate)
    assert verdict["in_distribution"] is False
    assert any("noisy" in f["detail"] for f in verdict["failed"])


def test_clean_test_photos_pass_input_quality(gate: Gate, photos) -> None:
    passed = [
        not _kinds(check(img, _centre(gate), gate)) & {INPUT_QUALITY} for img in photos.test.images
    ]
    # Ranges are the training photos' 0.5 %..99.5 % quantiles of five statistics.
    assert np.mean(passed) >= 0.9


def test_rotated_photo_is_judged_like_the_upright_one_by_input_quality(gate: Gate, photos) -> None:
    # Sideways photos are not a quality problem: the network (trained with outlier exposure)
    # answers for them; the statistics the gate checks do not change with a quarter turn.
    for img in photos.test.images[:20]:
        upright = check(img, _centre(gate), gate)
        sideways = check(np.rot90(img).copy(), _centre(gate), gate)
        for name in ("brightness", "contrast", "saturation", "sharpness", "highlights"):
            assert sideways["scores"][name] == pytest.approx(upright["scores"][name], abs=1e-6)


def test_features_far_from_every_class_fail_feature_distance(gate: Gate, photos) -> None:
    far = _centre(gate) + 100.0
    verdict = check(photos.test.images[0], far, gate)
    assert FEATURE_DISTANCE in _kinds(verdict)
    assert verdict["scores"][FEATURE_DISTANCE] > gate.max_distance
    near = check(photos.test.images[0], _centre(gate), gate)
    assert FEATURE_DISTANCE not in _kinds(near)


def test_gate_is_class_agnostic(photos) -> None:
    rng = np.random.default_rng(1)
    labels = np.arange(600) % 5
    feats = rng.normal(size=(600, 6)) + labels[:, None]
    gate = fit_gate(photos.train.images, feats, labels, rng.normal(size=(50, 6)), 5)
    assert gate.means.shape == (5, 6)
    assert parse_gate(json.loads(json.dumps(gate.to_json())), 5).max_distance == gate.max_distance


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("version"), "version"),
        (lambda d: d[INPUT_QUALITY].update(glow={"low": 0, "high": 1}), "glow"),
        (lambda d: d[INPUT_QUALITY]["brightness"].update(low=2.0), "brightness"),
        (lambda d: d[FEATURE_DISTANCE].update(means=[[0.0] * 8]), "means"),
        (lambda d: d[FEATURE_DISTANCE].update(whitening=[[1.0]]), "whitening"),
        (lambda d: d[FEATURE_DISTANCE].update(max_distance=-1), "max_distance"),
    ],
)
def test_malformed_gate_json_names_the_field(gate: Gate, mutate, field: str) -> None:
    data = json.loads(json.dumps(gate.to_json()))
    mutate(data)
    with pytest.raises(GateError, match=field):
        parse_gate(data, len(CLASSES))


# --- the filter's decision -----------------------------------------------------------------


def _failed(kind: str, detail: str) -> dict:
    return {"in_distribution": False, "failed": [{"check": "x", "kind": kind, "detail": detail}]}


def test_failed_input_quality_is_out_of_distribution_with_its_reason() -> None:
    with pytest.raises(OutOfDistribution) as caught:
        decide([0.99, 0.01], CLASSES, 0.93, _failed(INPUT_QUALITY, "brightness 0.02 (too dark)"))
    assert caught.value.reason == ReviewReason.OUT_OF_DISTRIBUTION
    assert str(caught.value).startswith(
        "out_of_distribution: input quality: brightness 0.02 (too dark)"
    )
    assert "'bicycle'" in str(caught.value)


def test_failed_feature_distance_is_out_of_distribution() -> None:
    with pytest.raises(OutOfDistribution) as caught:
        decide([0.2, 0.8], CLASSES, 0.93, _failed(FEATURE_DISTANCE, "unlike the training photos"))
    assert caught.value.reason == ReviewReason.OUT_OF_DISTRIBUTION
    assert str(caught.value).startswith("out_of_distribution: feature distance: unlike")


def test_gate_outranks_confidence_and_low_confidence_carries_its_reason() -> None:
    with pytest.raises(OutOfDistribution):  # confident, but the gate failed
        decide([1.0, 0.0], CLASSES, 0.5, _failed(INPUT_QUALITY, "flat"))
    passed = {"in_distribution": True, "failed": []}
    with pytest.raises(LowConfidence) as caught:
        decide([0.6, 0.4], CLASSES, 0.93, passed)
    assert caught.value.reason == ReviewReason.LOW_CONFIDENCE
    assert str(caught.value).startswith("low_confidence: ")
    assert decide([0.96, 0.04], CLASSES, 0.93, passed) == ("bicycle", 0.96)


def test_filter_handler_refuses_a_malformed_gate_and_counts_reasons(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_workflow_handlers import Context

    from lambdas.filter_inferences.handler import lambda_handler

    monkeypatch.setenv("CONFIDENCE_THRESHOLD", "0.9")
    # The functions take their task from the environment only (lambdas/config.py).
    monkeypatch.setenv("CLASSES", json.dumps(list(CLASSES)))
    base = {"s3_bucket": "my-bucket", "s3_key": "k.png", "inferences": [0.99, 0.01]}
    with pytest.raises(InvalidEvent, match="gate"):
        lambda_handler({**base, "gate": {"in_distribution": "no"}}, Context())
    capsys.readouterr()
    with pytest.raises(OutOfDistribution):
        lambda_handler({**base, "gate": _failed(INPUT_QUALITY, "too dark")}, Context())
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                 if line.startswith("{") and "_aws" in line]
    review = [d for d in documents if REVIEW_METRIC in d]
    assert review and review[0]["reason"] == "out_of_distribution"
    main = next(d for d in documents if "OutOfDistribution" in d)
    assert main["OutOfDistribution"] in (1.0, [1.0])


def test_classify_parses_the_gate_answer_and_names_a_wrong_shape() -> None:
    body = json.dumps({"probabilities": [0.3, 0.7], "gate": {"in_distribution": True,
                                                             "failed": []}})
    assert parse_gated(body, CLASSES)[0] == [0.3, 0.7]
    for wrong in ("[0.3, 0.7]", '{"probabilities": [0.3, 0.7]}', "nope"):
        with pytest.raises(EndpointError):
            parse_gated(wrong, CLASSES)


# --- serving: the opt-in Accept type -------------------------------------------------------


def test_the_lambda_asks_for_the_type_training_serves() -> None:
    assert LAMBDA_GATE_TYPE == GATE_CONTENT_TYPE


@pytest.fixture(scope="module")
def gated_artifact(tmp_path_factory: pytest.TempPathFactory, photos) -> Path:
    model_dir = make_artifact(tmp_path_factory.mktemp("gated") / "model")
    model = inference.model_fn(str(model_dir))
    batch = photos.train.images[:200]
    feats = inference._forward(batch, model)[1]
    gate = fit_gate(photos.train.images, feats, photos.train.labels[:200], feats[:50], 2)
    (model_dir / GATE_FILE).write_text(json.dumps(gate.to_json()))
    return model_dir


class _Context:
    status: int | None = None

    def set_response_status(self, code: int, phrase: str) -> None:
        self.status = code


def test_gate_type_is_served_identically_in_process_locally_and_by_the_entry(
    gated_artifact: Path,
) -> None:
    from local.endpoint_server import EndpointServer

    model = inference.model_fn(str(gated_artifact))
    body = encode(np.zeros((40, 40, 3), np.uint8))
    reply = inference.respond(model, body, "image/png", GATE_CONTENT_TYPE)
    assert reply.status == 200 and reply.content_type == GATE_CONTENT_TYPE
    answer = json.loads(reply.body)
    assert set(answer) == {"probabilities", "gate"}
    assert answer["gate"]["in_distribution"] is False  # a black image
    assert sum(answer["probabilities"]) == pytest.approx(1.0)
    # The default answer is still the bare list, with the same probabilities.
    default = inference.respond(model, body, "image/png", "application/json")
    assert json.loads(default.body) == answer["probabilities"]

    entry_body, entry_type = sagemaker_entry.transform_fn(
        sagemaker_entry.model_fn(str(gated_artifact)), body, "image/png", GATE_CONTENT_TYPE,
        _Context(),
    )
    assert (entry_body, entry_type) == (reply.body, reply.content_type)

    server = EndpointServer(gated_artifact, "127.0.0.1", 0).start()
    try:
        assert server.wait_loaded(60)
        host, port = server.address
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("POST", "/invocations", body=body,
                     headers={"Content-Type": "image/png", "Accept": GATE_CONTENT_TYPE})
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == GATE_CONTENT_TYPE
        assert response.read().decode() == reply.body
        conn.close()
    finally:
        server.stop()


def test_gate_type_without_gate_json_is_406(tmp_path: Path) -> None:
    model = inference.model_fn(str(make_artifact(tmp_path / "old")))
    reply = inference.respond(model, encode(random_rgb()), "image/png", GATE_CONTENT_TYPE)
    assert reply.status == 406
    assert json.loads(reply.body)["error"] == "NotAcceptable"
    assert GATE_FILE in json.loads(reply.body)["message"]


def test_gate_json_that_does_not_fit_the_network_is_a_named_load_error(
    gated_artifact: Path, tmp_path: Path
) -> None:
    broken = make_artifact(tmp_path / "broken")
    data = json.loads((gated_artifact / GATE_FILE).read_text())
    data[FEATURE_DISTANCE]["means"] = [[0.0] * 3, [0.0] * 3]
    data[FEATURE_DISTANCE]["whitening"] = np.eye(3).tolist()
    (broken / GATE_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelArtifactError, match="features"):
        inference.model_fn(str(broken))
    (broken / GATE_FILE).write_text("{not json")
    with pytest.raises(ModelArtifactError, match=GATE_FILE):
        inference.model_fn(str(broken))


# --- the evaluation sets -------------------------------------------------------------------


def test_evaluation_sets_are_deterministic_and_keep_tuning_apart(dev_archive: Path) -> None:
    from benchmarks.shifted_inputs import KINDS, REPORT_PHOTOS, TUNE_PHOTOS, build_sets

    tune = build_sets("tune", str(dev_archive), CLASSES, per_kind=4)
    again = build_sets("tune", str(dev_archive), CLASSES, per_kind=4)
    report = build_sets("report", str(dev_archive), CLASSES, per_kind=4)
    assert set(tune) == set(KINDS)
    assert all(tune[k].images == again[k].images for k in KINDS)
    assert not set(TUNE_PHOTOS) & set(REPORT_PHOTOS)
    for kind in KINDS:
        assert not set(tune[kind].images) & set(report[kind].images), kind
    assert all(b[:2] == b"\xff\xd8" for b in report["heavy_jpeg"].images)
    assert report["not_vehicle"].labels == [None] * 4
    assert all(label in (0, 1) for label in report["night"].labels)
    with pytest.raises(ValueError, match="part"):
        build_sets("test", str(dev_archive), CLASSES)
