"""SafeMode under Pulumi mocks, in the real stack: the flag, the rule on the drift alarms, the
setter's and the filter's permissions on that one parameter.

Sources for the shapes checked here:
- "CloudWatch Alarm State Change" events from source aws.cloudwatch carry detail.alarmName and
  detail.state.value (Amazon CloudWatch user guide, "Alarm events and EventBridge",
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html).
- Parameter Store encrypts a standard SecureString with KMS Encrypt/Decrypt under the
  encryption context PARAMETER_ARN (AWS KMS developer guide, "How AWS Systems Manager Parameter
  Store uses AWS KMS",
  https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html).
"""

from __future__ import annotations

import json

import pytest

from components.safe_mode import alarm_event_pattern
from lambdas.safe_mode.flag import INITIAL, SafeModeState


@pytest.fixture(params=["dev", "prod"])
def run(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


def _policy(run, role_name: str) -> list[dict]:
    role = run.named(role_name)
    (policy,) = [
        p for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs["role"] == role.outputs["name"]
    ]
    return json.loads(policy.inputs["policy"])["Statement"]


def test_the_flag_is_a_secure_string_under_the_stack_key_deployed_off(run) -> None:
    flag = run.one("aws:ssm/parameter:Parameter")
    key_arn = run.one("aws:kms/key:Key").outputs["arn"]
    assert flag.inputs["name"] == f"/scones-{run.stack}/safe-mode"
    assert flag.inputs["type"] == "SecureString" and flag.inputs["keyId"] == key_arn
    assert flag.inputs["tier"] == "Standard"  # KMS Encrypt/Decrypt directly, no data keys
    value = flag.inputs["value"]  # the provider marks it secret: the engine sees a secret
    assert isinstance(value, dict) and SafeModeState.from_json(value["value"]) == INITIAL
    # A later `pulumi up` must not clear safe mode that an alarm switched on.
    assert "value" in flag.options.ignore_changes
    assert "scones:monitoring:SafeMode" in flag.parent_types
    assert run.outputs["safeModeParameter"] == flag.inputs["name"]
    assert run.outputs["safeModeFunctionName"] == f"scones-{run.stack}-safe-mode"


def test_the_rule_fires_on_exactly_the_drift_alarms_going_to_alarm(run) -> None:
    drift_alarms = sorted(
        a.outputs["name"] for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.name.startswith("alarms-drift-")
    )
    assert len(drift_alarms) >= 4  # confidence PSI, input PSI, low-confidence rate, per class
    rule = run.named("safe-mode-on-drift-alarm")
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": drift_alarms, "state": {"value": ["ALARM"]}},
    }
    function = run.named("safe-mode-function")
    (target,) = [t for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget")
                 if t.inputs["rule"] == rule.outputs["name"]]
    assert target.inputs["arn"] == function.outputs["arn"]
    permission = run.named("safe-mode-invoke")
    assert permission.inputs["principal"] == "events.amazonaws.com"
    assert permission.inputs["sourceArn"] == rule.outputs["arn"]
    assert permission.inputs["function"] == function.outputs["name"]
    # The alarms still notify the alarm topic (the rule adds an action, replaces none).
    topic = run.outputs["alarmTopicArn"]
    for alarm in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        if alarm.name.startswith("alarms-drift-"):
            assert alarm.inputs["alarmActions"] == [topic]


def test_the_setter_may_write_only_the_flag(run) -> None:
    flag_arn = run.one("aws:ssm/parameter:Parameter").outputs["arn"]
    key_arn = run.one("aws:kms/key:Key").outputs["arn"]
    log_group = run.named("safe-mode-logs").outputs["arn"]
    by_sid = {s["Sid"]: s for s in _policy(run, "safe-mode-role")}
    assert by_sid["WriteSafeModeFlag"]["Action"] == ["ssm:GetParameter", "ssm:PutParameter"]
    assert by_sid["WriteSafeModeFlag"]["Resource"] == [flag_arn]
    kms = by_sid["SafeModeFlagIsKmsEncrypted"]
    assert kms["Action"] == ["kms:Decrypt", "kms:Encrypt"] and kms["Resource"] == [key_arn]
    assert kms["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:PARAMETER_ARN": flag_arn}
    }
    assert by_sid["WriteOwnLogGroupAndEmfMetrics"]["Resource"] == [
        log_group, f"{log_group}:log-stream:*"
    ]
    assert set(by_sid) == {
        "WriteSafeModeFlag", "SafeModeFlagIsKmsEncrypted", "WriteOwnLogGroupAndEmfMetrics",
        "XRayHasNoResourceLevel",
    }
    env = run.named("safe-mode-function").inputs["environment"]["variables"]
    assert env["SAFE_MODE_PARAMETER"] == f"/scones-{run.stack}/safe-mode"
    assert env["SAFE_MODE_KEY_ID"] == key_arn  # every write names the stack key
    assert env["POWERTOOLS_SERVICE_NAME"] == f"scones-{run.stack}"


def test_the_filter_may_only_read_the_flag(run) -> None:
    flag = run.one("aws:ssm/parameter:Parameter")
    statements = _policy(run, "functions-filter-inferences-role")
    granted = {a for s in statements for a in s["Action"]}
    assert "ssm:PutParameter" not in granted and "kms:Encrypt" not in granted
    (read,) = [s for s in statements if s["Sid"] == "ReadSafeModeFlag"]
    assert read["Action"] == ["ssm:GetParameter"] and read["Resource"] == [flag.outputs["arn"]]
    (kms,) = [s for s in statements if s["Sid"] == "SafeModeFlagIsKmsEncrypted"]
    assert kms["Action"] == ["kms:Decrypt"]
    assert kms["Condition"]["StringEquals"] == {
        "kms:EncryptionContext:PARAMETER_ARN": flag.outputs["arn"]
    }
    env = run.named("functions-filter-inferences").inputs["environment"]["variables"]
    assert env["SAFE_MODE_PARAMETER"] == flag.inputs["name"]
    # No other function reads it.
    for other in ("serialize-image", "classify-image", "route-driver"):
        variables = run.named(f"functions-{other}").inputs["environment"]["variables"]
        assert "SAFE_MODE_PARAMETER" not in variables


def test_an_empty_alarm_list_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one alarm"):
        alarm_event_pattern([])


def test_the_dashboard_shows_reviews_by_reason_and_safe_mode_changes(run) -> None:
    body = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    (widget,) = [w for w in body["widgets"]
                 if w["properties"].get("title") == "Review by reason, and safe mode"]
    lines = {tuple(m[1:-1]) for m in widget["properties"]["metrics"]}
    service = f"scones-{run.stack}"
    assert ("SentToReview", "reason", "safe_mode", "service", service) in lines
    assert ("SentToReview", "reason", "low_confidence", "service", service) in lines
    assert ("SafeModeEntered", "service", service) in lines
    assert ("SafeModeCleared", "service", service) in lines
