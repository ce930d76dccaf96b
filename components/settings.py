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

The drift keys take their defaults and their types (bounds) from
``lambdas.detect_drift.rules.DriftThresholds`` (one source for the Lambda, the alarms and local
mode). docs/monitoring.md gives the measurements.

Validation is pydantic's (the models below declare each key's type and bounds); a failure is a
``SettingsError`` naming the full key (``scones:endpoint.minInstances``) and what it must be.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from default_task import DEFAULT_CLASSES, DEFAULT_ROUTES
from lambdas.config import NOT_A_VEHICLE, REJECTED_ROUTE
from lambdas.defaults import DEFAULT_THRESHOLD
from lambdas.detect_drift.rules import (
    ClassShare,
    DriftThresholds,
    MinSamples,
    PsiThreshold,
    RateThreshold,
)
from lambdas.detect_drift.settings import DEFAULT_WINDOW_MINUTES

NAMESPACE = "scones"

# The retention values CloudWatch Logs accepts (PutRetentionPolicy rejects anything else).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)
# SageMaker Serverless Inference accepts these memory sizes only.
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
WORKFLOW_TYPES = ("STANDARD", "EXPRESS")


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


# ---------------------------------------------------------------- the key types

# The error type of a failure already worded for SettingsError (its ctx: message, field).
_OWN = "scones_setting"


def _fail(message: str, field: str | None = None) -> PydanticCustomError:
    return PydanticCustomError(_OWN, "{message}", {"message": message, "field": field})


def _expect(what: str) -> WrapValidator:
    """Word any failure of the type it wraps as "must be <what>, got <value>"."""

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            if any(e["type"] == _OWN for e in exc.errors()):
                raise
            raise _fail(f"must be {what}, got {value!r}") from None

    return WrapValidator(wrap)


_FLOAT_TEXT = TypeAdapter(float)


def _number(value: Any) -> Any:
    """A config number: never true/false; text ("2", "0.5", "1e2") read as a float first."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return _FLOAT_TEXT.validate_python(value) if isinstance(value, str) else value


def _json_text(value: Any) -> Any:
    """Pulumi stores structured values as JSON text; already-parsed values pass through."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise _fail(f"is not valid JSON ({exc.msg}): {value!r}") from None


def _object(what: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        decoded = _json_text(value)
        if not isinstance(decoded, Mapping):
            raise _fail(f"must be {what}, got {value!r}")
        return decoded

    return BeforeValidator(check)


def _true_false(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _one_of(choices: tuple[int, ...]) -> AfterValidator:
    def check(value: int) -> int:
        if value not in choices:
            raise ValueError("not an allowed value")
        return value

    return AfterValidator(check)


_NUMBER = BeforeValidator(_number)


def _whole(low: int, high: int) -> Any:
    return Annotated[int, _NUMBER, Field(ge=low, le=high), _expect(
        f"a whole number from {low} to {high}"
    )]


_Fraction = Annotated[float, _NUMBER, Field(gt=0, lt=1), _expect("between 0 and 1 (exclusive)")]
_Positive = Annotated[float, _NUMBER, Field(gt=0, allow_inf_nan=False), _expect("greater than 0")]
_Flag = Annotated[bool, BeforeValidator(_true_false), Strict(), _expect("true or false")]


def _text(pattern: str, what: str) -> Any:
    return Annotated[str, Field(pattern=pattern), _expect(what)]


_InstanceType = _text(r"^ml\.[a-z0-9]+\.[a-z0-9]+$", "a SageMaker instance type like ml.m5.large")
_Email = _text(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "an e-mail address")
_LayerArn = _text(
    r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[A-Za-z0-9_-]+:\d+$",
    "a Lambda layer version ARN",
)
_Snapshot = _text(r"^[0-9a-f]{16}$", "the 16 hex digits `local retrain` printed")
# S3 bucket naming rules (S3 user guide, "General purpose bucket naming rules").
_BucketName = _text(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", "an S3 bucket name")
# A KMS key ID (a UUID, or mrk-<32 hex> for a multi-Region key) or that key's ARN.
_KMS_KEY = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/)?"
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)
_KmsKeyId = Annotated[
    _text(_KMS_KEY.pattern, "a KMS key ID or key ARN"),
    AfterValidator(lambda value: _KMS_KEY.match(value).group(2)),  # type: ignore[union-attr]
]
_ClassName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]


