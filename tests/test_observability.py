"""lambdas.observability.with_invocation_keys: each invocation's log lines carry its own Lambda
context and keys, also when functions share a process and run concurrently (local mode)."""

from __future__ import annotations

import io
import json
import threading
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from lambdas.observability import with_invocation_keys


def _context(name: str) -> SimpleNamespace:
    return SimpleNamespace(
        function_name=name,
        memory_limit_in_mb=128,
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        aws_request_id=f"{name}-{uuid.uuid4().hex[:8]}",
    )


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _shared_logger() -> tuple[Logger, io.StringIO]:
    # Two Loggers of one service share one formatter, as the four functions' Loggers do.
    stream = io.StringIO()
    service = f"obs-test-{uuid.uuid4().hex[:8]}"
    Logger(service=service, stream=stream)
    return Logger(service=service, stream=stream), stream


def test_concurrent_functions_keep_their_own_keys() -> None:
    logger, stream = _shared_logger()
    inside = threading.Barrier(2, timeout=10)

    def handler_for(step: str) -> Any:
        @with_invocation_keys(logger)
        def handler(event: Any, context: Any) -> str:
            logger.thread_safe_append_keys(step=step, s3_key=event["key"])
            inside.wait()  # both invocations are now running, each with its keys set
            logger.info("first")
            inside.wait()
            logger.info("second")
            return step

        return handler

    handlers = {"serialize": handler_for("serialize"), "route": handler_for("route")}
    contexts = {step: _context(f"fn-{step}") for step in handlers}
    results: dict[str, str] = {}
    threads = [
        threading.Thread(
            target=lambda s=step: results.update({s: handlers[s]({"key": f"{s}.png"}, contexts[s])})
        )
        for step in handlers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"serialize": "serialize", "route": "route"}

    lines = _lines(stream)
    assert len(lines) == 4
    for line in lines:
        step = line["step"]
        assert line["function_name"] == f"fn-{step}"
        assert line["function_request_id"] == contexts[step].aws_request_id
        assert line["s3_key"] == f"{step}.png"
        assert line["cold_start"] is True

    # After the invocations nothing is left behind for the next one or for module-level logs.
    logger.info("between invocations")
    after = _lines(stream)[-1]
    assert not {"step", "function_name", "function_request_id", "s3_key"} & after.keys()


def test_cold_start_is_per_function_and_keys_clear_on_error() -> None:
    logger, stream = _shared_logger()

    @with_invocation_keys(logger)
    def first(event: Any, context: Any) -> None:
        logger.info("first")

    @with_invocation_keys(logger)
    def failing(event: Any, context: Any) -> None:
        logger.thread_safe_append_keys(step="failing")
        logger.info("about to fail")
        raise ValueError("bad event")

    first({}, _context("fn-first"))
    first({}, _context("fn-first"))
    with pytest.raises(ValueError, match="bad event"):  # the error still reaches Lambda
        failing({}, _context("fn-failing"))
    logger.info("after")
    lines = _lines(stream)
    assert [line.get("cold_start") for line in lines[:3]] == [True, False, True]
    assert "step" not in lines[3] and "function_name" not in lines[3]
