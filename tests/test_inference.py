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

from training import inference, sagemaker_entry
from training.errors import (
    InvalidImage,
    ModelArtifactError,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedContentType,
)
from training.model import bfloat16_supported, build_model
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
    """The parts of TorchServe's request context that sagemaker_inference's Transformer uses.

    TorchServe keeps one Context per worker and refills it per request (ts/service.py), and the
    Transformer hands transform_fn the context it saw at initialisation: `next_request` models
    that reuse.
    """

    def __init__(self, model_dir: Path, headers: dict[str, str]) -> None:
        self.system_properties = {"model_dir": str(model_dir)}
        context = self

        class _Processor:
            def get_request_properties(self) -> dict[str, str]:
                return context.headers

        self.request_processor = [_Processor()]
        self.next_request(headers)

    def next_request(self, headers: dict[str, str]) -> _TorchServeContext:
        self.headers = headers
        self.status: tuple[int, str] | None = None
        self.content_type: str | None = None
        return self

    def set_response_content_type(self, index: int, content_type: str) -> None:
        self.content_type = content_type

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status = (code, phrase)


def _import_entry_as_sagemaker_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """code/inference.py = training/sagemaker_entry.py, code/ on sys.path (SageMaker's layout)."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(Path(sagemaker_entry.__file__).read_text())
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "inference.py")
    monkeypatch.delitem(sys.modules, "inference", raising=False)
    return code


def test_entry_under_sagemakers_inference_toolkit(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The toolkit's Transformer calls the entry's transform_fn: errors are pure JSON bodies.

    On the input_fn path the toolkit answered "MESSAGE\nTRACEBACK" (Transformer.handle_error),
    and decoded application/json bodies as UTF-8 first (500 for image bytes).
    """
    from sagemaker_inference.transformer import Transformer

    code = _import_entry_as_sagemaker_does(tmp_path, monkeypatch)
    transformer = Transformer()
    try:
        ok = _TorchServeContext(artifact, {"Content-Type": "image/png", "Accept": "*/*"})
        (answer,) = transformer.transform([{"body": bytearray(encode(random_rgb()))}], ok)
        assert ok.status is None and ok.content_type == "application/json"
        assert sum(json.loads(answer)) == pytest.approx(1.0)
        assert Path(sys.modules["inference"].__file__).parent == code
        png = encode(random_rgb())
        for headers, body, status, name in [
            ({"Content-Type": "text/plain"}, b"1,2", 415, "UnsupportedContentType"),
            ({"Content-Type": "application/json"}, png, 415, "UnsupportedContentType"),
            ({"Content-Type": "text/csv"}, b"1,2", 415, "UnsupportedContentType"),
            ({"content-type": "image/png"}, b"junk", 400, "InvalidImage"),
            ({"Content-Type": "image/png", "Accept": "text/csv"}, png, 406, "NotAcceptable"),
        ]:  # fmt: skip
            context = ok.next_request(headers)
            (error_body,) = transformer.transform([{"body": bytearray(body)}], context)
            assert context.status is not None and context.status[0] == status
            assert json.loads(error_body)["error"] == name  # the whole body is the JSON
    finally:
        module = sys.modules.get("inference")
        if module is not None:
            monkeypatch.setitem(sys.modules, "inference", module)  # removed after the test


def test_entry_answers_a_broken_artifact_instead_of_raising(tmp_path: Path) -> None:
    """A raising model_fn crash-loops TorchServe's workers while /ping stays 200."""
    broken = sagemaker_entry.model_fn(str(tmp_path))
    assert isinstance(broken, sagemaker_entry.BrokenArtifact)
    context = _TorchServeContext(tmp_path, {})
    body, content_type = sagemaker_entry.transform_fn(
        broken, encode(random_rgb()), "image/png", "application/json", context
    )
    assert context.status == (500, "Internal Server Error")
    assert json.loads(body)["error"] == "ModelLoadFailed"
    assert content_type == "application/json"


def test_entry_imports_as_top_level_module_like_sagemaker(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SageMaker imports code/inference.py as module `inference` with code/ on sys.path; the
    toolkit refuses a module with transform_fn and any of input_fn/predict_fn/output_fn."""
    code = _import_entry_as_sagemaker_does(tmp_path, monkeypatch)
    module = importlib.import_module("inference")
    monkeypatch.setitem(sys.modules, "inference", module)  # removed again after the test
    assert Path(module.__file__).parent == code
    assert not any(hasattr(module, name) for name in ("input_fn", "predict_fn", "output_fn"))
    context = _TorchServeContext(artifact, {})
    body, _ = module.transform_fn(
        module.model_fn(str(artifact)), encode(random_rgb()), "image/png", None, context
    )
    assert sum(json.loads(body)) == pytest.approx(1.0) and context.status is None


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


def test_bfloat16_needs_native_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    """On AVX-512 without BF16 (ml.m5) oneDNN reports bf16 support it only emulates
    (ideep::has_bf16_type_support is `isa >= avx512_core`); serving there runs float32."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert bfloat16_supported() is False
    model = build_model({**SMALL_ARCH, "precision": "bfloat16"})
    assert model.use_bfloat16 is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert bfloat16_supported() is True
