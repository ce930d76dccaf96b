"""StackContext: what every component after the key and the bucket shares.

components.stack builds one, once the EncryptionKey and DataStaging exist, and passes it in
each component's Args as ``context``; a component's own Args hold only what is its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class StackContext:
    stack: str
    region: str
    account_id: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]  # the stack's key (bucket, topics, queues, parameters)
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    log_retention_days: int
    powertools_layer_arn: str  # resolved for the region (components.inference_functions)
    partition: str = "aws"
