"""Deployment artifacts of the drift detector: its function zip and a numpy + Pillow layer.

The detector needs numpy and Pillow, which neither the Lambda runtime nor the Powertools layer
has. They ship as a layer of manylinux x86_64 CPython 3.12 wheels (the Lambda runtime's
platform), unpacked under ``python/`` as Lambda layers expect:

    python -m lambdas.detect_drift.package --function-zip build/drift.zip \\
        --layer-zip build/drift-layer.zip [--wheelhouse DIR]

Wheels are taken from a wheelhouse (``--wheelhouse``, ``$SCONES_WHEELHOUSE`` or
``~/.cache/scones-unlimited/wheels``); missing ones are fetched once with

    pip download --only-binary=:all: --no-deps --implementation cp --python-version 3.12
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d WHEELHOUSE
        numpy==<pin> pillow==<pin>

(versions pinned in the lock, requirements-dev.txt, so the cloud runs what the tests ran).
Building the zip from wheels needs no network, and both zips are deterministic (sorted
entries, fixed timestamps), so an unchanged build does not redeploy.

The function zip holds the modules the detector's handler imports (lambdas/package.py's import
closure), which include four numpy-only ``training`` modules it shares with training (image
statistics, baseline/PSI, image decoding).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from lambdas import package
from lambdas.defaults import RUNTIME
from training.archive import write_zip

REPO_ROOT = Path(__file__).resolve().parents[2]

PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")
# Amazon Linux 2023 (the python3.12 runtime) has glibc 2.34.
MAX_GLIBC = (2, 34)
LAYER_PACKAGES = ("numpy", "pillow")
HANDLER = "lambdas.detect_drift.handler.lambda_handler"
# Not needed at run time, and numpy's test suite alone is megabytes.
_LAYER_SKIP = re.compile(r"(^|/)(__pycache__|tests?)(/|$)|\.pyc$")


class LayerBuildError(RuntimeError):
    """The layer cannot be built: a wheel is missing, for the wrong platform, or unreadable."""


def _write_zip(out_path: Path, entries: Iterable[tuple[str, bytes, int]]) -> Path:
    """Deterministic zip (training/archive.py) of (name, data, permission bits), marked as
    regular files."""
    regular = [(name, data, mode & 0o777 | 0o100000) for name, data, mode in entries]
    return write_zip(out_path, regular)


def build_function_zip(out_path: Path, root: Path = REPO_ROOT) -> Path:
    """The detector's code zip (handler ``lambdas.detect_drift.handler.lambda_handler``): the
    handler's import closure (lambdas/package.py), training's numpy-only modules included."""
    return package.build_function_zip(out_path, HANDLER, root)


# --- the layer -----------------------------------------------------------------------------------


def pinned_versions(
    requirements: Path = REPO_ROOT / "requirements-dev.txt",
    packages: Sequence[str] = LAYER_PACKAGES,
) -> dict[str, str]:
    """``{package: version}`` from the ``name==version`` pins of the lock (requirements-dev.txt)."""
    pins: dict[str, str] = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s;#]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    missing = [p for p in packages if p not in pins]
    if missing:
        raise LayerBuildError(f"{requirements} pins no version for {missing}")
    return {p: pins[p] for p in packages}


def pip_download_command(dest: Path, versions: dict[str, str]) -> list[str]:
    """The pip command that fetches the layer's wheels for the Lambda runtime's platform."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps",
        "--implementation", "cp", "--python-version", PYTHON_VERSION, "--dest", str(dest),
    ]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    cmd += [f"{name}=={version}" for name, version in sorted(versions.items())]
    return cmd


_LEGACY_PLATFORMS = {"any", "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"}
_WHEEL = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?"
    r"-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$"
)


