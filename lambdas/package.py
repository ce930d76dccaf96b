"""Build each Lambda function's deployment zip: its handler module and exactly the first-party
modules that module imports, transitively (the cloud and local mode deploy the same zips).

The import closure is read from the source (every ``import``/``from ... import`` of the
``lambdas`` and ``training`` packages, including imports inside functions, plus the packages'
``__init__`` files), so a routing step's zip carries no drift detector and no workflow
definition. tests/test_lambda_package.py imports every handler from its zip alone.

Deterministic (training/archive.py): the zip's SHA-256 changes only when the function's code
does, so Pulumi updates a function only on a real change. Powertools is not bundled: in the
cloud it comes from AWS's published layer.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Mapping
from pathlib import Path

from lambdas.defaults import WORKFLOW_FUNCTIONS
from training.archive import write_zip

REPO_ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("lambdas", "training")

# The four workflow steps (the state machine's functions).
HANDLERS: dict[str, str] = {f: f"lambdas.{f}.handler.lambda_handler" for f in WORKFLOW_FUNCTIONS}


class PackagingError(RuntimeError):
    """A handler's module, or a first-party module it imports, has no source file."""


def _module_file(module: str, root: Path) -> Path | None:
    base = root / module.replace(".", "/")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else None


def _imported(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import name`: name is a submodule or an attribute of pkg.
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return [n for n in names if n.split(".", 1)[0] in FIRST_PARTY]


def import_closure(module: str, root: Path = REPO_ROOT) -> list[str]:
    """Repository-relative paths of ``module`` and every first-party module it imports,
    transitively, with their packages' ``__init__.py``; sorted."""
    if _module_file(module, root) is None:
        raise PackagingError(f"module {module} has no source file under {root}")
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(name, root)
        if path is None or path in seen:
            continue  # an attribute imported from a package, not a module
        seen.add(path)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += _imported(ast.parse(path.read_bytes(), filename=str(path)))
    return sorted(p.relative_to(root).as_posix() for p in seen)


def handler_module(handler: str) -> str:
    """``lambdas.x.handler.lambda_handler`` -> ``lambdas.x.handler``."""
    return handler.rsplit(".", 1)[0]


def build_function_zip(
    out_path: str | os.PathLike[str], handler: str, root: Path = REPO_ROOT
) -> Path:
    """Write the zip of one function (its handler's import closure) atomically."""
    entries = [
        (rel, (root / rel).read_bytes(), 0o100644)
        for rel in import_closure(handler_module(handler), root)
    ]
    return write_zip(out_path, entries)


def build_function_zips(
    out_dir: str | os.PathLike[str], handlers: Mapping[str, str] = HANDLERS
) -> dict[str, Path]:
    """``{function: zip path}``, one ``<function>.zip`` each under ``out_dir``."""
    return {
        key: build_function_zip(Path(out_dir) / f"{key}.zip", handler)
        for key, handler in handlers.items()
    }


if __name__ == "__main__":
    import sys

    for key, path in build_function_zips(sys.argv[1] if len(sys.argv) > 1 else "build").items():
        print(key, path)
