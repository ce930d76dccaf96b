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
- Alarms (on the alarm topic): the oldest case waiting longer than it may, and any case in the
  dead-letter queue; exposed with the queues' graph as ``alarms`` and ``dashboard_widgets``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import AlarmTopic, topic_alarm
from components.bucket_layout import INTAKE_PREFIX
from components.context import StackContext
from components.function_policies import reviewer_statements
from components.iam import document
from components.roles import role_with_policy
from review.cases import (
    MAX_RECEIVE_COUNT,
    QUEUE_RETENTION_SECONDS,
    QUEUE_VISIBILITY_SECONDS,
)

# A review case older than this raises the review-queue-age alarm (well inside the default
# 24 h review timeout, so someone can still answer before the case expires).
REVIEW_AGE_ALARM_SECONDS = 4 * 3600


@dataclass
class ReviewQueueArgs:
    context: StackContext
    route_function_arn: pulumi.Input[str]
    alarm_topic: AlarmTopic  # the queue alarms notify it
    review_timeout_seconds: int  # how long a case waits for an answer (the age alarm fires before)
    # Where case images live (no trailing "/"): intake/, and the batch workflow's inputs.
    image_prefixes: Sequence[str] = (INTAKE_PREFIX,)


class ReviewQueue(pulumi.ComponentResource):
    alarms: list[aws.cloudwatch.MetricAlarm]
    dashboard_widgets: list[pulumi.Input[dict[str, Any]]]
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
        self.reviewer_role, self.reviewer_policy = role_with_policy(
            f"{name}-reviewer",
            description=f"scones {args.context.stack}: answers human review cases",
            trust_policy=document(
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
            statements=reviewer_statements(
                bucket_arn=args.context.bucket_arn,
                kms_key_arn=args.context.kms_key_arn,
                queue_arns=[self.queue.arn, self.dead_letter_queue.arn],
                route_function_arn=args.route_function_arn,
                image_prefixes=args.image_prefixes,
            ),
            opts=child,
        )
        self._queue_alarms(args)
        self.register_outputs(
            {
                "queueUrl": self.queue.url,
                "deadLetterQueueUrl": self.dead_letter_queue.url,
                "reviewerRoleArn": self.reviewer_role.arn,
            }
        )

    def _queue_alarms(self, args: ReviewQueueArgs) -> None:
        """Cases waiting for a person: the oldest one's age, and anything in the dead-letter
        queue (AWS/SQS metrics, SQS developer guide "Available CloudWatch metrics for Amazon
        SQS"); and a graph of both queues."""
        stack = args.context.stack
        queue_age = {
            "namespace": "AWS/SQS",
            "metric_name": "ApproximateAgeOfOldestMessage",
            "dimensions": {"QueueName": self.queue.name},
            "statistic": "Maximum",
            "period": 300,
            "evaluation_periods": 1,
            # Before the case expires, even with a short scones:reviewTimeoutSeconds.
            "threshold": min(REVIEW_AGE_ALARM_SECONDS, args.review_timeout_seconds // 2),
            "comparison_operator": "GreaterThanThreshold",
            "treat_missing_data": "notBreaching",
            "alarm_description": f"scones {stack}: a review case has waited long (it expires "
            f"after {args.review_timeout_seconds} s)",
        }
        dead_letters = {
            "namespace": "AWS/SQS",
            "metric_name": "ApproximateNumberOfMessagesVisible",
            "dimensions": {"QueueName": self.dead_letter_queue.name},
            "statistic": "Maximum",
            "period": 300,
            "evaluation_periods": 1,
            "threshold": 0,
            "comparison_operator": "GreaterThanThreshold",
            "treat_missing_data": "notBreaching",
            "alarm_description": f"scones {stack}: review cases moved to the dead-letter queue",
        }
        self.alarms = [
            topic_alarm(key, properties, alarm_topic=args.alarm_topic, parent=self)
            for key, properties in (
                ("review-queue-age", queue_age), ("review-dlq-depth", dead_letters)
            )
        ]
        # What is waiting for a person: cases on the review queue and in its dead-letter queue.
        self.dashboard_widgets = [
            {
                "type": "metric",
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "Review cases waiting",
                    "region": args.context.region,
                    "stat": "Maximum",
                    "period": 300,
                    "metrics": [
                        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
                         self.queue.name, {"label": "review queue"}],
                        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
                         self.dead_letter_queue.name, {"label": "dead-letter queue"}],
                    ],
                },
            }
        ]
