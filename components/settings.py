"""Typed, validated settings of a stack, read once from the `scones` config namespace.

No pulumi import here: local mode reuses the defaults with ``Settings.from_mapping(dict.get)``
and the Pulumi program passes ``pulumi.Config("scones").get``. Every getter returns the raw
config string (Pulumi stores structured values as JSON text) or ``None`` when the key is unset;
already-parsed values (lists, dicts, numbers, bools) are accepted too.

Keys, defaults and why (docs/design.md is the contract; docs/deploying.md explains them):

========================  =====================================  ==================================
key                       default                                rationale
========================  =====================================  ==================================
classes                   default_task.DEFAULT_CLASSES           probability order of the model
routes                    default_task.DEFAULT_ROUTES            {class: route}, every class one;
                          (for the classes it covers)            a route names its Succeed state
                                                                 and its routing event
confidenceThreshold       lambdas.defaults.DEFAULT_THRESHOLD     below it the filter step fails
                                                                 with LowConfidence (human review)
minAccuracy               0.85                                   quality gate: the training job
                                                                 exits non-zero below it
dataCapturePercent        100                                    drift needs traffic; lower it on
                                                                 busy endpoints to cut S3 cost
alarmEmail                (none)                                 e-mail subscription to the alarm
                                                                 topic; unset = topic only
trainingInstanceType      ml.m5.xlarge                           the small CNN trains on CPU
epochs                    300                                    the recipe of training.train
endpoint                  {"instanceType": "ml.m5.large",        instance endpoint with Data
                           "initialInstanceCount": 1,            Capture and autoscaling; or
                           "minInstances": 1, "maxInstances": 2, {"serverless": {"memorySizeMb":
                           "targetInvocationsPerInstance": 300}   2048, "maxConcurrency": 5}}
retainData                false                                  true: destroy keeps the bucket, its
                                                                 guards, objects and KMS key
adopt                     (none)                                 {"bucket": NAME, "kmsKeyId": ID}:
                                                                 take back what a destroyed
                                                                 retainData stack kept (import)
powertoolsLayerArn        (SSM parameter)                        a Powertools layer ARN, for Regions
                                                                 without the pinned version's one
trainingAttempt           1                                      bump to retry a failed, stopped or
                                                                 timed-out job with same inputs
workflowType              STANDARD                               or EXPRESS (cheaper, 5-min cap)
logRetentionDays          30                                     CloudWatch Logs retention
latencyP99Ms              500                                    ModelLatency p99 alarm threshold
lowConfidenceRateMax      0.6                                    share of low-confidence results
                                                                 that raises an alarm (the model
                                                                 sends ~40% of clean held-out
                                                                 images to review at 0.93)
cifarArchive              (none; SCONES_CIFAR_ARCHIVE)           the local CIFAR-100 archive
driftScheduleMinutes      15                                     how often the drift detector runs
driftWindowMinutes        60                                     traffic each run analyses (windows
                                                                 overlap: a shift shows in 4 runs)
driftConfidencePsi        0.4                                    ConfidencePSI alarm (above the
                                                                 clean-window peaks, 0.10-0.33)
driftInputPsi             0.25                                   InputPSI alarm (largest PSI of the
                                                                 input statistics; "large shift")
driftLowConfidenceIncrease 0.2                                   LowConfidenceRate alarm: rate
                                                                 above the baseline's by this
driftClassShareTolerance  0.25                                   ClassShare alarm when the share
                                                                 is this far from the expected
driftMinSamples           100                                    smaller windows publish no drift
                                                                 metric (too noisy to alarm on)
expectedClassShare        (uniform)                              {class: share} the ClassShare
                                                                 alarms compare with
reviewTimeoutSeconds      86400                                  how long a case waits for a person
                                                                 (STANDARD) before ReviewExpired; at
                                                                 most 7 days, half the queue's
                                                                 14-day retention: an expired case
                                                                 stays answerable
retrainAfterLabels        200                                    `local retrain --stack` trains only
                                                                 once this many labels are new
                                                                 (docs/review.md: when to retrain)
labelledSnapshot          (none)                                 digest of the labelled/ manifest
                                                                 the training job adds (set by
                                                                 `local retrain --stack`)
========================  =====================================  ==================================

The drift thresholds are ``lambdas.detect_drift.rules.DriftThresholds``'s defaults (one source
for the Lambda, the alarms and local mode). docs/monitoring.md gives the measurements.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from default_task import DEFAULT_CLASSES, DEFAULT_ROUTES
from lambdas.config import NOT_A_VEHICLE, REJECTED_ROUTE
from lambdas.defaults import DEFAULT_THRESHOLD
from lambdas.detect_drift.rules import DriftThresholds

NAMESPACE = "scones"

# The retention values CloudWatch Logs accepts (PutRetentionPolicy rejects anything else).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)
# SageMaker Serverless Inference accepts these memory sizes only.
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
WORKFLOW_TYPES = ("STANDARD", "EXPRESS")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CLASS_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# A route becomes a Succeed state "Routed_<route>" (Step Functions state names: at most 80
# characters) and the "route" of the routing event, so plain characters only.
_ROUTE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,60}$")
# S3 bucket naming rules (S3 user guide, "General purpose bucket naming rules").
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# A KMS key ID (a UUID, or mrk-<32 hex> for a multi-Region key) or that key's ARN.
_KMS_KEY = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/)?"
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)


class SettingsError(ValueError):
    """A config value is missing or wrong; `key` is the full config key (e.g. scones:epochs)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = f"{NAMESPACE}:{key}"
        super().__init__(f"{self.key}: {message}")


