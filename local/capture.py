"""Data capture for the local endpoint, in SageMaker Data Capture's format and layout.

One JSON object a line, in files under
`{prefix}/{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/{mm-ss-mmm}-{uuid}.jsonl` (docs/design.md;
record, key and file body from lambdas/capture_format.py, the format's one home),
written to a local directory or to an S3 URL (boto3; it honours AWS_ENDPOINT_URL_S3 itself).

`CaptureWriter.record()` only enqueues the raw request/response: base64, JSON and I/O happen on a
background thread, so capture adds microseconds to a request. Records are written in batches
(every `flush_interval` seconds, or sooner at `max_records`/`max_bytes`); `close()` writes whatever
is left, so nothing captured is lost on shutdown. A batch whose write fails is kept and retried at
the next flush; `close()` raises CaptureError if records still could not be written.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import os
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdas.capture_format import CONTENT_TYPE, capture_file_body, capture_key, capture_record
from lambdas.s3_uri import S3UriError, parse_s3_uri
from training.errors import SconesError

LOG = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL = 5.0
DEFAULT_MAX_RECORDS = 500
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


class CaptureError(SconesError):
    """Captured records could not be written to the capture target."""


@dataclass(frozen=True)
class CaptureEvent:
    """One request/response pair as the request thread hands it over (no encoding done yet)."""

    request_body: bytes
    request_content_type: str
    response_body: str
    response_content_type: str
    when: dt.datetime
    event_id: str


def parse_target(target: str) -> tuple[str, str]:
    """('s3', 'bucket/prefix') for s3:// URLs, ('dir', path) otherwise. Raises CaptureError."""
    if target.startswith("s3://"):
        try:
            location = parse_s3_uri(target)
        except S3UriError as exc:
            raise CaptureError(f"capture target {target!r} names no bucket ({exc})") from exc
        return "s3", f"{location.bucket}/{location.prefix}".rstrip("/")
    if not target:
        raise CaptureError("capture target is empty")
    return "dir", target


class _DirectorySink:
    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.description = str(self.root)
        try:
            # Fail at start-up, not at the first flush, when the folder cannot be made.
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CaptureError(f"capture directory {root} cannot be created ({exc})") from exc

    def write(self, relative: str, data: bytes) -> str:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write to a hidden temp file in the same folder, then rename: a reader listing *.jsonl
        # never sees a half-written file.
        fd, tmp = tempfile.mkstemp(prefix=".capture-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)


class _S3Sink:
    def __init__(self, bucket_and_prefix: str, client_factory: Callable[[], Any] | None) -> None:
        self.bucket, _, self.prefix = bucket_and_prefix.partition("/")
        self.description = f"s3://{bucket_and_prefix}"
        self._factory = client_factory
        self._client: Any = None

    def write(self, relative: str, data: bytes) -> str:
        if self._client is None:
            if self._factory is not None:
                self._client = self._factory()
            else:
                import boto3  # only S3 targets need boto3

                self._client = boto3.client("s3")
        key = f"{self.prefix}/{relative}" if self.prefix else relative
        self._client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=CONTENT_TYPE
        )
        return f"s3://{self.bucket}/{key}"


_STOP = object()
_FINAL_RETRIES = 3
_RETRY_BASE_SECONDS = 0.5


