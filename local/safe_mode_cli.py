"""``python -m local safe-mode status|clear|enter``: see or switch the workflow's safe mode.

status                       whether safe mode is on, since when, who set it and why
clear                        a person ends safe mode: requests are routed on the model again
enter --reason TEXT          switch it on by hand (a drift alarm does this by itself)

Without ``--stack`` it acts on local mode (``python -m local up``); with ``--stack NAME`` on
the deployed stack, with the caller's AWS credentials and Region (they need only
``lambda:InvokeFunction`` on ``scones-NAME-safe-mode``). Either way it invokes the safe-mode
function (``lambdas.safe_mode.handler``), which alone may write the flag and publishes
``SafeModeEntered`` / ``SafeModeCleared``. Who acted is the caller's identity
(sts:GetCallerIdentity) unless ``--by`` names someone. Exit 0 on success, 1 when the function
refused (its error is printed), 2 when the target cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any


class SafeModeCallError(RuntimeError):
    """The safe-mode function answered with an error (message: its type and text)."""


def invoke(lam: Any, function: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Invoke the safe-mode function synchronously; its answer, or SafeModeCallError."""
    reply = lam.invoke(
        FunctionName=function, InvocationType="RequestResponse",
        Payload=json.dumps(dict(payload)).encode(),
    )
    body = json.loads(reply["Payload"].read() or b"null")
    if reply.get("FunctionError") or not isinstance(body, dict) or "safe_mode" not in body:
        error = body if isinstance(body, dict) else {}
        raise SafeModeCallError(
            f"{error.get('errorType', 'Error')}: {error.get('errorMessage', body)}"
        )
    return body


def describe(answer: Mapping[str, Any]) -> str:
    state = answer["safe_mode"]
    if state["on"]:
        head = "safe mode: ON (every request goes to human review, reason safe_mode)"
    else:
        head = "safe mode: off (requests are routed on the model's answer)"
    lines = [head]
    if state["changed_at"]:
        lines.append(f"  since {state['changed_at']}, set by {state['changed_by']}")
    lines.append(f"  reason: {state['reason']}")
    if answer["action"] in ("enter", "clear") and not answer["changed"]:
        lines.append(f"  (unchanged: it was already {'on' if state['on'] else 'off'})")
    if state["on"]:
        lines.append("  clear it with: python -m local safe-mode clear [--stack NAME]")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", help="a deployed Pulumi stack (default: local mode)")
    common.add_argument("--by", help="who acts (default: the caller's identity)")
    common.add_argument("--json", action="store_true", help="print the function's answer")
    parser = argparse.ArgumentParser(
        prog="python -m local safe-mode",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="show the current state", parents=[common])
    sub.add_parser("clear", help="end safe mode", parents=[common])
    enter = sub.add_parser("enter", help="switch safe mode on by hand", parents=[common])
    enter.add_argument("--reason", required=True, help="why (recorded in the flag)")
    return parser


def _clients(stack: str | None, state: Mapping[str, Any] | None) -> tuple[Any, Any, str]:
    """(lambda client, sts client, function) for the target."""
    if stack:
        import boto3

        from components.safe_mode import function_name

        return boto3.client("lambda"), boto3.client("sts"), function_name(stack)
    from local.deploy import aws_client

    if not state or "safe_mode_function_arn" not in state:
        raise SystemExit("this local stack has no safe mode: `local down` then `local up`")
    url = state["moto_url"]
    return aws_client("lambda", url), aws_client("sts", url), state["safe_mode_function_arn"]


def main(argv: Sequence[str], state: Mapping[str, Any] | None) -> int:
    """``state`` is local mode's state (None with --stack)."""
    args = build_parser().parse_args(list(argv))
    try:
        lam, sts, function = _clients(args.stack, state)
        payload: dict[str, Any] = {"action": args.command}
        if args.command in ("clear", "enter"):
            from review.cases import caller_identity

            payload["by"] = args.by or caller_identity(sts)
        if args.command == "enter":
            payload["reason"] = args.reason
        answer = invoke(lam, function, payload)
    except SafeModeCallError as exc:
        print(f"safe-mode {args.command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore: no credentials, no such function, endpoint down
        print(f"safe-mode {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer, indent=2) if args.json else describe(answer))
    return 0
