"""The in-process Lambda adapter on moto's LambdaFunction._invoke_lambda."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from local import lambda_runtime

HANDLER_SRC = """
import os, threading, time
CALLS = []
ACTIVE = [0, 0]  # now, most at once
LOCK = threading.Lock()

def handler(event, context):
    with LOCK:
        ACTIVE[0] += 1
        ACTIVE[1] = max(ACTIVE)
    try:
        return _handle(event, context)
    finally:
        with LOCK:
            ACTIVE[0] -= 1

def _handle(event, context):
    if event.get("boom"):
        raise ValueError("bad value: " + event["boom"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    CALLS.append(context.function_name)
    return {"seen": event, "fn": context.function_name, "setting": os.environ.get("SETTING"),
            "other": os.environ.get("OTHER"), "left_ms": context.get_remaining_time_in_millis()}
"""


def _zip(package: str, source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{package}/__init__.py", "")
        zf.writestr(f"{package}/handler.py", source)
    return buf.getvalue()


def _function(name: str, code: bytes, package: str, env: dict, timeout: int = 3):
    return SimpleNamespace(
        function_name=name,
        function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        handler=f"{package}.handler.handler",
        code_bytes=code,
        code_sha_256=hashlib.sha256(code).hexdigest(),
        environment_vars=env,
        timeout=timeout,
        memory_size=128,
        version="$LATEST",
    )


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[tuple[bytes, str]]:
    package = f"lr_demo_{os.getpid()}_{time.monotonic_ns()}"
    code = _zip(package, HANDLER_SRC)
    os.environ.pop("SETTING", None)
    with lambda_runtime.installed(tmp_path):
        yield code, package
    for name in [m for m in sys.modules if m.startswith(package)]:
        del sys.modules[name]


def test_runs_handler_from_the_zip_with_its_environment(runtime, tmp_path: Path) -> None:
    code, package = runtime
    fn = _function("one", code, package, {"SETTING": "a"})
    payload, errored, logs = lambda_runtime.invoke(fn, {"x": 1})
    assert not errored and "Duration" in logs
    out = json.loads(payload)
    assert out["seen"] == {"x": 1} and out["fn"] == "one" and out["setting"] == "a"
    assert 0 < out["left_ms"] <= 3000
    module = sys.modules[f"{package}.handler"]
    assert Path(module.__file__).is_relative_to(tmp_path)  # imported from the extracted zip


def test_error_payload_is_what_step_functions_reads(runtime) -> None:
    code, package = runtime
    payload, errored, _ = lambda_runtime.invoke(_function("one", code, package, {}), {"boom": "x"})
    assert errored
    body = json.loads(payload)
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "bad value: x"
    assert body["stackTrace"]


def test_environment_is_the_union_and_clashes_are_refused(runtime) -> None:
    code, package = runtime
    a = _function("a", code, package, {"SETTING": "shared"})
    b = _function("b", code, package, {"SETTING": "shared", "OTHER": "b-only"})
    c = _function("c", code, package, {"SETTING": "different"})
    assert json.loads(lambda_runtime.invoke(a, {})[0])["setting"] == "shared"
    assert json.loads(lambda_runtime.invoke(b, {})[0])["other"] == "b-only"
    payload, errored, _ = lambda_runtime.invoke(c, {})
    assert errored and json.loads(payload)["errorType"] == "Runtime.EnvironmentClash"
    assert "SETTING" in json.loads(payload)["errorMessage"]


def test_uninstall_restores_environment_and_moto(tmp_path: Path) -> None:
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction._invoke_lambda
    package = f"lr_restore_{os.getpid()}"
    code = _zip(package, HANDLER_SRC)
    os.environ["SETTING"] = "before"
    try:
        with lambda_runtime.installed(tmp_path):
            assert LambdaFunction._invoke_lambda is not original
            _payload, errored, _ = lambda_runtime.invoke(
                _function("a", code, package, {"SETTING": "before"}), {}
            )
            assert not errored
            _, errored, _ = lambda_runtime.invoke(_function("b", code, package, {"OTHER": "x"}), {})
            assert os.environ["OTHER"] == "x"
        assert LambdaFunction._invoke_lambda is original
        assert "OTHER" not in os.environ and os.environ["SETTING"] == "before"
    finally:
        os.environ.pop("SETTING", None)
        for name in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[name]


def test_one_code_version_per_process(runtime) -> None:
    code, package = runtime
    assert not lambda_runtime.invoke(_function("a", code, package, {}), {})[1]
    other = _zip(package, HANDLER_SRC + "\n# changed\n")
    payload, errored, _ = lambda_runtime.invoke(_function("b", other, package, {}), {})
    assert errored and json.loads(payload)["errorType"] == "Runtime.CodeVersionConflict"


def test_overrunning_its_timeout_is_reported_like_lambda(runtime) -> None:
    code, package = runtime
    fn = _function("slow", code, package, {}, timeout=1)
    payload, errored, _ = lambda_runtime.invoke(fn, {"sleep": 1.1})
    assert errored and json.loads(payload)["errorType"] == "Sandbox.Timedout"


def test_one_function_runs_one_invocation_at_a_time(runtime) -> None:
    code, package = runtime
    fn = _function("serial", code, package, {})
    lambda_runtime.invoke(fn, {})  # import outside the timing
    other = _function("other", code, package, {})
    threads = [
        threading.Thread(target=lambda_runtime.invoke, args=(f, {"sleep": 0.1}))
        for f in (fn, fn, fn)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    module = sys.modules[f"{package}.handler"]
    assert module.ACTIVE[1] == 1  # one function: never two invocations at once
    threads = [
        threading.Thread(target=lambda_runtime.invoke, args=(f, {"sleep": 0.3}))
        for f in (fn, other)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert module.ACTIVE[1] == 2  # two functions do run concurrently


def test_stats_record_wall_and_thread_cpu_per_invocation(runtime) -> None:
    """The benchmark's breakdown: a sleeping handler takes wall time but (almost) no CPU."""
    code, package = runtime
    fn = _function("stats", code, package, {})
    lambda_runtime.invoke(fn, {})
    before = lambda_runtime.stats_snapshot()
    lambda_runtime.invoke(fn, {"sleep": 0.2})
    after = lambda_runtime.stats_snapshot()
    wall = after["wall_ms"]["stats"][len(before["wall_ms"]["stats"]) :]
    cpu = after["cpu_ms"]["stats"][len(before["cpu_ms"]["stats"]) :]
    assert len(wall) == len(cpu) == 1
    assert wall[0] >= 200 and cpu[0] < 100
    assert after["process_cpu_s"] >= before["process_cpu_s"] > 0
