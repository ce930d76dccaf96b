"""The main program's physical-name prefix, read from its Pulumi.yaml autonaming pattern.

The deploy role's policy is scoped to the names the main program gives its resources. Those
names come from ``pulumi:autonaming`` in the repository's Pulumi.yaml (Pulumi docs, "Resource
names", https://www.pulumi.com/docs/iac/concepts/resources/names/#autonaming-configuration) and
from the explicit names in components/, which all start with ``scones-<stack>``.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
MAIN_PROJECT_FILE = REPO_ROOT / "Pulumi.yaml"


class NamingPatternError(ValueError):
    """The main program's autonaming pattern does not give every name a fixed stack prefix."""


def main_project(path: Path = MAIN_PROJECT_FILE) -> tuple[str, str]:
    """(project name, autonaming pattern) of the main program."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    setting = (doc.get("config") or {}).get("pulumi:autonaming")
    if not isinstance(setting, dict) or not isinstance(setting.get("value"), dict):
        raise NamingPatternError(
            f"{path}: no `config: pulumi:autonaming: value: pattern:`; without it Pulumi names "
            "resources <logical name>-<random>, which no policy can scope to one stack"
        )
    pattern = setting["value"].get("pattern")
    if not isinstance(pattern, str):
        raise NamingPatternError(f"{path}: pulumi:autonaming has no pattern")
    return doc["name"], pattern


def name_prefix(stack: str, path: Path = MAIN_PROJECT_FILE) -> str:
    """The fixed start of every autonamed physical name on `stack`, e.g. ``scones-dev``.

    It is the part of the pattern before ``${name}``, with ``${project}`` and ``${stack}``
    filled in and the trailing separator dropped. A random or unknown expression there would
    make the prefix unpredictable, so it is an error.
    """
    project, pattern = main_project(path)
    head, sep, _ = pattern.partition("${name}")
    if not sep:
        raise NamingPatternError(f"autonaming pattern {pattern!r} does not contain ${{name}}")
    filled = head.replace("${project}", project).replace("${stack}", stack)
    if "${" in filled:
        raise NamingPatternError(
            f"autonaming pattern {pattern!r}: only ${{project}} and ${{stack}} may come before "
            "${name}, or the names are not predictable"
        )
    prefix = filled.rstrip("-_")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", prefix) or stack not in prefix:
        raise NamingPatternError(
            f"autonaming prefix {prefix!r} must be lower-case letters, digits and '-' and "
            f"contain the stack name {stack!r} (S3 and SageMaker names, one stack per prefix)"
        )
    return prefix
