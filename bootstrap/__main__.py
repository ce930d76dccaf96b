"""`pulumi up` in bootstrap/: the one-time CI/CD setup (docs/ci.md)."""

import sys
from pathlib import Path

# Pulumi runs this file with bootstrap/ as the working directory; the package imports below
# (and naming.py, which reads ../Pulumi.yaml) need the repository root on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from bootstrap.program import build
from bootstrap.settings import NAMESPACE, BootstrapSettings

config = pulumi.Config(NAMESPACE)
for name, value in build(BootstrapSettings.from_config(config.get_object)).items():
    pulumi.export(name, value)
