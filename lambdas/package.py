"""Build the one deployment zip of the ``lambdas`` package (the cloud and local mode deploy it).

Deterministic: files sorted, fixed timestamps and permissions, so the zip's SHA-256 changes only
when the code does (Pulumi then updates the functions only on a real change). Powertools is not
bundled: in the cloud it comes from AWS's published layer.
"""

from __future__ import annotations

import os
from pathlib import Path

from training.archive import write_zip

PACKAGE_DIR = Path(__file__).resolve().parent
# Build-time modules that no handler imports.
_EXCLUDE = {"package.py"}

HANDLERS: dict[str, str] = {
    "serialize_image": "lambdas.serialize_image.handler.lambda_handler",
    "classify_image": "lambdas.classify_image.handler.lambda_handler",
    "filter_inferences": "lambdas.filter_inferences.handler.lambda_handler",
    "route_driver": "lambdas.route_driver.handler.lambda_handler",
}


def package_files(root: Path = PACKAGE_DIR) -> list[Path]:
    files = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix in {".py", ".json"}
        and "__pycache__" not in p.parts
        and not (p.parent == root and p.name in _EXCLUDE)
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def build_lambda_zip(out_path: str | os.PathLike[str]) -> Path:
    """Write the zip to ``out_path`` (atomically) and return its path."""
    entries = [
        ("lambdas/" + path.relative_to(PACKAGE_DIR).as_posix(), path.read_bytes(), 0o644)
        for path in package_files()
    ]
    return write_zip(out_path, entries)


if __name__ == "__main__":
    import sys

    print(build_lambda_zip(sys.argv[1] if len(sys.argv) > 1 else "build/lambdas.zip"))
