"""Costs in moto's request handling and backends that grow with the work done, not with the
request; each shortcut returns what moto computes (profile and figures in docs/performance.md).

Installed by local/moto_speedups.py (``install``/``uninstall`` there, behind its version fence);
each part wraps moto's own function or property and narrows what it scans, rather than copying
its body. The parts:

1. SQS send cost independent of queue depth: moto's ``SQSBackend.send_message`` reads one key
   (``ContentBasedDeduplication``) from ``Queue.attributes``, a property that rebuilds every
   attribute, including the three ``ApproximateNumberOfMessages*`` counts, each a scan of every
   message in the queue with a clock read per message. Local mode's observer queues (subscribed
   to the routing and review topics so `run` can count what was published) only grow, so each
   routing publish cost ~10 us per message already queued: +10 ms per execution after a
   thousand executions, and rising. While send_message validates and builds the message (until
   it calls ``Queue.add_message``), ``attributes`` of a standard queue is computed by moto's own
   property without those three counts (send_message reads none of them; FIFO queues, whose
   dedup path reads attributes inside add_message too, are left alone). Everywhere else,
   GetQueueAttributes included, the attributes are moto's, counts and all.
2. Executions found by index: StartExecution checks the name against every execution of the
   state machine, DescribeExecution finds the ARN by scanning them all (a generator over a list
   that only grows: ~2 % of the server's CPU after two thousand executions, and rising). An
   index per state machine's execution list (name -> first execution of that name, ARN ->
   execution) is extended with what was appended since the last lookup; moto only appends to
   that list, and a shorter or replaced list is re-indexed from scratch.
3. Response method names once per class: every request lists the members of its response
   class with ``inspect.getmembers`` (~30 us, 3 % of the CPU) to check that the action is a
   method; the classes are not changed at runtime, so the list is kept per class.
4. URL table once per backend class: the in-process dispatcher rebuilds ``backend.urls`` for
   every request, and for S3 first *reloads the moto.s3.urls module* (a file lookup and module
   execution per S3 call) because the table depends on environment variables
   (MOTO_S3_CUSTOM_ENDPOINTS, MOTO_ENABLE_ISO_REGIONS); it is kept per (class, those
   variables) and handed out as a copy.
5. Name conversion memoised: ``camelcase_to_underscores`` (a character loop with ``istitle``
   per character and an exception at the end) runs a dozen times per request, on action and
   attribute names from a small fixed set; it is a pure function of its string argument, so
   every moto module that imported it gets a memoised copy (bounded cache).
6. Response attribute names memoised: for every member of every response shape (~850 per
   GetExecutionHistory of 18 events), moto's serializer asks its attribute picker which
   attribute names to try, instantiating each alias provider to decide. The answer depends only
   on the picker's providers, the member's name, its shape and that shape's parent, and the
   object's class (and ``Meta`` aliases, so objects with a ``Meta`` are always asked afresh); it
   is kept per those inputs, computed by moto's own ``get_possible_keys`` the first time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

_originals: dict[str, Any] = {}
# Set (per thread) while moto's SQS send_message prepares a message for a standard queue.
_sqs_send = threading.local()
_DEPTH_COUNTS = frozenset(
    {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    }
)
# Environment variables that moto's URL tables depend on (moto.settings).
_URL_ENV = ("MOTO_S3_CUSTOM_ENDPOINTS", "MOTO_ENABLE_ISO_REGIONS")


@contextmanager
def _preparing_send(active: bool) -> Iterator[None]:
    """Mark (or unmark) this thread as inside send_message's preparation; nests."""
    previous = getattr(_sqs_send, "active", False)
    _sqs_send.active = active
    try:
        yield
    finally:
        _sqs_send.active = previous


def _install_sqs_send() -> None:
    from moto.sqs.models import Queue, SQSBackend

    attributes_fget = Queue.__dict__["attributes"].fget
    send_message = SQSBackend.__dict__["send_message"]
    add_message = Queue.__dict__["add_message"]

    class WithoutDepthCounts:
        """The queue as moto's ``attributes`` property sees it, minus the depth counts."""

        BASE_ATTRIBUTES = tuple(a for a in Queue.BASE_ATTRIBUTES if a not in _DEPTH_COUNTS)

        def __init__(self, queue: Any) -> None:
            self._queue = queue

        def __getattr__(self, name: str) -> Any:
            return getattr(self._queue, name)

    def attributes(self: Any) -> dict[str, Any]:
        if getattr(_sqs_send, "active", False) and not self.fifo_queue:
            return attributes_fget(WithoutDepthCounts(self))
        return attributes_fget(self)

    def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _preparing_send(True):
            return send_message(self, *args, **kwargs)

    def add(self: Any, message: Any) -> None:
        # Delivery may run code (Lambda event source mappings) that reads full attributes.
        with _preparing_send(False):
            add_message(self, message)

    _originals["sqs"] = (Queue.__dict__["attributes"], send_message, add_message)
    Queue.attributes = property(attributes)  # type: ignore[method-assign,assignment]
    SQSBackend.send_message = send  # type: ignore[method-assign]
    Queue.add_message = add  # type: ignore[method-assign]


