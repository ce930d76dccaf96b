"""training.inference: the SageMaker PyTorch serving hooks on an artifact in the contract layout."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from serving_support import CLASSES, MEAN, SMALL_ARCH, STD, encode, make_artifact, random_rgb

from training import inference
from training.errors import (
    InvalidImage,
    ModelArtifactError,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedContentType,
)
from training.model import build_model
from training.preprocess import to_tensor


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_artifact(tmp_path_factory.mktemp("artifact") / "model", temperature=1.7)


@pytest.fixture(scope="module")
def model(artifact: Path) -> inference.LoadedModel:
    return inference.model_fn(str(artifact))


def test_model_fn_reads_the_meta(model: inference.LoadedModel) -> None:
    assert model.classes == CLASSES
    assert model.input_size == (32, 32)
    assert model.mean == MEAN and model.std == STD
    assert model.temperature == pytest.approx(1.7)
    assert not model.module.training


@pytest.mark.parametrize("content_type", list(inference.CONTENT_TYPES))
def test_every_content_type_gives_probabilities(
    model: inference.LoadedModel, content_type: str
) -> None:
    body = encode(random_rgb(seed=3), "JPEG" if content_type == "image/jpeg" else "PNG")
    data = inference.input_fn(body, content_type)
    payload, response_type = inference.output_fn(inference.predict_fn(data, model), "")
    assert response_type == "application/json"
    probabilities = json.loads(payload)
    assert isinstance(probabilities, list) and len(probabilities) == len(CLASSES)
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-12)


def test_probabilities_are_softmax_of_logits_over_temperature(
    model: inference.LoadedModel, artifact: Path
) -> None:
    rgb = random_rgb(seed=4)
    expected_module = build_model(SMALL_ARCH)
    expected_module.load_state_dict(torch.load(artifact / "model.pth", weights_only=True))
    expected_module.eval()
    with torch.inference_mode():
        logits = expected_module(to_tensor(rgb[None], MEAN, STD)).double()
    expected = torch.softmax(logits / 1.7, dim=1)[0].numpy()
    got = inference.predict_fn(inference.input_fn(encode(rgb), "image/png"), model)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_any_image_size_is_resized(model: inference.LoadedModel) -> None:
    for height, width in [(7, 9), (480, 640), (32, 200)]:
        data = inference.input_fn(encode(random_rgb(height, width)), "image/png")
        assert inference.predict_fn(data, model).shape == (len(CLASSES),)


def test_predict_fn_accepts_a_batch_at_input_size(model: inference.LoadedModel) -> None:
    batch = np.stack([random_rgb(seed=s) for s in range(5)])
    probabilities = inference.predict_fn(batch, model)
    assert probabilities.shape == (5, len(CLASSES))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    single = inference.predict_fn(batch[2], model)
    np.testing.assert_allclose(probabilities[2], single, rtol=1e-5)


def test_content_type_parameters_and_case_are_ignored(model: inference.LoadedModel) -> None:
    data = inference.input_fn(encode(random_rgb()), "Image/PNG; charset=binary")
    assert data.shape == (32, 32, 3)


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "image/gif", "", None])
def test_unsupported_content_type(content_type: str | None) -> None:
    with pytest.raises(UnsupportedContentType) as info:
        inference.input_fn(encode(random_rgb()), content_type)
    assert info.value.status == 415


def test_undecodable_body_is_invalid_image() -> None:
    with pytest.raises(InvalidImage) as info:
        inference.input_fn(b"definitely not a png", "image/png")
    assert info.value.status == 400


def test_text_body_is_invalid_image() -> None:
    with pytest.raises(InvalidImage):
        inference.input_fn("text", "image/png")  # type: ignore[arg-type]


def test_body_over_the_limit_is_payload_too_large() -> None:
    with pytest.raises(PayloadTooLarge) as info:
        inference.input_fn(b"\0" * (inference.MAX_PAYLOAD_BYTES + 1), "image/png")
    assert info.value.status == 413


@pytest.mark.parametrize("accept", [None, "", "*/*", "application/json", "text/html, */*;q=0.1"])
def test_output_fn_answers_json(accept: str | None) -> None:
    body, content_type = inference.output_fn(np.array([0.25, 0.75]), accept)
    assert content_type == "application/json"
    assert json.loads(body) == [0.25, 0.75]


def test_output_fn_refuses_other_accept_types() -> None:
    with pytest.raises(NotAcceptable) as info:
        inference.output_fn(np.array([0.5, 0.5]), "text/csv")
    assert info.value.status == 406


class _TorchServeContext:
    """The parts of TorchServe's request context that sagemaker_inference's Transformer uses."""

    def __init__(self, model_dir: Path, headers: dict[str, str]) -> None:
        self.system_properties = {"model_dir": str(model_dir)}
        headers_ = headers

        class _Processor:
            def get_request_properties(self) -> dict[str, str]:
                return headers_

        self.request_processor = [_Processor()]
        self.status: tuple[int, str] | None = None
        self.content_type: str | None = None

    def set_response_content_type(self, index: int, content_type: str) -> None:
        self.content_type = content_type

    def set_response_status(self, code: int, phrase: str) -> None:
        self.status = (code, phrase)


def test_hooks_under_sagemakers_inference_toolkit(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The toolkit SageMaker's PyTorch image runs: it imports code/inference.py as `inference`."""
    from sagemaker_inference.transformer import Transformer

    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(Path(inference.__file__).read_text())
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "inference.py")
    monkeypatch.delitem(sys.modules, "inference", raising=False)
    transformer = Transformer()
    try:
        ok = _TorchServeContext(artifact, {"Content-Type": "image/png", "Accept": "*/*"})
        (answer,) = transformer.transform([{"body": bytearray(encode(random_rgb()))}], ok)
        assert ok.status is None and ok.content_type == "application/json"
        assert sum(json.loads(answer)) == pytest.approx(1.0)
        assert Path(sys.modules["inference"].__file__).parent == code
        for headers, body, status, name in [
            ({"Content-Type": "text/csv"}, b"1,2", 415, "UnsupportedContentType"),
            ({"content-type": "image/png"}, b"junk", 400, "InvalidImage"),
            ({"Content-Type": "image/png", "Accept": "text/csv"}, encode(random_rgb()), 406,
             "NotAcceptable"),
        ]:  # fmt: skip
            context = _TorchServeContext(artifact, headers)
            (error_body,) = transformer.transform([{"body": bytearray(body)}], context)
            assert context.status == (status, name)
            # The toolkit appends a traceback after the message (our JSON body) on its own line.
            assert json.loads(error_body.split("\n", 1)[0])["error"] == name
    finally:
        module = sys.modules.get("inference")
        if module is not None:
            monkeypatch.setitem(sys.modules, "inference", module)  # removed after the test


