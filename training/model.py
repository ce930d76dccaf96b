"""The classifier network: a small pre-activation ResNet for 32x32 RGB images.

`build_model(arch)` is the single constructor used by training and serving; `arch` is the
JSON-serialisable dict stored in `model_meta.json["arch"]`, so an artifact rebuilds exactly the
network its weights belong to. The model outputs logits; probabilities are
softmax(logits / temperature) with the temperature from model_meta.json.

Two arch options change how the network computes, not what it is, and live here (not in the
training loop or the server) so that the validation logits the temperature is fitted on and
the logits the endpoint serves come from the very same function:
- `tta_flip`: in eval mode the logits are the mean over the image and its mirror image (one
  batch of 2N), a test-time augmentation that sharpens the ranking of confident predictions.
- `precision: "bfloat16"`: convolutions run under CPU autocast in bfloat16 where the CPU has
  native bfloat16 instructions (about 2x faster here, in training and serving); elsewhere, e.g.
  ml.m5 (AVX-512 without BF16), the same weights run in float32, so a training job and the
  endpoint on such instances both compute (and the job's metrics describe) float32 logits.
Artifacts written before these options existed lack the keys and keep their float32,
single-view behaviour (the defaults below).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

# Small on purpose: about 0.3 M parameters trains from scratch on ~1,000 images in minutes on
# two CPU cores and still reaches high accuracy with strong augmentation (NOTES.md).
DEFAULT_ARCH: dict[str, Any] = {
    "name": "preact_resnet",
    "num_classes": 2,
    "widths": [32, 64, 128],
    "blocks": [1, 1, 1],
    "dropout": 0.0,
    "tta_flip": False,
    "precision": "float32",
}

SUPPORTED_ARCHS = ("preact_resnet",)
SUPPORTED_PRECISIONS = ("float32", "bfloat16")


def bfloat16_supported() -> bool:
    """True where the CPU has native bfloat16 instructions (AVX512-BF16 or AMX).

    Not torch.ops.mkldnn._is_mkldnn_bf16_supported(): that is ideep::has_bf16_type_support(),
    `get_effective_cpu_isa() >= avx512_core` (intel/ideep include/ideep/abstract_types.hpp,
    called by mkldnn_bf16_device_check in pytorch aten/src/ATen/native/mkldnn/Utils.h), which is
    also true on AVX-512 CPUs without BF16 (ml.m5: Skylake/Cascade Lake) where oneDNN emulates
    bfloat16: slower, and logits unlike the float32 ones a job on such an instance measured.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    native = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", None),
        getattr(torch.cpu, "_is_amx_tile_supported", None),
    )
    return any(bool(check()) for check in native if check is not None)


class _PreActBlock(nn.Module):
    """BN-ReLU-conv twice with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        # The projection sees the pre-activated input, as in He et al. 2016 (identity mappings).
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Stem conv, one stage per width (stride 2 after the first), global pool, linear head."""

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int],
        blocks: Sequence[int],
        dropout: float = 0.0,
        tta_flip: bool = False,
        precision: str = "float32",
    ) -> None:
        super().__init__()
        if precision not in SUPPORTED_PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {SUPPORTED_PRECISIONS}")
        self.tta_flip = tta_flip
        self.use_bfloat16 = precision == "bfloat16" and bfloat16_supported()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if not widths or len(widths) != len(blocks):
            raise ValueError("widths and blocks must be non-empty and of equal length")
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        layers: list[nn.Module] = []
        in_ch = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            for i in range(count):
                stride = 2 if (stage > 0 and i == 0) else 1
                layers.append(_PreActBlock(in_ch, width, stride))
                in_ch = width
        self.stages = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_ch)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (N, C), penultimate features (N, width)): the pooled activations the head
        reads, averaged over the mirror views like the logits. The logits are exactly
        forward's; the features feed the serving gate's feature-space distance
        (training/gate.py)."""
        mirrored = self.tta_flip and not self.training
        if mirrored:
            x = torch.cat([x, x.flip(3)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.use_bfloat16):
            out = self.stages(self.stem(x))
            out = torch.relu(self.bn(out))
            out = torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1)
            logits = self.head(self.dropout(out))
        logits = logits.float()
        features = out.float()
        if mirrored:  # first half: the images, second half: their mirror images
            logits = logits.view(2, -1, logits.shape[1]).mean(0)
            features = features.view(2, -1, features.shape[1]).mean(0)
        return logits, features


def build_model(arch: Mapping[str, Any]) -> nn.Module:
    """Build the network described by `arch` (missing keys take DEFAULT_ARCH values).

    Raises ValueError naming the field for an unknown architecture or a bad value.
    """
    spec = {**DEFAULT_ARCH, **dict(arch)}
    name = spec["name"]
    if name not in SUPPORTED_ARCHS:
        raise ValueError(f"arch.name {name!r} is not one of {SUPPORTED_ARCHS}")
    return PreActResNet(
        num_classes=int(spec["num_classes"]),
        widths=[int(w) for w in spec["widths"]],
        blocks=[int(b) for b in spec["blocks"]],
        dropout=float(spec["dropout"]),
        tta_flip=bool(spec["tta_flip"]),
        precision=str(spec["precision"]),
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (reported in metrics and docs)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
