"""Defaults every part shares: components, the functions, local mode and the tests import them.

Task-free (no class is named here: the task comes from config, see ``default_task.py`` at the
repository root). docs/design.md ("Defaults") is the contract.
"""

from __future__ import annotations

# Below it the filter step fails with LowConfidence (human review); scones:confidenceThreshold.
DEFAULT_THRESHOLD = 0.93
# The CloudWatch namespace of every custom metric (EMF from the functions and the detector).
METRICS_NAMESPACE = "SconesUnlimited/Inference"
# The Lambda runtime of every function and the drift layer's compatible runtime.
RUNTIME = "python3.12"
# The four functions of the per-image workflow, in workflow order; each is
# lambdas.<name>.handler.lambda_handler in the one deployment zip.
WORKFLOW_FUNCTIONS: tuple[str, ...] = (
    "serialize_image", "classify_image", "filter_inferences", "route_driver",
)
