"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def dev_archive() -> Path:
    """The offline CIFAR-100 archive (official format, bicycles and motorcycles only).

    CI sets SCONES_CIFAR_ARCHIVE; a developer's checkout finds it in ../shared beside the repo.
    """
    configured = os.environ.get("SCONES_CIFAR_ARCHIVE")
    path = (
        Path(configured)
        if configured
        else REPO_ROOT.parent / "shared" / "data" / "cifar-100-vehicles-dev.tar.gz"
    )
    if not path.is_file():
        pytest.fail(
            f"dev archive not found at {path}: set SCONES_CIFAR_ARCHIVE to "
            "cifar-100-vehicles-dev.tar.gz"
        )
    return path
