"""Settings the functions read from their environment (set by the Pulumi component or local mode).

Pure parsing over a mapping so tests pass a dict; handlers pass ``os.environ`` at call time
(not import time) so a changed configuration is seen without a cold start. The task (CLASSES,
ROUTES) has no default here: it is deploy config (scones:classes / scones:routes, or local
mode's --classes / --routes), so a function never routes a task it was not given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.defaults import DEFAULT_THRESHOLD
from lambdas.errors import ConfigurationError

# A reviewer's answer for "this photo shows no vehicle", and the route the route step returns
# for it (the driver is told to send another photo). Neither may be a class or a route.
NOT_A_VEHICLE = "none"
REJECTED_ROUTE = "rejected"


@dataclass(frozen=True)
class Settings:
    classes: tuple[str, ...]
    confidence_threshold: float
    routes: Mapping[str, str]


def _json_setting(env: Mapping[str, str], key: str) -> object | None:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{key} is not valid JSON: {exc.msg}") from exc


def parse_classes(env: Mapping[str, str]) -> tuple[str, ...]:
    value = _json_setting(env, "CLASSES")
    if value is None:
        raise ConfigurationError("environment variable CLASSES is not set (a JSON list)")
    if (
        not isinstance(value, list)
        or len(value) < 2
        or not all(isinstance(c, str) and c for c in value)
        or len(set(value)) != len(value)
    ):
        raise ConfigurationError(
            f"CLASSES must be a JSON list of at least two distinct names, got {value!r}"
        )
    return tuple(value)


def parse_threshold(env: Mapping[str, str]) -> float:
    raw = env.get("CONFIDENCE_THRESHOLD")
    if raw is None or raw.strip() == "":
        return DEFAULT_THRESHOLD
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"CONFIDENCE_THRESHOLD is not a number: {raw!r}") from exc
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"CONFIDENCE_THRESHOLD must be within [0, 1], got {raw!r}")
    return value


def parse_routes(env: Mapping[str, str], classes: tuple[str, ...]) -> dict[str, str]:
    value = _json_setting(env, "ROUTES")
    if value is None:
        raise ConfigurationError("environment variable ROUTES is not set (JSON {class: route})")
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigurationError(f"ROUTES must be a JSON object of class -> route, got {value!r}")
    missing = [c for c in classes if c not in value]
    if missing:
        raise ConfigurationError(f"ROUTES has no route for class(es) {missing}")
    return dict(value)


def load_settings(env: Mapping[str, str]) -> Settings:
    classes = parse_classes(env)
    return Settings(
        classes=classes,
        confidence_threshold=parse_threshold(env),
        routes=parse_routes(env, classes),
    )


def require(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {key} is not set")
    return value
