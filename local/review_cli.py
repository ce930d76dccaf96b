"""``python -m local review [--stack NAME | --outputs FILE] list|answer|serve``: the review loop.

list [--json]              pending cases: id, image, reason, probabilities, age; and how many
                           labels are new since the last retrain (of scones:retrainAfterLabels)
answer CASE_ID LABEL       LABEL is a class name or ``none`` (not a vehicle); the driver is
                           routed (or told the photo was rejected) and, for a class, the image
                           is stored under labelled/<class>/ with its provenance
serve [--port P]           a small web page on 127.0.0.1 to do the same with buttons/keys

Without ``--stack``/``--outputs`` the cases are local mode's (its moto server). With
``--stack NAME`` they are the deployed stack's: its outputs come from
``pulumi stack output --json --stack NAME`` (``--outputs FILE``: the same JSON from a file, for
CI or a machine without Pulumi), and every AWS call uses the caller's credentials (the
standard boto3 chain: AWS_PROFILE, environment, SSO...). ``--assume-reviewer-role`` first
assumes the stack's reviewer role (output ``reviewerRoleArn``) with those credentials: the
role the stack grants answering to (components/function_policies.py ``reviewer_statements``).

The reviewer is the caller's identity (sts:GetCallerIdentity) unless ``--reviewer`` names one.
All logic lives in review.cases; this module only finds the target and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from review.cases import (
    ReviewError,
    answer_case,
    caller_identity,
    list_cases,
)

# Stack outputs the cloud target needs (components/stack.py exports them).
REQUIRED_OUTPUTS = ("reviewQueueUrl", "reviewDeadLetterQueueUrl", "bucket", "classes")


class TargetError(ReviewError):
    """The review target cannot be reached: no stack outputs, a missing output, no Pulumi."""


@dataclass
class ReviewTarget:
    """Where the cases are: clients, the queues, the data bucket, the classes, and how the
    labelled set compares with what the current model trained on."""

    sqs: Any
    sfn: Any
    s3: Any
    sts: Any
    lam: Any
    queue_url: str
    dlq_url: str | None
    bucket: str
    classes: list[str]
    model_version: str
    route_function_arn: str | None
    retrain_after_labels: int
    # The labelled/ keys the current model trained on (None: not known to this caller).
    trained_labels: Callable[[], set[str] | None]

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
            lambda_client=self.lam,
            route_function_arn=self.route_function_arn,
        )

    def labels_status(self) -> dict[str, Any]:
        """New labels since the last retrain, against ``retrain_after_labels`` (N)."""
        from local.retrain import labelled_keys, retrain_status

        try:
            keys = labelled_keys(self.s3, self.bucket)
            trained = self.trained_labels()
        except (BotoCoreError, ClientError, OSError, ValueError, KeyError) as exc:
            # A hint only (e.g. AccessDenied, an unreadable manifest): never stops a listing.
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            return {"known": False, "why": str(code)}
        return retrain_status(keys, trained, self.retrain_after_labels)


def local_target(state: dict[str, Any]) -> ReviewTarget:
    from local.deploy import aws_client
    from local.retrain import labelled_dir, retrain_after_labels

    url = state["moto_url"]

    def trained() -> set[str]:
        root = labelled_dir()  # what `local retrain` copied (and `up` trains with)
        return {
            f"labelled/{p.parent.name}/{p.name}" for p in root.glob("*/*") if p.is_file()
        }

    return ReviewTarget(
        sqs=aws_client("sqs", url),
        sfn=aws_client("stepfunctions", url),
        s3=aws_client("s3", url),
        sts=aws_client("sts", url),
        lam=aws_client("lambda", url),
        queue_url=state["review_queue_url"],
        dlq_url=state.get("review_dlq_url"),
        bucket=state["bucket"],
        classes=list(state["classes"]),
        model_version=Path(state.get("model_dir", "")).name,
        route_function_arn=state.get("function_arns", {}).get("route_driver"),
        retrain_after_labels=retrain_after_labels(),
        trained_labels=trained,
    )


def read_outputs(
    stack: str | None, outputs_file: Path | None, runner: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """The stack's outputs: ``--outputs FILE`` (JSON), else ``pulumi stack output --json``."""
    import subprocess

    if outputs_file is not None:
        try:
            outputs = json.loads(outputs_file.read_text())
        except (OSError, ValueError) as exc:
            raise TargetError(f"--outputs {outputs_file}: {exc}") from None
    else:
        try:
            proc = (runner or subprocess.run)(
                ["pulumi", "stack", "output", "--json", "--stack", str(stack)],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            raise TargetError(
                "--stack needs the Pulumi CLI on PATH (or use --outputs FILE)"
            ) from None
        if proc.returncode != 0:
            raise TargetError(
                f"pulumi stack output --stack {stack} failed: {proc.stderr.strip()}"
            )
        outputs = json.loads(proc.stdout)
    if not isinstance(outputs, dict):
        raise TargetError("stack outputs must be a JSON object")
    missing = [k for k in REQUIRED_OUTPUTS if not outputs.get(k)]
    if missing:
        raise TargetError(f"the stack has no output {missing}: `pulumi up` this version first")
    return outputs


def region_of(outputs: dict[str, Any]) -> str:
    """The stack's Region: https://sqs.<region>.amazonaws.com/<account>/<name> names it."""
    host = outputs["reviewQueueUrl"].split("//", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 3 and parts[0] == "sqs":
        return parts[1]
    raise TargetError(f"cannot read the Region from reviewQueueUrl {outputs['reviewQueueUrl']!r}")


def cloud_target(
    outputs: dict[str, Any], *, assume_reviewer_role: bool = False, session: Any = None
) -> ReviewTarget:
    """The deployed stack's cases, with the caller's credentials (or the reviewer role's)."""
    import boto3

    from local.retrain import retrain_after_labels, trained_labelled_keys

    session = session or boto3.session.Session(region_name=region_of(outputs))
    if assume_reviewer_role:
        role = outputs.get("reviewerRoleArn")
        if not role:
            raise TargetError("the stack has no output reviewerRoleArn")
        creds = session.client("sts").assume_role(RoleArn=role, RoleSessionName="scones-review")[
            "Credentials"
        ]
        session = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=session.region_name,
        )
    s3 = session.client("s3")
    bucket = str(outputs["bucket"])
    snapshot = str(outputs.get("labelledSnapshot") or "")
    return ReviewTarget(
        sqs=session.client("sqs"),
        sfn=session.client("stepfunctions"),
        s3=s3,
        sts=session.client("sts"),
        lam=session.client("lambda"),
        queue_url=str(outputs["reviewQueueUrl"]),
        dlq_url=str(outputs["reviewDeadLetterQueueUrl"]),
        bucket=bucket,
        classes=list(outputs["classes"]),
        model_version=str(outputs.get("trainingJobName") or ""),
        route_function_arn=outputs.get("routeFunctionArn"),
        retrain_after_labels=retrain_after_labels(outputs),
        trained_labels=lambda: trained_labelled_keys(s3, bucket, snapshot),
    )


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def labels_line(status: dict[str, Any]) -> str:
    if not status.get("known"):
        return f"labels since the last retrain: unknown ({status.get('why')})"
    line = (
        f"labels since the last retrain: {status['new']} of {status['retrain_after']} "
        f"(scones:retrainAfterLabels)"
    )
    if status["due"]:
        line += ": retrain now (python -m local retrain, docs/review.md)"
    return line


def cmd_list(target: ReviewTarget, args: argparse.Namespace) -> int:
    cases = target.cases()
    status = target.labels_status()
    if args.json:
        print(json.dumps([c.public() for c in cases], indent=2))
        print(labels_line(status), file=sys.stderr)
        return 0
    if not cases:
        print("no pending review cases")
    for c in cases:
        probs = ", ".join(f"{k} {v:.3f}" for k, v in c.probabilities.items())
        where = " [dead-letter queue]" if c.in_dead_letter_queue else ""
        print(f"{c.case_id}  {c.image}  age {_fmt_age(c.age_seconds)}  {probs}{where}")
        print(f"    {c.reason}: {c.detail}" if c.detail else f"    {c.reason}")
    print(labels_line(status))
    return 0


def cmd_answer(target: ReviewTarget, args: argparse.Namespace) -> int:
    answer = target.answer(args.case_id, args.label, args.reviewer)
    what = {
        "routed": f"driver routed as {answer.label}",
        "rejected": "photo rejected; the driver was told",
        "expired": "the case had expired: the driver was not routed",
        "labelled": "no waiting execution and no route function: labelled only",
    }[answer.outcome]
    print(f"{answer.case_id}: {what}" + (f" (route {answer.route})" if answer.route else ""))
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
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", help="the deployed Pulumi stack's cases (caller's credentials)")
    where.add_argument(
        "--outputs", type=Path, help="the stack's outputs as JSON (pulumi stack output --json)"
    )
    parser.add_argument(
        "--assume-reviewer-role",
        action="store_true",
        help="with --stack/--outputs: assume the stack's reviewer role first",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    lst = sub.add_parser("list", help="pending cases")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    ans = sub.add_parser("answer", help="answer one case")
    ans.add_argument("case_id")
    ans.add_argument("label", help="a class name, or none (not a vehicle)")
    srv = sub.add_parser("serve", help="the review page on 127.0.0.1")
    srv.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def main(
    argv: Sequence[str],
    local_state: Callable[[], dict[str, Any]] | None = None,
    session: Any = None,
) -> int:
    """Run one review command; ``local_state`` reads local mode's state (not called with
    ``--stack``/``--outputs``); ``session`` is the boto3 session for the cloud (default: the
    caller's)."""
    args = parse(argv)
    try:
        if args.stack or args.outputs:
            outputs = read_outputs(args.stack, args.outputs)
            target = cloud_target(
                outputs, assume_reviewer_role=args.assume_reviewer_role, session=session
            )
        else:
            if args.assume_reviewer_role:
                raise TargetError("--assume-reviewer-role needs --stack or --outputs")
            state = local_state() if local_state else {}
            if "review_queue_url" not in state:
                raise SystemExit(
                    "this local stack has no review queue: `local down` then `local up`"
                )
            target = local_target(state)
        handlers = {"list": cmd_list, "answer": cmd_answer, "serve": cmd_serve}
        return handlers[args.command](target, args)
    except ReviewError as exc:
        print(f"review {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:  # e.g. AccessDenied: not the reviewer role
        print(f"review {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
