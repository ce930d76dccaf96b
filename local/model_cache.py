"""Train a model for local mode, or reuse the one trained before from the same inputs.

The cache key is a SHA-256 over the staged data (manifest: archive MD5, files), the training
code (the source bundle's files, training.bundle.source_files) and the training arguments, so
changing any of them retrains. The
cache lives beside the downloaded archive (training.cifar.default_cache_dir()/models/<key>),
outside .scones/, so ``local down`` can remove all local state without throwing away minutes
of training; ``local down --purge-cache`` removes it too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from training.bundle import source_files

REPO_ROOT = Path(__file__).resolve().parent.parent


def models_cache_dir() -> Path:
    from training.cifar import default_cache_dir

    return default_cache_dir() / "models"


def cache_key(data_dir: Path, train_args: Sequence[str]) -> str:
    digest = hashlib.sha256()
    manifest = json.loads((data_dir / "manifest.json").read_text())
    digest.update(json.dumps(manifest, sort_keys=True).encode())
    for path in source_files():  # the code the job runs: training/ and the shared defaults
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(json.dumps(list(train_args)).encode())
    if "--labelled" in train_args:  # the labelled set's contents, not just its path
        root = Path(train_args[list(train_args).index("--labelled") + 1])
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:24]


def ensure_model(
    data_dir: Path, train_args: Sequence[str], log_path: Path, echo: bool = True
) -> tuple[Path, bool]:
    """Return (model dir, reused?). Trains with ``python -m training.train`` when not cached."""
    key = cache_key(data_dir, train_args)
    target = models_cache_dir() / key
    if (target / "model_meta.json").is_file() and (target / "model.pth").is_file():
        return target, True
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target.parent))
    cmd = [
        sys.executable,
        "-m",
        "training.train",
        "--train",
        str(data_dir / "train"),
        "--test",
        str(data_dir / "test"),
        "--model-dir",
        str(work),
        *train_args,
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc: subprocess.Popen | None = None
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if echo:
                    sys.stdout.write("  | " + line.decode(errors="replace"))
                    sys.stdout.flush()
            code = proc.wait()
        if code != 0:
            raise RuntimeError(f"training failed (exit {code}); see {log_path}")
        if target.exists():  # trained concurrently by another `up`: keep theirs
            shutil.rmtree(work, ignore_errors=True)
        else:
            work.rename(target)
    except BaseException:
        if proc is not None and proc.poll() is None:  # interrupted: no orphan trainer
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target, False
