"""Alarms: the alarm topic, the built-in alarms and the stack's CloudWatch dashboard.

Seam for other components (the drift monitor adds its alarms and widgets here):

    alarms = Alarms("alarms", AlarmsArgs(...))            # topic + endpoint alarms
    ...
    alarms.add_alarm("drift-confidence-psi", aws.cloudwatch.MetricAlarmArgs(
        namespace="SconesUnlimited/Inference", metric_name="ConfidencePSI",
        dimensions={"stack": stack, "endpoint": endpoint_name}, statistic="Maximum",
        period=3600, evaluation_periods=1, threshold=0.2,
        comparison_operator="GreaterThanThreshold", treat_missing_data="notBreaching",
        alarm_description="..."), widget_metrics=[["SconesUnlimited/Inference", "ConfidencePSI",
        "stack", stack, "endpoint", endpoint_name]])
    alarms.add_widget({"type": "metric", "properties": {...}})   # any dashboard widget (Inputs ok)
    alarms.finish()                                           # once, last: builds the dashboard

``add_alarm`` takes the pulumi-aws ``MetricAlarmArgs`` unchanged except that the alarm and OK
actions are always this component's topic (so every alarm notifies); it parents the alarm to
this component, lists it in the dashboard's alarm-status widget and, with ``widget_metrics``,
adds a graph of those metrics with the threshold drawn. ``finish`` raises if called twice and
``add_*`` raise after it, so nothing is silently left off the dashboard.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.context import StackContext


@dataclass
class AlarmsArgs:
    context: StackContext
    endpoint_name: str
    variant_name: str
    latency_p99_ms: float
    alarm_email: str | None = None


class Alarms(pulumi.ComponentResource):
    topic: aws.sns.Topic
    endpoint_alarms: list[aws.cloudwatch.MetricAlarm]
    dashboard: aws.cloudwatch.Dashboard | None

    def __init__(
        self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:monitoring:Alarms", name, None, opts)
        self._name = name
        self._args = args
        self._alarm_arns: list[pulumi.Output[str]] = []
        self._widgets: list[Any] = []
        self.alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        self.dashboard = None
        child = pulumi.ResourceOptions(parent=self)
        self.topic = aws.sns.Topic(
            f"{name}-topic", kms_master_key_id=args.context.kms_key_arn, opts=child
        )
        self.subscription = (
            aws.sns.TopicSubscription(
                f"{name}-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=args.alarm_email,
                opts=child,
            )
            if args.alarm_email
            else None
        )
        endpoint_dims = {"EndpointName": args.endpoint_name, "VariantName": args.variant_name}
        # Both also drive the endpoint's blue/green auto-rollback, so they are sensitive (1 min).
        self.endpoint_alarms = [
            self.add_alarm(
                "endpoint-5xx",
                aws.cloudwatch.MetricAlarmArgs(
                    namespace="AWS/SageMaker",
                    metric_name="Invocation5XXErrors",
                    dimensions=endpoint_dims,
                    statistic="Sum",
                    period=60,
                    evaluation_periods=2,
                    datapoints_to_alarm=2,
                    threshold=0,
                    comparison_operator="GreaterThanThreshold",
                    treat_missing_data="notBreaching",
                    alarm_description=f"{args.endpoint_name} answers 5xx (model/container fault)",
                ),
                widget_metrics=[["AWS/SageMaker", "Invocation5XXErrors", *_flat(endpoint_dims)]],
            ),
            self.add_alarm(
                "endpoint-latency-p99",
                aws.cloudwatch.MetricAlarmArgs(
                    namespace="AWS/SageMaker",
                    metric_name="ModelLatency",
                    dimensions=endpoint_dims,
                    extended_statistic="p99",
                    period=60,
                    evaluation_periods=3,
                    datapoints_to_alarm=3,
                    # ModelLatency is reported in microseconds.
                    threshold=args.latency_p99_ms * 1000.0,
                    comparison_operator="GreaterThanThreshold",
                    treat_missing_data="notBreaching",
                    alarm_description=(
                        f"{args.endpoint_name} ModelLatency p99 above {args.latency_p99_ms:g} ms"
                    ),
                ),
                widget_metrics=[["AWS/SageMaker", "ModelLatency", *_flat(endpoint_dims)]],
            ),
        ]

    @property
    def endpoint_alarm_names(self) -> list[pulumi.Output[str]]:
        return [alarm.name for alarm in self.endpoint_alarms]

    @property
    def endpoint_alarm_arns(self) -> list[pulumi.Output[str]]:
        return [alarm.arn for alarm in self.endpoint_alarms]

    def add_alarm(
        self,
        name: str,
        args: aws.cloudwatch.MetricAlarmArgs,
        *,
        widget_metrics: Sequence[Sequence[Any]] | None = None,
    ) -> aws.cloudwatch.MetricAlarm:
        """Create an alarm (child of this component) that notifies the alarm topic."""
        self._check_open()
        if name in self.alarms:
            raise ValueError(f"alarm {name!r} already added")
        args.alarm_actions = [self.topic.arn]
        args.ok_actions = [self.topic.arn]
        alarm = aws.cloudwatch.MetricAlarm(
            f"{self._name}-{name}", args, pulumi.ResourceOptions(parent=self)
        )
        self.alarms[name] = alarm
        self._alarm_arns.append(alarm.arn)
        if widget_metrics:
            stat = pulumi.Output.from_input(args.extended_statistic or args.statistic)
            self.add_widget(
                pulumi.Output.all(
                    stat=stat, threshold=args.threshold, title=args.alarm_description
                ).apply(
                    lambda v, metrics=[list(m) for m in widget_metrics]: {
                        "type": "metric",
                        "width": 12,
                        "height": 6,
                        "properties": {
                            "title": v["title"] or name,
                            "region": self._args.context.region,
                            "metrics": metrics,
                            "stat": v["stat"],
                            "period": 60,
                            "annotations": {
                                "horizontal": [{"label": "alarm", "value": v["threshold"]}]
                            },
                        },
                    }
                )
            )
        return alarm

    def add_widget(self, widget: pulumi.Input[Mapping[str, Any]]) -> None:
        """Append one CloudWatch dashboard widget (a dict; Output values are resolved)."""
        self._check_open()
        self._widgets.append(widget)

    def finish(self) -> aws.cloudwatch.Dashboard:
        """Create the dashboard (alarm status first, then every widget) and register outputs."""
        self._check_open()
        alarm_status = pulumi.Output.all(*self._alarm_arns).apply(
            lambda arns: {
                "type": "alarm",
                "width": 24,
                "height": 4,
                "properties": {"title": "Alarms", "alarms": sorted(arns)},
            }
        )
        body = pulumi.Output.all(alarm_status, *self._widgets).apply(
            lambda widgets: json.dumps({"widgets": _laid_out(widgets)}, sort_keys=True)
        )
        dashboard_name = f"scones-{self._args.context.stack}"
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{self._name}-dashboard",
            dashboard_name=dashboard_name,
            dashboard_body=body,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.dashboard_url = (
            f"https://{self._args.context.region}.console.aws.amazon.com/cloudwatch/home"
            f"?region={self._args.context.region}#dashboards:name={dashboard_name}"
        )
        self.register_outputs(
            {
                "topicArn": self.topic.arn,
                "alarmArns": pulumi.Output.all(*self._alarm_arns),
                "dashboardUrl": self.dashboard_url,
            }
        )
        return self.dashboard

    def _check_open(self) -> None:
        if self.dashboard is not None:
            raise RuntimeError("Alarms.finish() already ran: add alarms and widgets before it")


def _flat(dimensions: Mapping[str, str]) -> list[str]:
    return [part for key, value in dimensions.items() for part in (key, value)]


def _laid_out(widgets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Give widgets without a position one, left to right in rows 24 units wide."""
    placed, x, y, row_height = [], 0, 0, 0
    for widget in widgets:
        w = dict(widget)
        width, height = int(w.get("width", 12)), int(w.get("height", 6))
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        w.setdefault("x", x)
        w.setdefault("y", y)
        w["width"], w["height"] = width, height
        x, row_height = x + width, max(row_height, height)
        placed.append(w)
    return placed

