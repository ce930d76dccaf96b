"""DriftMonitor: the scheduled drift detector Lambda, its scoped role, and the drift alarms.

- The function (``lambdas.detect_drift.handler``) runs on an EventBridge schedule
  (``scones:driftScheduleMinutes``) over the last ``scones:driftWindowMinutes`` of captured
  traffic, compares it with the baseline inside the model's ``model.tar.gz``, publishes the
  drift metrics as EMF log lines and writes a JSON report under ``drift-reports/``.
- Its role reads only the endpoint's capture prefix and the model artifact, lists only the
  capture prefix, writes only the report prefix, and writes its own log group and X-Ray
  segments. No ``cloudwatch:PutMetricData``: EMF metrics travel through the log group.
- numpy and Pillow come from a layer built from python3.12 manylinux wheels
  (``lambdas.detect_drift.package``); Powertools from AWS's published layer.
- Alarms (children of this component that notify the alarm topic, listed with their graphs in
  ``alarms`` and ``dashboard_widgets`` for the dashboard),
  one per rule of ``lambdas.detect_drift.rules.alarm_rules`` — the rules the Lambda's verdict
  and ``python -m local monitor`` evaluate: ``ConfidencePSI`` and ``InputPSI`` above their
  thresholds, ``LowConfidenceRate - BaselineLowConfidenceRate`` (metric math) above the
  allowed increase, and per class ``ABS(ClassShare - expected)`` (metric math) above the
  tolerance. Period = the schedule, one datapoint, missing data is not
  breaching (quiet or small windows publish no drift metric).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import AlarmTopic, alarm_graph, flat_dimensions, topic_alarm
from components.context import StackContext
from components.function_policies import drift_statements
from components.lambda_function import (
    FunctionSpec,
    function_with_log_group,
    invoked_by_rule,
    zip_source_hash,
)
from lambdas.defaults import METRICS_NAMESPACE
from lambdas.detect_drift.package import HANDLER, RUNTIME
from lambdas.detect_drift.rules import (
    DIM_CLASS,
    DIM_ENDPOINT,
    DIM_STACK,
    DIM_STATISTIC,
    M_CLASS_SHARE,
    AlarmRule,
    DriftThresholds,
    alarm_rules,
)
from lambdas.s3_uri import parse_s3_uri
from training.image_stats import STATISTICS

REPORTS_PREFIX = "drift-reports"


def schedule_expression(minutes: int) -> str:
    """EventBridge rate expression (the unit is singular for 1)."""
    if minutes < 1:
        raise ValueError(f"schedule must be at least 1 minute, got {minutes}")
    return "rate(1 minute)" if minutes == 1 else f"rate({minutes} minutes)"


def s3_object_arn(uri: str, partition: str = "aws") -> str:
    """``s3://bucket/key`` -> the object's ARN."""
    location = parse_s3_uri(uri)  # S3UriError is a ValueError
    if not location.prefix:
        raise ValueError(f"expected s3://bucket/key, got {uri!r}")
    return f"arn:{partition}:s3:::{location.bucket}/{location.prefix}"


@dataclass
class DriftMonitorArgs:
    context: StackContext
    function_zip: Path
    layer_zip: Path
    endpoint_name: str
    variant_name: str
    capture_prefix: str  # key prefix in the bucket the endpoint captures under
    baseline_s3_uri: pulumi.Input[str]  # the model.tar.gz (or a baseline.json)
    classes: Sequence[str]
    confidence_threshold: float
    thresholds: DriftThresholds
    schedule_minutes: int
    window_minutes: int
    alarm_topic: AlarmTopic  # the drift alarms notify it


