"""BatchWorkflow: the batch state machine (Distributed Map over an S3 prefix) and its summary.

The definition is lambdas.batch_workflow_definition.build_batch_definition, whose item processor
is the per-image workflow's states (build_definition), resolved with Output.all(...).apply as
InferenceWorkflow does. The summarize_batch function comes from the same deployment zip as the
four workflow functions.

IAM, least privilege on named resources:
- The state machine's role (Step Functions developer guide, "IAM policies for using Distributed
  Map states": https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html):
  states:StartExecution on this state machine (a Distributed Map starts its child workflow
  executions as executions of the parent) and states:DescribeExecution/StopExecution on its
  child executions, named ``execution:<name>/<map run label>:<id>`` (hence ``<name>/*``);
  s3:ListBucket on the bucket, only for the input prefixes (ItemReader, "IAM policies for
  datasets": https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html);
  s3:PutObject/GetObject/ListMultipartUploadParts/AbortMultipartUpload under the results
  prefix ("IAM policies for ResultWriter":
  https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html; the
  same four actions as aws-cdk-lib aws-stepfunctions/lib/states/distributed-map/
  result-writer.ts providePolicyStatements), with the bucket key's kms:Decrypt/GenerateDataKey
  (the bucket is SSE-KMS); lambda:InvokeFunction on the four workflow functions and
  summarize_batch; sns:Publish on the review topic (the LowConfidence path).
  No states:* on another state machine and no events:PutRule: the per-image graph runs inline
  as the Map's item processor, not as a `startExecution.sync` child (docs/batch.md, "Why an
  item processor and not startExecution.sync:2").
- Its trust policy admits states.amazonaws.com only for this account and this state machine
  (aws:SourceAccount, aws:SourceArn: "Prevent cross-service confused deputy issue",
  https://docs.aws.amazon.com/step-functions/latest/dg/procedure-create-iam-role.html); the
  ARN is built from the fixed name, so role and state machine do not depend on each other.
- summarize_batch reads the result files and writes summary.json under the results prefix,
  and lists the input prefixes (to check every object has a result).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.context import StackContext
from components.iam import XRAY_WRITE_ACTIONS, document
from components.iam import statement as allow
from components.inference_workflow import (
    SFN_LOG_DELIVERY_ACTIONS,
    XRAY_SAMPLING_ACTIONS,
    logged_state_machine,
    state_machine_log_group,
)
from components.lambda_function import FunctionSpec, function_with_log_group
from components.roles import role_with_policy
from lambdas.batch_workflow_definition import (
    DEFAULT_INPUT_PREFIXES,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_TOLERATED_FAILURE_PERCENTAGE,
    RESULTS_PREFIX,
    build_batch_definition,
)
from lambdas.defaults import METRICS_NAMESPACE

SUMMARIZE_HANDLER = "lambdas.summarize_batch.handler.lambda_handler"
# A Distributed Map state runs only in a STANDARD workflow (Step Functions developer guide,
# "Using Map state in Distributed mode":
# https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html).
STATE_MACHINE_TYPE = "STANDARD"


def batch_state_machine_name(stack: str) -> str:
    return f"scones-{stack}-batch"


@dataclass
class BatchWorkflowArgs:
    context: StackContext
    lambda_zip: Path
    function_arns: Mapping[str, pulumi.Input[str]]
    review_topic_arn: pulumi.Input[str]
    review_queue_url: pulumi.Input[str]
    review_queue_arn: pulumi.Input[str]
    routes: Mapping[str, str]
    service_name: str
    input_prefixes: Sequence[str] = field(default_factory=lambda: list(DEFAULT_INPUT_PREFIXES))
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    tolerated_failure_percentage: float = DEFAULT_TOLERATED_FAILURE_PERCENTAGE


def summarize_statements(args: BatchWorkflowArgs) -> list[dict]:
    """summarize_batch's own permissions: list the inputs and results, read the result files
    and write summary.json, with the bucket key (its runtime statements come on top)."""
    return [
        allow(
            ["s3:ListBucket"],
            [args.context.bucket_arn],
            sid="ListInputAndResults",
            condition={
                "StringLike": {
                    "s3:prefix": [*(f"{p}*" for p in args.input_prefixes), f"{RESULTS_PREFIX}*"]
                }
            },
        ),
        allow(["s3:GetObject", "s3:PutObject"], [_results_objects(args)], sid="ResultsAndSummary"),
        allow(
            ["kms:Decrypt", "kms:GenerateDataKey"],
            [args.context.kms_key_arn],
            sid="EncryptedBucket",
        ),
    ]


def batch_role_statements(
    args: BatchWorkflowArgs,
    *,
    arn_base: pulumi.Output[str],
    sm_arn: pulumi.Output[str],
    function_arns: Sequence[pulumi.Input[str]],
) -> list[dict]:
    """What the state machine's role may do (the module docstring gives the sources)."""
    sm_name = batch_state_machine_name(args.context.stack)
    return [
        allow(["states:StartExecution"], [sm_arn], sid="StartChildWorkflows"),
        allow(
            ["states:DescribeExecution", "states:StopExecution"],
            [pulumi.Output.concat(arn_base, f"execution:{sm_name}/*")],
            sid="ManageChildWorkflows",
        ),
        allow(
            ["s3:ListBucket"],
            [args.context.bucket_arn],
            sid="ListInputPrefixes",
            condition={"StringLike": {"s3:prefix": [f"{p}*" for p in args.input_prefixes]}},
        ),
        allow(
            [
                "s3:AbortMultipartUpload",
                "s3:GetObject",
                "s3:ListMultipartUploadParts",
                "s3:PutObject",
            ],
            [_results_objects(args)],
            sid="WriteMapRunResults",
        ),
        allow(
            ["kms:Decrypt", "kms:GenerateDataKey"],
            [args.context.kms_key_arn],
            sid="EncryptedBucket",
        ),
        allow(["lambda:InvokeFunction"], list(function_arns), sid="InvokeTheFunctions"),
        allow(["sns:Publish"], [args.review_topic_arn], sid="PublishForReview"),
        allow(["sqs:SendMessage"], [args.review_queue_arn], sid="QueueForReview"),
        allow(SFN_LOG_DELIVERY_ACTIONS, ["*"], sid="LogDeliveryHasNoResourceLevel"),
        allow(XRAY_WRITE_ACTIONS + XRAY_SAMPLING_ACTIONS, ["*"], sid="XRayHasNoResourceLevel"),
    ]


