"""Start, watch and stop the background servers of local mode (moto, the endpoint).

Each server runs in its own session (process group) so ``down`` can stop it and anything it
spawned, by id; nothing is ever stopped by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path


class ServiceError(RuntimeError):
    """A local server did not start (the message names it and where its log is)."""


def start_background(
    args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it after fork
    try:
        return subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    finally:
        log.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process counts as gone.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def wait_ready_file(
    proc: subprocess.Popen, path: Path, name: str, log: Path, timeout: float
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            return json.loads(path.read_text())
        if proc.poll() is not None:
            raise ServiceError(f"{name} exited with code {proc.returncode}; see {log}")
        time.sleep(0.05)
    raise ServiceError(f"{name} not ready after {timeout:.0f}s; see {log}")


def wait_http_ok(proc: subprocess.Popen, url: str, name: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{name} exited with code {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise ServiceError(f"{name} did not answer 200 at {url} within {timeout:.0f}s; see {log}")


def stop_process(pid: int, timeout: float = 20.0) -> bool:
    """SIGTERM the process group led by ``pid`` (one we started), SIGKILL after ``timeout``.

    Returns True if it was running. The servers flush (capture files) on SIGTERM, hence the wait.
    """
    if not is_alive(pid):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True