def detector_environment(args: DriftMonitorArgs) -> dict[str, pulumi.Input[str]]:
    """The detector's settings: where capture, baseline and reports live, the window, and the
    thresholds the alarms use (so the Lambda's verdict and the alarms agree)."""
    environment: dict[str, pulumi.Input[str]] = {
        "CAPTURE_S3_URI": pulumi.Output.concat(
            "s3://", args.context.bucket_name, f"/{args.capture_prefix.strip('/')}"
        ),
        "REPORT_S3_URI": pulumi.Output.concat(
            "s3://", args.context.bucket_name, f"/{REPORTS_PREFIX}"
        ),
        "BASELINE_S3_URI": args.baseline_s3_uri,
        "ENDPOINT_NAME": args.endpoint_name,
        "VARIANT_NAME": args.variant_name,
        "STACK_NAME": args.context.stack,
        "WINDOW_MINUTES": str(args.window_minutes),
        "CONFIDENCE_THRESHOLD": repr(args.confidence_threshold),
        "CLASSES": json.dumps(list(args.classes)),
        **args.thresholds.environment(),
        "POWERTOOLS_SERVICE_NAME": f"scones-{args.context.stack}-drift",
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    return environment


def drift_alarm_properties(
    rule: AlarmRule, stack: str, dims: dict[str, str], period: int
) -> tuple[dict[str, Any], list[list[str]] | None]:
    """One rule's alarm (a metric, or metric math over two) and the metrics it graphs, if any."""
    # Every drift alarm: one period above its threshold; no traffic is not drift.
    breach_rule = {
        "evaluation_periods": 1,
        "threshold": rule.threshold,
        "comparison_operator": "GreaterThanThreshold",
        "treat_missing_data": "notBreaching",
        "alarm_description": f"scones {stack} drift: {rule.description}",
    }
    if rule.minus is not None:
        properties = dict(
            metric_queries=[
                _query("rate", rule.metric, dims, period),
                _query("base", rule.minus, dims, period),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="increase",
                    expression="rate - base",
                    label=f"{rule.metric} - {rule.minus}",
                    return_data=True,
                ),
            ],
            **breach_rule,
        )
        return properties, [
            [METRICS_NAMESPACE, rule.metric, *flat_dimensions(dims)],
            [METRICS_NAMESPACE, rule.minus, *flat_dimensions(dims)],
        ]
    if rule.class_name is None:
        properties = dict(
            namespace=METRICS_NAMESPACE,
            metric_name=rule.metric,
            dimensions=dict(dims),
            statistic="Maximum",
            period=period,
            **breach_rule,
        )
        return properties, [[METRICS_NAMESPACE, rule.metric, *flat_dimensions(dims)]]
    properties = dict(
        metric_queries=[
            _query("share", M_CLASS_SHARE, {**dims, DIM_CLASS: rule.class_name}, period),
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="deviation",
                expression=f"ABS(share - {rule.expected!r})",
                label=f"|{rule.class_name} share - {rule.expected:g}|",
                return_data=True,
            ),
        ],
        **breach_rule,
    )
    return properties, None


