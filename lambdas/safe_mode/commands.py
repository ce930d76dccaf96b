"""What the safe-mode function is asked to do: parsed from its event, pure (no AWS calls).

Two kinds of event reach it:
- EventBridge's "CloudWatch Alarm State Change" for a drift alarm (components/safe_mode.py's
  rule): ``{"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
  "detail": {"alarmName", "state": {"value", "reason", "timestamp"}, ...}}`` (Amazon
  CloudWatch user guide, "Alarm events and EventBridge",
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html).
  A change to ALARM enters safe mode; any other state is ignored: only a person clears it.
- A direct invocation by ``python -m local safe-mode`` or ``python -m local monitor``:
  ``{"action": "status"}``, ``{"action": "clear", "by": WHO}`` or
  ``{"action": "enter", "by": WHO, "reason": WHY}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lambdas.errors import InvalidEvent

ALARM_SOURCE = "aws.cloudwatch"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
ACTIONS = ("status", "enter", "clear", "ignore")
_MAX_TEXT = 512


@dataclass(frozen=True)
class Command:
    action: str  # one of ACTIONS
    by: str = ""
    reason: str = ""


def _text(event: dict[str, Any], key: str, required: bool) -> str:
    value = event.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
        raise InvalidEvent(
            f"safe_mode: {key!r} must be a non-empty string of at most {_MAX_TEXT} characters"
        )
    return value.strip()


def parse_command(event: Any) -> Command:
    """The Command an event asks for; InvalidEvent naming what is wrong otherwise."""
    if not isinstance(event, dict):
        raise InvalidEvent(
            f"safe_mode: the event must be a JSON object, got {type(event).__name__}"
        )
    if event.get("source") == ALARM_SOURCE:
        if event.get("detail-type") != ALARM_DETAIL_TYPE:
            kind = event.get("detail-type")
            return Command("ignore", reason=f"not an alarm state change: {kind}")
        detail = event.get("detail")
        if not isinstance(detail, dict) or not isinstance(detail.get("alarmName"), str):
            raise InvalidEvent("safe_mode: alarm event without detail.alarmName")
        name = detail["alarmName"]
        state = detail.get("state") if isinstance(detail.get("state"), dict) else {}
        if state.get("value") != "ALARM":
            return Command("ignore", reason=f"{name} is {state.get('value')}, not ALARM")
        why = str(state.get("reason") or "")[:300]
        return Command("enter", by=f"alarm:{name}", reason=f"drift alarm {name} fired: {why}")
    unknown = set(event) - {"action", "by", "reason"}
    if unknown:
        raise InvalidEvent(f"safe_mode: unknown field(s) {sorted(unknown)}")
    action = event.get("action")
    if action == "status":
        return Command("status")
    if action == "clear":
        return Command("clear", by=_text(event, "by", True))
    if action == "enter":
        return Command("enter", by=_text(event, "by", True), reason=_text(event, "reason", True))
    raise InvalidEvent(
        f"safe_mode: 'action' must be one of status, enter, clear; got {action!r}"
    )
