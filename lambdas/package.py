"""Build the one deployment zip of the ``lambdas`` package (the cloud and local mode deploy it).

Deterministic: files sorted, fixed timestamps and permissions, so the zip's SHA-256 changes only
when the code does (Pulumi then updates the functions only on a real change). Powertools is not
bundled: in the cloud it comes from AWS's published layer.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from lambdas.defaults import WORKFLOW_FUNCTIONS

PACKAGE_DIR = Path(__file__).resolve().parent
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
# Build-time modules that no handler imports.
_EXCLUDE = {"package.py"}

HANDLERS: dict[str, str] = {f: f"lambdas.{f}.handler.lambda_handler" for f in WORKFLOW_FUNCTIONS}


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
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".lambda-", suffix=".zip")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for path in package_files():
                arcname = "lambdas/" + path.relative_to(PACKAGE_DIR).as_posix()
                info = zipfile.ZipInfo(arcname, date_time=_FIXED_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


if __name__ == "__main__":
    import sys

    print(build_lambda_zip(sys.argv[1] if len(sys.argv) > 1 else "build/lambdas.zip"))
