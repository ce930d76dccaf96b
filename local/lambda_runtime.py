"""Run moto's Lambda functions in-process, from the zip they were created with.

moto executes Lambda code only in Docker (absent here); ``use_docker: False`` just echoes the
payload. The one adapter point is ``moto.awslambda.models.LambdaFunction._invoke_lambda(self,
event) -> (payload_str, errored, logs)``: :func:`install` replaces it with :func:`invoke`, which
imports the function's handler from the extracted zip and calls it with a Lambda-like context.

Configuration model (documented in docs/workflow.md). All functions share one Python process,
so ``os.environ`` and module state are process-global:
- Environment: the *union* of the functions' variables is applied to ``os.environ`` the first
  time each function runs. Functions may repeat a key only with the same value; a clash (two
  functions wanting different values for one key) is refused with a ``Runtime.EnvironmentClash``
  error instead of letting one function silently see the other's setting. Local mode creates its
  functions with one shared configuration, so it never clashes. :func:`uninstall` restores the
  variables it changed.
- Concurrency: invocations of one function are serialised (one warm "execution environment"
  per function, as a Lambda instance handles one event at a time; Powertools' per-invocation
  state relies on that); different functions run concurrently on the server's threads.
- Code: each function has its own zip (lambdas/package.py: its handler's import closure); the
  zips are extracted into one directory per install, so a module two zips share must be the
  same file in both (one version of each module per process; a zip that differs is refused
  with ``Runtime.CodeVersionConflict``). If the package is already imported (tests import it
  from the repo), each loaded module is checked to be byte-identical to the zip's copy, so what
  runs is what was deployed.
"""

from __future__ import annotations

import collections
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_state_lock = threading.Lock()
_function_locks: dict[str, threading.Lock] = {}
_applied_env: dict[str, str] = {}  # key -> value applied by some function
_saved_env: dict[str, str | None] = {}  # key -> value before we touched it
# The extraction directory of this install, the zips extracted into it, and their files.
_code: dict[str, Any] = {"root": None, "shas": set(), "members": {}}
_handlers: dict[str, Any] = {}
_original_invoke: Any = None
# Handler durations in ms per function name (for the benchmark's breakdown), bounded: wall
# time, and the CPU time of the invoking thread (it includes the moto backends' work for the
# handler's in-process S3/SNS calls, excludes waiting: for the GIL, for the endpoint).
STATS: dict[str, collections.deque] = {}
STATS_CPU: dict[str, collections.deque] = {}
_code_root: Path | None = None


class EnvironmentClash(Exception):
    pass


class CodeVersionConflict(Exception):
    pass


class LambdaContext:
    """The attributes of the Python runtime's context object that handlers and Powertools read."""

    def __init__(self, function: Any, timeout_s: float) -> None:
        self.function_name = str(function.function_name)
        self.function_version = str(getattr(function, "version", "$LATEST"))
        self.invoked_function_arn = str(function.function_arn)
        self.memory_limit_in_mb = int(getattr(function, "memory_size", 128) or 128)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _zip_members(code: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(code)) as zf:
        return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}


def _prepare_code(function: Any) -> None:
    """Extract the function's zip once into this install's code directory and make it
    importable; a module that another function's zip holds in another version is refused."""
    sha = str(function.code_sha_256)
    with _state_lock:
        if sha in _code["shas"]:
            return
        members = _zip_members(function.code_bytes)
        known: dict[str, bytes] = _code["members"]
        clash = sorted(n for n, data in members.items() if known.get(n, data) != data)
        if clash:
            raise CodeVersionConflict(
                f"function {function.function_name}'s zip holds {clash[0]} in another version "
                "than a zip this process already runs: local mode runs one version of each "
                "module per process"
            )
        _verify_loaded_modules(members)
        if _code["root"] is None:
            base = _code_root or Path.cwd() / ".scones" / "lambda-code"
            _code["root"] = base / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
            sys.path.insert(0, str(_code["root"]))
        root: Path = _code["root"]
        for name, data in members.items():
            if name not in known:
                target = root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        known.update(members)
        _code["shas"].add(sha)


def _verify_loaded_modules(members: dict[str, bytes]) -> None:
    """Modules of the zip's packages already imported from elsewhere must equal the zip's files."""
    packages = {name.split("/", 1)[0] for name in members}
    for mod_name, module in list(sys.modules.items()):
        if mod_name.split(".", 1)[0] not in packages:
            continue
        file = getattr(module, "__file__", None)
        if not file:
            continue
        rel = mod_name.replace(".", "/") + (
            "/__init__.py" if file.endswith("__init__.py") else ".py"
        )
        if rel not in members:
            continue
        if Path(file).read_bytes() != members[rel]:
            raise CodeVersionConflict(
                f"module {mod_name} is already imported from {file}, which differs from the "
                "function's zip: rebuild the zip (lambdas.package.build_function_zip)"
            )


