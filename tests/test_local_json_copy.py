"""local/json_copy.py: json_deepcopy returns what copy.deepcopy returns, references included."""

from __future__ import annotations

import copy
import datetime
from collections import OrderedDict
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from local.json_copy import json_deepcopy


class Point:
    def __init__(self, x: Any, y: Any) -> None:
        self.x, self.y = x, y


def _shape(original: Any, copied: Any, seen: dict[int, int] | None = None) -> Any:
    """The copy's structure, walked beside the original: types, values, which containers
    are the same object (numbered in visiting order), and which leaves are the original's."""
    seen = {} if seen is None else seen
    if isinstance(copied, (dict, list, tuple, Point)):
        if id(copied) in seen:
            return ("ref", seen[id(copied)])
        seen[id(copied)] = len(seen)
        number = seen[id(copied)]
        if isinstance(copied, dict):
            items = list(zip(original.items(), copied.items(), strict=True))
            body = [(_shape(ok, ck, seen), _shape(ov, cv, seen)) for (ok, ov), (ck, cv) in items]
        elif isinstance(copied, Point):
            body = [_shape(original.x, copied.x, seen), _shape(original.y, copied.y, seen)]
        else:
            body = [_shape(o, c, seen) for o, c in zip(original, copied, strict=True)]
        return (type(copied).__name__, number, copied is original, body)
    return (type(copied).__name__, repr(copied), copied is original)


def _containers(value: Any, found: dict[int, Any] | None = None) -> dict[int, Any]:
    found = {} if found is None else found
    if isinstance(value, (dict, list)) and id(value) not in found:
        found[id(value)] = value
        for item in value.values() if isinstance(value, dict) else value:
            _containers(item, found)
    return found


def _assert_same_as_deepcopy(value: Any) -> None:
    fast, stock = json_deepcopy(value), copy.deepcopy(value)
    assert _shape(value, fast) == _shape(value, stock)
    assert not set(_containers(fast)) & set(_containers(value))  # nothing mutable is shared


leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8)
json_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=30,
)
other_values = st.builds(
    lambda d: datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=d),
    st.integers(0, 10**6),
) | st.builds(Point, json_values, json_values)


@given(json_values)
def test_json_values_are_copied_as_deepcopy_copies_them(value: Any) -> None:
    _assert_same_as_deepcopy(value)


@given(json_values, json_values, other_values)
def test_shared_references_and_other_types_come_out_as_deepcopy_makes_them(
    a: Any, b: Any, other: Any
) -> None:
    shared = [a, b]
    value = {
        "twice": [shared, shared],
        "again": {"same": shared, "a": a},
        "other": other,
        "tuple": (shared, other),
        "ordered": OrderedDict(x=shared),
        "point_with_shared": Point(shared, a),
    }
    _assert_same_as_deepcopy(value)


def test_cycles_are_copied_as_cycles() -> None:
    cyclic: dict[str, Any] = {"list": []}
    cyclic["self"] = cyclic
    cyclic["list"].append(cyclic["list"])
    cyclic["list"].append(cyclic)
    fast = json_deepcopy(cyclic)
    assert fast["self"] is fast and fast["list"][0] is fast["list"] and fast["list"][1] is fast
    assert fast is not cyclic
    _assert_same_as_deepcopy(cyclic)


def test_a_memo_passed_in_is_used_as_deepcopy_uses_it() -> None:
    inner = {"k": [1, 2]}
    memo: dict[int, Any] = {}
    first = json_deepcopy(inner, memo)
    assert json_deepcopy({"again": inner}, memo)["again"] is first
