"""SafeMode: the drift alarms switch the workflow into safe mode; a person switches it back.

- The flag: an SSM parameter ``/scones-<stack>/safe-mode`` (SecureString, the stack's KMS key,
  standard tier), deployed off. Its value belongs to the alarm and the operators after that:
  ``ignore_changes=["value"]``, so a later ``pulumi up`` never clears (or sets) safe mode.
- The trigger: an EventBridge rule on CloudWatch's "CloudWatch Alarm State Change" events for
  exactly the drift alarms, state ALARM. CloudWatch sends these events for every alarm state
  change and guarantees their delivery (Amazon CloudWatch user guide, "Alarm events and
  EventBridge",
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html),
  so the alarms themselves are unchanged: they still notify the alarm topic. (The alternative,
  an alarm action to an SNS topic with a subscribed function, would need the shared alarm topic
  to carry every alarm to the function and a filter in code.)
- The setter: the function ``scones-<stack>-safe-mode`` (``lambdas.safe_mode.handler``, the
  workflow's zip), invoked by the rule (the invoke permission names the rule as its source)
  and by ``python -m local safe-mode status|clear --stack <stack>`` with a person's
  credentials. Its role may read and write only the flag (and use the key only for it, through
  the ``PARAMETER_ARN`` encryption context), write its own log group (EMF metrics
  ``SafeModeEntered`` / ``SafeModeCleared``) and X-Ray.

The filter step reads the flag (components/function_policies.py grants it GetParameter on the
same ARN, ``parameter_arn``); docs/monitoring.md#safe-mode describes the whole loop. The stack
builds this component after the drift alarms it watches, so the filter function does not wait
for the parameter: on a stack's first deploy a request that arrived before the parameter
existed would go to review (the filter fails closed), never be routed unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components.context import StackContext
from components.function_policies import safe_mode_statements
from components.lambda_function import FunctionSpec, function_with_log_group, invoked_by_rule
from lambdas.defaults import METRICS_NAMESPACE
from lambdas.review_reasons import REASON_DIMENSION, REVIEW_METRIC, ReviewReason
from lambdas.safe_mode.commands import ALARM_DETAIL_TYPE, ALARM_SOURCE
from lambdas.safe_mode.flag import INITIAL, KEY_ENV, PARAMETER_ENV, parameter_name

HANDLER = "lambdas.safe_mode.handler.lambda_handler"


def function_name(stack: str) -> str:
    return f"scones-{stack}-safe-mode"


def parameter_arn(
    stack: str, region: str, account_id: pulumi.Input[str], partition: str = "aws"
) -> pulumi.Output[str]:
    """The flag's ARN (a parameter whose name starts with "/" has no extra "/" in its ARN)."""
    return pulumi.Output.concat(
        f"arn:{partition}:ssm:{region}:", account_id, f":parameter{parameter_name(stack)}"
    )


def alarm_event_pattern(alarm_names: Sequence[str]) -> str:
    """EventBridge pattern: these alarms (exact names) changing to ALARM."""
    if not alarm_names:
        raise ValueError("safe mode needs at least one alarm to watch")
    return json.dumps(
        {
            "source": [ALARM_SOURCE],
            "detail-type": [ALARM_DETAIL_TYPE],
            "detail": {"alarmName": sorted(alarm_names), "state": {"value": ["ALARM"]}},
        },
        sort_keys=True,
    )


def review_widget(region: str, service: str) -> dict:
    """Dashboard graph: cases sent to review per reason, and safe mode entered / cleared."""
    metrics = [
        [METRICS_NAMESPACE, REVIEW_METRIC, REASON_DIMENSION, reason.value, "service", service,
         {"label": f"to review: {reason.value}"}]
        for reason in ReviewReason
    ] + [
        [METRICS_NAMESPACE, name, "service", service, {"label": label}]
        for name, label in (("SafeModeEntered", "safe mode entered"),
                            ("SafeModeCleared", "safe mode cleared"))
    ]
    return {
        "type": "metric",
        "width": 12,
        "height": 6,
        "properties": {
            "title": "Review by reason, and safe mode",
            "region": region,
            "stat": "Sum",
            "period": 300,
            "metrics": metrics,
        },
    }


@dataclass
class SafeModeArgs:
    context: StackContext
    lambda_zip: Path
    alarm_names: Sequence[pulumi.Input[str]]  # the drift alarms that switch safe mode on
    service_name: str  # Powertools service: the workflow's, so its metrics sit beside them


class SafeMode(pulumi.ComponentResource):
    dashboard_widgets: list[pulumi.Input[dict[str, Any]]]
    parameter: aws.ssm.Parameter
    function: aws.lambda_.Function
    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    rule: aws.cloudwatch.EventRule

    def __init__(
        self, name: str, args: SafeModeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:monitoring:SafeMode", name, None, opts)
        self.parameter_name = parameter_name(args.context.stack)
        self.parameter = self._flag(name, args)
        built = function_with_log_group(
            self._switch_spec(name, args), context=args.context, parent=self
        )
        self.function, self.role = built.function, built.role
        self.policy, self.log_group = built.policy, built.log_group
        self._alarm_trigger(name, args)
        self.dashboard_widgets = [review_widget(args.context.region, args.service_name)]
        self.register_outputs(
            {
                "parameterName": self.parameter_name,
                "parameterArn": self.parameter.arn,
                "functionName": self.function.name,
                "ruleArn": self.rule.arn,
            }
        )

    def _flag(self, name: str, args: SafeModeArgs) -> aws.ssm.Parameter:
        """The safe-mode parameter, deployed off; its value is not Pulumi's after that."""
        return aws.ssm.Parameter(
            f"{name}-flag",
            name=self.parameter_name,
            description=(
                f"scones {args.context.stack}: safe mode (every request to human review) while on; "
                "set by the drift alarms, cleared by a person"
            ),
            type="SecureString",
            key_id=args.context.kms_key_arn,
            tier="Standard",
            value=INITIAL.to_json(),
            # The alarm and the operators own the value once deployed.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"]),
        )

    def _switch_spec(self, name: str, args: SafeModeArgs) -> FunctionSpec:
        """The setter function: it may read and write only the flag."""
        return FunctionSpec(
            resource_name=f"{name}-function",
            prefix=name,
            function_name=function_name(args.context.stack),
            description=(
                f"scones {args.context.stack}: switch safe mode on (drift alarm) or off "
                "(a person)"
            ),
            role_description=f"scones {args.context.stack}: safe-mode switch",
            handler=HANDLER,
            code=args.lambda_zip,
            layers=[args.context.powertools_layer_arn],
            environment={
                PARAMETER_ENV: self.parameter_name,
                KEY_ENV: args.context.kms_key_arn,
                "POWERTOOLS_SERVICE_NAME": args.service_name,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            statements=safe_mode_statements(
                parameter_arn=self.parameter.arn,
                kms_key_arn=args.context.kms_key_arn,
                write=True,
            ),
            log_sid="WriteOwnLogGroupAndEmfMetrics",
        )

    def _alarm_trigger(self, name: str, args: SafeModeArgs) -> None:
        """The EventBridge rule on the drift alarms going to ALARM, which invokes the setter."""
        self.rule = aws.cloudwatch.EventRule(
            f"{name}-on-drift-alarm",
            description=f"scones {args.context.stack}: a drift alarm fired: switch safe mode on",
            event_pattern=pulumi.Output.all(*args.alarm_names).apply(alarm_event_pattern),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.target, self.permission = invoked_by_rule(
            name, rule=self.rule, function=self.function, parent=self
        )
