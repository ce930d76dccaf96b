"""The default image task: which CIFAR-100 classes the model tells apart and where each goes.

The one place that names the default task (docs/design.md, "Defaults"). ``components/`` and
``lambdas/`` never name a class: the stack reads ``scones:classes`` / ``scones:routes``
(defaulting to these values, components/settings.py), local mode reads ``--classes`` /
``--routes`` (defaulting to these), and both hand the task to the functions through their
environment (``CLASSES``, ``ROUTES``). Another task is config only (``Pulumi.roadway.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DEFAULT_CLASSES: tuple[str, ...] = ("bicycle", "motorcycle")
# Bicycles get nearby orders, motorcycles distant ones (the seed's business rule).
DEFAULT_ROUTES: Mapping[str, str] = MappingProxyType({"bicycle": "nearby", "motorcycle": "distant"})
