"""training.serving_module: the frozen forward pass in model.ts is what model_fn serves, it
computes the eager network's function (float32), for any batch size, with its features."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from serving_support import MEAN, SMALL_ARCH, STD, encode, make_artifact, random_rgb

from training import inference, serving_module
from training.errors import ModelArtifactError
from training.model import build_model
from training.preprocess import to_tensor

TTA_ARCH = {**SMALL_ARCH, "tta_flip": True, "precision": "float32"}


@pytest.fixture(scope="module")
def eager_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = make_artifact(tmp_path_factory.mktemp("eager") / "model", arch=TTA_ARCH, seed=3)
    # Non-trivial BatchNorm statistics, so that folding them is exercised.
    network = build_model(TTA_ARCH)
    network.load_state_dict(torch.load(model_dir / "model.pth", weights_only=True))
    for layer in network.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
            layer.weight.data.uniform_(0.5, 1.5)
    torch.save(network.state_dict(), model_dir / "model.pth")
    return model_dir


@pytest.fixture(scope="module")
def frozen_dir(eager_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("frozen") / "model"
    shutil.copytree(eager_dir, model_dir)
    serving_module.freeze_artifact(model_dir)
    return model_dir


def _batch(count: int) -> torch.Tensor:
    images = np.stack([random_rgb(seed=i) for i in range(count)])
    return to_tensor(images, MEAN, STD).contiguous(memory_format=torch.channels_last)


def test_model_fn_serves_the_frozen_module_the_meta_names(frozen_dir: Path, tmp_path: Path):
    meta = json.loads((frozen_dir / "model_meta.json").read_text())
    assert meta[serving_module.SERVING_MODULE_KEY] == "model.ts"
    served = tmp_path / "model"
    shutil.copytree(frozen_dir, served)
    # Proof it is model.ts that serves: the eager weights are gone.
    (served / "model.pth").write_bytes(b"not weights")
    model = inference.model_fn(str(served))
    assert isinstance(model.module, serving_module.ServingModule)
    rgb = random_rgb(seed=11)
    data = inference.input_fn(encode(rgb), "image/png")
    probabilities = inference.predict_fn(data, model)
    frozen = serving_module.load(frozen_dir / "model.ts")
    x = to_tensor(rgb[None], MEAN, STD).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        logits = frozen(x)
    expected = torch.softmax(logits.double() / model.temperature, dim=1)[0].numpy()
    assert np.array_equal(probabilities, expected)


def test_frozen_module_computes_the_eager_network(eager_dir: Path, frozen_dir: Path) -> None:
    network = inference.model_fn(str(eager_dir)).module
    frozen = serving_module.load(frozen_dir / "model.ts")
    x = _batch(6)
    with torch.inference_mode():
        eager_logits, eager_features = network.forward_with_features(x)
        logits, features = frozen.forward_with_features(x)
        one_by_one = torch.cat([frozen(x[i : i + 1]) for i in range(len(x))])
    # Float32: folding BatchNorm into the convolutions only reorders the arithmetic.
    assert torch.allclose(logits, eager_logits, atol=1e-4, rtol=1e-4)
    assert torch.allclose(features, eager_features, atol=1e-4, rtol=1e-4)
    assert features.shape == (6, SMALL_ARCH["widths"][-1])
    # Traced on one image, it serves any batch size with the same answer per image.
    assert torch.allclose(one_by_one, logits, atol=1e-5)


def test_freeze_leaves_the_network_as_it_was() -> None:
    network = build_model(TTA_ARCH).train()
    serving_module.freeze(network, (32, 32))
    assert network.training
    assert network.stem.weight.is_contiguous()


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_bad_model_ts_is_a_model_artifact_error(
    frozen_dir: Path, tmp_path: Path, damage: str
) -> None:
    broken = tmp_path / "model"
    shutil.copytree(frozen_dir, broken)
    if damage == "missing":
        (broken / "model.ts").unlink()
    else:
        (broken / "model.ts").write_bytes(b"PK\x03\x04 not a module")
    with pytest.raises(ModelArtifactError, match=r"model\.ts"):
        inference.model_fn(str(broken))
