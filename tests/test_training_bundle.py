"""training/bundle.py: the SageMaker source bundle runs from itself alone, with the defaults
every other part imports (not a copy of them)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import default_task
import lambdas.defaults
import training.cifar
import training.metrics
from training.bundle import REPO_ROOT, build_source_bundle, source_files


def test_the_bundle_holds_training_and_the_shared_defaults(tmp_path: Path) -> None:
    with tarfile.open(build_source_bundle(tmp_path / "sourcedir.tar.gz")) as tar:
        files = {m.name for m in tar.getmembers() if m.isfile()}
    expected = {p.relative_to(REPO_ROOT).as_posix() for p in source_files()}
    assert files == {"train.py", *expected}
    assert {"default_task.py", "lambdas/defaults.py", "training/train.py"} <= files
    assert not {f for f in files if f.startswith("lambdas/")} - {
        "lambdas/__init__.py", "lambdas/defaults.py"
    }


def test_every_training_module_imports_from_the_bundle_alone(tmp_path: Path) -> None:
    """An isolated interpreter (-I: no repository, no PYTHONPATH) with only the unpacked bundle
    and the venv's packages on sys.path, as SageMaker runs it: each training module imports, and
    every first-party module it loads comes from the bundle."""
    root = tmp_path / "code"
    with tarfile.open(build_source_bundle(tmp_path / "sourcedir.tar.gz")) as tar:
        tar.extractall(root, filter="data")
    modules = sorted(f"training.{p.stem}" for p in (root / "training").glob("*.py"))
    code = (
        f"import sys, importlib; sys.path.insert(0, {str(root)!r});"
        f"[importlib.import_module(m) for m in {modules!r}];"
        "mine = [m for n, m in sys.modules.items() if n.split('.')[0] in "
        "('training', 'lambdas', 'default_task') and getattr(m, '__file__', None)];"
        f"bad = [m.__file__ for m in mine if not m.__file__.startswith({str(root)!r})];"
        "assert not bad, bad"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True,
        timeout=300, env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_training_reads_the_one_definition_of_each_default() -> None:
    assert training.metrics.DEFAULT_THRESHOLD is lambdas.defaults.DEFAULT_THRESHOLD
    assert training.cifar.DEFAULT_CLASSES is default_task.DEFAULT_CLASSES
    assert training.cifar.parse_classes(None) == list(default_task.DEFAULT_CLASSES)
