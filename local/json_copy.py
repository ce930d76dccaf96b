"""``copy.deepcopy``, faster for the JSON-shaped values Step Functions passes between states.

moto's ASL interpreter deep-copies every state's input, context and result (about 90 copies per
routed execution, ~5 % of the local server's CPU). Nearly all of them are trees of dicts and
lists holding strings, numbers, booleans and None, for which ``copy.deepcopy`` pays a dispatch
per object. :func:`json_deepcopy` copies exact ``dict`` and ``list`` objects itself and returns
``str``, ``int``, ``float``, ``bool`` and ``None`` as they are (``deepcopy`` treats those as
atomic too); anything else goes to ``copy.deepcopy`` with the same memo, so shared and cyclic
references come out as ``deepcopy`` makes them (tests/test_local_json_copy.py checks both).
"""

from __future__ import annotations

import copy
from typing import Any

_ATOMIC = frozenset({str, int, float, bool, type(None)})
_MISSING = object()


def json_deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """What ``copy.deepcopy(value, memo)`` returns, for no memo or one deepcopy filled."""
    if type(value) in _ATOMIC:
        return value
    return _copy(value, {} if memo is None else memo)


def _copy(value: Any, memo: dict[int, Any]) -> Any:
    cls = type(value)
    if cls in _ATOMIC:
        return value
    found = memo.get(id(value), _MISSING)
    if found is not _MISSING:
        return found
    # Atomic keys and items are tested inline: a call per leaf is most of the cost.
    if cls is dict:
        result: Any = {}
        memo[id(value)] = result  # before the items: a cycle back to this dict finds the copy
        for key, item in value.items():
            if type(key) not in _ATOMIC:
                key = _copy(key, memo)
            result[key] = item if type(item) in _ATOMIC else _copy(item, memo)
        return result
    if cls is list:
        result = []
        memo[id(value)] = result
        append = result.append
        for item in value:
            append(item if type(item) in _ATOMIC else _copy(item, memo))
        return result
    return copy.deepcopy(value, memo)
