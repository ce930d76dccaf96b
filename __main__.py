"""Pulumi program: `pulumi up` deploys the stack described in the README (deploying)."""

import pulumi

from components.settings import NAMESPACE, Settings
from components.stack import build_artifacts, deploy, region_from_config

settings = Settings.from_mapping(pulumi.Config(NAMESPACE).get)
outputs = deploy(
    settings,
    stack=pulumi.get_stack(),
    region=region_from_config(),
    artifacts=build_artifacts(settings),
)
for name, value in outputs.items():
    if not name.startswith("_"):
        pulumi.export(name, value)
