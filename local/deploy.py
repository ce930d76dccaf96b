"""Create the workflow's resources in the local moto server: the same zip and the same ASL
definition the cloud deploys, configured through the same environment variables."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from components.function_policies import function_statements, safe_mode_statements
from lambdas.defaults import RUNTIME
from lambdas.environment import merged_environment, workflow_environments
from lambdas.package import HANDLERS, build_function_zip, build_function_zips
from lambdas.safe_mode.flag import INITIAL, parameter_name, write_state
from lambdas.workflow_definition import build_definition

REGION = "us-east-1"
BUCKET = "scones-local"
ENDPOINT_NAME = "scones-local"
VARIANT = "AllTraffic"
CAPTURE_PREFIX = "capture"
STATE_MACHINE = "scones-routing"
ROUTING_TOPIC = "scones-routing"
REVIEW_TOPIC = "scones-review"
REVIEW_QUEUE = "scones-review-cases"
ACCOUNT = "123456789012"  # moto's default account
SAFE_MODE_FUNCTION = "scones-safe-mode"
SAFE_MODE_HANDLER = "lambdas.safe_mode.handler.lambda_handler"
SAFE_MODE_PARAMETER = parameter_name("local")
SAFE_MODE_PARAMETER_ARN = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{SAFE_MODE_PARAMETER}"
# Local mode has no KMS key (the local bucket is not encrypted); the builder's KMS statements
# name this ARN, which no request uses.
LOCAL_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/local-mode-has-no-key"


def function_role_policy(
    function: str, *, routing_topic_arn: str, writes_capture: bool = True
) -> dict[str, Any]:
    """The identity policy of `function`'s local role: the statements the cloud role gets
    (components/function_policies.py) for the local bucket, endpoint and topic."""
    return {
        "Version": "2012-10-17",
        "Statement": function_statements(
            function,
            bucket_arn=f"arn:aws:s3:::{BUCKET}",
            kms_key_arn=LOCAL_KEY_ARN,
            endpoint_arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT_NAME}",
            routing_topic_arn=routing_topic_arn,
            # The local endpoint has no Data Capture of its own either: classify writes it.
            writes_capture=writes_capture,
            safe_mode_parameter_arn=SAFE_MODE_PARAMETER_ARN,
        ),
    }


def create_role(iam: Any, name: str, service: str, policy: dict[str, Any] | None) -> str:
    """A role `service` may assume, with `policy` inline (if any); returns its ARN."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}
        ],
    }
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    if policy and policy["Statement"]:
        iam.put_role_policy(RoleName=name, PolicyName="own", PolicyDocument=json.dumps(policy))
    return str(arn)


def aws_client(service: str, moto_url: str) -> Any:
    import boto3

    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def bad_objects(sample_png: bytes) -> dict[str, bytes]:
    """Objects for `run --bad-events`: each must end in its named failure state."""

    def chunk(ctype: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)

    noise = bytes((i * 7919 + 13) % 256 for i in range(220_000))
    return {
        "bad/notes.txt": b"driver notes: not an image\n",
        "bad/renamed-text.png": b"hello, I only look like a PNG by name\n",
        "bad/truncated.png": sample_png[: len(sample_png) // 2],
        "bad/empty.png": b"",
        # A structurally valid PNG too big for the 256 KiB state once base64-encoded.
        "bad/huge.png": sample_png[:33] + chunk(b"IDAT", noise) + chunk(b"IEND", b""),
    }


def upload_dir(s3: Any, data_dir: Path, bucket: str, workers: int = 8) -> int:
    files = [p for p in sorted(data_dir.rglob("*")) if p.is_file()]

    def put(path: Path) -> None:
        s3.put_object(
            Bucket=bucket, Key=path.relative_to(data_dir).as_posix(), Body=path.read_bytes()
        )

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, files))
    return len(files)


