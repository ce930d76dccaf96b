"""The drift detector's S3 calls under moto's IAM authorization, with the credentials of a role
carrying exactly the statements components/function_policies.drift_statements builds (the
statements components/drift_monitor.py deploys).

moto authorizes S3 requests against the bucket or object ARN once the free requests given to
``set_initial_no_auth_action_count`` are used up (moto docs, "IAM-like Access Control":
https://docs.getmoto.org/en/latest/docs/iam.html), so a missing or too narrow statement is an
AccessDenied here, as in AWS.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from drift_support import confident_probs, scene_images
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from components.drift_monitor import REPORTS_PREFIX
from components.function_policies import drift_statements
from lambdas.detect_drift.detector import detect, write_report
from lambdas.detect_drift.settings import load_settings

BUCKET = "scones-data"
ENDPOINT = "scones-ep"
VARIANT = "AllTraffic"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
BASELINE_KEY = "models/job-1/output/baseline.json"
ENV = {
    "CAPTURE_S3_URI": f"s3://{BUCKET}/capture",
    "REPORT_S3_URI": f"s3://{BUCKET}/{REPORTS_PREFIX}",
    "BASELINE_S3_URI": f"s3://{BUCKET}/{BASELINE_KEY}",
    "ENDPOINT_NAME": ENDPOINT,
    "STACK_NAME": "test",
}


def _client(service: str, creds: dict | None = None):
    creds = creds or {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
    return boto3.client(service, region_name="us-east-1",
                        aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds.get("SessionToken"))


def _policy(without: str | None = None) -> dict:
    statements = drift_statements(
        bucket_arn=f"arn:aws:s3:::{BUCKET}",
        kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
        capture_key_prefix=f"capture/{ENDPOINT}/",
        baseline_arn=f"arn:aws:s3:::{BUCKET}/{BASELINE_KEY}",
        reports_prefix=REPORTS_PREFIX,
    )
    return {"Version": "2012-10-17",
            "Statement": [s for s in statements if s["Sid"] != without]}


def _assume(policy: dict) -> dict:
    iam, sts = _client("iam"), _client("sts")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    arn = iam.create_role(RoleName="drift", AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    iam.put_role_policy(RoleName="drift", PolicyName="own", PolicyDocument=json.dumps(policy))
    return sts.assume_role(RoleArn=arn, RoleSessionName="drift")["Credentials"]


@pytest.fixture
def stored(baseline, write_capture):
    with mock_aws():
        s3 = _client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=BASELINE_KEY, Body=json.dumps(baseline))
        s3.put_object(Bucket=BUCKET, Key="models/job-1/output/model.tar.gz", Body=b"model")
        records = list(zip(scene_images(120, seed=5), confident_probs(120, seed=6), strict=True))
        write_capture(s3, BUCKET, "capture", ENDPOINT, VARIANT, records,
                      T0 + timedelta(minutes=5))
        yield


def _run(creds: dict) -> dict:
    s3 = _client("s3", creds)
    settings = load_settings(ENV)
    end = T0 + timedelta(hours=1)
    report = detect(s3, settings, T0, end)
    write_report(s3, settings.report, ENDPOINT, report, end)
    return report


def test_the_drift_role_reads_its_window_and_writes_its_report(stored) -> None:
    creds = _assume(_policy())
    reports: list[dict] = []
    set_initial_no_auth_action_count(0)(lambda: reports.append(_run(creds)))()
    assert reports[0]["counts"]["valid"] == 120

    def nothing_else() -> None:  # its role reads no model artifact beyond the baseline
        with pytest.raises(ClientError, match="AccessDenied"):
            _client("s3", creds).get_object(Bucket=BUCKET, Key="models/job-1/output/model.tar.gz")

    set_initial_no_auth_action_count(0)(nothing_else)()


@pytest.mark.parametrize(
    "sid", ["ReadCapturedTraffic", "ReadModelBaseline", "WriteDriftReports"]
)
def test_each_statement_is_needed(stored, sid: str) -> None:
    creds = _assume(_policy(without=sid))

    def refused() -> None:
        with pytest.raises(Exception, match=r"AccessDenied|not authorized|Forbidden|403"):
            _run(creds)

    set_initial_no_auth_action_count(0)(refused)()
