"""Send events through the local state machine and summarise what happened.

Latency is the execution's own duration as Step Functions reports it (stopDate - startDate;
for a case parked on the review queue, start to the parking event), so the client's polling
interval does not inflate it; throughput is executions finished per second of wall time, from
the first start to the last completion seen.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lambdas.config import REJECTED_ROUTE
from lambdas.review_reasons import REVIEW_ERRORS


@dataclass
class EventSpec:
    event: dict[str, Any]
    image: str
    true_label: str | None = None  # None for bad events
    expected_error: str | None = None  # set for bad events


@dataclass
class Result:
    image: str
    true_label: str | None
    predicted: str | None
    confidence: float | None
    # "routed:<route>", "needs_review" (waiting for a person, or queued without a callback),
    # "rejected_by_reviewer", or the error name
    outcome: str
    status: str
    latency_ms: float
    expected_error: str | None = None
    message: str = ""
    execution_arn: str = ""

    @property
    def as_expected(self) -> bool:
        if self.expected_error is not None:
            return self.outcome == self.expected_error
        return self.outcome.startswith("routed:") or self.outcome == "needs_review"


def load_test_items(data_dir: Path, classes: Sequence[str]) -> list[tuple[str, str]]:
    """(s3 key, true label) for every staged test image, from test.lst (index, label, file)."""
    items = []
    for line in (data_dir / "test.lst").read_text().splitlines():
        if not line.strip():
            continue
        _index, label, name = line.split("\t")
        items.append((f"test/{name}", classes[int(label)]))
    return items


def bad_event_catalogue(bucket: str) -> list[EventSpec]:
    """Bad events `run --bad-events` mixes in, each with the named state it must end in."""
    specs = [
        ({"s3_bucket": bucket}, "missing s3_key", "InvalidEvent"),
        ({"s3_bucket": bucket, "s3_key": 42}, "s3_key not a string", "InvalidEvent"),
        (
            {"s3_bucket": bucket, "s3_key": "test/x.png", "extra": 1},
            "unknown field",
            "InvalidEvent",
        ),
        ({"s3_bucket": "no-such-bucket", "s3_key": "a.png"}, "unknown bucket", "ImageNotFound"),
        ({"s3_bucket": bucket, "s3_key": "test/missing.png"}, "missing object", "ImageNotFound"),
        ({"s3_bucket": bucket, "s3_key": "bad/notes.txt"}, "text file", "InvalidImage"),
        (
            {"s3_bucket": bucket, "s3_key": "bad/renamed-text.png"},
            "text named .png",
            "InvalidImage",
        ),
        ({"s3_bucket": bucket, "s3_key": "bad/truncated.png"}, "truncated PNG", "InvalidImage"),
        ({"s3_bucket": bucket, "s3_key": "bad/empty.png"}, "empty object", "InvalidImage"),
        ({"s3_bucket": bucket, "s3_key": "bad/huge.png"}, "oversized image", "ImageTooLarge"),
    ]
    return [EventSpec(event=e, image=f"<{d}>", expected_error=err) for e, d, err in specs]


def make_events(
    items: Sequence[tuple[str, str]], bucket: str, n: int, n_bad: int, seed: int | None
) -> list[EventSpec]:
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        key, label = items[rng.randrange(len(items))]
        specs.append(
            EventSpec(
                event={"s3_bucket": bucket, "s3_key": key, "driver_id": f"d-{i:04d}"},
                image=key.rsplit("/", 1)[-1],
                true_label=label,
            )
        )
    catalogue = bad_event_catalogue(bucket)
    specs += [catalogue[i % len(catalogue)] for i in range(n_bad)]
    rng.shuffle(specs)
    return specs


_CONFIDENCE = re.compile(r"best class '([^']+)' (?:has|at) confidence ([0-9.]+)")


def _result(spec: EventSpec, desc: dict[str, Any], latency_ms: float) -> Result:
    status = desc["status"]
    predicted = confidence = None
    message = ""
    output = json.loads(desc.get("output") or "{}") if status == "SUCCEEDED" else {}
    if status == "SUCCEEDED" and "review" in output and "route" not in output:
        # Sent to human review (a successful end state): the filter's LowConfidence message
        # travels in the output's "error" (lambdas/workflow_definition.py).
        outcome = "needs_review"
        try:
            message = json.loads(output["error"]["Cause"]).get("errorMessage", "")
        except (KeyError, TypeError, json.JSONDecodeError, AttributeError):
            message = ""
        found = _CONFIDENCE.search(message)
        if found:
            predicted, confidence = found.group(1), float(found.group(2))
    elif status == "SUCCEEDED":
        predicted, confidence = output.get("label"), output.get("confidence")
        outcome = f"routed:{output.get('route')}"
        if output.get("route") == REJECTED_ROUTE:
            outcome = "rejected_by_reviewer"
    else:
        error = desc.get("error") or status
        try:
            message = json.loads(desc.get("cause") or "{}").get("errorMessage", "")
        except (json.JSONDecodeError, AttributeError):
            message = str(desc.get("cause") or "")
        outcome = "needs_review" if error in REVIEW_ERRORS else error
        found = _CONFIDENCE.search(message)
        if found:
            predicted, confidence = found.group(1), float(found.group(2))
    return Result(
        image=spec.image,
        true_label=spec.true_label,
        predicted=predicted,
        confidence=confidence,
        outcome=outcome,
        status=status,
        latency_ms=latency_ms,
        expected_error=spec.expected_error,
        message=message,
    )


# Polling schedule: the next describe comes after POLL_FRACTION of the time elapsed so far,
# within [MIN_POLL_S, MAX_POLL_S].
POLL_FRACTION = 0.25
MIN_POLL_S = 0.005
MAX_POLL_S = 0.1
# An execution still running after this many times the running latency estimate may be parked
# on the review queue; its history is read then, and again each time the wait doubles.
REVIEW_CHECK_AFTER = 3.0


class _LatencyEstimate:
    """Running estimate of how long executions take, so each one is polled about once or twice
    instead of every few ms: every describe_execution costs the (single-threaded, GIL-bound)
    moto server the CPU the executions need. Latency itself is measured server-side."""

    def __init__(self) -> None:
        self.value_s = 0.05
        self.lock = threading.Lock()

    def update(self, seconds: float) -> None:
        with self.lock:
            self.value_s = 0.8 * self.value_s + 0.2 * seconds


def run_one(
    sfn: Any,
    state_machine_arn: str,
    spec: EventSpec,
    timeout: float = 120.0,
    estimate: _LatencyEstimate | None = None,
) -> Result:
    estimate = estimate or _LatencyEstimate()
    started = time.perf_counter()
    arn = sfn.start_execution(
        stateMachineArn=state_machine_arn,
        name=f"run-{uuid.uuid4().hex[:16]}",
        input=json.dumps(spec.event),
    )["executionArn"]
    time.sleep(0.9 * estimate.value_s)
    review_check_at = REVIEW_CHECK_AFTER * estimate.value_s  # seconds after the start
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            break
        # A history costs the server ten describes: an execution that is only slow (a busy
        # server) is checked at doubling intervals, not at every poll.
        elapsed = time.perf_counter() - started
        if elapsed > review_check_at:
            waiting = _waiting_for_review(sfn, spec, arn, started)
            if waiting is not None:
                return waiting
            review_check_at = 2 * elapsed
        if elapsed > timeout:
            return Result(
                spec.image,
                spec.true_label,
                None,
                None,
                "Timeout",
                "RUNNING",
                timeout * 1000,
                spec.expected_error,
                "still running",
                arn,
            )
        # The wait grows with the time already waited: a describe costs the server CPU that the
        # executions need, and latency is read from the server's timestamps, not from here.
        time.sleep(min(max(MIN_POLL_S, POLL_FRACTION * elapsed), MAX_POLL_S))
    if desc.get("stopDate") and desc.get("startDate"):
        latency_ms = (desc["stopDate"] - desc["startDate"]).total_seconds() * 1000.0
    else:
        latency_ms = (time.perf_counter() - started) * 1000.0
    estimate.update(latency_ms / 1000.0)
    result = _result(spec, desc, latency_ms)
    result.execution_arn = arn
    return result


def _waiting_for_review(sfn: Any, spec: EventSpec, arn: str, started: float) -> Result | None:
    """A "needs_review" Result if the execution waits for a person's answer, else None."""
    from review.cases import awaits_review

    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    if not awaits_review(events):
        return None
    entered = [e for e in events if "stateEnteredEventDetails" in e][-1]
    message = ""
    try:
        case = json.loads(entered["stateEnteredEventDetails"].get("input") or "{}")
        message = json.loads(case["error"]["Cause"]).get("errorMessage", "")
    except (KeyError, TypeError, json.JSONDecodeError, AttributeError):
        pass
    found = _CONFIDENCE.search(message)
    started_at, parked_at = events[0].get("timestamp"), events[-1].get("timestamp")
    if started_at is not None and parked_at is not None:  # the server's clock, as for the others
        latency_ms = (parked_at - started_at).total_seconds() * 1000.0
    else:
        latency_ms = (time.perf_counter() - started) * 1000.0
    return Result(
        image=spec.image,
        true_label=spec.true_label,
        predicted=found.group(1) if found else None,
        confidence=float(found.group(2)) if found else None,
        outcome="needs_review",
        status="RUNNING",
        latency_ms=latency_ms,
        expected_error=spec.expected_error,
        message=message,
        execution_arn=arn,
    )


