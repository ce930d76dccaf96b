"""ReviewQueue: where low-confidence cases wait for a person, and the role that may answer them.

- The queue and its dead-letter queue are encrypted with the stack's KMS key; the queue keeps a
  case for SQS's maximum retention (14 days, longer than any review timeout the workflow
  allows) and moves one received ``MAX_RECEIVE_COUNT`` times without an answer to the DLQ
  (review.cases holds these settings for local mode too).
- The reviewer role is the only principal the stack grants states:SendTaskSuccess (on "*":
  the action has no resource type; components/function_policies.py
  ``reviewer_statements`` cites the reference) and invoke on the route function: answering
  routes a driver. It also reads and deletes cases on both queues, reads the case images and
  writes ``labelled/``. Its trust policy names this account; a person still needs
  sts:AssumeRole on it granted to them (IAM user guide, "Creating a role to give permissions to
  an IAM user").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.bucket_layout import INTAKE_PREFIX
from components.context import StackContext
from components.function_policies import reviewer_statements
from components.iam import document
from review.cases import (
    MAX_RECEIVE_COUNT,
    QUEUE_RETENTION_SECONDS,
    QUEUE_VISIBILITY_SECONDS,
)


@dataclass
class ReviewQueueArgs:
    context: StackContext
    route_function_arn: pulumi.Input[str]
    # Where case images live (no trailing "/"): intake/, and the batch workflow's inputs.
    image_prefixes: Sequence[str] = (INTAKE_PREFIX,)


class ReviewQueue(pulumi.ComponentResource):
    queue: aws.sqs.Queue
    dead_letter_queue: aws.sqs.Queue
    reviewer_role: aws.iam.Role

    def __init__(
        self, name: str, args: ReviewQueueArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:review:ReviewQueue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.dead_letter_queue = aws.sqs.Queue(
            f"{name}-dlq",
            kms_master_key_id=args.context.kms_key_arn,
            message_retention_seconds=QUEUE_RETENTION_SECONDS,
            opts=child,
        )
        self.queue = aws.sqs.Queue(
            f"{name}-queue",
            kms_master_key_id=args.context.kms_key_arn,
            message_retention_seconds=QUEUE_RETENTION_SECONDS,
            visibility_timeout_seconds=QUEUE_VISIBILITY_SECONDS,
            redrive_policy=self.dead_letter_queue.arn.apply(
                lambda arn: json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
                )
            ),
            opts=child,
        )
        self.reviewer_role = aws.iam.Role(
            f"{name}-reviewer-role",
            description=f"scones {args.context.stack}: answers human review cases",
            assume_role_policy=document(
                [
                    {
                        "Effect": "Allow",
                        "Principal": {
                            "AWS": pulumi.Output.concat(
                                "arn:aws:iam::", args.context.account_id, ":root"
                            )
                        },
                        "Action": "sts:AssumeRole",
                    }
                ]
            ),
            opts=child,
        )
        self.reviewer_policy = aws.iam.RolePolicy(
            f"{name}-reviewer-policy",
            role=self.reviewer_role.id,
            policy=document(
                reviewer_statements(
                    bucket_arn=args.context.bucket_arn,
                    kms_key_arn=args.context.kms_key_arn,
                    queue_arns=[self.queue.arn, self.dead_letter_queue.arn],
                    route_function_arn=args.route_function_arn,
                    image_prefixes=args.image_prefixes,
                )
            ),
            opts=child,
        )
        self.register_outputs(
            {
                "queueUrl": self.queue.url,
                "deadLetterQueueUrl": self.dead_letter_queue.url,
                "reviewerRoleArn": self.reviewer_role.arn,
            }
        )
