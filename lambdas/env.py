"""One reader of the functions' environment variables, on pydantic (typed, with bounds).

Every function's settings (lambdas/config.py, lambdas/detect_drift/settings.py) read their
variables through :func:`read`, so a wrong value always fails the same way: a
``ConfigurationError`` naming the variable and saying what it must be. pydantic comes from the
Powertools v3 layer in the cloud (the layer carries Powertools' extras, pydantic among them, for
its parser utility: https://github.com/aws-powertools/powertools-lambda-python/issues/5508 and
issues/6771 show it inside the published ``AWSLambdaPowertoolsPythonV3`` layers) and from
requirements.txt locally.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from lambdas.errors import ConfigurationError

T = TypeVar("T")
_UNSET = object()


def raw(env: Mapping[str, str], key: str) -> str | None:
    """The variable's text, or None when unset or blank."""
    value = env.get(key)
    return None if value is None or value.strip() == "" else value.strip()


def require(env: Mapping[str, str], key: str) -> str:
    """The variable's text; ConfigurationError when it is unset or blank."""
    value = raw(env, key)
    if value is None:
        raise ConfigurationError(f"environment variable {key} is not set")
    return value


def read(
    env: Mapping[str, str],
    key: str,
    adapter: TypeAdapter[T],
    default: Any = _UNSET,
    *,
    is_json: bool = False,
    what: str = "",
) -> T:
    """Validate variable `key` with `adapter` (JSON-decoded first when `is_json`).

    Unset: `default`, or ConfigurationError when there is none. `what` describes the expected
    value in the error message (e.g. "a JSON list of at least two distinct names").
    """
    text = raw(env, key)
    if text is None:
        if default is _UNSET:
            detail = f" ({what})" if what else ""
            raise ConfigurationError(f"environment variable {key} is not set{detail}")
        return default
    value: Any = text
    if is_json:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{key} is not valid JSON: {exc.msg}") from exc
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = first["msg"]
        expected = f"{key} must be {what}" if what else f"{key} is invalid"
        raise ConfigurationError(f"{expected}, got {text!r} ({reason})") from exc
