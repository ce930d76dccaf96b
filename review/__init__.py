"""The human review loop: the review queue's settings and the logic that lists and answers cases
(used by ``python -m local review`` and its web page alike)."""
