"""JSON schemas of each step's input, and validation that raises the named InvalidEvent.

Validation is JSON Schema through fastjsonschema, the engine of Powertools' validator (it ships
in the Powertools layer). Each schema is compiled once per cold start: Powertools' ``validate()``
recompiles on every call, which measured 2 ms per call, 8 ms per execution. The entry schema is
strict (no unknown fields) so a typo such as ``s3_Key`` is reported instead of silently
ignored; later steps accept the fields earlier steps added.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastjsonschema

from lambdas.errors import InvalidEvent

# Bucket naming rules (3-63 chars, lowercase letters, digits, dots, hyphens).
_BUCKET = {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"}
# An object key: 1..1024 chars, no control characters, not a "folder" (trailing slash).
_KEY = {
    "type": "string",
    "minLength": 1,
    "maxLength": 1024,
    "pattern": "^[^\\u0000-\\u001f\\u007f]*[^/\\u0000-\\u001f\\u007f]$",
}
_DRIVER = {"type": "string", "minLength": 1, "maxLength": 128}
_BASE_PROPERTIES = {"s3_bucket": _BUCKET, "s3_key": _KEY, "driver_id": _DRIVER}

SERIALIZE_INPUT: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": _BASE_PROPERTIES,
    "required": ["s3_bucket", "s3_key"],
    "additionalProperties": False,
}

CLASSIFY_INPUT: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        **_BASE_PROPERTIES,
        "image_data": {"type": "string", "minLength": 1},
        "inferences": {"type": "array"},
    },
    "required": ["s3_bucket", "s3_key", "image_data"],
}

# The endpoint's safety-gate verdict the classify step adds (training/gate.py, docs/design.md).
GATE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "in_distribution": {"type": "boolean"},
        "failed": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "check": {"type": "string"},
                    "kind": {"type": "string"},
                    "detail": {"type": "string"},
                },
                "required": ["check", "kind", "detail"],
            },
        },
        "scores": {"type": "object", "additionalProperties": {"type": "number"}},
    },
    "required": ["in_distribution", "failed"],
}
FILTER_INPUT: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        **_BASE_PROPERTIES,
        "inferences": {"type": "array", "minItems": 2, "items": {"type": "number"}},
        "gate": GATE,
    },
    "required": ["s3_bucket", "s3_key", "inferences"],
}

# A person's answer from the review queue (lambdas/workflow_definition.py puts it here).
DECISION = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "minLength": 1, "maxLength": 128},
        "reviewer": {"type": "string", "minLength": 1, "maxLength": 512},
        "decided_at": {"type": "string", "minLength": 1, "maxLength": 64},
    },
    "required": ["label", "reviewer", "decided_at"],
}

# Either the model decided (label + confidence from the filter step) or a person did
# (``decision``, after the review queue); the route step routes both the same way.
ROUTE_INPUT: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        **_BASE_PROPERTIES,
        "label": {"type": "string", "minLength": 1},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "decision": DECISION,
    },
    "required": ["s3_bucket", "s3_key"],
    "anyOf": [{"required": ["label", "confidence"]}, {"required": ["decision"]}],
}


_compiled: dict[int, Callable[[Any], Any]] = {}


def _validator(schema: dict[str, Any]) -> Callable[[Any], Any]:
    found = _compiled.get(id(schema))
    if found is None:
        found = _compiled[id(schema)] = fastjsonschema.compile(schema)
    return found


def validate_event(event: Any, schema: dict[str, Any], step: str) -> dict[str, Any]:
    """Return the event if it matches ``schema``; raise InvalidEvent naming what is wrong."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"{step}: the event must be a JSON object, got {type(event).__name__}")
    try:
        _validator(schema)(event)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise InvalidEvent(f"{step}: invalid event: {exc.message}") from None
    return event
