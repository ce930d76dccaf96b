"""training.model: the arch options that change how the network computes (TTA, precision)."""

from __future__ import annotations

import pytest
import torch

from training.model import DEFAULT_ARCH, bfloat16_supported, build_model

SMALL = {"widths": [8, 16], "blocks": [1, 1]}


def _pair(**options: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same weights built plain and with `options`."""
    torch.manual_seed(0)
    plain = build_model(SMALL).eval()
    other = build_model({**SMALL, **options}).eval()
    other.load_state_dict(plain.state_dict())
    return plain, other


def test_tta_flip_serves_the_mean_of_image_and_mirror() -> None:
    plain, tta = _pair(tta_flip=True)
    x = torch.randn(5, 3, 32, 32)
    with torch.inference_mode():
        expected = (plain(x) + plain(x.flip(3))) / 2
        served = tta(x)
        mirrored = tta(x.flip(3))
    torch.testing.assert_close(served, expected, rtol=1e-5, atol=1e-5)
    # A driver's photo and its mirror image get the same answer.
    torch.testing.assert_close(served, mirrored, rtol=1e-5, atol=1e-5)


def test_tta_flip_trains_on_single_views() -> None:
    plain, tta = _pair(tta_flip=True)
    plain.train()
    tta.train()
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(tta(x), plain(x))


def test_old_artifacts_keep_float32_single_view() -> None:
    # model_meta.json written before the options existed has no such keys.
    model = build_model({"name": "preact_resnet", "num_classes": 2, "widths": [8], "blocks": [1]})
    assert model.tta_flip is False
    assert model.use_bfloat16 is False
    assert DEFAULT_ARCH["precision"] == "float32"


def test_bfloat16_runs_only_where_the_cpu_has_it() -> None:
    plain, half = _pair(precision="bfloat16")
    assert half.use_bfloat16 is bfloat16_supported()
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        out = half(x)
        ref = plain(x)
    assert out.dtype == torch.float32
    # bfloat16 keeps 8 bits of mantissa: same logits to within a few percent, same decision.
    torch.testing.assert_close(out, ref, rtol=0.1, atol=0.1)


def test_unknown_precision_is_named() -> None:
    with pytest.raises(ValueError, match="precision 'float16'"):
        build_model({**SMALL, "precision": "float16"})
