"""The batch workflow executed by moto's interpreter: local mode's inline form of the one
definition, the real handlers (per-image and summarize_batch) run in-process from the real zip,
a mixed prefix accounted for item by item (route or named failure, nothing lost)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from fake_endpoint import FakeEndpoint, ok
from moto import mock_aws
from workflow_support import BUCKET, ENDPOINT, Workflow, deploy, jpeg_bytes, png_bytes

from lambdas import aws
from lambdas.package import build_lambda_zip
from local import lambda_runtime
from local.batch import deploy_batch, run_batch

PREFIX = "batch/day-1/"


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workflow, str, FakeEndpoint]]:
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"
    )
    aws.reset_clients()
    tmp = tmp_path_factory.mktemp("batch")
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        FakeEndpoint(ENDPOINT) as endpoint,
        lambda_runtime.installed(tmp / "code"),
    ):
        wf = deploy(tmp, endpoint_url=endpoint.url)
        import boto3

        lam = boto3.client("lambda", region_name="us-east-1")
        first = lam.get_function(FunctionName="scones-serialize_image")["Configuration"]
        arns = {
            k: lam.get_function(FunctionName=f"scones-{k}")["Configuration"]["FunctionArn"]
            for k in ("serialize_image", "classify_image", "filter_inferences", "route_driver")
        }
        review = wf.sns.list_topics()["Topics"]
        review_arn = next(t["TopicArn"] for t in review if t["TopicArn"].endswith("scones-review"))
        deployed = deploy_batch(
            lam=lam,
            sfn=wf.sfn,
            role_arn=first["Role"],
            zip_bytes=build_lambda_zip(tmp / "lambdas.zip").read_bytes(),
            environment=first["Environment"]["Variables"],
            function_arns=arns,
            review_topic_arn=review_arn,
            routes={"bicycle": "nearby", "motorcycle": "distant"},
            bucket=BUCKET,
            max_concurrency=4,
        )
        yield wf, deployed["batch_state_machine_arn"], endpoint
    aws.reset_clients()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