class DriftMonitor(pulumi.ComponentResource):
    alarms: list[aws.cloudwatch.MetricAlarm]
    dashboard_widgets: list[pulumi.Input[dict[str, Any]]]
    function: aws.lambda_.Function
    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    layer: aws.lambda_.LayerVersion
    rule: aws.cloudwatch.EventRule
    drift_alarms: dict[str, aws.cloudwatch.MetricAlarm]

    def __init__(
        self, name: str, args: DriftMonitorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:monitoring:DriftMonitor", name, None, opts)
        # Fail at preview, naming the problem, if the classes and expected mix disagree.
        rules = alarm_rules(list(args.classes), args.thresholds)
        self.layer = self._numpy_pillow_layer(name, args)
        environment = detector_environment(args)
        built = function_with_log_group(
            self._detector_spec(name, args, environment), context=args.context, parent=self
        )
        self.function, self.role = built.function, built.role
        self.policy, self.log_group = built.policy, built.log_group
        self._schedule(name, args)
        self._drift_alarms(args, rules)
        self.register_outputs(
            {
                "functionArn": self.function.arn,
                "scheduleRuleArn": self.rule.arn,
                "reportsUri": environment["REPORT_S3_URI"],
                "alarmArns": {k: a.arn for k, a in self.drift_alarms.items()},
            }
        )

    def _numpy_pillow_layer(
        self, name: str, args: DriftMonitorArgs
    ) -> aws.lambda_.LayerVersion:
        return aws.lambda_.LayerVersion(
            f"{name}-numpy-pillow",
            layer_name=f"scones-{args.context.stack}-drift-numpy-pillow",
            description="numpy + Pillow (manylinux x86_64 wheels) for the drift detector",
            code=pulumi.FileArchive(str(args.layer_zip)),
            source_code_hash=zip_source_hash(args.layer_zip),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=["x86_64"],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _detector_spec(
        self, name: str, args: DriftMonitorArgs, environment: dict[str, pulumi.Input[str]]
    ) -> FunctionSpec:
        """The detector function: its role reads capture and baseline, writes reports."""
        baseline_arn = pulumi.Output.from_input(args.baseline_s3_uri).apply(
            lambda uri: s3_object_arn(uri, args.context.partition)
        )
        return FunctionSpec(
            resource_name=f"{name}-function",
            prefix=name,
            function_name=f"scones-{args.context.stack}-detect-drift",
            description=(
                f"scones {args.context.stack}: drift of captured traffic vs the training "
                "baseline"
            ),
            role_description=f"scones {args.context.stack}: drift detector",
            handler=HANDLER,
            code=args.function_zip,
            layers=[
                args.context.powertools_layer_arn,
                self.layer.arn,
            ],
            environment=environment,
            statements=drift_statements(
                bucket_arn=args.context.bucket_arn,
                kms_key_arn=args.context.kms_key_arn,
                capture_key_prefix=f"{args.capture_prefix.strip('/')}/{args.endpoint_name}/",
                baseline_arn=baseline_arn,
                reports_prefix=REPORTS_PREFIX,
            ),
            # Decoding and statistics of a busy hour (MAX_RECORDS 20,000 images) fit well
            # within.
            memory_size=1024,
            timeout=300,
            log_sid="WriteOwnLogGroupAndEmfMetrics",
        )

    def _schedule(self, name: str, args: DriftMonitorArgs) -> None:
        """The EventBridge schedule that invokes the detector every `schedule_minutes`."""
        self.rule = aws.cloudwatch.EventRule(
            f"{name}-schedule",
            description=f"scones {args.context.stack}: run the drift detector",
            schedule_expression=schedule_expression(args.schedule_minutes),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.target, self.permission = invoked_by_rule(
            name, rule=self.rule, function=self.function, parent=self
        )

    def _drift_alarms(self, args: DriftMonitorArgs, rules: Sequence[AlarmRule]) -> None:
        """One alarm per rule, its graph where it has one, and the class-share and input-PSI
        graphs."""
        region = args.context.region
        period = args.schedule_minutes * 60
        dims = {DIM_STACK: args.context.stack, DIM_ENDPOINT: args.endpoint_name}
        self.drift_alarms = {}
        self.dashboard_widgets = []
        for rule in rules:
            key = f"drift-{rule.key}"
            properties, graphed = drift_alarm_properties(rule, args.context.stack, dims, period)
            self.drift_alarms[rule.key] = topic_alarm(
                key, properties, alarm_topic=args.alarm_topic, parent=self
            )
            if graphed:
                self.dashboard_widgets.append(alarm_graph(key, properties, graphed, region))
        self.alarms = list(self.drift_alarms.values())
        self.dashboard_widgets.append(
            _lines_widget(
                "Drift: share of each class",
                region,
                [[METRICS_NAMESPACE, M_CLASS_SHARE, *flat_dimensions(dims), DIM_CLASS, c]
                 for c in args.classes],
                period,
            )
        )
        self.dashboard_widgets.append(
            _lines_widget(
                "Drift: PSI per input statistic",
                region,
                [[METRICS_NAMESPACE, "InputPSI", *flat_dimensions(dims), DIM_STATISTIC, s]
                 for s in STATISTICS],
                period,
                threshold=args.thresholds.input_psi,
            )
        )


def _query(
    query_id: str, metric: str, dimensions: dict[str, str], period: int
) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id=query_id,
        metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
            namespace=METRICS_NAMESPACE,
            metric_name=metric,
            dimensions=dimensions,
            period=period,
            stat="Maximum",
        ),
        return_data=False,
    )


def _lines_widget(
    title: str, region: str, metrics: list[list[str]], period: int, threshold: float | None = None
) -> dict:
    properties: dict = {
        "title": title,
        "region": region,
        "metrics": metrics,
        "stat": "Maximum",
        "period": period,
    }
    if threshold is not None:
        properties["annotations"] = {"horizontal": [{"label": "alarm", "value": threshold}]}
    return {"type": "metric", "width": 12, "height": 6, "properties": properties}
