"""The alarm topic, and the alarms the components create on it.

Each component creates the alarms on what it runs (its children: ``topic_alarm``) and lists
them, with its dashboard graphs, as ``alarms`` and ``dashboard_widgets``; components/dashboard.py
shows them all. ``topic_alarm`` makes every alarm notify the topic on ALARM and on OK.

The alarms and the dashboard were once children of this component. Each keeps its name
(``<this component's name>-<key>``) and carries an alias to this component as its former
parent, so a stack deployed before keeps them instead of replacing them: an alias tells the
engine the resource's old URN (Pulumi docs, "aliases":
https://www.pulumi.com/docs/iac/concepts/options/aliases/). Hence also this component's type
token, ``scones:monitoring:Alarms``: it is part of the topic's URN and of those aliases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.context import StackContext


@dataclass
class AlarmTopicArgs:
    context: StackContext
    alarm_email: str | None = None


class AlarmTopic(pulumi.ComponentResource):
    """The KMS-encrypted topic every alarm notifies, with an email subscription if configured."""

    topic: aws.sns.Topic
    subscription: aws.sns.TopicSubscription | None

    def __init__(
        self, name: str, args: AlarmTopicArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:monitoring:Alarms", name, None, opts)
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
        self.register_outputs({"topicArn": self.topic.arn})


def former_child(
    alarm_topic: AlarmTopic, key: str, parent: pulumi.Resource
) -> tuple[str, pulumi.ResourceOptions]:
    """The name and options of a resource that was `alarm_topic`'s child and is `parent`'s:
    the same name, and an alias to the old parent (see the module docstring)."""
    return (
        f"{alarm_topic.pulumi_resource_name}-{key}",
        pulumi.ResourceOptions(parent=parent, aliases=[pulumi.Alias(parent=alarm_topic)]),
    )


def topic_alarm(
    key: str,
    properties: Mapping[str, Any],
    *,
    alarm_topic: AlarmTopic,
    parent: pulumi.Resource,
) -> aws.cloudwatch.MetricAlarm:
    """An alarm (`properties`: aws.cloudwatch.MetricAlarm's, without the actions) that notifies
    `alarm_topic` on ALARM and on OK, a child of `parent`, the component it watches."""
    name, opts = former_child(alarm_topic, key, parent)
    return aws.cloudwatch.MetricAlarm(
        name,
        alarm_actions=[alarm_topic.topic.arn],
        ok_actions=[alarm_topic.topic.arn],
        **properties,
        opts=opts,
    )


def alarm_graph(
    key: str,
    properties: Mapping[str, Any],
    metrics: Sequence[Sequence[Any]],
    region: str,
) -> pulumi.Output[dict[str, Any]]:
    """Dashboard graph of an alarm's metrics with its threshold drawn, titled by its
    description (else `key`)."""
    stat = pulumi.Output.from_input(
        properties.get("extended_statistic") or properties.get("statistic")
    )
    return pulumi.Output.all(
        stat=stat,
        threshold=properties.get("threshold"),
        title=properties.get("alarm_description"),
    ).apply(
        lambda v, metrics=[list(m) for m in metrics]: {
            "type": "metric",
            "width": 12,
            "height": 6,
            "properties": {
                "title": v["title"] or key,
                "region": region,
                "metrics": metrics,
                "stat": v["stat"],
                "period": 60,
                "annotations": {"horizontal": [{"label": "alarm", "value": v["threshold"]}]},
            },
        }
    )


def flat_dimensions(dimensions: Mapping[str, Any]) -> list[Any]:
    """``{"A": a, "B": b}`` -> ``["A", a, "B", b]``, as a dashboard metric lists them."""
    return [part for key, value in dimensions.items() for part in (key, value)]
