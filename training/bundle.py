"""The SageMaker training source bundle: sourcedir.tar.gz with `train.py`, `training/` and the
shared defaults (`default_task.py`, `lambdas/defaults.py`).

SageMaker unpacks it, puts its root on sys.path and runs `sagemaker_program=train.py`; the entry
is a tiny shim that calls training.train.main, so the job runs exactly the code tests exercise.
The defaults travel with it so training imports the one definition of the default task and
threshold every other part imports (docs/design.md, "Defaults"), not a copy.
Bytes are deterministic (sorted names, fixed mtimes/owners/modes, no gzip timestamp), so the
bundle's hash changes only when the code does and Pulumi re-uploads it only then.

    python -m training.bundle OUT_PATH
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from training.archive import write_tar_gz

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
# Modules outside training/ that training imports (cifar: the default task; metrics: the
# default threshold). Task-free and import-free, so the job needs nothing else from lambdas/.
SHARED_MODULES = ("default_task.py", "lambdas/__init__.py", "lambdas/defaults.py")
ENTRY_POINT = "train.py"
ENTRY_SOURCE = '''"""SageMaker script-mode entry point (sagemaker_program=train.py)."""

import sys

from training.train import main

if __name__ == "__main__":
    sys.exit(main())
'''


def source_files() -> list[Path]:
    """The repository files the job runs (besides the generated entry), in bundle order: every
    ``training/*.py`` and :data:`SHARED_MODULES`. local.model_cache hashes exactly these."""
    return [
        *sorted(PACKAGE_DIR.glob("*.py")),
        *(REPO_ROOT / name for name in sorted(SHARED_MODULES)),
    ]


def _bundle_files() -> list[tuple[str, bytes]]:
    files = [(ENTRY_POINT, ENTRY_SOURCE.encode("utf-8"))]
    for path in source_files():
        files.append((path.relative_to(REPO_ROOT).as_posix(), path.read_bytes()))
    return files


def build_source_bundle(out_path: str | os.PathLike[str]) -> Path:
    """Write sourcedir.tar.gz (entry `train.py` at the root, the `training/` package and the
    shared defaults modules)."""
    entries = [("lambdas", None, 0o755), ("training", None, 0o755)]
    entries += [(name, data, 0o644) for name, data in _bundle_files()]
    return write_tar_gz(out_path, entries)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m training.bundle OUT_PATH", file=sys.stderr)
        return 2
    print(build_source_bundle(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
