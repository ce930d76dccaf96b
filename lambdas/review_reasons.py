"""Why a case goes to a person instead of being routed: the ``reason`` a review case carries.

One home for the names: the filter step raises with one of them, the review message and the
review page show it, and the per-reason review metric is dimensioned by it (docs/design.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class ReviewReason(StrEnum):
    # The best class probability is below the confidence threshold.
    LOW_CONFIDENCE = "low_confidence"
    # The endpoint's safety gate judged the photo unlike the training photos: its input
    # quality (too dark, bright, blurred, flat, noisy) or its content (feature distance);
    # the detail names which (training/gate.py, docs/safety.md).
    OUT_OF_DISTRIBUTION = "out_of_distribution"
    # A drift alarm switched the workflow into safe mode: every request goes to a person.
    SAFE_MODE = "safe_mode"


# The named errors (lambdas/errors.py) that send a case to review instead of a Fail state, and
# the reason each case carries (the state machine writes it to the case's ``reason``).
REVIEW_ERRORS: Mapping[str, ReviewReason] = {
    "LowConfidence": ReviewReason.LOW_CONFIDENCE,
    "OutOfDistribution": ReviewReason.OUT_OF_DISTRIBUTION,
    "SafeMode": ReviewReason.SAFE_MODE,
}

# One count per case sent to review, dimensioned by its reason (namespace of the workflow).
REVIEW_METRIC = "SentToReview"
REASON_DIMENSION = "reason"

