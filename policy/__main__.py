"""Policy pack entry: `pulumi preview --policy-pack policy` (run from the repository root)."""

import sys
from pathlib import Path

from pulumi_policy import PolicyPack

# The pack runs with policy/ as its working directory; rules.py is importable from here.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rules import POLICIES

PolicyPack(name="scones-security", policies=POLICIES)
