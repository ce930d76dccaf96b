"""InferenceWorkflow: the Step Functions state machine and the S3 event that starts it.

The definition comes from lambdas.workflow_definition.build_definition (the one local mode
runs too), resolved with Output.all(...).apply and serialised with json.dumps. Images put under
intake/ emit S3 "Object Created" events to EventBridge (the bucket has EventBridge notifications
on); a rule maps each to DESIGN's event {"s3_bucket", "s3_key"} and starts an execution.
Its alarm (failed executions) and outcomes graph are exposed as `alarms` and `dashboard_widgets`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import AlarmTopic, topic_alarm
from components.context import StackContext
from components.data_staging import INTAKE_PREFIX
from components.iam import (
    XRAY_WRITE_ACTIONS,
    assume_role_policy,
    document,
    statement,
)
from components.review_queue import ReviewQueue, ReviewQueueArgs
from components.roles import role_with_policy
from lambdas.workflow_definition import DEFAULT_REVIEW_TIMEOUT_SECONDS, build_definition

# CloudWatch Logs delivery for Step Functions is configured through these account-level APIs,
# which support only Resource "*" (AWS Step Functions developer guide, "IAM policies for logging
# to CloudWatch Logs", https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html);
# policy/rules.py lists them as an allowed exception. Not logs:PutResourcePolicy: it would let
# the workflow rewrite any log resource policy of the account. The log group's resource policy
# for the delivery service is created by the deployer instead (``log_delivery_policy``): "If the
# log group already has a resource policy" that grants delivery.logs.amazonaws.com, none is
# added and PutResourcePolicy is not needed (CloudWatch Logs user guide, "Logs sent to
# CloudWatch Logs", https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/
# AWS-logs-and-resource-policy.html#AWS-logs-infrastructure-CWL).
SFN_LOG_DELIVERY_ACTIONS = [
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:UpdateLogDelivery",
]
XRAY_SAMPLING_ACTIONS = ["xray:GetSamplingRules", "xray:GetSamplingTargets"]


def intake_event_pattern(bucket_name: str, prefix: str = INTAKE_PREFIX) -> dict:
    """EventBridge pattern: objects created in this bucket under `prefix`/."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [bucket_name]},
            "object": {"key": [{"prefix": f"{prefix}/"}]},
        },
    }


# Maps the S3 event to the workflow's input event (docs/design.md "The workflow's event").
INPUT_PATHS = {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"}
INPUT_TEMPLATE = '{"s3_bucket": <bucket>, "s3_key": <key>}'


def state_machine_name(stack: str) -> str:
    return f"scones-{stack}-routing"


def log_delivery_policy(
    log_group_arn: pulumi.Input[str], account_id: pulumi.Input[str], region: str
) -> pulumi.Output[str]:
    """The log group's resource policy for vended-log delivery (the shape the CloudWatch Logs
    user guide gives for delivery.logs.amazonaws.com, narrowed to this log group)."""
    return document(
        [
            {
                "Sid": "VendedLogDeliveryToTheWorkflowLogGroup",
                "Effect": "Allow",
                "Principal": {"Service": "delivery.logs.amazonaws.com"},
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [pulumi.Output.concat(log_group_arn, ":log-stream:*")],
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {
                        "aws:SourceArn": pulumi.Output.concat(
                            "arn:aws:logs:", region, ":", account_id, ":*"
                        )
                    },
                },
            }
        ]
    )


def state_machine_log_group(
    name: str,
    *,
    log_group_name: str,
    policy_name: str,
    context: StackContext,
    parent: pulumi.Resource,
) -> tuple[aws.cloudwatch.LogGroup, aws.cloudwatch.LogResourcePolicy]:
    """A state machine's log group (``<name>-logs``) and its resource policy for vended-log
    delivery (``<name>-log-delivery``): the workflow roles have no logs:PutResourcePolicy, so
    the deployer creates it (see SFN_LOG_DELIVERY_ACTIONS)."""
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-logs",
        name=log_group_name,
        retention_in_days=context.log_retention_days,
        opts=child,
    )
    delivery_policy = aws.cloudwatch.LogResourcePolicy(
        f"{name}-log-delivery",
        policy_name=policy_name,
        policy_document=log_delivery_policy(log_group.arn, context.account_id, context.region),
        opts=child,
    )
    return log_group, delivery_policy


