"""The safe-mode function: enter safe mode when a drift alarm fires; status and clear on request.

Thin over ``commands.parse_command`` and ``flag.enter``/``flag.clear``. Publishes
``SafeModeEntered`` / ``SafeModeCleared`` (Count, 1 per real change) in the workflow's metrics
namespace and service, and answers ``{"action", "changed", "safe_mode": SafeModeState}``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.aws import client
from lambdas.env import require
from lambdas.observability import powertools, with_invocation_keys
from lambdas.safe_mode.commands import parse_command
from lambdas.safe_mode.flag import KEY_ENV, PARAMETER_ENV, clear, enter, read_state

logger, metrics, tracer = powertools("safe_mode")

M_ENTERED = "SafeModeEntered"
M_CLEARED = "SafeModeCleared"


@with_invocation_keys(logger)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    name = require(os.environ, PARAMETER_ENV)
    key_id = os.environ.get(KEY_ENV) or None
    command = parse_command(event)
    logger.thread_safe_append_keys(step="safe_mode", action=command.action, by=command.by)
    ssm = client("ssm")
    changed = False
    if command.action == "enter":
        state, changed = enter(ssm, name, by=command.by, reason=command.reason, key_id=key_id)
        if changed:
            metrics.add_metric(name=M_ENTERED, unit=MetricUnit.Count, value=1)
            logger.warning("safe mode ON: every request goes to review", extra=asdict(state))
        else:
            logger.info("safe mode was already on", extra=asdict(state))
    elif command.action == "clear":
        state, changed = clear(ssm, name, by=command.by, key_id=key_id)
        if changed:
            metrics.add_metric(name=M_CLEARED, unit=MetricUnit.Count, value=1)
            logger.warning("safe mode cleared: routing on the model again", extra=asdict(state))
    else:
        state = read_state(ssm, name)
        if command.action == "ignore":
            logger.info("ignored", extra={"why": command.reason})
    return {"action": command.action, "changed": changed, "safe_mode": asdict(state)}
