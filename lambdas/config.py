"""Settings the functions read from their environment (set by the Pulumi component or local mode).

Pure parsing over a mapping so tests pass a dict; handlers pass ``os.environ`` at call time
(not import time) so a changed configuration is seen without a cold start. The task (CLASSES,
ROUTES) has no default here: it is deploy config (scones:classes / scones:routes, or local
mode's --classes / --routes), so a function never routes a task it was not given. Values are
validated by pydantic through ``lambdas.env.read`` (errors name the variable).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, TypeAdapter

from lambdas.defaults import DEFAULT_THRESHOLD
from lambdas.env import read
from lambdas.errors import ConfigurationError

# A reviewer's answer for "this photo shows no vehicle", and the route the route step returns
# for it (the driver is told to send another photo). Neither may be a class or a route.
NOT_A_VEHICLE = "none"
REJECTED_ROUTE = "rejected"

_NAME = Annotated[str, Field(min_length=1)]
_CLASSES = TypeAdapter(Annotated[list[_NAME], Field(min_length=2)])
_THRESHOLD = TypeAdapter(Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)])
_ROUTES = TypeAdapter(dict[str, _NAME])


@dataclass(frozen=True)
class Settings:
    classes: tuple[str, ...]
    confidence_threshold: float
    routes: Mapping[str, str]


def parse_classes(env: Mapping[str, str]) -> tuple[str, ...]:
    what = "a JSON list of at least two distinct names"
    value = read(env, "CLASSES", _CLASSES, is_json=True, what=what)
    if len(set(value)) != len(value):
        raise ConfigurationError(f"CLASSES must be {what}, got {value!r}")
    return tuple(value)


def parse_threshold(env: Mapping[str, str]) -> float:
    return read(
        env, "CONFIDENCE_THRESHOLD", _THRESHOLD, DEFAULT_THRESHOLD, what="a number within [0, 1]"
    )


def parse_routes(env: Mapping[str, str], classes: tuple[str, ...]) -> dict[str, str]:
    value = read(
        env, "ROUTES", _ROUTES, is_json=True, what="a JSON object {class: route} of names"
    )
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
