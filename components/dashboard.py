"""Dashboard: the stack's CloudWatch dashboard, from what the components expose.

First the status of every alarm (``alarms``), then each widget of ``widgets`` in the order
given (the components' ``dashboard_widgets``), laid out left to right in rows 24 units wide.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import AlarmTopic, former_child
from components.context import StackContext


@dataclass
class DashboardArgs:
    context: StackContext
    # The dashboard's former parent (components/alarms.py): its name and the alias come from it.
    alarm_topic: AlarmTopic
    alarms: Sequence[aws.cloudwatch.MetricAlarm]
    widgets: Sequence[pulumi.Input[Mapping[str, Any]]]  # dicts; Output values are resolved


class Dashboard(pulumi.ComponentResource):
    dashboard: aws.cloudwatch.Dashboard
    dashboard_url: str

    def __init__(
        self, name: str, args: DashboardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:monitoring:Dashboard", name, None, opts)
        region = args.context.region
        alarm_arns = pulumi.Output.all(*(alarm.arn for alarm in args.alarms))
        alarm_status = alarm_arns.apply(
            lambda arns: {
                "type": "alarm",
                "width": 24,
                "height": 4,
                "properties": {"title": "Alarms", "alarms": sorted(arns)},
            }
        )
        body = pulumi.Output.all(alarm_status, *args.widgets).apply(
            lambda widgets: json.dumps({"widgets": laid_out(widgets)}, sort_keys=True)
        )
        dashboard_name = f"scones-{args.context.stack}"
        resource_name, resource_opts = former_child(args.alarm_topic, "dashboard", self)
        self.dashboard = aws.cloudwatch.Dashboard(
            resource_name,
            dashboard_name=dashboard_name,
            dashboard_body=body,
            opts=resource_opts,
        )
        self.dashboard_url = (
            f"https://{region}.console.aws.amazon.com/cloudwatch/home"
            f"?region={region}#dashboards:name={dashboard_name}"
        )
        self.register_outputs({"dashboardUrl": self.dashboard_url, "alarmArns": alarm_arns})


def laid_out(widgets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
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
