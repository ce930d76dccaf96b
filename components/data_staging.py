"""DataStaging: the stack's bucket (private, SSE-KMS, versioned, TLS only) and the staged data set.

Prefixes (one bucket; IAM policies grant per prefix):
  data/<data hash>/{train,test}/dataset.npz, manifest.json   training channels (read by the job)
  code/   source bundles          models/   training output (model.tar.gz per job)
  intake/ images that start the workflow (EventBridge)      capture/  Data Capture records
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.bucket_layout import (  # noqa: F401 (re-exported: the layout's names)
    CAPTURE_PREFIX,
    CODE_PREFIX,
    DATA_PREFIX,
    INTAKE_PREFIX,
    MODELS_PREFIX,
)
from components.iam import document

# Only the fast form of each split travels to S3: train.py reads dataset.npz from its channel,
# and one object per PNG would make thousands of resources for no reader.
STAGED_FILES = ("manifest.json", "train/dataset.npz", "test/dataset.npz")


def staged_data_hash(staged_dir: Path) -> str:
    """SHA-256 over the uploaded files' bytes: the data part of the training job's identity."""
    digest = hashlib.sha256()
    for rel in STAGED_FILES:
        digest.update(rel.encode() + b"\0" + hashlib.sha256((staged_dir / rel).read_bytes())
                      .hexdigest().encode() + b"\n")
    return digest.hexdigest()


@dataclass
class DataStagingArgs:
    staged_dir: Path
    kms_key_arn: pulumi.Input[str]
    retain_data: bool
    stack: str = "dev"
    capture_expiration_days: int = 90
    noncurrent_version_days: int = 30
    # A bucket kept by an earlier destroy (retainData): imported instead of created.
    adopt_bucket: str | None = None


class DataStaging(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    data_hash: str
    train_uri: pulumi.Output[str]
    test_uri: pulumi.Output[str]

    def __init__(
        self, name: str, args: DataStagingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scones:data:DataStaging", name, None, opts)
        manifest = json.loads((args.staged_dir / "manifest.json").read_text())
        self.classes: list[str] = list(manifest["classes"])
        self.data_hash = staged_data_hash(args.staged_dir)
        # retainData: prod keeps the bucket on destroy (Pulumi forgets it), and with it
        # everything that keeps it private and readable: its guards and staged objects here,
        # the KMS key in EncryptionKey. A retained resource is only dropped from the state
        # (Pulumi docs, "retainOnDelete"). Dev empties and deletes it.
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=args.retain_data)
        self.bucket = self._bucket(name, args, retained)
        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        # Each guard is a Put* API call on create, which creates or replaces the configuration
        # (S3 API reference, e.g. PutPublicAccessBlock: "Creates or modifies the
        # PublicAccessBlock configuration"; PutBucketPolicy; PutBucketEncryption): on an
        # adopted bucket they are created again over the retained ones, so only the bucket and
        # the key need importing.
        self._private_access(name, retained)
        self._encryption_and_versions(name, args, retained)
        # Object-created events go to EventBridge, where the workflow's rule filters on intake/.
        self.notification = aws.s3.BucketNotification(
            f"{name}-eventbridge", bucket=self.bucket.id, eventbridge=True, opts=retained
        )
        prefix = f"{DATA_PREFIX}/{self.data_hash[:16]}"
        self.objects = self._staged_objects(name, args, prefix, retained)
        self.data_prefix = prefix
        self.train_uri = pulumi.Output.concat("s3://", self.bucket_name, f"/{prefix}/train/")
        self.test_uri = pulumi.Output.concat("s3://", self.bucket_name, f"/{prefix}/test/")
        self.register_outputs(
            {
                "bucket": self.bucket_name,
                "bucketArn": self.bucket_arn,
                "dataHash": self.data_hash,
                "trainUri": self.train_uri,
                "testUri": self.test_uri,
            }
        )

    def _bucket(
        self, name: str, args: DataStagingArgs, retained: pulumi.ResourceOptions
    ) -> aws.s3.Bucket:
        """The stack's bucket: a new one, or the kept one named by `adopt_bucket`, imported."""
        if args.adopt_bucket:
            return aws.s3.Bucket(
                f"{name}-bucket",
                bucket=args.adopt_bucket,
                force_destroy=not args.retain_data,
                opts=pulumi.ResourceOptions.merge(
                    retained,
                    pulumi.ResourceOptions(
                        import_=args.adopt_bucket,
                        # force_destroy is the provider's own setting, not the bucket's state.
                        ignore_changes=["forceDestroy"],
                    ),
                ),
            )
        return aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=f"scones-{args.stack}-data-",
            force_destroy=not args.retain_data,
            opts=retained,
        )

    def _private_access(self, name: str, retained: pulumi.ResourceOptions) -> None:
        """Owner-enforced objects, no public access, and no request without TLS."""
        bucket_id = self.bucket.id
        self.ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket_id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=retained,
        )
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=retained,
        )
        self.policy = aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket_id,
            policy=document(
                [
                    {
                        # A Deny: the wildcards widen what is refused, never what is allowed.
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [self.bucket_arn, pulumi.Output.concat(self.bucket_arn, "/*")],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ]
            ),
            # The public access block must exist first or S3 may judge the policy "public".
            opts=pulumi.ResourceOptions.merge(
                retained, pulumi.ResourceOptions(depends_on=[self.public_access_block])
            ),
        )

    def _encryption_and_versions(
        self, name: str, args: DataStagingArgs, retained: pulumi.ResourceOptions
    ) -> None:
        """SSE-KMS with the stack's key, versioning, and the expiry of captures and old versions."""
        bucket_id = self.bucket.id
        self.encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": args.kms_key_arn,
                    },
                    # S3 Bucket Keys cut KMS requests (and cost) for many small capture files.
                    "bucket_key_enabled": True,
                }
            ],
            opts=retained,
        )
        self.versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket_id,
            versioning_configuration={"status": "Enabled"},
            opts=retained,
        )
        self.lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_id,
            rules=[
                {
                    "id": "expire-captured-traffic",
                    "status": "Enabled",
                    "filter": {"prefix": f"{CAPTURE_PREFIX}/"},
                    "expiration": {"days": args.capture_expiration_days},
                },
                {
                    "id": "expire-old-versions",
                    "status": "Enabled",
                    "filter": {},  # empty filter: every object
                    "noncurrent_version_expiration": {
                        "noncurrent_days": args.noncurrent_version_days
                    },
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                },
            ],
            opts=pulumi.ResourceOptions.merge(
                retained, pulumi.ResourceOptions(depends_on=[self.versioning])
            ),
        )

    def _staged_objects(
        self, name: str, args: DataStagingArgs, prefix: str, retained: pulumi.ResourceOptions
    ) -> list[aws.s3.BucketObjectv2]:
        """The staged data set's files under `prefix`, encrypted, after the bucket's encryption."""
        return [
            aws.s3.BucketObjectv2(
                f"{name}-{rel.replace('/', '-').replace('.', '-')}",
                bucket=self.bucket.id,
                key=f"{prefix}/{rel}",
                source=pulumi.FileAsset(str(args.staged_dir / rel)),
                server_side_encryption="aws:kms",
                kms_key_id=args.kms_key_arn,
                opts=pulumi.ResourceOptions.merge(
                    retained, pulumi.ResourceOptions(depends_on=[self.encryption])
                ),
            )
            for rel in STAGED_FILES
        ]
