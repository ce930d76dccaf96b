"""InferenceFunctions: the workflow's four Lambda functions, each with a role of its own.

Each function deploys its own deterministic zip, its handler's import closure
(lambdas.package.build_function_zips), as in local mode; Powertools comes from AWS's published
layer, resolved for the region from its public SSM parameter at the pinned version. Each role
grants exactly what its handler touches (components/function_policies.py builds it, for local
mode too): serialize reads intake/ objects, classify invokes the endpoint (and writes capture/
records when the endpoint is serverless), route publishes to the routing topic; all write only
to their own log group, plus X-Ray segments. The low-confidence-rate alarm (the filter step's
LowConfidence metric) and its graph are exposed as `alarms` and `dashboard_widgets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import AlarmTopic, alarm_graph, topic_alarm
from components.bucket_layout import INTAKE_PREFIX
from components.context import StackContext
from components.function_policies import FUNCTIONS, function_statements
from components.lambda_function import FunctionSpec, function_with_log_group
from lambdas.defaults import METRICS_NAMESPACE, RUNTIME
from lambdas.environment import workflow_environments

# Same version as the lock (requirements-dev.txt), so the cloud runs the Powertools the tests ran.
POWERTOOLS_VERSION = "3.37.0"
_MEMORY = {"classify_image": 512}
_TIMEOUT = {"classify_image": 60}  # a serverless endpoint's cold start takes tens of seconds


def powertools_layer_parameter(version: str = POWERTOOLS_VERSION, arch: str = "x86_64") -> str:
    """Powertools' public SSM parameter holding the layer ARN for the current region."""
    return f"/aws/service/powertools/python/{arch}/{RUNTIME}/{version}"


class PowertoolsLayerUnavailable(RuntimeError):
    """The pinned Powertools layer's SSM parameter does not exist in the deploy region."""


def powertools_layer_arn(region: str, override: str | None = None) -> str:
    """The layer ARN: `override` (scones:powertoolsLayerArn), else the public SSM parameter.

    Not every Region publishes every Powertools version's parameter (aws-powertools issue
    7689), so a missing one stops the preview here, naming the version, the Region and the
    config key that pins a layer instead (a plain ParameterNotFound from the invoke names none).
    """
    if override:
        return override
    name = powertools_layer_parameter()
    try:
        return aws.ssm.get_parameter(name=name).value
    except Exception as exc:  # the invoke's error type is the engine's, not boto's
        raise PowertoolsLayerUnavailable(
            f"Powertools {POWERTOOLS_VERSION} layer: SSM parameter {name} could not be read in "
            f"{region} ({exc}). If that version is not published there, set "
            "scones:powertoolsLayerArn to a Powertools layer ARN published in the Region "
            "(Powertools docs, 'Lambda Layer')."
        ) from exc


def function_name(stack: str, function: str) -> str:
    return f"scones-{stack}-{function.replace('_', '-')}"


@dataclass
class InferenceFunctionsArgs:
    context: StackContext
    # {function: zip}, one per FUNCTIONS key (lambdas.package.build_function_zips).
    lambda_zips: Mapping[str, Path]
    endpoint_name: pulumi.Input[str]
    endpoint_arn: pulumi.Input[str]
    classes: Sequence[str]
    confidence_threshold: float
    routes: Mapping[str, str]
    alarm_topic: AlarmTopic  # the low-confidence alarm notifies it
    low_confidence_rate_max: float  # that alarm's threshold: the share of images sent to review
    capture_s3_uri: pulumi.Input[str] | None = None
    # Key prefixes (no trailing "/") the serialize step reads: intake/, plus the batch inputs.
    read_prefixes: Sequence[str] = (INTAKE_PREFIX,)
    # The safe-mode flag the filter step reads (components/safe_mode.py): name and ARN.
    safe_mode_parameter: str | None = None
    safe_mode_parameter_arn: pulumi.Input[str] | None = None


