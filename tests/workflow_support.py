"""Shared set-up for the workflow tests: moto with the ASL interpreter on, the in-process Lambda
adapter, the four functions from the real zip, and the state machine from build_definition."""

from __future__ import annotations

import io
import json
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from PIL import Image

from default_task import DEFAULT_CLASSES, DEFAULT_ROUTES
from lambdas.environment import merged_environment, workflow_environments
from lambdas.package import HANDLERS, build_function_zips
from lambdas.workflow_definition import build_definition
from local.deploy import create_observed_topic, create_review_queue

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "scones-test-data"
ENDPOINT = "scones-test-endpoint"


def png_bytes(seed: int = 0, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(seed: int = 0, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def big_png_bytes() -> bytes:
    """A valid PNG of random noise, too big for the state payload once base64-encoded."""
    data = png_bytes(seed=7, size=300)
    assert len(data) > 200_000
    return data


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    import struct

    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def queue_endpoint_result(body: str) -> None:
    """Next new image body sent to moto's canned sagemaker-runtime answers ``body``."""
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    backend = sagemakerruntime_backends[ACCOUNT][REGION]
    backend.results_queue.append((body, "application/json", "AllTraffic", ""))


@dataclass
class Workflow:
    sfn: Any
    s3: Any
    sns: Any
    sqs: Any
    state_machine_arn: str
    routing_queue: str
    review_queue: str
    cases_queue: str = ""
    cases_dlq: str = ""
    names: set[str] = field(default_factory=set)

    def start(self, event: Any, name: str | None = None) -> str:
        name = name or f"exec-{len(self.names)}"
        self.names.add(name)
        payload = event if isinstance(event, str) else json.dumps(event)
        return self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=payload
        )["executionArn"]

    def wait(
        self, arn: str, timeout: float = 60.0, stop_at_review: bool = True
    ) -> dict[str, Any]:
        """The execution's description once it has ended or (``stop_at_review``) waits for a
        person's answer."""
        from review.cases import awaits_review

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            desc = self.sfn.describe_execution(executionArn=arn)
            if desc["status"] != "RUNNING":
                return desc
            history = (
                self.sfn.get_execution_history(executionArn=arn, maxResults=1000)
                if stop_at_review
                else {"events": []}
            )
            if stop_at_review and awaits_review(history["events"]):
                return desc
            time.sleep(0.02)
        raise AssertionError(f"execution {arn} still RUNNING after {timeout}s")

    def run(self, event: Any) -> dict[str, Any]:
        return self.wait(self.start(event))

    def final_state(self, arn: str) -> str:
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        entered = [
            e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
        ]
        return entered[-1]

    def messages(self, queue_url: str) -> list[dict[str, Any]]:
        out = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in out.get("Messages", [])]


def deploy(
    tmp_path: Path,
    *,
    endpoint_url: str,
    threshold: float = 0.93,
    capture_uri: str | None = None,
    review_timeout_seconds: int = 3600,
    extra_env: dict[str, str] | None = None,
) -> Workflow:
    """Create everything inside an active mock_aws: bucket, topics, functions, state machine."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(
        RoleName="scones-test-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    s3 = boto3.client("s3", region_name=REGION)
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topics = {}
    queues = {}
    for name in ("routing", "review"):
        topics[name], queues[name] = create_observed_topic(
            sns, sqs, f"scones-{name}", f"scones-{name}"
        )
    cases, cases_dlq = create_review_queue(sqs, "scones-test-cases")
    zips = build_function_zips(tmp_path / "lambdas", HANDLERS)
    env = merged_environment(
        workflow_environments(
            service_name="scones-test",
            classes=DEFAULT_CLASSES,
            endpoint_name=ENDPOINT,
            confidence_threshold=threshold,
            routes=DEFAULT_ROUTES,
            routing_topic_arn=topics["routing"],
            capture_s3_uri=capture_uri or None,
        )
    )
    env["POWERTOOLS_TRACE_DISABLED"] = "true"
    # The standard variable: the handler has no endpoint code path of its own.
    env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = endpoint_url
    env.update(extra_env or {})
    lam = boto3.client("lambda", region_name=REGION)
    arns = {}
    for key, handler in HANDLERS.items():
        arns[key] = lam.create_function(
            FunctionName=f"scones-{key}",
            Runtime="python3.12",
            Role=role,
            Handler=handler,
            Code={"ZipFile": zips[key].read_bytes()},
            Timeout=30,
            Environment={"Variables": env},
        )["FunctionArn"]
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = build_definition(
        arns,
        review_topic_arn=topics["review"],
        review_queue_url=cases,
        review_timeout_seconds=review_timeout_seconds,
        routes=DEFAULT_ROUTES,
    )
    sm_arn = sfn.create_state_machine(
        name="scones-test", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    return Workflow(
        sfn, s3, sns, sqs, sm_arn, queues["routing"], queues["review"], cases, cases_dlq
    )
