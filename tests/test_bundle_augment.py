"""training.bundle (deterministic source bundle) and training.augment (torch-only augmentation)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from training.augment import augment, cutout, mixup, random_crop, random_flip, random_grey
from training.bundle import build_source_bundle


def test_bundle_is_deterministic(tmp_path: Path) -> None:
    a = build_source_bundle(tmp_path / "a" / "sourcedir.tar.gz")
    b = build_source_bundle(tmp_path / "b" / "sourcedir.tar.gz")
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        names = tar.getnames()
        assert all(m.mtime == 0 for m in tar.getmembers())
    assert "train.py" in names
    for module in ("training/__init__.py", "training/train.py", "training/cifar.py",
                   "training/stage.py", "training/model.py"):  # fmt: skip
        assert module in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_bundle_entry_runs_training_main(tmp_path: Path) -> None:
    bundle = build_source_bundle(tmp_path / "sourcedir.tar.gz")
    src = tmp_path / "src"
    with tarfile.open(bundle) as tar:
        tar.extractall(src, filter="data")
    # As SageMaker runs it: `python train.py ARGS` from the unpacked bundle.
    done = subprocess.run(
        [sys.executable, "train.py", "--help"], cwd=src, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "--min-accuracy" in done.stdout and "--epochs" in done.stdout


def _batch() -> torch.Tensor:
    return torch.arange(4 * 3 * 32 * 32, dtype=torch.float32).reshape(4, 3, 32, 32)


def test_random_crop_matches_slicing_of_reflect_padded_image() -> None:
    x = _batch()
    out = random_crop(x, np.random.default_rng(3), 4)
    rng = np.random.default_rng(3)
    oy, ox = rng.integers(0, 9, 4), rng.integers(0, 9, 4)
    padded = functional.pad(x, (4, 4, 4, 4), mode="reflect")
    for i in range(4):
        assert torch.equal(out[i], padded[i, :, oy[i] : oy[i] + 32, ox[i] : ox[i] + 32])


def test_flip_and_cutout() -> None:
    x = _batch()
    flipped = random_flip(x, np.random.default_rng(0))
    for i in range(4):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))
    cut = cutout(x + 1, np.random.default_rng(0), 8)
    zeros = (cut == 0).all(dim=1).sum(dim=(1, 2))
    assert ((zeros > 0) & (zeros <= 64)).all()


def test_augment_is_reproducible_and_mixup_blends() -> None:
    x = _batch()
    a = augment(x, np.random.default_rng(7))
    b = augment(x, np.random.default_rng(7))
    assert torch.equal(a, b) and a.shape == x.shape
    y = torch.tensor([0, 1, 0, 1])
    mixed, ya, yb, lam = mixup(x, y, np.random.default_rng(1), 0.2)
    assert mixed.shape == x.shape
    assert 0.0 <= lam <= 1.0 and torch.equal(ya, y) and sorted(yb.tolist()) == [0, 0, 1, 1]
    assert mixup(x, y, np.random.default_rng(1), 0.0)[3] == 1.0


def test_random_grey_turns_the_chosen_images_grey_in_raw_pixel_space() -> None:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(64, 3, 8, 8)).astype(np.float32)
    mean = torch.tensor([120.0, 110.0, 100.0])
    std = torch.tensor([60.0, 55.0, 50.0])
    x = (torch.from_numpy(raw) - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    out = random_grey(x, np.random.default_rng(1), 0.5, mean, std)
    back = out * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)
    grey = (back.amax(dim=1) - back.amin(dim=1)).amax(dim=(1, 2)) < 1e-3
    unchanged = torch.isclose(out, x).all(dim=(1, 2, 3))
    assert (grey ^ unchanged).all()  # each image is either turned grey or left exactly as it was
    assert 16 < int(grey.sum()) < 48
    luma = (torch.from_numpy(raw) * torch.tensor([0.299, 0.587, 0.114]).view(1, -1, 1, 1)).sum(1)
    assert torch.allclose(back[grey][:, 0], luma[grey], atol=1e-3)
    assert torch.equal(random_grey(x, np.random.default_rng(1), 0.0, mean, std), x)