def _distinct(classes: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(classes)) != len(classes):
        raise ValueError("repeated class")
    return classes


def _not_a_class(classes: tuple[str, ...]) -> tuple[str, ...]:
    if NOT_A_VEHICLE in classes:
        raise _fail(f"{NOT_A_VEHICLE!r} is reserved (a reviewer's answer: no such object)")
    return classes


_Classes = Annotated[
    tuple[_ClassName, ...],
    Field(min_length=2),
    AfterValidator(_distinct),
    BeforeValidator(_json_text),
    _expect("a list of at least two distinct class names"),
    AfterValidator(_not_a_class),
]


def _not_rejected(route: str) -> str:
    if route == REJECTED_ROUTE:
        raise _fail(f"{REJECTED_ROUTE!r} is reserved for a reviewer's rejection")
    return route


# A route becomes a Succeed state "Routed_<route>" (Step Functions state names: at most 80
# characters) and the "route" of the routing event, so plain characters only.
_RouteName = Annotated[
    _text(r"^[A-Za-z0-9_-]{1,60}$", "a route name of 1-60 letters, digits, '_' or '-'"),
    AfterValidator(_not_rejected),
]
_Routes = Annotated[dict[str, _RouteName], _object("an object {class: route}")]
_CLASS_SHARE = TypeAdapter(ClassShare)


def _shares(mix: dict[str, float]) -> dict[str, float]:
    """The class mix DriftThresholds accepts (its ClassShare type)."""
    try:
        return _CLASS_SHARE.validate_python(mix)
    except ValidationError:
        raise _fail("shares must be within [0, 1] and sum to 1") from None


_ClassMix = Annotated[
    dict[str, Annotated[float, _NUMBER, Field(allow_inf_nan=False), _expect("a number")]],
    AfterValidator(_shares),
    _object("an object {class: share}"),
]
_RetentionDays = Annotated[
    int, _NUMBER, Field(ge=1, le=3653), _one_of(LOG_RETENTION_DAYS),
    _expect(f"one of CloudWatch's values {LOG_RETENTION_DAYS}"),
]
_MemorySizeMb = Annotated[
    int, _NUMBER, _one_of(SERVERLESS_MEMORY_MB), _expect(f"one of {SERVERLESS_MEMORY_MB}")
]

# Keys are the camelCase of the field names (scones:dataCapturePercent: data_capture_percent);
# code may construct the models with the field names.
_KEYS = ConfigDict(
    alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="forbid"
)


# ---------------------------------------------------------------- the models


@dataclass(frozen=True, config=_KEYS)
class InstanceEndpoint:
    """A real-time endpoint on instances: Data Capture, blue/green updates, autoscaling."""

    instance_type: _InstanceType = "ml.m5.large"
    initial_instance_count: _whole(1, 100) = 1  # type: ignore[valid-type]
    min_instances: _whole(1, 100) = 1  # type: ignore[valid-type]
    max_instances: _whole(1, 100) = 2  # type: ignore[valid-type]
    target_invocations_per_instance: _Positive = 300.0

    @model_validator(mode="after")
    def _counts_agree(self) -> InstanceEndpoint:
        if self.min_instances > self.max_instances:
            raise _fail("must not exceed endpoint.maxInstances", "minInstances")
        if not self.min_instances <= self.initial_instance_count <= self.max_instances:
            raise _fail(
                "must lie between endpoint.minInstances and endpoint.maxInstances",
                "initialInstanceCount",
            )
        return self