def test_toolkit_errors_are_still_the_named_errors() -> None:
    from sagemaker_inference.errors import BaseInferenceToolkitError

    with pytest.raises(InvalidImage) as info:
        inference.input_fn(b"junk", "image/png")
    assert isinstance(info.value, BaseInferenceToolkitError)
    assert info.value.status == info.value.status_code == 400
    assert info.value.name == "InvalidImage"
    assert str(info.value).startswith("data is not an image")


def test_hooks_import_as_top_level_module_like_sagemaker(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SageMaker imports code/inference.py as module `inference` with code/ on sys.path."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(Path(inference.__file__).read_text())
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.delitem(sys.modules, "inference", raising=False)
    module = importlib.import_module("inference")
    monkeypatch.setitem(sys.modules, "inference", module)  # removed again after the test
    assert Path(module.__file__).parent == code
    loaded = module.model_fn(str(artifact))
    body, _ = module.output_fn(
        module.predict_fn(module.input_fn(encode(random_rgb()), "image/png"), loaded),
        "application/json",
    )
    assert sum(json.loads(body)) == pytest.approx(1.0)


def test_missing_meta_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match=r"model_meta\.json"):
        inference.model_fn(str(tmp_path))


def test_missing_weights_is_a_named_error(artifact: Path, tmp_path: Path) -> None:
    (tmp_path / "model_meta.json").write_text((artifact / "model_meta.json").read_text())
    with pytest.raises(ModelArtifactError, match=r"model\.pth"):
        inference.model_fn(str(tmp_path))


