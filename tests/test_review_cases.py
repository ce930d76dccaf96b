"""review.cases on its own: a case shows whatever reason it carries (the confidence gate's, the
per-request gate's, safe mode's), so a new reason needs no change to the CLI or the page."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from review.cases import ReviewError, parse_message

CLASSES = ["bicycle", "motorcycle"]
NOW = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)


def _message(case: dict, token: str = "t") -> dict:
    body = {"case_id": "c-1", "execution_arn": "arn:x", "queued_at": "2026-12-02T06:59:00Z",
            "case": {"s3_bucket": "b", "s3_key": "intake/x.png", "inferences": [0.6, 0.4],
                     **case}}
    if token:
        body["task_token"] = token
    return {"Body": json.dumps(body), "ReceiptHandle": "r", "MessageId": "m"}


def _error(name: str, message: str) -> dict:
    # As a Catch with ResultPath $.error records a Lambda error (lambdas/workflow_definition.py).
    return {"Error": name, "Cause": json.dumps({"errorType": name, "errorMessage": message})}


@pytest.mark.parametrize(
    ("case", "reason", "detail"),
    [
        ({"error": _error("LowConfidence", "best class 'bicycle' has confidence 0.6000")},
         "LowConfidence", "best class 'bicycle' has confidence 0.6000"),
        ({"error": _error("OutOfDistribution", "input PSI 0.91 above 0.25")},
         "OutOfDistribution", "input PSI 0.91 above 0.25"),
        # A case naming its own reason (e.g. safe mode) is shown by that name.
        ({"reason": "safe_mode"}, "safe_mode", ""),
        ({"reason": "out_of_distribution", "error": _error("OutOfDistribution", "far")},
         "out_of_distribution", "far"),
        ({"error": {"Error": "States.Timeout", "Cause": "not JSON"}}, "States.Timeout", "not JSON"),
        ({}, "sent to review", ""),
    ],
)
def test_a_case_shows_the_reason_it_carries(case: dict, reason: str, detail: str) -> None:
    parsed = parse_message(_message(case), CLASSES, "q", NOW, dlq=False)
    assert (parsed.reason, parsed.detail) == (reason, detail)
    public = parsed.public()
    assert (public["reason"], public["detail"]) == (reason, detail)
    assert public["age_seconds"] == 60 and public["probabilities"] == {
        "bicycle": 0.6, "motorcycle": 0.4}
    assert "task_token" not in public and "event" not in public


def test_a_message_that_is_not_a_case_is_refused() -> None:
    with pytest.raises(ReviewError, match="not a review case"):
        parse_message({"Body": "{}", "ReceiptHandle": "r", "MessageId": "m"}, CLASSES, "q", NOW,
                      dlq=False)