def run_events(
    sfn: Any,
    state_machine_arn: str,
    specs: Sequence[EventSpec],
    concurrency: int,
    on_done: Callable[[Result], None] | None = None,
) -> tuple[list[Result], float]:
    """Run all events with ``concurrency`` starts in flight; return (results, wall seconds)."""
    lock = threading.Lock()
    estimate = _LatencyEstimate()

    def task(spec: EventSpec) -> Result:
        result = run_one(sfn, state_machine_arn, spec, estimate=estimate)
        if on_done is not None:
            with lock:
                on_done(result)
        return result

    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        results = list(pool.map(task, specs))
    return results, time.perf_counter() - started


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    lo, hi = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def summarize(results: Sequence[Result], wall_s: float) -> dict[str, Any]:
    good = [r for r in results if r.expected_error is None]
    bad = [r for r in results if r.expected_error is not None]
    labelled = [r for r in good if r.predicted is not None]
    routed = [r for r in good if r.outcome.startswith("routed:")]
    latencies = [r.latency_ms for r in results]
    return {
        "events": len(results),
        "good_events": len(good),
        "bad_events": len(bad),
        "outcomes": dict(sorted(Counter(r.outcome for r in results).items())),
        "accuracy_routed": (
            sum(r.predicted == r.true_label for r in routed) / len(routed) if routed else None
        ),
        "accuracy_all_predictions": (
            sum(r.predicted == r.true_label for r in labelled) / len(labelled) if labelled else None
        ),
        "routed_share": len(routed) / len(good) if good else None,
        "bad_events_in_expected_state": sum(r.as_expected for r in bad),
        "unexpected": [asdict(r) for r in results if not r.as_expected],
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "max": max(latencies) if latencies else None,
        },
        "wall_s": wall_s,
        "throughput_per_s": len(results) / wall_s if wall_s > 0 else None,
    }
