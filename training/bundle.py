"""The SageMaker training source bundle: sourcedir.tar.gz with `train.py` and `training/`.

SageMaker unpacks it, puts its root on sys.path and runs `sagemaker_program=train.py`; the entry
is a tiny shim that calls training.train.main, so the job runs exactly the code tests exercise.
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
ENTRY_POINT = "train.py"
ENTRY_SOURCE = '''"""SageMaker script-mode entry point (sagemaker_program=train.py)."""

import sys

from training.train import main

if __name__ == "__main__":
    sys.exit(main())
'''


def _bundle_files() -> list[tuple[str, bytes]]:
    files = [(ENTRY_POINT, ENTRY_SOURCE.encode("utf-8"))]
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        files.append((f"training/{path.name}", path.read_bytes()))
    return files


def build_source_bundle(out_path: str | os.PathLike[str]) -> Path:
    """Write sourcedir.tar.gz (entry `train.py` at the root + the `training/` package)."""
    entries = [("training", None, 0o755)]
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
