"""Issue 17 part 3: the default task is config, not code."""

from __future__ import annotations

import re
from pathlib import Path


def test_components_and_lambdas_name_no_class(repo_root: Path) -> None:
    """The task lives in config and default_task.py: no component or function names a class of
    the default task, so another task needs no code change."""
    pattern = re.compile(r"bicycle|motorcycle", re.IGNORECASE)
    offenders = [
        f"{path.relative_to(repo_root)}:{n}"
        for folder in ("components", "lambdas")
        for path in sorted((repo_root / folder).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