def _results_objects(args: BatchWorkflowArgs) -> pulumi.Output[str]:
    return pulumi.Output.concat(args.context.bucket_arn, f"/{RESULTS_PREFIX}*")


class BatchWorkflow(pulumi.ComponentResource):
    state_machine: aws.sfn.StateMachine
    summarize_function: aws.lambda_.Function
    definition: pulumi.Output[str]

    def __init__(
        self, name: str, args: BatchWorkflowArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:workflow:BatchWorkflow", name, None, opts)
        sm_name = batch_state_machine_name(args.context.stack)
        keys = sorted(args.function_arns)
        function_arns = [args.function_arns[k] for k in keys]
        self._summarize_function(name, args)
        # The delivery policy is the stack's, as for the per-image workflow.
        self.log_group, self.log_delivery_policy = state_machine_log_group(
            name,
            log_group_name=f"/aws/vendedlogs/states/{sm_name}",
            policy_name=f"{sm_name}-log-delivery",
            context=args.context,
            parent=self,
        )
        self._state_machine_role(name, args, sm_name, function_arns)
        self.definition = self._definition(args, keys, function_arns)
        self.state_machine = logged_state_machine(
            f"{name}-state-machine",
            name=sm_name,
            workflow_type=STATE_MACHINE_TYPE,
            role=self.role,
            definition=self.definition,
            log_group=self.log_group,
            depends_on=[self.role_policy, self.log_delivery_policy],
            parent=self,
        )
        self.register_outputs(
            {
                "stateMachineArn": self.state_machine.arn,
                "summarizeFunctionArn": self.summarize_function.arn,
            }
        )

    def _summarize_function(self, name: str, args: BatchWorkflowArgs) -> None:
        """summarize_batch: reads results, lists the input prefixes, writes summary.json."""
        built = function_with_log_group(
            FunctionSpec(
                resource_name=f"{name}-summarize",
                prefix=f"{name}-summarize",
                function_name=f"scones-{args.context.stack}-summarize-batch",
                description=(
                    f"scones {args.context.stack}: batch summary per route and named failure"
                ),
                role_description=f"scones {args.context.stack}: Lambda summarize_batch",
                handler=SUMMARIZE_HANDLER,
                code=args.lambda_zip,
                layers=[args.context.powertools_layer_arn],
                environment={
                    "POWERTOOLS_SERVICE_NAME": args.service_name,
                    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                },
                statements=summarize_statements(args),
                memory_size=512,
                # Reading 100,000 results is a few hundred GETs of result files: minutes at most.
                timeout=300,
            ),
            context=args.context,
            parent=self,
        )
        self.summarize_function, self.summarize_role = built.function, built.role
        self.summarize_policy, self.summarize_logs = built.policy, built.log_group

    def _state_machine_role(
        self,
        name: str,
        args: BatchWorkflowArgs,
        sm_name: str,
        function_arns: Sequence[pulumi.Input[str]],
    ) -> None:
        """The role Step Functions assumes for this state machine and its Map runs."""
        child = pulumi.ResourceOptions(parent=self)
        context = args.context
        arn_base = pulumi.Output.concat(
            f"arn:{context.partition}:states:{context.region}:", context.account_id, ":"
        )
        sm_arn = pulumi.Output.concat(arn_base, f"stateMachine:{sm_name}")
        self.role, self.role_policy = role_with_policy(
            name,
            description=f"scones {args.context.stack}: Step Functions batch workflow",
            trust_policy=document(
                [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "states.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": args.context.account_id},
                            # The state machine, and its Distributed Map state's qualified ARN.
                            "ArnLike": {
                                "aws:SourceArn": [sm_arn, pulumi.Output.concat(sm_arn, "/*")]
                            },
                        },
                    }
                ]
            ),
            statements=batch_role_statements(
                args,
                arn_base=arn_base,
                sm_arn=sm_arn,
                function_arns=[*function_arns, self.summarize_function.arn],
            ),
            opts=child,
        )

    def _definition(
        self,
        args: BatchWorkflowArgs,
        keys: Sequence[str],
        function_arns: Sequence[pulumi.Input[str]],
    ) -> pulumi.Output[str]:
        """The batch ASL (build_batch_definition), once the ARNs and queue URL resolve."""
        input_prefixes = list(args.input_prefixes)
        return pulumi.Output.all(
            args.context.bucket_name,
            args.review_topic_arn,
            self.summarize_function.arn,
            args.review_queue_url,
            *function_arns,
        ).apply(
            lambda values: json.dumps(
                build_batch_definition(
                    dict(zip(keys, values[4:], strict=True)),
                    summarize_function_arn=values[2],
                    review_topic_arn=values[1],
                    review_queue_url=values[3],
                    bucket=values[0],
                    routes=dict(args.routes),
                    input_prefixes=input_prefixes,
                    max_concurrency=args.max_concurrency,
                    tolerated_failure_percentage=args.tolerated_failure_percentage,
                ),
                indent=2,
                sort_keys=True,
            )
        )