def _apply_environment(function: Any) -> None:
    variables = {str(k): str(v) for k, v in (function.environment_vars or {}).items()}
    with _state_lock:
        clashes = {
            k: (_applied_env[k], v)
            for k, v in variables.items()
            if k in _applied_env and _applied_env[k] != v
        }
        if clashes:
            raise EnvironmentClash(
                f"function {function.function_name} sets {sorted(clashes)} to values another "
                f"function set differently ({clashes}); in-process functions share one "
                "environment, so give shared keys one value"
            )
        for k, v in variables.items():
            if k not in _applied_env:
                _saved_env.setdefault(k, os.environ.get(k))
                os.environ[k] = v
                _applied_env[k] = v


def _resolve_handler(handler: str) -> Any:
    found = _handlers.get(handler)
    if found is not None:
        return found
    module_name, _, attr = handler.rpartition(".")
    if not module_name:
        raise ImportError(f"handler {handler!r} is not module.function")
    function = getattr(importlib.import_module(module_name), attr)
    # A submodule of an already-imported package loads from that package's directory, not
    # from the zip: check again, after the import, that every loaded module matches the zip.
    _verify_loaded_modules(_code["members"])
    _handlers[handler] = function
    return function


def _error_payload(exc: BaseException, request_id: str, error_type: str | None = None) -> str:
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": error_type or type(exc).__name__,
            "requestId": request_id,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
    )


def invoke(function: Any, event: Any = None) -> tuple[str, bool, str]:
    """Run ``function``'s handler on ``event``; moto's (payload, errored, logs) contract."""
    timeout_s = float(getattr(function, "timeout", 3) or 3)
    context = LambdaContext(function, timeout_s)
    request_id = context.aws_request_id
    try:
        _prepare_code(function)
        _apply_environment(function)
        handler = _resolve_handler(str(function.handler))
    except EnvironmentClash as exc:
        return _error_payload(exc, request_id, "Runtime.EnvironmentClash"), True, ""
    except CodeVersionConflict as exc:
        return _error_payload(exc, request_id, "Runtime.CodeVersionConflict"), True, ""
    except Exception as exc:
        return _error_payload(exc, request_id, "Runtime.ImportModuleError"), True, ""

    lock = _function_locks.setdefault(str(function.function_arn), threading.Lock())
    with lock:
        start = time.perf_counter()
        cpu_start = time.thread_time()
        try:
            result = handler({} if event is None else event, context)
            payload, errored = json.dumps(result), False
        except Exception as exc:
            payload, errored = _error_payload(exc, request_id), True
        cpu = time.thread_time() - cpu_start
    elapsed = time.perf_counter() - start
    for stats, seconds in ((STATS, elapsed), (STATS_CPU, cpu)):
        stats.setdefault(context.function_name, collections.deque(maxlen=100_000)).append(
            seconds * 1000.0
        )
    if elapsed > timeout_s:
        # A thread cannot be killed, so the limit is checked afterwards, as Lambda reports it.
        message = f"{request_id} Task timed out after {timeout_s:.2f} seconds"
        payload, errored = (
            json.dumps({"errorMessage": message, "errorType": "Sandbox.Timedout"}),
            True,
        )
    logs = f"REPORT RequestId: {request_id} Duration: {elapsed * 1000:.2f} ms"
    return payload, errored, logs


def _patched_invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    return invoke(self, event)


def install(code_root: Path | None = None) -> None:
    """Make moto run Lambda handlers in this process (idempotent). Zips extract under code_root."""
    global _original_invoke, _code_root
    from moto.awslambda.models import LambdaFunction

    with _state_lock:
        _code_root = Path(code_root) if code_root else None
        if _original_invoke is None:
            _original_invoke = LambdaFunction._invoke_lambda
            LambdaFunction._invoke_lambda = _patched_invoke_lambda


def uninstall() -> None:
    """Restore moto's invocation and the environment variables changed by functions."""
    global _original_invoke
    from moto.awslambda.models import LambdaFunction

    with _state_lock:
        if _original_invoke is not None:
            LambdaFunction._invoke_lambda = _original_invoke
            _original_invoke = None
        for key, value in _saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _saved_env.clear()
        _applied_env.clear()
        _function_locks.clear()
        _handlers.clear()
        # The files stay: modules imported from them stay loaded (and are verified next time).
        if _code["root"] is not None and str(_code["root"]) in sys.path:
            sys.path.remove(str(_code["root"]))
        _code.update(root=None, shas=set(), members={})


@contextmanager
def installed(code_root: Path | None = None) -> Iterator[None]:
    install(code_root)
    try:
        yield
    finally:
        uninstall()


def stats_snapshot() -> dict[str, Any]:
    """Recorded handler durations (ms) per function, wall and thread CPU, and this process's
    CPU seconds so far (user + system, all threads)."""
    times = os.times()
    return {
        "wall_ms": {name: list(values) for name, values in STATS.items()},
        "cpu_ms": {name: list(values) for name, values in STATS_CPU.items()},
        "process_cpu_s": times.user + times.system,
    }
