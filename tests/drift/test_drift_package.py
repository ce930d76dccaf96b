"""The drift detector's deployment artifacts, built offline (fake wheels stand in for PyPI)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lambdas.detect_drift import package
from lambdas.detect_drift.package import (
    LayerBuildError,
    build_function_zip,
    build_layer,
    ensure_layer,
    find_wheels,
    pinned_versions,
    pip_download_command,
    wheel_fits_lambda,
)

NUMPY_WHEEL = "numpy-2.4.6-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
PILLOW_WHEEL = "pillow-13.0.0-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"


def _fake_wheel(directory: Path, filename: str, package_name: str) -> Path:
    path = directory / filename
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{package_name}/__init__.py", f"NAME = {package_name!r}\n")
        zf.writestr(f"{package_name}/tests/test_x.py", "assert False\n")
        zf.writestr(f"{package_name}/__pycache__/x.cpython-312.pyc", b"\0")
        zf.writestr(f"{package_name}-1.dist-info/METADATA", "Name: x\n")
    return path


@pytest.mark.parametrize(
    ("filename", "fits"),
    [
        (NUMPY_WHEEL, True),
        ("pillow-13.0.0-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", True),
        ("x-1.0-py3-none-any.whl", True),
        ("x-1.0-cp39-abi3-manylinux_2_17_x86_64.whl", True),
        ("numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl", False),  # wrong Python
        ("numpy-2.4.6-cp312-cp312-manylinux_2_28_aarch64.whl", False),  # wrong CPU
        ("numpy-2.4.6-cp312-cp312-macosx_14_0_arm64.whl", False),
        ("numpy-2.4.6-cp312-cp312-manylinux_2_39_x86_64.whl", False),  # glibc newer than AL2023
        ("numpy-2.4.6-cp312-cp312-musllinux_1_2_x86_64.whl", False),
        ("not-a-wheel.zip", False),
    ],
)
def test_wheel_tags(filename: str, fits: bool) -> None:
    assert wheel_fits_lambda(filename) is fits


def test_pins_come_from_requirements() -> None:
    assert pinned_versions() == {"numpy": "2.4.6", "pillow": "13.0.0"}


def test_pip_command_targets_the_lambda_runtime(tmp_path) -> None:
    cmd = pip_download_command(tmp_path, {"pillow": "13.0.0", "numpy": "2.4.6"})
    assert cmd[1:4] == ["-m", "pip", "download"]
    joined = " ".join(cmd)
    for part in ("--only-binary=:all:", "--no-deps", "--python-version 3.12",
                 "--implementation cp", "--platform manylinux2014_x86_64",
                 "--platform manylinux_2_28_x86_64", f"--dest {tmp_path}"):
        assert part in joined
    assert cmd[-2:] == ["numpy==2.4.6", "pillow==13.0.0"]


def test_layer_from_wheels_is_deterministic_and_lean(tmp_path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _fake_wheel(wheels, NUMPY_WHEEL, "numpy")
    _fake_wheel(wheels, PILLOW_WHEEL, "PIL")
    _fake_wheel(wheels, "numpy-2.4.6-cp312-cp312-macosx_14_0_arm64.whl", "numpy")
    found = find_wheels(wheels, pinned_versions())
    assert {p.name for p in found.values()} == {NUMPY_WHEEL, PILLOW_WHEEL}
    a = build_layer(tmp_path / "a.zip", list(found.values()))
    b = ensure_layer(tmp_path / "b.zip", wheelhouse=wheels)  # all present: no download
    assert a.read_bytes() == b.read_bytes()
    names = zipfile.ZipFile(a).namelist()
    assert "python/numpy/__init__.py" in names and "python/PIL/__init__.py" in names
    assert not [n for n in names if "/tests/" in n or n.endswith(".pyc")]
    assert names == sorted(names)


def test_layer_rejects_wrong_platform_and_reports_failed_download(tmp_path, monkeypatch) -> None:
    bad = _fake_wheel(tmp_path, "numpy-2.4.6-cp312-cp312-macosx_14_0_arm64.whl", "numpy")
    with pytest.raises(LayerBuildError, match="does not run"):
        build_layer(tmp_path / "x.zip", [bad])
    with pytest.raises(LayerBuildError, match="no wheel"):
        build_layer(tmp_path / "x.zip", [])
    # Nothing in the wheelhouse and pip fails (offline): a named error with pip's reason.
    monkeypatch.setattr(
        package, "pip_download_command",
        lambda dest, versions: [sys.executable, "-c", "import sys; sys.exit('offline')"],
    )
    with pytest.raises(LayerBuildError, match="offline"):
        ensure_layer(tmp_path / "y.zip", wheelhouse=tmp_path / "empty")


def test_function_zip_is_self_contained(tmp_path) -> None:
    first = build_function_zip(tmp_path / "drift.zip")
    second = build_function_zip(tmp_path / "again.zip")
    assert first.read_bytes() == second.read_bytes()
    out = tmp_path / "unpacked"
    with zipfile.ZipFile(first) as zf:
        zf.extractall(out)
        assert "lambdas/detect_drift/handler.py" in zf.namelist()
    # Import the handler from the unpacked zip alone (site-packages stand in for the layers),
    # with torch made unimportable: the Lambda has no torch.
    code = (
        "import sys; sys.modules['torch'] = None; "
        f"sys.path = [p for p in sys.path if not p.startswith({str(package.REPO_ROOT)!r}) "
        "or 'site-packages' in p]; import lambdas.detect_drift.handler as h; "
        "import lambdas.detect_drift.detector; print(h.__file__)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in (str(out / "lambdas/detect_drift/handler.py"),
                                   "lambdas/detect_drift/handler.py")