def function_environment(
    *,
    moto_url: str,
    endpoint_url: str,
    routing_topic_arn: str,
    classes: Sequence[str],
    routes: dict[str, str],
    threshold: float,
) -> dict[str, str]:
    """The cloud's variables (lambdas/environment.py), merged into one configuration shared by
    all four functions (the in-process adapter applies the union of the functions' variables to
    one process), plus local mode's endpoints."""
    cloud = workflow_environments(
        service_name="scones-local",
        classes=classes,
        endpoint_name=ENDPOINT_NAME,
        confidence_threshold=threshold,
        routes=routes,
        routing_topic_arn=routing_topic_arn,
        safe_mode_parameter=SAFE_MODE_PARAMETER,
    )
    return {
        **merged_environment(cloud),
        "POWERTOOLS_TRACE_DISABLED": "true",
        # The standard per-service variables: the handlers have no local code path.
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ENDPOINT_URL_SNS": moto_url,
        "AWS_ENDPOINT_URL_EVENTS": moto_url,
        "AWS_ENDPOINT_URL_SSM": moto_url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint_url,
    }


def create_observed_topic(sns: Any, sqs: Any, topic_name: str, queue_name: str) -> tuple[str, str]:
    """An SNS topic with an SQS queue subscribed (raw delivery), so what it publishes can be read.

    Returns (topic ARN, queue URL).
    """
    topic_arn = sns.create_topic(Name=topic_name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return topic_arn, queue_url


def create_review_queue(sqs: Any, name: str) -> tuple[str, str]:
    """The review queue and its dead-letter queue, with review.cases' settings and SQS-managed
    encryption (moto has no KMS key of the stack's). Returns (queue URL, DLQ URL)."""
    from review.cases import MAX_RECEIVE_COUNT, QUEUE_RETENTION_SECONDS, QUEUE_VISIBILITY_SECONDS

    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq",
        Attributes={
            "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
            "SqsManagedSseEnabled": "true",
        },
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
            "VisibilityTimeout": str(QUEUE_VISIBILITY_SECONDS),
            "SqsManagedSseEnabled": "true",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            ),
        },
    )["QueueUrl"]
    return url, dlq_url


def upload_data(s3: Any, data_dir: Path) -> int:
    """The bucket with the staged data set and the bad objects the smoke checks use."""
    s3.create_bucket(Bucket=BUCKET)
    n_files = upload_dir(s3, data_dir, BUCKET)
    sample = next(p for p in sorted((data_dir / "test").glob("*.png")))
    for key, body in bad_objects(sample.read_bytes()).items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return n_files


