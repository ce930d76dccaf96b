"""lambdas/package.py: each Lambda's zip holds what its handler imports, and only that."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from components.batch_workflow import SUMMARIZE_HANDLER
from components.safe_mode import HANDLER as SAFE_MODE_HANDLER
from lambdas.detect_drift.package import HANDLER as DRIFT_HANDLER
from lambdas.detect_drift.package import build_function_zip as build_drift_zip
from lambdas.package import (
    HANDLERS,
    PackagingError,
    build_function_zip,
    handler_module,
    import_closure,
)

EVERY_HANDLER = {**HANDLERS, "safe_mode": SAFE_MODE_HANDLER, "summarize_batch": SUMMARIZE_HANDLER}


def _names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as zf:
        return set(zf.namelist())


@pytest.mark.parametrize("key", sorted(EVERY_HANDLER))
def test_each_zip_imports_its_handler_with_nothing_else_on_the_path(
    key: str, tmp_path: Path
) -> None:
    """The handler module imports from its zip alone: an isolated interpreter (-I: no repo, no
    PYTHONPATH) with only the zip and the venv's third-party packages on sys.path."""
    handler = EVERY_HANDLER[key]
    zip_path = build_function_zip(tmp_path / f"{key}.zip", handler)
    module, attr = handler.rsplit(".", 1)
    code = (
        f"import sys; sys.path.insert(0, {str(zip_path)!r}); import importlib;"
        f"m = importlib.import_module({module!r}); assert callable(getattr(m, {attr!r}));"
        "loaded = [n for n, mod in sys.modules.items() if n.split('.')[0] in ('lambdas', "
        "'training') and getattr(mod, '__file__', None)];"
        f"assert all(sys.modules[n].__file__.startswith({str(zip_path)!r}) for n in loaded)"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_drift_zip_is_its_handlers_closure(tmp_path: Path) -> None:
    names = _names(build_drift_zip(tmp_path / "drift.zip"))
    assert names == set(import_closure(handler_module(DRIFT_HANDLER)))
    assert "training/baseline.py" in names and "training/train.py" not in names


def test_routing_zips_carry_no_drift_detector_nor_workflow_definition(tmp_path: Path) -> None:
    for key, handler in HANDLERS.items():
        names = _names(build_function_zip(tmp_path / f"{key}.zip", handler))
        assert handler_module(handler).replace(".", "/") + ".py" in names
        assert not any(n.startswith("lambdas/detect_drift/") for n in names), key
        assert "lambdas/workflow_definition.py" not in names, key
        assert "lambdas/package.py" not in names and "lambdas/environment.py" not in names
        assert not any(n.startswith(("components/", "local/")) for n in names), key


def test_zips_are_deterministic(tmp_path: Path) -> None:
    handler = HANDLERS["classify_image"]
    a = build_function_zip(tmp_path / "a.zip", handler).read_bytes()
    assert build_function_zip(tmp_path / "b.zip", handler).read_bytes() == a


def test_closure_follows_imports_inside_functions_and_packages(tmp_path: Path) -> None:
    pkg = tmp_path / "lambdas"
    (pkg / "step").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "step" / "__init__.py").write_text("")
    (pkg / "step" / "handler.py").write_text(
        "from lambdas import helper\n\ndef lambda_handler(e, c):\n"
        "    from lambdas.lazy import f\n    return f()\n"
    )
    (pkg / "helper.py").write_text("import json\n")
    (pkg / "lazy.py").write_text("def f():\n    return 1\n")
    (pkg / "unused.py").write_text("")
    assert import_closure("lambdas.step.handler", tmp_path) == [
        "lambdas/__init__.py", "lambdas/helper.py", "lambdas/lazy.py",
        "lambdas/step/__init__.py", "lambdas/step/handler.py",
    ]
    with pytest.raises(PackagingError):
        import_closure("lambdas.missing", tmp_path)
