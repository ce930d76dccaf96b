"""SageMaker PyTorch container images, looked up offline in sagemaker-core's image URI tables."""

from __future__ import annotations

import re
from typing import Any

from components.iam import statement

# The newest version with both a training and an inference image (sagemaker-core 2.27 tables);
# training/ code uses only torch APIs that this version has.
PYTORCH_VERSION = "2.6.0"
PY_VERSION = "py312"
_ECR = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:]+):(.+)$")


def pytorch_image_uri(region: str, scope: str, instance_type: str) -> str:
    """The PyTorch Deep Learning Container for `scope` ("training" or "inference")."""
    # Imported here: sagemaker-core takes seconds to import and only this lookup needs it.
    from sagemaker.core import image_uris

    return image_uris.retrieve(
        "pytorch",
        region,
        version=PYTORCH_VERSION,
        py_version=PY_VERSION,
        instance_type=instance_type,
        image_scope=scope,
    )


def ecr_repository_arn(image_uri: str, partition: str = "aws") -> str:
    """The ECR repository ARN of an image URI (the role's pull permission is scoped to it)."""
    match = _ECR.match(image_uri)
    if not match:
        raise ValueError(f"not an ECR image URI: {image_uri!r}")
    account, region, repository, _tag = match.groups()
    return f"arn:{partition}:ecr:{region}:{account}:repository/{repository}"


def image_pull_statements(image_uri: str, partition: str, *, sid: str) -> list[dict[str, Any]]:
    """Pull this image's repository (`sid` names the image), and log in to ECR."""
    return [
        statement(
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
             "ecr:GetDownloadUrlForLayer"],
            [ecr_repository_arn(image_uri, partition)],
            sid=sid,
        ),
        statement(["ecr:GetAuthorizationToken"], ["*"], sid="EcrLoginHasNoResourceLevel"),
    ]