def test_weights_of_another_arch_are_refused(artifact: Path, tmp_path: Path) -> None:
    make_artifact(tmp_path, arch={**SMALL_ARCH, "widths": [4, 8]})
    (tmp_path / "model_meta.json").write_text((artifact / "model_meta.json").read_text())
    with pytest.raises(ModelArtifactError, match="does not fit"):
        inference.model_fn(str(tmp_path))


def test_class_list_must_match_the_network(tmp_path: Path) -> None:
    make_artifact(tmp_path)
    meta = json.loads((tmp_path / "model_meta.json").read_text())
    meta["classes"] = ["bicycle", "motorcycle", "tractor"]
    (tmp_path / "model_meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="3 classes"):
        inference.model_fn(str(tmp_path))


@pytest.mark.parametrize(
    ("key", "value"),
    [("temperature", 0), ("input_size", [32]), ("std", [0.5, 0.0, 0.5]), ("classes", ["one"])],
)
def test_bad_meta_values_are_named(tmp_path: Path, key: str, value: object) -> None:
    make_artifact(tmp_path)
    meta = json.loads((tmp_path / "model_meta.json").read_text())
    meta[key] = value
    (tmp_path / "model_meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match=key):
        inference.model_fn(str(tmp_path))


def test_thread_count_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(inference.THREADS_ENV, "1")
        assert inference.configure_threads() == 1
        assert torch.get_num_threads() == 1
        monkeypatch.setenv(inference.THREADS_ENV, "many")
        with pytest.raises(ValueError, match=inference.THREADS_ENV):
            inference.configure_threads()
    finally:
        torch.set_num_threads(before)


_TOOLKIT_SCRIPT = """
import json, sys
code_dir, model_dir, image = sys.argv[1:4]
sys.path.insert(0, code_dir)  # what SageMaker's PyTorch image does with /opt/ml/model/code
from sagemaker_inference.transformer import Transformer

class Processor:
    def get_request_properties(self):
        return {"Content-Type": "image/png", "Accept": "application/json"}

class Context:
    system_properties = {"model_dir": model_dir}
    request_processor = [Processor()]
    status = None
    def set_response_content_type(self, index, content_type):
        self.content_type = content_type
    def set_response_status(self, code, phrase):
        self.status = (code, phrase)

context = Context()
(answer,) = Transformer().transform([{"body": bytearray(open(image, "rb").read())}], context)
import inference, training
print(json.dumps({"status": context.status, "answer": json.loads(answer),
                  "inference": inference.__file__, "training": training.__file__}))
"""


@pytest.mark.slow
def test_packed_code_dir_serves_alone_under_the_toolkit(artifact: Path, tmp_path: Path) -> None:
    """The artifact's code/ (written by training.train) is all SageMaker needs: no repo on path."""
    from training.train import write_code_dir

    code = tmp_path / "code"
    write_code_dir(code)
    image = tmp_path / "image.png"
    image.write_bytes(encode(random_rgb()))
    result = subprocess.run(
        [sys.executable, "-I", "-c", _TOOLKIT_SCRIPT, str(code), str(artifact), str(image)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "SAGEMAKER_PROGRAM": "inference.py"},
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["status"] is None
    assert sum(out["answer"]) == pytest.approx(1.0)
    assert Path(out["inference"]).parent == code
    assert Path(out["training"]).parent == code / "training"
