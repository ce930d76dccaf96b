"""The CloudWatch metrics of a drift report, and their emission in embedded metric format.

``metric_points`` is pure (local mode prints the same points); ``emit`` writes one EMF blob per
dimension set to stdout, which Lambda ships to CloudWatch Logs and CloudWatch turns into
metrics, no PutMetricData call (and no extra latency or API cost) needed.

Every point carries the ``Stack`` and ``Endpoint`` dimensions the alarms select on.
Powertools adds a ``service`` dimension whenever a service name is configured, which would make
the published dimension set differ from the alarms'; the provider is therefore created with an
empty service name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lambdas.defaults import METRICS_NAMESPACE
from lambdas.detect_drift.analysis import STATUS_DRIFT, STATUS_OK
from lambdas.detect_drift.rules import (
    DIM_CLASS,
    DIM_ENDPOINT,
    DIM_STACK,
    DIM_STATISTIC,
    M_BASELINE_LOW_CONFIDENCE_RATE,
    M_CLASS_SHARE,
    M_CONFIDENCE_PSI,
    M_CORRUPT_RECORDS,
    M_INPUT_PSI,
    M_LOW_CONFIDENCE_RATE,
    M_MEAN_CONFIDENCE,
    M_WINDOW_REQUESTS,
)


@dataclass(frozen=True)
class MetricPoint:
    name: str
    value: float
    unit: str  # a Powertools MetricUnit name: "Count" or "NoUnit"
    dimensions: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "dimensions": dict(self.dimensions),
        }


def metric_points(report: Mapping[str, Any], stack: str, endpoint: str) -> list[MetricPoint]:
    """Points to publish for a report.

    Volume (``WindowRequests``, ``CorruptCaptureRecords``) is always published, so a dashboard
    shows quiet windows; the drift metrics only when the window had enough traffic
    (status ok/drift), so the alarms never see a noisy small-sample value.
    """
    base = {DIM_STACK: stack, DIM_ENDPOINT: endpoint}
    counts = report.get("counts", {})
    points = [
        MetricPoint(M_WINDOW_REQUESTS, float(counts.get("valid", 0)), "Count", base),
        MetricPoint(M_CORRUPT_RECORDS, float(counts.get("corrupt", 0)), "Count", base),
    ]
    if report.get("status") not in (STATUS_OK, STATUS_DRIFT):
        return points
    m = report["metrics"]
    for name in (
        M_LOW_CONFIDENCE_RATE,
        M_BASELINE_LOW_CONFIDENCE_RATE,
        M_MEAN_CONFIDENCE,
        M_CONFIDENCE_PSI,
        M_INPUT_PSI,
    ):
        if m.get(name) is not None:
            points.append(MetricPoint(name, float(m[name]), "NoUnit", base))
    for cls, share in m.get(M_CLASS_SHARE, {}).items():
        points.append(MetricPoint(M_CLASS_SHARE, float(share), "NoUnit", {**base, DIM_CLASS: cls}))
    for stat, value in m.get("InputPSIByStatistic", {}).items():
        points.append(
            MetricPoint(M_INPUT_PSI, float(value), "NoUnit", {**base, DIM_STATISTIC: stat})
        )
    return points


def emit(points: Sequence[MetricPoint], namespace: str = METRICS_NAMESPACE) -> None:
    """Print the points as EMF, one blob per dimension set (Powertools' provider)."""
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
        AmazonCloudWatchEMFProvider,
    )

    groups: dict[tuple[tuple[str, str], ...], list[MetricPoint]] = {}
    for point in points:
        groups.setdefault(tuple(sorted(point.dimensions.items())), []).append(point)
    for dims, group in groups.items():
        provider = AmazonCloudWatchEMFProvider(namespace=namespace, service="")
        for name, value in dims:
            provider.add_dimension(name=name, value=value)
        for point in group:
            provider.add_metric(name=point.name, unit=MetricUnit[point.unit], value=point.value)
        provider.flush_metrics()