class StackNameError(ValueError):
    """The Pulumi stack name makes a physical name AWS would reject (found at preview)."""


# Names derived from the stack name, and AWS's limits on them (length; characters).
_STACK_DERIVED_NAMES: tuple[tuple[str, str, int, re.Pattern[str]], ...] = (
    # aws_s3_bucket: bucket_prefix at most 37 characters (bucket names: 63, the provider adds
    # a 26-character unique suffix); lowercase letters, digits, hyphens (S3 naming rules).
    ("bucket prefix", "scones-{stack}-data-", 37, re.compile(r"^[a-z0-9-]+$")),
    # SageMaker endpoint and model package group names: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*$, 63.
    ("endpoint name", "scones-{stack}", 63, re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")),
    ("model package group", "scones-{stack}-vehicle-classifier", 63,
     re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")),
    # Lambda function names: 64 characters of letters, digits, hyphens, underscores.
    ("function name", "scones-{stack}-filter-inferences", 64, re.compile(r"^[a-zA-Z0-9_-]+$")),
    # Step Functions state machine names: 80 characters.
    ("state machine name", "scones-{stack}-routing", 80, re.compile(r"^[a-zA-Z0-9_-]+$")),
)


def validate_stack_name(stack: str) -> None:
    """Raise StackNameError naming the first derived name that AWS would refuse at create."""
    for what, template, limit, allowed in _STACK_DERIVED_NAMES:
        name = template.format(stack=stack)
        if len(name) > limit or not allowed.match(name):
            longest = limit - len(template.format(stack=""))
            raise StackNameError(
                f"pulumi stack name {stack!r}: the {what} {name!r} has {len(name)} characters "
                f"(AWS allows {limit}, matching {allowed.pattern}); use a stack name of at most "
                f"{longest} lowercase letters, digits and hyphens"
            )


@dataclass(frozen=True)
class InstanceEndpoint:
    """A real-time endpoint on instances: Data Capture, blue/green updates, autoscaling."""

    instance_type: str = "ml.m5.large"
    initial_instance_count: int = 1
    min_instances: int = 1
    max_instances: int = 2
    target_invocations_per_instance: float = 300.0


@dataclass(frozen=True)
class ServerlessEndpoint:
    """Serverless Inference: no Data Capture, so the classify Lambda writes the capture records."""

    memory_size_mb: int = 2048
    max_concurrency: int = 5


@dataclass(frozen=True)
class Adopt:
    """What a destroyed ``retainData`` stack left behind, to import on the next ``pulumi up``."""

    bucket: str
    kms_key_id: str  # the key ID (the import ID of aws:kms/key:Key), never its ARN


@dataclass(frozen=True)
class Settings:
    classes: tuple[str, ...] = DEFAULT_CLASSES
    routes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ROUTES))
    confidence_threshold: float = DEFAULT_THRESHOLD
    min_accuracy: float = 0.85
    data_capture_percent: int = 100
    alarm_email: str | None = None
    training_instance_type: str = "ml.m5.xlarge"
    epochs: int = 300
    endpoint: InstanceEndpoint | ServerlessEndpoint = field(default_factory=InstanceEndpoint)
    retain_data: bool = False
    adopt: Adopt | None = None
    training_attempt: int = 1
    powertools_layer_arn: str | None = None
    workflow_type: str = "STANDARD"
    log_retention_days: int = 30
    latency_p99_ms: float = 500.0
    low_confidence_rate_max: float = 0.6
    cifar_archive: str | None = None
    drift_schedule_minutes: int = 15
    drift_window_minutes: int = 60
    drift_confidence_psi: float = DriftThresholds.confidence_psi
    drift_input_psi: float = DriftThresholds.input_psi
    drift_low_confidence_increase: float = DriftThresholds.low_confidence_increase
    drift_class_share_tolerance: float = DriftThresholds.class_share_tolerance
    drift_min_samples: int = DriftThresholds.min_samples
    expected_class_share: Mapping[str, float] | None = None
    review_timeout_seconds: int = 86400
    retrain_after_labels: int = 200
    labelled_snapshot: str | None = None

    def drift_thresholds(self) -> DriftThresholds:
        """The thresholds the drift Lambda, its CloudWatch alarms and local monitor share."""
        return DriftThresholds(
            confidence_psi=self.drift_confidence_psi,
            input_psi=self.drift_input_psi,
            low_confidence_increase=self.drift_low_confidence_increase,
            class_share_tolerance=self.drift_class_share_tolerance,
            min_samples=self.drift_min_samples,
            expected_class_share=self.expected_class_share,
        )

    @property
    def serverless(self) -> bool:
        return isinstance(self.endpoint, ServerlessEndpoint)

    @classmethod
    def from_mapping(cls, get: Callable[[str], Any]) -> Settings:
        """Read and validate every key through `get(key) -> raw value or None`."""
        d = cls()
        retain_data = _bool("retainData", get("retainData"), d.retain_data)
        classes = _classes(get("classes"), d.classes)
        return cls(
            classes=classes,
            routes=_routes(get("routes"), classes),
            confidence_threshold=_fraction(
                "confidenceThreshold", get("confidenceThreshold"), d.confidence_threshold
            ),
            min_accuracy=_fraction("minAccuracy", get("minAccuracy"), d.min_accuracy),
            data_capture_percent=_int(
                "dataCapturePercent", get("dataCapturePercent"), d.data_capture_percent, 1, 100
            ),
            alarm_email=_email(get("alarmEmail")),
            training_instance_type=_instance_type(
                "trainingInstanceType", get("trainingInstanceType"), d.training_instance_type
            ),
            epochs=_int("epochs", get("epochs"), d.epochs, 1, 1000),
            endpoint=_endpoint(get("endpoint")),
            retain_data=retain_data,
            adopt=_adopt(get("adopt"), retain_data),
            powertools_layer_arn=_layer_arn(get("powertoolsLayerArn")),
            training_attempt=_int(
                "trainingAttempt", get("trainingAttempt"), d.training_attempt, 1, 99
            ),
            workflow_type=_choice(
                "workflowType", get("workflowType"), d.workflow_type, WORKFLOW_TYPES
            ),
            log_retention_days=_retention(get("logRetentionDays"), d.log_retention_days),
            latency_p99_ms=_positive("latencyP99Ms", get("latencyP99Ms"), d.latency_p99_ms),
            low_confidence_rate_max=_fraction(
                "lowConfidenceRateMax", get("lowConfidenceRateMax"), d.low_confidence_rate_max
            ),
            cifar_archive=_optional_str(get("cifarArchive")),
            review_timeout_seconds=_int(
                "reviewTimeoutSeconds", get("reviewTimeoutSeconds"), d.review_timeout_seconds,
                60, 7 * 86400,
            ),
            retrain_after_labels=_int(
                "retrainAfterLabels", get("retrainAfterLabels"), d.retrain_after_labels, 1, 100_000
            ),
            labelled_snapshot=_snapshot(get("labelledSnapshot")),
            **_drift(get, d),
        )


