"""ReviewQueue: where low-confidence cases wait for a person, and the role that may answer them.

- The queue and its dead-letter queue are encrypted with the stack's KMS key; the queue keeps a
  case for SQS's maximum retention (14 days, longer than any review timeout the workflow
  allows) and moves one received ``MAX_RECEIVE_COUNT`` times without an answer to the DLQ
  (review.cases holds these settings for local mode too).
- The reviewer role is the only principal the stack grants states:SendTaskSuccess /
  SendTaskFailure, scoped to the routing state machine's ARN: answering resumes a waiting
  execution, which routes a driver. The scope follows the Service Authorization Reference for
  AWS Step Functions (https://docs.aws.amazon.com/service-authorization/latest/reference/
  list_awsstepfunctions.html), which I could not re-read offline for these two actions; if AWS
  authorises them on "*" only, a wildcard is needed here and the policy pack must allow it.
  The role also reads and deletes cases on both queues, reads the images and writes
  ``labelled/``. Its trust policy names this account; a person still needs sts:AssumeRole on
  it granted to them (IAM user guide, "Creating a role to give permissions to an IAM user").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.data_staging import INTAKE_PREFIX
from components.iam import document, statement
from review.cases import (
    LABELLED_PREFIX,
    MAX_RECEIVE_COUNT,
    QUEUE_RETENTION_SECONDS,
    QUEUE_VISIBILITY_SECONDS,
)

REVIEWER_QUEUE_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
]
REVIEWER_ANSWER_ACTIONS = ["states:SendTaskSuccess", "states:SendTaskFailure"]


@dataclass
class ReviewQueueArgs:
    stack: str
    kms_key_arn: pulumi.Input[str]
    account_id: pulumi.Input[str]
    state_machine_arn: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]


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
            kms_master_key_id=args.kms_key_arn,
            message_retention_seconds=QUEUE_RETENTION_SECONDS,
            opts=child,
        )
        self.queue = aws.sqs.Queue(
            f"{name}-queue",
            kms_master_key_id=args.kms_key_arn,
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
            description=f"scones {args.stack}: answers human review cases",
            assume_role_policy=document(
                [
                    {
                        "Effect": "Allow",
                        "Principal": {
                            "AWS": pulumi.Output.concat(
                                "arn:aws:iam::", args.account_id, ":root"
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
                [
                    statement(
                        REVIEWER_ANSWER_ACTIONS,
                        [args.state_machine_arn],
                        sid="AnswerWaitingCases",
                    ),
                    statement(
                        REVIEWER_QUEUE_ACTIONS,
                        [self.queue.arn, self.dead_letter_queue.arn],
                        sid="ReadAndDeleteCases",
                    ),
                    statement(
                        ["s3:GetObject"],
                        [pulumi.Output.concat(args.bucket_arn, f"/{INTAKE_PREFIX}/*")],
                        sid="ReadCaseImages",
                    ),
                    statement(
                        ["s3:PutObject"],
                        [pulumi.Output.concat(args.bucket_arn, f"/{LABELLED_PREFIX}/*")],
                        sid="StoreLabelledImages",
                    ),
                    statement(
                        ["kms:Decrypt", "kms:GenerateDataKey"],
                        [args.kms_key_arn],
                        sid="EncryptedQueueAndBucket",
                    ),
                ]
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
