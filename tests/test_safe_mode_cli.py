"""`python -m local safe-mode ... --stack NAME`: the cloud form of the one command, against moto
(the deployed function's name, the caller's credentials, the switch's real handler in-process
from the real zip)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from components.safe_mode import HANDLER, function_name
from lambdas import aws
from lambdas.package import build_function_zip
from lambdas.safe_mode import flag
from local import lambda_runtime
from local.safe_mode_cli import main

NAME = flag.parameter_name("dev")


@pytest.fixture
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for key in list(os.environ):
        if key.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws.reset_clients()
    with mock_aws(), lambda_runtime.installed(tmp_path / "code"):
        ssm = boto3.client("ssm")
        flag.write_state(ssm, NAME, flag.INITIAL, key_id=None)
        role = boto3.client("iam").create_role(
            RoleName="safe-mode", AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "sts:AssumeRole",
                    "Principal": {"Service": "lambda.amazonaws.com"}}]}),
        )["Role"]["Arn"]
        boto3.client("lambda").create_function(
            FunctionName=function_name("dev"), Runtime="python3.12", Role=role, Handler=HANDLER,
            Code={"ZipFile": build_function_zip(tmp_path / "safe_mode.zip", HANDLER).read_bytes()},
            Environment={"Variables": {
                "SAFE_MODE_PARAMETER": NAME, "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_SERVICE_NAME": "scones-dev",
            }},
        )
        yield ssm
    aws.reset_clients()


def test_one_command_shows_enters_and_clears_safe_mode_of_a_stack(deployed, capsys) -> None:
    ssm = deployed
    assert main(["status", "--stack", "dev"], None) == 0
    assert "safe mode: off" in capsys.readouterr().out

    assert main(["enter", "--stack", "dev", "--reason", "fleet update"], None) == 0
    out = capsys.readouterr().out
    assert "safe mode: ON" in out and "fleet update" in out
    assert "python -m local safe-mode clear" in out
    state = flag.read_state(ssm, NAME)
    # Who acted: the caller's identity (sts:GetCallerIdentity) when --by is not given.
    assert state.on and state.changed_by.startswith("arn:aws:")

    assert main(["clear", "--stack", "dev", "--by", "ops@example.com", "--json"], None) == 0
    # The handler runs in this process here: its log and EMF lines (one JSON object a line)
    # share stdout with the answer, which the CLI prints indented, from a lone "{" on.
    lines = capsys.readouterr().out.splitlines()
    answer = json.loads("\n".join(lines[lines.index("{"):]))
    assert any('"SafeModeCleared"' in line for line in lines)
    assert answer["changed"] is True and answer["safe_mode"]["on"] is False
    assert flag.read_state(ssm, NAME).changed_by == "ops@example.com"


def test_a_refused_or_unreachable_call_says_why(deployed, capsys) -> None:
    assert main(["status", "--stack", "prod"], None) == 2  # no such function
    assert "scones-prod-safe-mode" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["enter", "--stack", "dev"], None)  # --reason is required