def wheel_fits_lambda(filename: str) -> bool:
    """True when a wheel's tags run on the python3.12 x86_64 Lambda runtime."""
    match = _WHEEL.match(filename)
    if not match:
        return False
    pys = match["py"].split(".")
    abi3 = match["abi"] == "abi3" and any(
        re.fullmatch(r"cp3(\d+)", t) and int(t[3:]) <= 12 for t in pys
    )
    py_ok = abi3 or any(t in ("cp312", "py3", "py312") for t in pys)
    plats = match["plat"].split(".")
    plat_ok = False
    for plat in plats:
        if plat in _LEGACY_PLATFORMS:
            plat_ok = True
        else:
            m = re.match(r"^manylinux_(\d+)_(\d+)_x86_64$", plat)
            if m and (int(m.group(1)), int(m.group(2))) <= MAX_GLIBC:
                plat_ok = True
    return py_ok and plat_ok


def find_wheels(wheelhouse: Path, versions: dict[str, str]) -> dict[str, Path]:
    """The wheel of each pinned package in a wheelhouse (those that fit the runtime)."""
    found: dict[str, Path] = {}
    for path in sorted(Path(wheelhouse).glob("*.whl")):
        match = _WHEEL.match(path.name)
        if not match:
            continue
        name = match["name"].lower().replace("_", "-")
        if versions.get(name) == match["version"] and wheel_fits_lambda(path.name):
            found[name] = path
    return found


def build_layer(out_path: Path, wheels: Sequence[Path]) -> Path:
    """Unpack wheels under ``python/`` into a deterministic layer zip (no network)."""
    entries: dict[str, tuple[str, bytes, int]] = {}
    for wheel in wheels:
        if not wheel_fits_lambda(Path(wheel).name):
            raise LayerBuildError(
                f"{Path(wheel).name} does not run on the {RUNTIME} x86_64 Lambda runtime"
            )
        try:
            with zipfile.ZipFile(wheel) as zf:
                for info in zf.infolist():
                    if info.is_dir() or _LAYER_SKIP.search(info.filename):
                        continue
                    name = f"python/{info.filename}"
                    mode = (info.external_attr >> 16) & 0o777 or 0o644
                    entries[name] = (name, zf.read(info), mode)
        except zipfile.BadZipFile as exc:
            raise LayerBuildError(f"{wheel} is not a readable wheel: {exc}") from exc
    if not entries:
        raise LayerBuildError("no wheel given: the layer would be empty")
    return _write_zip(out_path, entries.values())


def default_wheelhouse() -> Path:
    configured = os.environ.get("SCONES_WHEELHOUSE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "scones-unlimited" / "wheels"


def ensure_layer(out_path: Path, wheelhouse: Path | None = None) -> Path:
    """Build the layer from the wheelhouse, downloading missing pinned wheels first."""
    wheelhouse = Path(wheelhouse or default_wheelhouse())
    versions = pinned_versions()
    found = find_wheels(wheelhouse, versions)
    missing = {n: v for n, v in versions.items() if n not in found}
    if missing:
        wheelhouse.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=wheelhouse) as tmp:
            cmd = pip_download_command(Path(tmp), missing)
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise LayerBuildError(
                    f"cannot download the layer's wheels ({' '.join(cmd[2:])}): "
                    f"{done.stderr.strip()[-800:]}"
                )
            for path in Path(tmp).glob("*.whl"):
                path.replace(wheelhouse / path.name)
        found = find_wheels(wheelhouse, versions)
        still = sorted(set(versions) - set(found))
        if still:
            raise LayerBuildError(f"pip downloaded no fitting wheel for {still}")
    return build_layer(out_path, [found[n] for n in sorted(found)])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lambdas.detect_drift.package",
                                description="Build the drift detector's function zip and layer.")
    p.add_argument("--function-zip", type=Path, default=Path("build/drift.zip"))
    p.add_argument("--layer-zip", type=Path, default=Path("build/drift-layer.zip"))
    p.add_argument("--wheelhouse", type=Path, default=None)
    args = p.parse_args(argv)
    try:
        fn = build_function_zip(args.function_zip)
        layer = ensure_layer(args.layer_zip, args.wheelhouse)
    except (LayerBuildError, OSError) as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 2
    print(f"function zip: {fn} ({fn.stat().st_size} bytes)")
    print(f"layer zip: {layer} ({layer.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
