"""How the local runner waits for an execution: few calls for a slow one, parked cases found.

The local server is one GIL-bound process: every DescribeExecution (about 1 ms of its CPU) and
GetExecutionHistory (about 12 ms) takes CPU from the executions themselves, so a client that
polls at a fixed short interval slows the system it measures, more so the busier it is.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from lambdas.workflow_definition import AWAIT_REVIEW_STATE
from local import runner
from local.runner import EventSpec, _LatencyEstimate, run_one

SPEC = EventSpec(event={"s3_bucket": "b", "s3_key": "k.png"}, image="k.png", true_label="bicycle")
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class ScriptedExecution:
    """A Step Functions client whose one execution stays RUNNING for ``runs_s`` seconds of the
    fake clock (then succeeds), parked at the review step when ``parked``."""

    def __init__(self, clock: list[float], runs_s: float, parked: bool = False) -> None:
        self.clock, self.runs_s, self.parked = clock, runs_s, parked
        self.describes = 0
        self.histories = 0

    def start_execution(self, **_: Any) -> dict[str, str]:
        return {"executionArn": "arn:aws:states:us-east-1:1:execution:sm:run"}

    def describe_execution(self, **_: Any) -> dict[str, Any]:
        self.describes += 1
        if self.clock[0] < self.runs_s:
            return {"status": "RUNNING"}
        output = {"inferences": [0.9, 0.1], "route": "nearby", "label": "bicycle"}
        return {
            "status": "SUCCEEDED",
            "output": json.dumps(output),
            "startDate": START,
            "stopDate": START + dt.timedelta(milliseconds=80),
        }

    def get_execution_history(self, **_: Any) -> dict[str, Any]:
        self.histories += 1
        state = AWAIT_REVIEW_STATE if self.parked else "Classify"
        return {
            "events": [
                {"type": "ExecutionStarted", "timestamp": START},
                {
                    "type": "TaskStateEntered",
                    "timestamp": START + dt.timedelta(milliseconds=20),
                    "stateEnteredEventDetails": {"name": state},
                },
                {
                    "type": "TaskSubmitted" if self.parked else "TaskScheduled",
                    "timestamp": START + dt.timedelta(milliseconds=30),
                },
            ]
        }


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A fake clock that each sleep advances instantly, so polling schedules run in no time."""
    now = [0.0]
    monkeypatch.setattr(runner.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(runner.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    return now


def test_a_slow_execution_is_polled_and_checked_for_review_a_bounded_number_of_times(
    clock: list[float],
) -> None:
    # 40 times the running estimate (50 ms): a busy server, not a parked case.
    sfn = ScriptedExecution(clock, runs_s=2.0)

    result = run_one(sfn, "arn:sm", SPEC, estimate=_LatencyEstimate())

    assert result.status == "SUCCEEDED"
    # A fixed 7.5 ms interval would describe ~260 times and read ~250 histories.
    assert sfn.describes <= 40
    assert 1 <= sfn.histories <= 6
    # ...and the completion is seen soon after it happens (at most one MAX_POLL_S late).
    assert clock[0] - 2.0 <= runner.MAX_POLL_S + 1e-9


def test_a_parked_execution_is_reported_as_waiting_for_review(clock: list[float]) -> None:
    sfn = ScriptedExecution(clock, runs_s=float("inf"), parked=True)

    result = run_one(sfn, "arn:sm", SPEC, estimate=_LatencyEstimate())

    assert result.outcome == "needs_review"
    assert result.status == "RUNNING"
    assert sfn.histories == 1
    # Its latency is the server's (start to parking), not how long the client took to notice.
    assert result.latency_ms == pytest.approx(30.0)
    assert clock[0] > 0.1
