"""Why a case goes to a person instead of being routed: the ``reason`` a review case carries.

One home for the names: the filter step raises with one of them, the review message and the
review page show it, and the per-reason review metric is dimensioned by it (docs/design.md).
"""

from __future__ import annotations

from enum import StrEnum


class ReviewReason(StrEnum):
    # The best class probability is below the confidence threshold.
    LOW_CONFIDENCE = "low_confidence"
    # The per-request gate judged the photo's content unlike the training photos (the
    # network's feature-space distance).
    OUT_OF_DISTRIBUTION = "out_of_distribution"
    # The per-request gate found the image itself outside the training photos' range: too dark
    # or bright, blurred, flat, noisy (training/gate.py's input-quality checks).
    INPUT_QUALITY = "input_quality"
    # A drift alarm switched the workflow into safe mode: every request goes to a person.
    SAFE_MODE = "safe_mode"