class InferenceFunctions(pulumi.ComponentResource):
    alarms: list[aws.cloudwatch.MetricAlarm]
    dashboard_widgets: list[pulumi.Input[dict[str, Any]]]
    functions: dict[str, aws.lambda_.Function]
    roles: dict[str, aws.iam.Role]
    log_groups: dict[str, aws.cloudwatch.LogGroup]
    routing_topic: aws.sns.Topic
    service_name: str

    def __init__(
        self, name: str, args: InferenceFunctionsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:workflow:InferenceFunctions", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.service_name = f"scones-{args.context.stack}"
        self.routing_topic = aws.sns.Topic(
            f"{name}-routing-topic", kms_master_key_id=args.context.kms_key_arn, opts=child
        )
        layer = args.context.powertools_layer_arn
        env = workflow_environments(
            service_name=self.service_name,
            classes=args.classes,
            endpoint_name=args.endpoint_name,
            confidence_threshold=args.confidence_threshold,
            routes=args.routes,
            routing_topic_arn=self.routing_topic.arn,
            capture_s3_uri=args.capture_s3_uri,
            safe_mode_parameter=args.safe_mode_parameter,
        )
        self.functions, self.roles, self.log_groups, self.policies = {}, {}, {}, {}
        for function in FUNCTIONS:
            self._workflow_step(name, args, function, env[function], layer)
        self.function_arns = {f: fn.arn for f, fn in self.functions.items()}
        self._low_confidence_alarm(args)
        self.register_outputs(
            {
                "functionArns": self.function_arns,
                "routingTopicArn": self.routing_topic.arn,
            }
        )

    def _workflow_step(
        self,
        name: str,
        args: InferenceFunctionsArgs,
        function: str,
        environment: Mapping[str, pulumi.Input[str]],
        layer: str,
    ) -> None:
        """One step's function, its log group, and its role (function_statements)."""
        short = function.replace("_", "-")
        built = function_with_log_group(
            FunctionSpec(
                resource_name=f"{name}-{short}",
                prefix=f"{name}-{short}",
                function_name=function_name(args.context.stack, function),
                description=f"scones {args.context.stack}: workflow step {function}",
                role_description=f"scones {args.context.stack}: Lambda {function}",
                handler=f"lambdas.{function}.handler.lambda_handler",
                code=args.lambda_zips[function],
                layers=[layer],
                environment=environment,
                statements=function_statements(
                    function,
                    bucket_arn=args.context.bucket_arn,
                    kms_key_arn=args.context.kms_key_arn,
                    endpoint_arn=args.endpoint_arn,
                    routing_topic_arn=self.routing_topic.arn,
                    writes_capture=args.capture_s3_uri is not None,
                    read_prefixes=args.read_prefixes,
                    safe_mode_parameter_arn=args.safe_mode_parameter_arn,
                ),
                memory_size=_MEMORY.get(function, 256),
                timeout=_TIMEOUT.get(function, 15),
            ),
            context=args.context,
            parent=self,
        )
        self.functions[function] = built.function
        self.roles[function] = built.role
        self.log_groups[function] = built.log_group
        self.policies[function] = built.policy

    def _low_confidence_alarm(self, args: InferenceFunctionsArgs) -> None:
        """Too many images below the confidence threshold, and a graph of the rate."""
        # The filter step emits LowConfidence = 1 or 0 per image, so its Average is the rate.
        properties = {
            "namespace": METRICS_NAMESPACE,
            "metric_name": "LowConfidence",
            "dimensions": {"service": self.service_name},
            "statistic": "Average",
            "period": 900,
            "evaluation_periods": 2,
            "datapoints_to_alarm": 2,
            "threshold": args.low_confidence_rate_max,
            "comparison_operator": "GreaterThanThreshold",
            "treat_missing_data": "notBreaching",
            "alarm_description": (
                f"scones {args.context.stack}: more than {args.low_confidence_rate_max:.0%} of "
                "images below the confidence threshold (sent to human review)"
            ),
        }
        key = "low-confidence-rate"
        self.alarms = [topic_alarm(key, properties, alarm_topic=args.alarm_topic, parent=self)]
        self.dashboard_widgets = [
            alarm_graph(
                key,
                properties,
                [[METRICS_NAMESPACE, "LowConfidence", "service", self.service_name]],
                args.context.region,
            )
        ]