def logged_state_machine(
    resource_name: str,
    *,
    name: str,
    workflow_type: pulumi.Input[str],
    role: aws.iam.Role,
    definition: pulumi.Input[str],
    log_group: aws.cloudwatch.LogGroup,
    depends_on: list[pulumi.Resource],
    parent: pulumi.Resource,
) -> aws.sfn.StateMachine:
    """A state machine with a fixed name, every state logged without execution data (events
    carry base64 images), X-Ray tracing, and delete-before-replace: the name is fixed and
    "name" and "type" are ForceNew (terraform-provider-aws internal/service/sfn/
    state_machine.go), so create-before-delete would collide on the name."""
    return aws.sfn.StateMachine(
        resource_name,
        name=name,
        type=workflow_type,
        role_arn=role.arn,
        definition=definition,
        logging_configuration={
            "level": "ALL",
            "include_execution_data": False,
            "log_destination": pulumi.Output.concat(log_group.arn, ":*"),
        },
        tracing_configuration={"enabled": True},
        opts=pulumi.ResourceOptions(
            parent=parent, depends_on=depends_on, delete_before_replace=True
        ),
    )


def workflow_outcomes_widget(region: str, state_machine_arn: str, review_topic: str) -> dict:
    """Dashboard graph: executions started, routed or reviewed (succeeded), failed, reviewed."""
    metrics = [
        ["AWS/States", m, "StateMachineArn", state_machine_arn, {"label": label}]
        for m, label in (
            ("ExecutionsStarted", "started"),
            ("ExecutionsSucceeded", "succeeded (routed or sent to review)"),
            ("ExecutionsFailed", "failed"),
        )
    ]
    metrics.append(
        ["AWS/SNS", "NumberOfMessagesPublished", "TopicName", review_topic,
         {"label": "sent to human review"}]
    )
    return {
        "type": "metric",
        "width": 12,
        "height": 6,
        "properties": {
            "title": "Workflow outcomes",
            "region": region,
            "stat": "Sum",
            "period": 300,
            "metrics": metrics,
        },
    }


@dataclass
class InferenceWorkflowArgs:
    context: StackContext
    alarm_topic: AlarmTopic  # the workflow's and the review queue's alarms notify it
    function_arns: Mapping[str, pulumi.Input[str]]
    routes: Mapping[str, str]
    workflow_type: str
    review_timeout_seconds: int = DEFAULT_REVIEW_TIMEOUT_SECONDS
    review_image_prefixes: Sequence[str] = (INTAKE_PREFIX,)  # where reviewers read case images


def workflow_role_statements(
    function_arns: Sequence[pulumi.Input[str]],
    *,
    review_topic_arn: pulumi.Input[str],
    review_queue_arn: pulumi.Input[str],
    kms_key_arn: pulumi.Input[str],
) -> list[dict]:
    """What the state machine's role may do: invoke the functions, hand cases to review
    (topic and queue, both KMS-encrypted), deliver its logs and write X-Ray traces."""
    return [
        statement(["lambda:InvokeFunction"], function_arns, sid="InvokeTheFunctions"),
        statement(["sns:Publish"], [review_topic_arn], sid="PublishForReview"),
        statement(["sqs:SendMessage"], [review_queue_arn], sid="QueueCasesForReview"),
        statement(
            ["kms:Decrypt", "kms:GenerateDataKey"],
            [kms_key_arn],
            sid="EncryptedReviewTopicAndQueue",
        ),
        statement(SFN_LOG_DELIVERY_ACTIONS, ["*"], sid="LogDeliveryHasNoResourceLevel"),
        statement(
            XRAY_WRITE_ACTIONS + XRAY_SAMPLING_ACTIONS, ["*"], sid="XRayHasNoResourceLevel"
        ),
    ]