class CaptureWriter:
    """Background, batched writer of capture files for one endpoint variant."""

    def __init__(
        self,
        target: str,
        endpoint_name: str,
        variant: str,
        *,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        s3_client_factory: Callable[[], Any] | None = None,
    ) -> None:
        kind, location = parse_target(target)
        if flush_interval <= 0 or max_records < 1 or max_bytes < 1:
            raise CaptureError("flush_interval, max_records and max_bytes must be positive")
        self.target = target
        self.endpoint_name = endpoint_name
        self.variant = variant
        self._sink = (
            _S3Sink(location, s3_client_factory) if kind == "s3" else _DirectorySink(location)
        )
        self._flush_interval = flush_interval
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: list[CaptureEvent] = []
        self._pending_bytes = 0
        # Paths of recent files (bounded: a long-running server writes many).
        self._written: collections.deque[str] = collections.deque(maxlen=10_000)
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    @property
    def written(self) -> list[str]:
        """Paths/URLs of the capture files written so far."""
        with self._lock:
            return list(self._written)

    def record(
        self,
        request_body: bytes,
        request_content_type: str,
        response_body: str,
        response_content_type: str = "application/json",
        *,
        when: dt.datetime | None = None,
        event_id: str | None = None,
    ) -> None:
        """Queue one request/response pair; returns at once (encoding and I/O happen later)."""
        if self._closed:
            raise CaptureError("capture writer is closed")
        self._queue.put(
            CaptureEvent(
                request_body=bytes(request_body),
                request_content_type=request_content_type,
                response_body=response_body,
                response_content_type=response_content_type,
                when=when or dt.datetime.now(dt.UTC),
                event_id=event_id or str(uuid.uuid4()),
            )
        )

    def flush(self, timeout: float = 30.0) -> None:
        """Write everything queued so far and wait until it is written (or the timeout passes)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Write what is left and stop the writer; CaptureError if records could not be written."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise CaptureError(f"capture writer did not finish within {timeout} s")
        if self._pending:
            raise CaptureError(
                f"{len(self._pending)} captured records could not be written to "
                f"{self._sink.description}: {self._errors[-1] if self._errors else 'unknown'}"
            )

    # --- writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None  # the flush interval elapsed
            waiters: list[threading.Event] = []
            stop = item is _STOP
            if isinstance(item, CaptureEvent):
                self._add(item)
                if deadline is None:
                    deadline = time.monotonic() + self._flush_interval
                if len(self._pending) < self._max_records and self._pending_bytes < self._max_bytes:
                    continue
            elif isinstance(item, threading.Event) or stop:
                # Everything queued before a flush/stop request belongs to it.
                if isinstance(item, threading.Event):
                    waiters.append(item)
                stop = self._drain_queue(waiters) or stop
            self._write_pending()
            for attempt in range(_FINAL_RETRIES if stop else 0):
                if not self._pending:
                    break
                # Last chance before shutdown: a brief outage of the target should not lose data.
                time.sleep(_RETRY_BASE_SECONDS * 2**attempt)
                self._write_pending()
            for waiter in waiters:
                waiter.set()
            if stop:
                return
            # A failed batch stays pending and is retried one interval later.
            deadline = time.monotonic() + self._flush_interval if self._pending else None

    def _add(self, event: CaptureEvent) -> None:
        self._pending.append(event)
        self._pending_bytes += _approx_size(event)

    def _drain_queue(self, waiters: list[threading.Event]) -> bool:
        """Move every queued event into the batch; collect flush requests; True if stop queued."""
        stop = False
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return stop
            if isinstance(item, CaptureEvent):
                self._add(item)
            elif isinstance(item, threading.Event):
                waiters.append(item)
            elif item is _STOP:
                stop = True

    def _write_pending(self) -> None:
        if not self._pending:
            return
        remaining: list[CaptureEvent] = []
        for group in _by_hour(self._pending):
            try:
                self._write_group(group)
            except Exception as exc:  # any sink failure: keep the records, retry later
                message = f"{type(exc).__name__}: {exc}"
                LOG.error("capture write to %s failed: %s", self._sink.description, message)
                with self._lock:
                    self._errors.append(message)
                remaining.extend(group)
        self._pending = remaining
        self._pending_bytes = sum(_approx_size(e) for e in remaining)

    def _write_group(self, group: list[CaptureEvent]) -> None:
        data = capture_file_body(
            capture_record(
                e.request_body, e.request_content_type, e.response_body, e.when, e.event_id,
                e.response_content_type,
            )
            for e in group
        )
        file_id = str(uuid.uuid4())
        relative = capture_key("", self.endpoint_name, self.variant, group[0].when, file_id)
        location = self._sink.write(relative, data)
        with self._lock:
            self._written.append(location)


def _approx_size(event: CaptureEvent) -> int:
    # base64 grows the body by 4/3; ~400 bytes of JSON keys and metadata per record.
    return len(event.request_body) * 4 // 3 + len(event.response_body) + 400


def _by_hour(events: Iterable[CaptureEvent]) -> list[list[CaptureEvent]]:
    """Split a batch so each file holds records of one UTC hour (its folder's hour)."""
    groups: dict[str, list[CaptureEvent]] = {}
    for event in events:
        key = event.when.astimezone(dt.UTC).strftime("%Y%m%d%H")
        groups.setdefault(key, []).append(event)
    return [groups[key] for key in sorted(groups)]