def create_step_functions(
    lam: Any, iam: Any, build_dir: Path, env: dict[str, str], routing_topic_arn: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The four workflow functions, each from its own zip and with a role holding exactly its
    cloud statements (moto enforces them only with its IAM authorization on:
    tests/test_local_iam_enforcement.py); returns (function ARNs, role ARNs)."""
    roles = {
        key: create_role(
            iam,
            f"scones-local-{key.replace('_', '-')}",
            "lambda.amazonaws.com",
            function_role_policy(key, routing_topic_arn=routing_topic_arn),
        )
        for key in HANDLERS
    }
    zips = build_function_zips(build_dir, HANDLERS)
    arns = {
        key: lam.create_function(
            FunctionName=f"scones-{key.replace('_', '-')}",
            Runtime=RUNTIME,
            Role=roles[key],
            Handler=handler,
            Code={"ZipFile": zips[key].read_bytes()},
            Timeout=30,
            MemorySize=512,
            Environment={"Variables": env},
        )["FunctionArn"]
        for key, handler in HANDLERS.items()
    }
    return arns, roles


def create_safe_mode(lam: Any, iam: Any, ssm: Any, build_dir: Path, env: dict[str, str]) -> str:
    """The safe-mode flag (deployed off, as in the cloud; moto has no KMS key of the stack's,
    so the default key) and the function that switches it (local monitor, local safe-mode);
    returns the function's ARN."""
    write_state(ssm, SAFE_MODE_PARAMETER, INITIAL, key_id=None)
    role = create_role(
        iam,
        SAFE_MODE_FUNCTION,
        "lambda.amazonaws.com",
        {
            "Version": "2012-10-17",
            "Statement": safe_mode_statements(
                parameter_arn=SAFE_MODE_PARAMETER_ARN, kms_key_arn=LOCAL_KEY_ARN, write=True
            ),
        },
    )
    code = build_function_zip(build_dir / "safe_mode.zip", SAFE_MODE_HANDLER).read_bytes()
    return lam.create_function(
        FunctionName=SAFE_MODE_FUNCTION,
        Runtime=RUNTIME,
        Role=role,
        Handler=SAFE_MODE_HANDLER,
        Code={"ZipFile": code},
        Timeout=15,
        MemorySize=256,
        Environment={"Variables": env},
    )["FunctionArn"]


def deploy_workflow(
    *,
    moto_url: str,
    endpoint_url: str,
    data_dir: Path,
    build_dir: Path,
    classes: Sequence[str],
    threshold: float,
    routes: dict[str, str],
    review_timeout_seconds: int | None = None,
) -> dict[str, Any]:
    """Create bucket + data, topics (with SQS queues to observe them), the review queue,
    functions, state machine."""
    n_files = upload_data(aws_client("s3", moto_url), data_dir)
    sns = aws_client("sns", moto_url)
    sqs = aws_client("sqs", moto_url)
    topics: dict[str, str] = {}
    queues: dict[str, str] = {}
    for name in (ROUTING_TOPIC, REVIEW_TOPIC):
        topics[name], queues[name] = create_observed_topic(sns, sqs, name, f"{name}-observer")
    review_queue, review_dlq = create_review_queue(sqs, REVIEW_QUEUE)
    iam = aws_client("iam", moto_url)
    workflow_role = create_role(iam, "scones-local-workflow", "states.amazonaws.com", None)
    env = function_environment(
        moto_url=moto_url,
        endpoint_url=endpoint_url,
        routing_topic_arn=topics[ROUTING_TOPIC],
        classes=classes,
        routes=routes,
        threshold=threshold,
    )
    lam = aws_client("lambda", moto_url)
    function_arns, function_roles = create_step_functions(
        lam, iam, build_dir / "lambdas", env, topics[ROUTING_TOPIC]
    )
    safe_mode_function_arn = create_safe_mode(
        lam, iam, aws_client("ssm", moto_url), build_dir / "lambdas", env
    )
    definition = build_definition(
        function_arns,
        review_topic_arn=topics[REVIEW_TOPIC],
        review_queue_url=review_queue,
        routes=routes,
        **({"review_timeout_seconds": review_timeout_seconds} if review_timeout_seconds else {}),
    )
    sfn = aws_client("stepfunctions", moto_url)
    state_machine_arn = sfn.create_state_machine(
        name=STATE_MACHINE, definition=json.dumps(definition), roleArn=workflow_role
    )["stateMachineArn"]
    # The batch workflow (local/batch.py): the same functions, in its inline-Map form.
    from local.batch import deploy_batch

    batch = deploy_batch(
        lam=lam,
        sfn=sfn,
        role_arn=workflow_role,
        build_dir=build_dir / "lambdas",
        environment=env,
        function_arns=function_arns,
        review_topic_arn=topics[REVIEW_TOPIC],
        review_queue_url=review_queue,
        routes=routes,
        bucket=BUCKET,
    )
    return {
        **batch,
        "bucket": BUCKET,
        "uploaded_files": n_files,
        "topics": topics,
        "observer_queues": queues,
        "review_queue_url": review_queue,
        "review_dlq_url": review_dlq,
        "function_arns": function_arns,
        "function_roles": function_roles,
        "state_machine_arn": state_machine_arn,
        "safe_mode_parameter": SAFE_MODE_PARAMETER,
        "safe_mode_function_arn": safe_mode_function_arn,
        "capture_uri": f"s3://{BUCKET}/{CAPTURE_PREFIX}",
        "endpoint_name": ENDPOINT_NAME,
    }
