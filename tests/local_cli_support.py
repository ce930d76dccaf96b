"""`python -m local` as a user runs it, for the end-to-end tests: a subprocess with its own
state directory and model cache under one temporary root, and no AWS_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


class LocalCli:
    def __init__(self, root: Path, repo_root: Path) -> None:
        self.state_dir = root / "state"
        self.repo_root = repo_root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(SCONES_CACHE_DIR=str(root / "cache"), PYTHONPATH=str(repo_root))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "local", "--state-dir", str(self.state_dir), *args]

    def local(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*args),
            cwd=self.repo_root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
