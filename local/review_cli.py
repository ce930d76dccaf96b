"""``python -m local review list|answer|serve``: the human review loop against local mode.

list [--json]              pending cases: id, image, reason, probabilities, age
answer CASE_ID LABEL       LABEL is a class name or ``none`` (not a vehicle); the driver is
                           routed (or told the photo was rejected) and, for a class, the image
                           is stored under labelled/<class>/ with its provenance
serve [--port P]           a small web page on 127.0.0.1 to do the same with buttons/keys

The reviewer is the caller's identity (sts:GetCallerIdentity) unless ``--reviewer`` names one.
All logic lives in review.cases; this module only reads local mode's state and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from review.cases import (
    ReviewError,
    answer_case,
    caller_identity,
    list_cases,
)


class ReviewTarget:
    """Where the cases are: local mode's moto server, its queues, bucket and classes."""

    def __init__(self, state: dict[str, Any]) -> None:
        from local.deploy import aws_client

        self.state = state
        url = state["moto_url"]
        self.sqs = aws_client("sqs", url)
        self.sfn = aws_client("stepfunctions", url)
        self.s3 = aws_client("s3", url)
        self.sts = aws_client("sts", url)
        self.queue_url: str = state["review_queue_url"]
        self.dlq_url: str | None = state.get("review_dlq_url")
        self.bucket: str = state["bucket"]
        self.classes: list[str] = list(state["classes"])
        self.model_version = Path(state.get("model_dir", "")).name

    def cases(self) -> list[Any]:
        return list_cases(self.sqs, self.queue_url, self.dlq_url, self.classes)

    def image(self, s3_uri: str) -> bytes:
        bucket, key = s3_uri.removeprefix("s3://").split("/", 1)
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def answer(self, case_id: str, label: str, reviewer: str | None = None) -> Any:
        return answer_case(
            sqs=self.sqs,
            sfn=self.sfn,
            s3=self.s3,
            queue_url=self.queue_url,
            dead_letter_queue_url=self.dlq_url,
            data_bucket=self.bucket,
            classes=self.classes,
            case_id=case_id,
            label=label,
            reviewer=reviewer or caller_identity(self.sts),
            model_version=self.model_version,
        )


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def cmd_list(target: ReviewTarget, args: argparse.Namespace) -> int:
    cases = target.cases()
    if args.json:
        print(json.dumps([c.public() for c in cases], indent=2))
        return 0
    if not cases:
        print("no pending review cases")
        return 0
    for c in cases:
        probs = ", ".join(f"{k} {v:.3f}" for k, v in c.probabilities.items())
        where = " [dead-letter queue]" if c.in_dead_letter_queue else ""
        print(f"{c.case_id}  {c.image}  age {_fmt_age(c.age_seconds)}  {probs}{where}")
        print(f"    {c.reason}")
    return 0


def cmd_answer(target: ReviewTarget, args: argparse.Namespace) -> int:
    answer = target.answer(args.case_id, args.label, args.reviewer)
    what = {
        "routed": f"driver routed as {answer.label}",
        "rejected": "photo rejected; the driver was told",
        "expired": "the case had expired: the driver was not routed",
        "labelled": "no waiting execution (queued without a callback)",
    }[answer.outcome]
    print(f"{answer.case_id}: {what}")
    if answer.labelled_key:
        print(f"labelled image: s3://{target.bucket}/{answer.labelled_key}")
    return 0 if answer.outcome in ("routed", "rejected") else 2


def cmd_serve(target: ReviewTarget, args: argparse.Namespace) -> int:
    from review.page import serve

    serve(target, port=args.port, reviewer=args.reviewer)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local review",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reviewer", help="who answers (default: the caller's identity)")
    sub = parser.add_subparsers(dest="command", required=True)
    lst = sub.add_parser("list", help="pending cases")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    ans = sub.add_parser("answer", help="answer one case")
    ans.add_argument("case_id")
    ans.add_argument("label", help="a class name, or none (not a vehicle)")
    srv = sub.add_parser("serve", help="the review page on 127.0.0.1")
    srv.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    return parser


def main(argv: Sequence[str], state: dict[str, Any]) -> int:
    args = build_parser().parse_args(list(argv))
    if "review_queue_url" not in state:
        raise SystemExit("this local stack has no review queue: `local down` then `local up`")
    target = ReviewTarget(state)
    handlers = {"list": cmd_list, "answer": cmd_answer, "serve": cmd_serve}
    try:
        return handlers[args.command](target, args)
    except ReviewError as exc:
        print(f"review {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
