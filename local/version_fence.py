"""Version fences for local mode's patches of third-party internals.

Local mode speeds moto up (local/moto_speedups.py, local/moto_backend_speedups.py) and keeps its
server's connections alive (local/keepalive.py) by replacing pieces of moto, werkzeug and
jsonpath-ng that are not public API. Each patch was checked, answer for answer, against the
library versions its fence names. On any other installed version the patch is not applied and
local mode runs the stock libraries: slower, never wrong. A warning names the patch and the
versions found, once per fence.

The versions are the ones the lock (requirements-dev.txt) pins;
tests/test_local_version_fence.py fails when the two disagree, so a dependency bump is also the
moment to re-run the patches' tests and move the fence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata

log = logging.getLogger(__name__)


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (a PyPI name), or None if it is absent."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class VersionFence:
    """A patch (``name``) and the exact distribution versions it was tested on."""

    name: str
    tested_on: Mapping[str, str]
    _verdict: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def mismatches(self) -> dict[str, str | None]:
        """``{distribution: installed version or None}`` for every version that differs."""
        found = {dist: installed_version(dist) for dist in self.tested_on}
        return {dist: v for dist, v in found.items() if v != self.tested_on[dist]}

    def allows(self) -> bool:
        """True when every named distribution is installed at its tested version. Decided
        once per fence (installed packages do not change under a running process)."""
        verdict = self._verdict.get("allows")
        if verdict is not None:  # decided: no lock on the per-request path
            return verdict
        with self._lock:
            if "allows" not in self._verdict:
                mismatched = self.mismatches()
                if mismatched:
                    log.warning(
                        "%s is not applied: tested on %s, installed %s; running stock code "
                        "(slower, same answers)",
                        self.name,
                        ", ".join(f"{d} {v}" for d, v in sorted(self.tested_on.items())),
                        ", ".join(f"{d} {v or 'absent'}" for d, v in sorted(mismatched.items())),
                    )
                self._verdict["allows"] = not mismatched
            return self._verdict["allows"]
