"""The frozen forward pass the artifact ships (model.ts) and both servers run.

The eager network (training.model) spends about half of a batch-1 forward pass in Python and
per-op dispatch: a traced, frozen TorchScript module of the same network (torch.jit.freeze:
weights inlined as constants, then its frozen-graph passes such as folding a BatchNorm into the
convolution before it) runs about 2x faster on one thread (docs/sagemaker-parity.md). Its
logits are not bit-identical to the eager ones (folded arithmetic rounds differently). It is
built once, at packing time, from the trained state_dict (`freeze`), saved beside model.pth
as `model.ts` (`save`) and named in model_meta.json under SERVING_MODULE_KEY;
training.inference.model_fn loads it (`load`) in the SageMaker container and in
local.endpoint_server alike, so both serve the very same module. training.train computes the
validation and test logits (temperature, metrics, quality gate, drift baseline) with this
module, so the metrics describe what is served.

Frozen means fixed at trace time: the bfloat16 decision of training.model (native BF16 or not)
is the packing machine's. A job on ml.m5 (no native BF16) ships a float32 module; an endpoint
on a different CPU family computes what the job measured, possibly slower (emulated bfloat16).

Loading needs the torch the module was saved with or newer (TorchScript archives are forward
compatible only): the training and inference images carry the same torch (docs/sagemaker-parity.md).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

SERVING_MODULE_FILE = "model.ts"
# model_meta.json key naming the frozen module's file; absent in artifacts that predate it,
# which serve the eager network from model.pth.
SERVING_MODULE_KEY = "serving_module"
# The profiling executor optimises a TorchScript graph after its first calls; the warm-up runs
# this many forward passes so that no request pays for it.
WARMUP_CALLS = 3


class _WithFeatures(nn.Module):
    """Traceable wrapper: forward returns (logits, penultimate features)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.forward_with_features(x)


class ServingModule:
    """The frozen network: `module(x)` -> logits (N, C), `forward_with_features(x)` -> both.

    x is a float32 batch (N, 3, H, W) normalised as training.preprocess.to_tensor does; any N.
    """

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        self.scripted = scripted

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, features = self.scripted(x)
        return logits, features

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.scripted(x)[0]

    def eval(self) -> ServingModule:
        return self  # frozen: always in inference mode

    @property
    def training(self) -> bool:
        return False


def freeze(network: nn.Module, input_size: tuple[int, int]) -> ServingModule:
    """Trace a copy of `network` (eval mode, channels_last) on a (1, 3, H, W) input, freeze it.

    `network` itself is left as it was (mode and memory layout)."""
    network = copy.deepcopy(network).eval().to(memory_format=torch.channels_last)
    example = torch.zeros(1, 3, *input_size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        traced = torch.jit.trace(_WithFeatures(network).eval(), example, check_trace=False)
        frozen = torch.jit.freeze(traced)
    module = ServingModule(frozen)
    warm_up(module, input_size)
    return module


def warm_up(module: ServingModule, input_size: tuple[int, int]) -> torch.Tensor:
    """Run WARMUP_CALLS batch-1 forward passes; returns the last logits (for shape checks)."""
    example = torch.zeros(1, 3, *input_size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for _ in range(WARMUP_CALLS):
            logits = module(example)
    return logits


def save(module: ServingModule, model_dir: Path) -> str:
    """Write the module to model_dir/model.ts; returns the file name for model_meta.json."""
    torch.jit.save(module.scripted, str(model_dir / SERVING_MODULE_FILE))
    return SERVING_MODULE_FILE


def load(path: Path) -> ServingModule:
    """Load a module `save` wrote (CPU). Raises what torch.jit.load raises for a bad file."""
    return ServingModule(torch.jit.load(str(path), map_location="cpu"))


def freeze_artifact(model_dir: Path) -> Path:
    """Add model.ts to an artifact that predates it (model.pth + model_meta.json), in place.

    For benchmarks and harnesses that serve an older cached model as the next job would ship
    it; that model's metrics.json still describes the eager network. Returns model.ts's path.
    """
    import json

    from training.model import build_model

    meta_path = model_dir / "model_meta.json"
    meta = json.loads(meta_path.read_text())
    arch = {"num_classes": len(meta["classes"]), **meta["arch"]}
    network = build_model(arch)
    state = torch.load(model_dir / "model.pth", map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    size = (int(meta["input_size"][0]), int(meta["input_size"][1]))
    meta[SERVING_MODULE_KEY] = save(freeze(network, size), model_dir)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return model_dir / SERVING_MODULE_FILE