@dataclass(frozen=True, config=_KEYS)
class ServerlessEndpoint:
    """Serverless Inference: no Data Capture, so the classify Lambda writes the capture records."""

    memory_size_mb: _MemorySizeMb = 2048
    max_concurrency: _whole(1, 200) = 5  # type: ignore[valid-type]


@dataclass(frozen=True, config=_KEYS)
class _Serverless:
    """scones:endpoint's serverless form, {"serverless": {...}}."""

    serverless: ServerlessEndpoint


@dataclass(frozen=True, config=_KEYS)
class Adopt:
    """What a destroyed ``retainData`` stack left behind, to import on the next ``pulumi up``."""

    bucket: _BucketName
    kms_key_id: _KmsKeyId  # the key ID (the import ID of aws:kms/key:Key), never its ARN


_INSTANCE = TypeAdapter(InstanceEndpoint)
_SERVERLESS = TypeAdapter(_Serverless)


def _unset(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip() == "")


@dataclass(frozen=True, config=_KEYS)
class Settings:
    classes: _Classes = DEFAULT_CLASSES
    # Unset: the default task's routes for the classes they cover (validated like a given one).
    routes: Annotated[_Routes, Field(validate_default=True)] = None  # type: ignore[assignment]
    confidence_threshold: _Fraction = DEFAULT_THRESHOLD
    min_accuracy: _Fraction = 0.85
    data_capture_percent: _whole(1, 100) = 100  # type: ignore[valid-type]
    alarm_email: _Email | None = None
    training_instance_type: _InstanceType = "ml.m5.xlarge"
    epochs: _whole(1, 1000) = 300  # type: ignore[valid-type]
    endpoint: InstanceEndpoint | ServerlessEndpoint = dataclasses.field(
        default_factory=InstanceEndpoint
    )
    retain_data: _Flag = False
    adopt: Annotated[Adopt, _object('{"bucket": NAME, "kmsKeyId": ID}')] | None = None
    training_attempt: _whole(1, 99) = 1  # type: ignore[valid-type]
    powertools_layer_arn: _LayerArn | None = None
    workflow_type: Annotated[
        Literal["STANDARD", "EXPRESS"], _expect(f"one of {', '.join(WORKFLOW_TYPES)}")
    ] = "STANDARD"
    log_retention_days: _RetentionDays = 30
    latency_p99_ms: _Positive = 500.0
    low_confidence_rate_max: _Fraction = 0.6
    cifar_archive: str | None = None
    drift_schedule_minutes: _whole(1, 1440) = 15  # type: ignore[valid-type]
    drift_window_minutes: _whole(5, 10080) = DEFAULT_WINDOW_MINUTES  # type: ignore[valid-type]
    drift_confidence_psi: Annotated[
        PsiThreshold, _NUMBER, _expect("greater than 0")
    ] = DriftThresholds.confidence_psi
    drift_input_psi: Annotated[
        PsiThreshold, _NUMBER, _expect("greater than 0")
    ] = DriftThresholds.input_psi
    drift_low_confidence_increase: Annotated[
        RateThreshold, _NUMBER, _expect("between 0 and 1 (exclusive)")
    ] = DriftThresholds.low_confidence_increase
    drift_class_share_tolerance: Annotated[
        RateThreshold, _NUMBER, _expect("between 0 and 1 (exclusive)")
    ] = DriftThresholds.class_share_tolerance
    drift_min_samples: Annotated[
        MinSamples, _NUMBER, _expect("a whole number from 1 to 100000")
    ] = DriftThresholds.min_samples
    expected_class_share: _ClassMix | None = None
    review_timeout_seconds: _whole(60, 7 * 86400) = 86400  # type: ignore[valid-type]
    retrain_after_labels: _whole(1, 100_000) = 200  # type: ignore[valid-type]
    labelled_snapshot: _Snapshot | None = None

    @field_validator("routes", mode="before")
    @classmethod
    def _routes_name_exactly_the_classes(cls, routes: Any, info: ValidationInfo) -> Any:
        """{class: route} for exactly the classes (checked before the route names), in class
        order. Unset: the default task's routes, if they cover every class (another class set
        must say where each class goes)."""
        classes = info.data.get("classes", ())
        if routes is None:
            missing = [c for c in classes if c not in DEFAULT_ROUTES]
            if missing:
                raise _fail(
                    f"no route for class(es) {missing} of scones:classes; set scones:routes to "
                    "an object {class: route} naming every class"
                )
            return {c: DEFAULT_ROUTES[c] for c in classes}
        value = _json_text(routes)
        if not isinstance(value, Mapping) or "classes" not in info.data:
            return routes  # the type's own error (or the classes' error comes first)
        missing = [c for c in classes if c not in value]
        if missing:
            raise _fail(f"no route for class(es) {missing} of scones:classes")
        unknown = sorted(set(value) - set(classes))
        if unknown:
            raise _fail(f"names {unknown}, which are not in scones:classes")
        return {c: value[c] for c in classes}

    @field_validator("endpoint", mode="before")
    @classmethod
    def _endpoint_form(cls, endpoint: Any) -> Any:
        """An object of instance keys, or {"serverless": {...}}."""
        if isinstance(endpoint, (InstanceEndpoint, ServerlessEndpoint)):
            return endpoint
        value = _json_text(endpoint)
        if not isinstance(value, Mapping):
            raise _fail(f"must be an object, got {endpoint!r}")
        if "serverless" not in value:
            return _INSTANCE.validate_python({k: v for k, v in value.items() if not _unset(v)})
        if set(value) != {"serverless"} or not isinstance(value["serverless"], Mapping):
            raise _fail("serverless must be the only key and hold an object")
        return _SERVERLESS.validate_python(value).serverless

    @field_validator("adopt")
    @classmethod
    def _adopt_needs_retained_data(cls, adopt: Adopt | None, info: ValidationInfo) -> Any:
        # Adopting into a stack that deletes its data on destroy would delete what was kept.
        if adopt is not None and info.data.get("retain_data") is False:
            raise _fail("needs scones:retainData true (the adopted data is kept)")
        return adopt

    @field_validator("expected_class_share", mode="before")
    @classmethod
    def _mix_names_exactly_the_classes(cls, mix: Any, info: ValidationInfo) -> Any:
        """Checked before the shares themselves."""
        classes = info.data.get("classes")
        value = _json_text(mix)
        if classes is not None and (not isinstance(value, Mapping) or set(value) != set(classes)):
            raise _fail(f"must map exactly the classes {list(classes)} to shares")
        return value

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
        """Read and validate every key through `get(key) -> raw value or None` (None or blank:
        the default); SettingsError names the first bad key."""
        given = {}
        for field in dataclasses.fields(cls):
            raw = get(to_camel(field.name))
            if not _unset(raw):
                given[to_camel(field.name)] = raw
        try:
            return _SETTINGS.validate_python(given)
        except ValidationError as exc:
            raise _settings_error(exc) from exc


_SETTINGS = TypeAdapter(Settings)
# Shape errors (a key too many or missing in an object) are reported at the object's key.
_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_MISSING = ("missing", "missing_argument")


def _settings_error(exc: ValidationError) -> SettingsError:
    """The first error, at its full key (the error's location, e.g. endpoint.minInstances)."""
    errors = exc.errors()
    first = errors[0]
    where = [str(part) for part in first["loc"]]
    if first["type"] in _UNKNOWN + _MISSING:
        kind = _UNKNOWN if first["type"] in _UNKNOWN else _MISSING
        names = sorted(
            str(e["loc"][-1]) for e in errors
            if e["type"] in kind and e["loc"][:-1] == first["loc"][:-1]
        )
        what = "unknown" if kind is _UNKNOWN else "missing"
        return SettingsError(".".join(where[:-1]), f"{what} key(s) {names}")
    if first["type"] == _OWN:
        field = first["ctx"].get("field")
        return SettingsError(".".join(where + ([field] if field else [])), first["ctx"]["message"])
    return SettingsError(".".join(where), f"{first['msg']}, got {first['input']!r}")