class InferenceWorkflow(pulumi.ComponentResource):
    alarms: list[aws.cloudwatch.MetricAlarm]
    dashboard_widgets: list[pulumi.Input[dict[str, Any]]]
    state_machine: aws.sfn.StateMachine
    review_topic: aws.sns.Topic
    definition: pulumi.Output[str]

    def __init__(
        self, name: str, args: InferenceWorkflowArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:workflow:InferenceWorkflow", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        keys = sorted(args.function_arns)
        function_arns = [args.function_arns[k] for k in keys]
        self.review_topic = aws.sns.Topic(
            f"{name}-review-topic", kms_master_key_id=args.context.kms_key_arn, opts=child
        )
        self.log_group, self.log_delivery_policy = state_machine_log_group(
            name,
            # The /aws/vendedlogs/ prefix keeps the log resource policy small (AWS guidance).
            log_group_name=f"/aws/vendedlogs/states/scones-{args.context.stack}-workflow",
            policy_name=f"scones-{args.context.stack}-workflow-log-delivery",
            context=args.context,
            parent=self,
        )
        sm_name = state_machine_name(args.context.stack)
        self.review = ReviewQueue(
            f"{name}-review",
            ReviewQueueArgs(
                context=args.context,
                route_function_arn=args.function_arns["route_driver"],
                alarm_topic=args.alarm_topic,
                review_timeout_seconds=args.review_timeout_seconds,
                image_prefixes=args.review_image_prefixes,
            ),
            opts=child,
        )
        self._workflow_role(name, args, sm_name, function_arns)
        self.definition = self._definition(args, keys, function_arns)
        # scones:workflowType can change, and `type` forces a new state machine.
        self.state_machine = logged_state_machine(
            f"{name}-state-machine",
            name=sm_name,
            workflow_type=args.workflow_type,
            role=self.role,
            definition=self.definition,
            log_group=self.log_group,
            depends_on=[self.role_policy, self.log_delivery_policy],
            parent=self,
        )
        self._intake_trigger(name, args)
        self._failure_alarm(args)
        self.register_outputs(
            {
                "stateMachineArn": self.state_machine.arn,
                "reviewTopicArn": self.review_topic.arn,
                "reviewQueueUrl": self.review.queue.url,
                "intakeRule": self.rule.name,
            }
        )

    def _workflow_role(
        self,
        name: str,
        args: InferenceWorkflowArgs,
        sm_name: str,
        function_arns: Sequence[pulumi.Input[str]],
    ) -> None:
        """The role Step Functions assumes for this state machine, and its policy."""
        child = pulumi.ResourceOptions(parent=self)
        # The name is fixed, so the ARN is known before the state machine exists: the role's
        # trust policy can name it without a cycle.
        sm_arn = pulumi.Output.concat(
            "arn:aws:states:",
            args.context.region,
            ":",
            args.context.account_id,
            ":stateMachine:",
            sm_name,
        )
        self.role, self.role_policy = role_with_policy(
            name,
            description=f"scones {args.context.stack}: Step Functions workflow",
            # Step Functions sets aws:SourceArn to the state machine (developer guide,
            # "Cross-service confused deputy prevention"); its name is fixed, so its ARN is
            # known before it exists.
            trust_policy=assume_role_policy(
                "states.amazonaws.com",
                source_account=args.context.account_id,
                source_arn=sm_arn,
            ),
            statements=workflow_role_statements(
                function_arns,
                review_topic_arn=self.review_topic.arn,
                review_queue_arn=self.review.queue.arn,
                kms_key_arn=args.context.kms_key_arn,
            ),
            opts=child,
        )

    def _definition(
        self,
        args: InferenceWorkflowArgs,
        keys: Sequence[str],
        function_arns: Sequence[pulumi.Input[str]],
    ) -> pulumi.Output[str]:
        """The state machine's ASL (build_definition), once the ARNs and queue URL resolve."""
        return pulumi.Output.all(
            self.review_topic.arn, self.review.queue.url, *function_arns
        ).apply(
            lambda values: json.dumps(
                build_definition(
                    dict(zip(keys, values[2:], strict=True)),
                    review_topic_arn=values[0],
                    review_queue_url=values[1],
                    # Express workflows cannot wait for a task token (see build_definition).
                    wait_for_review=args.workflow_type == "STANDARD",
                    review_timeout_seconds=args.review_timeout_seconds,
                    routes=dict(args.routes),
                ),
                indent=2,
                sort_keys=True,
            )
        )

    def _intake_trigger(self, name: str, args: InferenceWorkflowArgs) -> None:
        """The EventBridge rule on intake/ uploads, its role and the target that starts the
        workflow with the image's bucket and key."""
        child = pulumi.ResourceOptions(parent=self)
        self.rule = aws.cloudwatch.EventRule(
            f"{name}-intake-rule",
            description=f"scones {args.context.stack}: image uploaded under {INTAKE_PREFIX}/",
            event_pattern=pulumi.Output.from_input(args.context.bucket_name).apply(
                lambda bucket: json.dumps(intake_event_pattern(bucket), sort_keys=True)
            ),
            opts=child,
        )
        self.events_role, self.events_policy = role_with_policy(
            f"{name}-events",
            description=f"scones {args.context.stack}: EventBridge starts the workflow",
            # EventBridge sets aws:SourceArn to the rule (EventBridge user guide, "Preventing
            # the confused deputy problem").
            trust_policy=assume_role_policy(
                "events.amazonaws.com",
                source_account=args.context.account_id,
                source_arn=self.rule.arn,
            ),
            statements=[
                statement(
                    ["states:StartExecution"],
                    [self.state_machine.arn],
                    sid="StartTheWorkflow",
                )
            ],
            opts=child,
        )
        self.target = aws.cloudwatch.EventTarget(
            f"{name}-intake-target",
            rule=self.rule.name,
            arn=self.state_machine.arn,
            role_arn=self.events_role.arn,
            input_transformer={"input_paths": INPUT_PATHS, "input_template": INPUT_TEMPLATE},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.events_policy]),
        )

    def _failure_alarm(self, args: InferenceWorkflowArgs) -> None:
        """Failed executions, and a graph of the outcomes."""
        self.alarms = [
            topic_alarm(
                "workflow-failed",
                {
                    "namespace": "AWS/States",
                    "metric_name": "ExecutionsFailed",
                    "dimensions": {"StateMachineArn": self.state_machine.arn},
                    "statistic": "Sum",
                    "period": 300,
                    "evaluation_periods": 1,
                    "threshold": 0,
                    "comparison_operator": "GreaterThanThreshold",
                    "treat_missing_data": "notBreaching",
                    # Counts failures only: human review ends in a Succeed state.
                    "alarm_description": (
                        f"scones {args.context.stack}: routing workflow executions failed"
                    ),
                },
                alarm_topic=args.alarm_topic,
                parent=self,
            )
        ]
        # Review is a successful end state (lambdas/workflow_definition.py), so ExecutionsFailed
        # (and the workflow-failed alarm) counts real failures only; the dashboard shows the
        # images handed to review apart, as the review topic's published messages.
        region = args.context.region
        self.dashboard_widgets = [
            pulumi.Output.all(self.state_machine.arn, self.review_topic.name).apply(
                lambda values: workflow_outcomes_widget(region, values[0], values[1])
            )
        ]
