"""Pulumi program: `pulumi up` deploys the stack described in docs/deploying.md."""

import pulumi

from components.model_training import sagemaker_job_describer
from components.settings import NAMESPACE, Settings
from components.stack import build_artifacts, deploy, region_from_config

settings = Settings.from_mapping(pulumi.Config(NAMESPACE).get)
region = region_from_config()
outputs = deploy(
    settings,
    stack=pulumi.get_stack(),
    region=region,
    artifacts=build_artifacts(settings),
    describe_training_job=sagemaker_job_describer(region),
)
for name, value in outputs.items():
    if not name.startswith("_"):
        pulumi.export(name, value)