class ExecutionIndex:
    """Name and ARN lookups over append-only execution lists, one index per list."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id(list) -> (the list, how many items are indexed, by name, by ARN)
        self._indexes: dict[int, tuple[list, int, dict[str, Any], dict[str, Any]]] = {}

    def _index(self, executions: list) -> tuple[dict[str, Any], dict[str, Any]]:
        with self._lock:
            entry = self._indexes.get(id(executions))
            if entry is None or entry[0] is not executions or entry[1] > len(executions):
                entry = (executions, 0, {}, {})
            held, done, by_name, by_arn = entry
            for execution in executions[done:]:
                by_name.setdefault(execution.name, execution)
                by_arn.setdefault(execution.execution_arn, execution)
            self._indexes[id(executions)] = (held, len(executions), by_name, by_arn)
            return by_name, by_arn

    def by_name(self, executions: list, name: str) -> Any:
        return self._index(executions)[0].get(name)

    def by_arn(self, executions: list, arn: str) -> Any:
        return self._index(executions)[1].get(arn)


class _IndexedBackend:
    """A Step Functions backend whose state machines show only the execution an ARN names."""

    def __init__(self, backend: Any, index: ExecutionIndex) -> None:
        self._backend = backend
        self._index = index

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def _get_state_machine_for_execution(self, execution_arn: str) -> Any:
        machine = self._backend._get_state_machine_for_execution(execution_arn)
        found = self._index.by_arn(machine.executions, execution_arn)
        return SimpleNamespace(executions=[] if found is None else [found])


def _install_execution_index() -> None:
    from moto.stepfunctions.models import StateMachine, StepFunctionBackend

    index = ExecutionIndex()
    idempotency = StateMachine.__dict__["_handle_name_input_idempotency"]
    describe = StepFunctionBackend.__dict__["describe_execution"]

    def handle_name_input_idempotency(self: Any, name: str, execution_input: str) -> Any:
        # moto's own check, over the one execution that can match (names are unique per machine).
        found = index.by_name(self.executions, name)
        return idempotency(
            SimpleNamespace(executions=[] if found is None else [found]), name, execution_input
        )

    def describe_execution(self: Any, execution_arn: str) -> Any:
        # moto's own describe_execution (ARN validation, state machine lookup, its error), over
        # the one execution that can match.
        return describe(_IndexedBackend(self, index), execution_arn)

    _originals["executions"] = (idempotency, describe)
    StateMachine._handle_name_input_idempotency = handle_name_input_idempotency  # type: ignore[method-assign]
    StepFunctionBackend.describe_execution = describe_execution  # type: ignore[method-assign]


def _install_method_names() -> None:
    import moto.core.responses as responses

    _originals["method_names"] = responses.method_names_from_class
    responses.method_names_from_class = lru_cache(maxsize=None)(responses.method_names_from_class)


def _install_url_tables() -> None:
    from moto.core.base_backend import BaseBackend

    urls = BaseBackend.__dict__["urls"]
    tables: dict[tuple, dict[str, Any]] = {}

    def cached_urls(self: Any) -> dict[str, Any]:
        key = (type(self), *(os.environ.get(name) for name in _URL_ENV))
        table = tables.get(key)
        if table is None:
            table = tables[key] = urls.fget(self)
        return dict(table)

    _originals["urls"] = urls
    BaseBackend.urls = property(cached_urls)  # type: ignore[method-assign,assignment]


def _install_camelcase() -> None:
    import sys

    import moto.core.utils as utils

    original = utils.camelcase_to_underscores
    cached = lru_cache(maxsize=4096)(original)
    # moto.core.utils among them, so modules imported later bind the memoised one.
    users = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("moto.")
        and getattr(module, "camelcase_to_underscores", None) is original
    ]
    for module in users:
        module.camelcase_to_underscores = cached  # type: ignore[attr-defined]
    _originals["camelcase"] = (original, users)


# Bounds the picker cache: shapes come from moto's cached service models, so a few thousand
# (member, class) pairs cover every response local mode serves.
_MAX_ATTRIBUTE_NAMES = 50_000


# What a shape without a parent yields in the picker's cache key (None is a possible parent).
_NO_PARENT = object()


def _install_attribute_names() -> None:
    from moto.core import serialize

    pickers = (serialize.AttributePicker, serialize.XFormedAttributePicker)
    originals = {cls: cls.__dict__["get_possible_keys"] for cls in pickers}
    for cls, original in originals.items():
        names: dict[tuple, tuple[str, ...]] = {}

        def get_possible_keys(
            self: Any, context: Any, _original: Any = original, _names: dict = names
        ) -> Any:
            obj = context.obj
            if hasattr(obj, "Meta"):  # explicit aliases may differ per object
                return _original(self, context)
            shape = context.shape
            parent = getattr(shape, "parent", _NO_PARENT)
            key = (tuple(self.alias_providers), context.key, obj.__class__, shape, parent)
            found = _names.get(key)
            if found is None:
                found = tuple(_original(self, context))
                if len(_names) < _MAX_ATTRIBUTE_NAMES:
                    _names[key] = found
            return found

        cls.get_possible_keys = get_possible_keys  # type: ignore[method-assign]
    _originals["attribute_names"] = originals


def install() -> None:
    """Install all six (the caller holds moto_speedups' lock and checks idempotence)."""
    _install_sqs_send()
    _install_execution_index()
    _install_method_names()
    _install_url_tables()
    _install_camelcase()
    _install_attribute_names()


def uninstall() -> None:
    import moto.core.responses as responses
    from moto.core.base_backend import BaseBackend
    from moto.sqs.models import Queue, SQSBackend
    from moto.stepfunctions.models import StateMachine, StepFunctionBackend

    if not _originals:
        return
    Queue.attributes, SQSBackend.send_message, Queue.add_message = _originals.pop("sqs")
    (
        StateMachine._handle_name_input_idempotency,
        StepFunctionBackend.describe_execution,
    ) = _originals.pop("executions")
    responses.method_names_from_class = _originals.pop("method_names")
    BaseBackend.urls = _originals.pop("urls")
    original, users = _originals.pop("camelcase")
    for module in users:
        module.camelcase_to_underscores = original
    for cls, get_possible_keys in _originals.pop("attribute_names").items():
        cls.get_possible_keys = get_possible_keys