def _unset(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip() == "")


def _json(key: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(key, f"is not valid JSON ({exc.msg}): {raw!r}") from exc


def _number(key: str, raw: Any) -> float:
    if isinstance(raw, bool):
        raise SettingsError(key, f"must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(key, f"must be a number, got {raw!r}") from exc
    if not math.isfinite(value):
        raise SettingsError(key, f"must be a finite number, got {raw!r}")
    return value


def _fraction(key: str, raw: Any, default: float) -> float:
    if _unset(raw):
        return default
    value = _number(key, raw)
    if not 0.0 < value < 1.0:
        raise SettingsError(key, f"must be between 0 and 1 (exclusive), got {raw!r}")
    return value


def _positive(key: str, raw: Any, default: float) -> float:
    if _unset(raw):
        return default
    value = _number(key, raw)
    if value <= 0:
        raise SettingsError(key, f"must be greater than 0, got {raw!r}")
    return value


def _int(key: str, raw: Any, default: int, low: int, high: int) -> int:
    if _unset(raw):
        return default
    value = _number(key, raw)
    if value != int(value) or not low <= value <= high:
        raise SettingsError(key, f"must be a whole number from {low} to {high}, got {raw!r}")
    return int(value)


def _bool(key: str, raw: Any, default: bool) -> bool:
    if _unset(raw):
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise SettingsError(key, f"must be true or false, got {raw!r}")


def _choice(key: str, raw: Any, default: str, choices: tuple[str, ...]) -> str:
    if _unset(raw):
        return default
    if raw not in choices:
        raise SettingsError(key, f"must be one of {', '.join(choices)}, got {raw!r}")
    return str(raw)


def _instance_type(key: str, raw: Any, default: str) -> str:
    if _unset(raw):
        return default
    if not isinstance(raw, str) or not _INSTANCE_TYPE.match(raw):
        raise SettingsError(key, f"must be a SageMaker instance type like ml.m5.large, got {raw!r}")
    return raw


def _optional_str(raw: Any) -> str | None:
    return None if _unset(raw) else str(raw)


def _snapshot(raw: Any) -> str | None:
    if _unset(raw):
        return None
    if not isinstance(raw, str) or not re.fullmatch(r"[0-9a-f]{16}", raw):
        raise SettingsError(
            "labelledSnapshot", f"must be the 16 hex digits `local retrain` printed, got {raw!r}"
        )
    return raw


def _email(raw: Any) -> str | None:
    if _unset(raw):
        return None
    if not isinstance(raw, str) or not _EMAIL.match(raw):
        raise SettingsError("alarmEmail", f"must be an e-mail address, got {raw!r}")
    return raw


def _retention(raw: Any, default: int) -> int:
    if _unset(raw):
        return default
    value = _int("logRetentionDays", raw, default, 1, 3653)
    if value not in LOG_RETENTION_DAYS:
        raise SettingsError(
            "logRetentionDays", f"must be one of CloudWatch's values {LOG_RETENTION_DAYS}"
        )
    return value


_LAYER_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[A-Za-z0-9_-]+:\d+$")


def _layer_arn(raw: Any) -> str | None:
    if _unset(raw):
        return None
    if not isinstance(raw, str) or not _LAYER_ARN.match(raw):
        raise SettingsError(
            "powertoolsLayerArn", f"must be a Lambda layer version ARN, got {raw!r}"
        )
    return raw


def _adopt(raw: Any, retain_data: bool) -> Adopt | None:
    if _unset(raw):
        return None
    value = _json("adopt", raw)
    if not isinstance(value, Mapping) or set(value) != {"bucket", "kmsKeyId"}:
        raise SettingsError("adopt", f'must be {{"bucket": NAME, "kmsKeyId": ID}}, got {raw!r}')
    bucket, key = value["bucket"], value["kmsKeyId"]
    if not isinstance(bucket, str) or not _BUCKET_NAME.match(bucket):
        raise SettingsError("adopt.bucket", f"must be an S3 bucket name, got {bucket!r}")
    match = _KMS_KEY.match(key) if isinstance(key, str) else None
    if not match:
        raise SettingsError("adopt.kmsKeyId", f"must be a KMS key ID or key ARN, got {key!r}")
    if not retain_data:
        # Adopting into a stack that deletes its data on destroy would delete what was kept.
        raise SettingsError("adopt", "needs scones:retainData true (the adopted data is kept)")
    return Adopt(bucket=bucket, kms_key_id=match.group(2))


def _classes(raw: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if _unset(raw):
        return default
    value = _json("classes", raw)
    if (
        not isinstance(value, list)
        or len(value) < 2
        or not all(isinstance(c, str) and _CLASS_NAME.match(c) for c in value)
        or len(set(value)) != len(value)
    ):
        raise SettingsError(
            "classes", f"must be a list of at least two distinct class names, got {raw!r}"
        )
    if NOT_A_VEHICLE in value:
        raise SettingsError(
            "classes", f"{NOT_A_VEHICLE!r} is reserved (a reviewer's answer: no such object)"
        )
    return tuple(value)


def _routes(raw: Any, classes: tuple[str, ...]) -> dict[str, str]:
    """{class: route} for exactly `classes`; unset: the default task's routes, if they cover
    every class (another class set must say where each class goes)."""
    if _unset(raw):
        missing = [c for c in classes if c not in DEFAULT_ROUTES]
        if missing:
            raise SettingsError(
                "routes",
                f"no route for class(es) {missing} of scones:classes; set scones:routes to "
                "an object {class: route} naming every class",
            )
        return {c: DEFAULT_ROUTES[c] for c in classes}
    value = _json("routes", raw)
    if not isinstance(value, Mapping):
        raise SettingsError("routes", f"must be an object {{class: route}}, got {raw!r}")
    missing = [c for c in classes if c not in value]
    if missing:
        raise SettingsError("routes", f"no route for class(es) {missing} of scones:classes")
    unknown = sorted(set(value) - set(classes))
    if unknown:
        raise SettingsError("routes", f"names {unknown}, which are not in scones:classes")
    for c in classes:
        route = value[c]
        if not isinstance(route, str) or not _ROUTE_NAME.match(route):
            raise SettingsError(
                f"routes.{c}",
                f"must be a route name of 1-60 letters, digits, '_' or '-', got {route!r}",
            )
        if route == REJECTED_ROUTE:
            raise SettingsError(
                f"routes.{c}", f"{REJECTED_ROUTE!r} is reserved for a reviewer's rejection"
            )
    return {c: value[c] for c in classes}


_INSTANCE_KEYS = {
    "instanceType", "initialInstanceCount", "minInstances", "maxInstances",
    "targetInvocationsPerInstance",
}
_SERVERLESS_KEYS = {"memorySizeMb", "maxConcurrency"}


def _endpoint(raw: Any) -> InstanceEndpoint | ServerlessEndpoint:
    if _unset(raw):
        return InstanceEndpoint()
    value = _json("endpoint", raw)
    if not isinstance(value, Mapping):
        raise SettingsError("endpoint", f"must be an object, got {raw!r}")
    if "serverless" in value:
        if set(value) != {"serverless"} or not isinstance(value["serverless"], Mapping):
            raise SettingsError(
                "endpoint", "serverless must be the only key and hold an object"
            )
        return _serverless(value["serverless"])
    unknown = set(value) - _INSTANCE_KEYS
    if unknown:
        raise SettingsError("endpoint", f"unknown key(s) {sorted(unknown)}")
    d = InstanceEndpoint()
    instance = InstanceEndpoint(
        instance_type=_instance_type(
            "endpoint.instanceType", value.get("instanceType"), d.instance_type
        ),
        initial_instance_count=_int(
            "endpoint.initialInstanceCount",
            value.get("initialInstanceCount"),
            d.initial_instance_count,
            1,
            100,
        ),
        min_instances=_int(
            "endpoint.minInstances", value.get("minInstances"), d.min_instances, 1, 100
        ),
        max_instances=_int(
            "endpoint.maxInstances", value.get("maxInstances"), d.max_instances, 1, 100
        ),
        target_invocations_per_instance=_positive(
            "endpoint.targetInvocationsPerInstance",
            value.get("targetInvocationsPerInstance"),
            d.target_invocations_per_instance,
        ),
    )
    if instance.min_instances > instance.max_instances:
        raise SettingsError("endpoint.minInstances", "must not exceed endpoint.maxInstances")
    if not instance.min_instances <= instance.initial_instance_count <= instance.max_instances:
        raise SettingsError(
            "endpoint.initialInstanceCount",
            "must lie between endpoint.minInstances and endpoint.maxInstances",
        )
    return instance


def _serverless(value: Mapping[str, Any]) -> ServerlessEndpoint:
    unknown = set(value) - _SERVERLESS_KEYS
    if unknown:
        raise SettingsError("endpoint.serverless", f"unknown key(s) {sorted(unknown)}")
    d = ServerlessEndpoint()
    memory = _int(
        "endpoint.serverless.memorySizeMb", value.get("memorySizeMb"), d.memory_size_mb, 1024,
        6144,
    )
    if memory not in SERVERLESS_MEMORY_MB:
        raise SettingsError(
            "endpoint.serverless.memorySizeMb", f"must be one of {SERVERLESS_MEMORY_MB}"
        )
    return ServerlessEndpoint(
        memory_size_mb=memory,
        max_concurrency=_int(
            "endpoint.serverless.maxConcurrency",
            value.get("maxConcurrency"),
            d.max_concurrency,
            1,
            200,
        ),
    )


def _drift(get: Callable[[str], Any], d: Settings) -> dict[str, Any]:
    """The drift-monitor keys (schedule, window, alarm thresholds, expected class mix)."""
    classes = _classes(get("classes"), d.classes)
    return {
        "drift_schedule_minutes": _int(
            "driftScheduleMinutes", get("driftScheduleMinutes"), d.drift_schedule_minutes, 1, 1440
        ),
        "drift_window_minutes": _int(
            "driftWindowMinutes", get("driftWindowMinutes"), d.drift_window_minutes, 5, 10080
        ),
        "drift_confidence_psi": _positive(
            "driftConfidencePsi", get("driftConfidencePsi"), d.drift_confidence_psi
        ),
        "drift_input_psi": _positive("driftInputPsi", get("driftInputPsi"), d.drift_input_psi),
        "drift_low_confidence_increase": _fraction(
            "driftLowConfidenceIncrease",
            get("driftLowConfidenceIncrease"),
            d.drift_low_confidence_increase,
        ),
        "drift_class_share_tolerance": _fraction(
            "driftClassShareTolerance",
            get("driftClassShareTolerance"),
            d.drift_class_share_tolerance,
        ),
        "drift_min_samples": _int(
            "driftMinSamples", get("driftMinSamples"), d.drift_min_samples, 1, 100_000
        ),
        "expected_class_share": _class_share(get("expectedClassShare"), classes),
    }


def _class_share(raw: Any, classes: tuple[str, ...]) -> dict[str, float] | None:
    if _unset(raw):
        return None
    value = _json("expectedClassShare", raw)
    if not isinstance(value, Mapping) or set(value) != set(classes):
        raise SettingsError(
            "expectedClassShare", f"must map exactly the classes {list(classes)} to shares"
        )
    shares = {c: _number(f"expectedClassShare.{c}", value[c]) for c in classes}
    if any(not 0.0 <= v <= 1.0 for v in shares.values()) or abs(sum(shares.values()) - 1) > 1e-6:
        raise SettingsError("expectedClassShare", "shares must be within [0, 1] and sum to 1")
    return shares
