"""EncryptionKey: the stack's customer-managed KMS key (bucket, Data Capture, SNS topics)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import document


@dataclass
class EncryptionKeyArgs:
    stack: str
    account_id: pulumi.Input[str]
    partition: str = "aws"
    # retainData: the key outlives the stack, or the retained objects it encrypts could never
    # be decrypted again (a key scheduled for deletion is deleted when its window ends: KMS
    # developer guide, "Deleting AWS KMS keys").
    retain_on_delete: bool = False
    # The ID of a key kept by an earlier destroy: imported instead of created.
    adopt_key_id: str | None = None


class EncryptionKey(pulumi.ComponentResource):
    """One key with yearly rotation. Its key policy is AWS's default (the account administers the
    key through IAM) plus CloudWatch, which must encrypt when alarms publish to the KMS-encrypted
    alarm topic (an AWS-managed SNS key cannot grant that, so a customer key is required)."""

    key: aws.kms.Key
    arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: EncryptionKeyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:security:EncryptionKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        root = pulumi.Output.concat("arn:", args.partition, ":iam::", args.account_id, ":root")
        policy = document(
            [
                {
                    # AWS's default key policy: without it the key can become unmanageable.
                    # In a key policy "Resource": "*" means this key only.
                    "Sid": "AccountAdministersKeyThroughIam",
                    "Effect": "Allow",
                    "Principal": {"AWS": root},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchAlarmsPublishToEncryptedTopics",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}},
                },
            ]
        )
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"scones {args.stack}: data set, models, Data Capture, notifications",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy,
            opts=pulumi.ResourceOptions(
                parent=self,
                retain_on_delete=args.retain_on_delete,
                import_=args.adopt_key_id,
                # An import fails when the program's inputs differ from the resource's state
                # (Pulumi docs, "Importing resources"); KMS does not report the deletion window
                # of a key that is not pending deletion, so it is not compared.
                ignore_changes=["deletionWindowInDays"] if args.adopt_key_id else None,
            ),
        )
        # Not retained: an alias is only a name; the next stack creates it again (for the
        # adopted key or a new one), which would fail if the old alias still existed.
        self.alias = aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/scones-{args.stack}",
            target_key_id=self.key.key_id,
            opts=child,
        )
        self.arn = self.key.arn
        self.register_outputs({"arn": self.arn, "alias": self.alias.name})
