"""The stack bucket's key prefixes (one bucket; IAM policies grant per prefix).

A module of its own, with no imports, so that local mode and the policy builder can use the
layout without importing the Pulumi SDK; components/data_staging.py documents each prefix.
"""

DATA_PREFIX = "data"
CODE_PREFIX = "code"
MODELS_PREFIX = "models"
INTAKE_PREFIX = "intake"
CAPTURE_PREFIX = "capture"
LABELLED_PREFIX = "labelled"  # labelled/<class>/<case id>-<sha256 prefix>.<ext>: reviewers' answers
# labelled/ snapshots a retrain trained on: one SageMaker manifest file per snapshot digest.
LABELLED_MANIFESTS_PREFIX = "manifests/labelled"
