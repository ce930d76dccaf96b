"""Least privilege enforced at run time: the workflow functions' AWS calls under moto's IAM
authorization, with the credentials of a role that carries exactly the statements
components/function_policies.py builds (the statements the Pulumi program deploys).

moto checks each request's credentials and the caller's identity policies once the number of
unauthenticated requests given to ``set_initial_no_auth_action_count`` is used up (moto docs,
"IAM-like Access Control": https://docs.getmoto.org/en/latest/docs/iam.html); an assumed role's
policies are its inline and attached policies (moto/iam/access_control.py,
AssumedRoleAccessKey.collect_policies). So a statement missing from the builder is an
AccessDenied here, as it would be in AWS, and the step fails with its named error.
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count
from workflow_support import png_bytes

from default_task import DEFAULT_ROUTES
from lambdas.defaults import WORKFLOW_FUNCTIONS
from lambdas.errors import ImageNotFound, RoutingError
from lambdas.route_driver.logic import make_publisher, publish_route
from lambdas.serialize_image.logic import fetch_object
from lambdas.workflow_definition import build_definition
from local.deploy import BUCKET, REGION, function_role_policy

KEY = "intake/bicycle.png"


def _client(service: str, credentials: dict | None = None):
    creds = credentials or {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
    return boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
    )


def _role_credentials(function: str, policy: dict) -> dict:
    """Create the function's role with `policy` and assume it (before authorization is on)."""
    iam, sts = _client("iam"), _client("sts")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    name = f"scones-local-{function.replace('_', '-')}"
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    iam.put_role_policy(RoleName=name, PolicyName="own", PolicyDocument=json.dumps(policy))
    return sts.assume_role(RoleArn=arn, RoleSessionName=function)["Credentials"]


def _without(policy: dict, sid: str) -> dict:
    statements = [s for s in policy["Statement"] if s["Sid"] != sid]
    assert len(statements) < len(policy["Statement"]), sid
    return {**policy, "Statement": statements}


@pytest.fixture
def aws():
    with mock_aws():
        s3 = _client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=png_bytes(seed=3))
        s3.put_object(Bucket=BUCKET, Key="bad/secret.png", Body=png_bytes(seed=4))
        topic = _client("sns").create_topic(Name="scones-routing")["TopicArn"]
        yield topic


def _policies(topic: str) -> dict[str, dict]:
    return {
        f: function_role_policy(f, routing_topic_arn=topic, writes_capture=True)
        for f in ("serialize_image", "route_driver")
    }


def _enforced(check):
    """Run `check` with every request authenticated and authorized (no free requests)."""
    set_initial_no_auth_action_count(0)(check)()


def test_serialize_reads_intake_only(aws) -> None:
    creds = _role_credentials("serialize_image", _policies(aws)["serialize_image"])

    def check() -> None:
        s3 = _client("s3", creds)
        assert fetch_object(s3, BUCKET, KEY) == png_bytes(seed=3)
        # Outside intake/: denied, reported as the named error the workflow catches.
        with pytest.raises(ImageNotFound):
            fetch_object(s3, BUCKET, "bad/secret.png")

    _enforced(check)


def test_removing_the_read_statement_fails_the_step_by_name(aws) -> None:
    policy = _without(_policies(aws)["serialize_image"], "ReadIntakeImages")
    creds = _role_credentials("serialize_image", policy)

    def check() -> None:
        with pytest.raises(ImageNotFound, match=r"bicycle\.png"):
            fetch_object(_client("s3", creds), BUCKET, KEY)

    _enforced(check)
    # ... which the workflow ends in: its Serialize step catches ImageNotFound by name.
    definition = build_definition(
        {k: f"arn:aws:lambda:{REGION}:123456789012:function:{k}" for k in WORKFLOW_FUNCTIONS},
        review_topic_arn=f"arn:aws:sns:{REGION}:123456789012:review",
        review_queue_url=f"https://sqs.{REGION}.amazonaws.com/123456789012/review-cases",
        routes=DEFAULT_ROUTES,
    )
    catch = next(c for c in definition["States"]["Serialize"]["Catch"]
                 if c["ErrorEquals"] == ["ImageNotFound"])
    assert definition["States"][catch["Next"]]["Type"] == "Fail"


def test_route_without_the_publish_statement_fails_by_name(aws) -> None:
    """moto authorizes S3 requests against the object's ARN but SNS Publish against "*" (only
    S3, SQS, IAM and STS responses determine a resource in moto 5), so a topic-scoped Allow
    cannot be shown to pass here; a role lacking sns:Publish is refused all the same."""
    policy = _without(_policies(aws)["route_driver"], "PublishRoutingEvents")
    creds = _role_credentials("route_driver", policy)
    publish = make_publisher({"ROUTING_TOPIC_ARN": aws}, lambda service: _client(service, creds))

    def refused() -> None:
        with pytest.raises(RoutingError, match=r"AccessDenied"):
            publish_route(publish, {"driver_id": "d-1", "label": "bicycle", "route": "nearby"})

    _enforced(refused)
