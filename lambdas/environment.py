"""The workflow Lambdas' environment variables (docs/design.md, "Environment variables"): the
one builder that the Pulumi component, local mode and the tests use, so the three deploy the
same configuration.

Values are strings, or whatever the caller's deployment tool resolves to strings later (the
Pulumi component passes Outputs for the endpoint name, topic ARN and capture URI).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TypeVar

from lambdas.defaults import METRICS_NAMESPACE
from lambdas.safe_mode.flag import PARAMETER_ENV
from lambdas.workflow_definition import FUNCTION_KEYS

V = TypeVar("V")


class EnvironmentConflict(ValueError):
    """Two functions set one variable to different values (they cannot share one process)."""


def workflow_environments(
    *,
    service_name: str,
    classes: Sequence[str],
    endpoint_name: V | str,
    confidence_threshold: float,
    routes: Mapping[str, str],
    routing_topic_arn: V | str,
    capture_s3_uri: V | str | None = None,
    safe_mode_parameter: str | None = None,
) -> dict[str, dict[str, V | str]]:
    """``{function: {variable: value}}`` for the four workflow functions (FUNCTION_KEYS)."""
    common: dict[str, V | str] = {
        "CLASSES": json.dumps(list(classes)),
        "POWERTOOLS_SERVICE_NAME": service_name,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    own: dict[str, dict[str, V | str]] = {
        "serialize_image": {},
        "classify_image": {"ENDPOINT_NAME": endpoint_name},
        "filter_inferences": {"CONFIDENCE_THRESHOLD": repr(confidence_threshold)},
        "route_driver": {
            "ROUTES": json.dumps(dict(routes), sort_keys=True),
            "ROUTING_TOPIC_ARN": routing_topic_arn,
        },
    }
    if capture_s3_uri is not None:
        own["classify_image"]["CAPTURE_S3_URI"] = capture_s3_uri
    if safe_mode_parameter is not None:
        own["filter_inferences"][PARAMETER_ENV] = safe_mode_parameter
    return {function: {**common, **own[function]} for function in FUNCTION_KEYS}


def merged_environment(environments: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """One environment holding every function's variables, for a runtime that runs all of them
    in one process (local mode's in-process adapter); EnvironmentConflict if they disagree."""
    merged: dict[str, str] = {}
    for function, env in environments.items():
        for key, value in env.items():
            if merged.setdefault(key, value) != value:
                raise EnvironmentConflict(
                    f"{function} sets {key}={value!r}, another function {merged[key]!r}"
                )
    return merged
