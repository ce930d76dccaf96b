"""Lifecycle invariant: what `pulumi destroy` keeps (retainData) stays readable and guarded, and
the next `pulumi up` can take it back.

`retain_on_delete` only removes a resource from the state on delete (Pulumi docs, resource
option "retainOnDelete": https://www.pulumi.com/docs/iac/concepts/options/retainondelete/), so
each resource a retained one needs must be retained itself: a KMS key scheduled for deletion is
deleted when its waiting period ends and "data encrypted under the KMS key is unrecoverable"
(KMS developer guide, "Deleting AWS KMS keys":
https://docs.aws.amazon.com/kms/latest/developerguide/deleting-keys.html); a deleted bucket
policy, public access block, encryption or lifecycle configuration leaves the kept bucket
unguarded.
"""

from __future__ import annotations

import json

import pytest
from pulumi_support import ACCOUNT, REGION

from components.settings import SettingsError

KEY_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
KEPT_BUCKET = "scones-prod-data-20261202kept"


def _bucket_children(run) -> list:
    """Every resource configured on (or stored in) the stack's bucket."""
    bucket = run.one("aws:s3/bucket:Bucket").outputs["bucket"]
    return [r for r in run.resources if r.inputs.get("bucket") == bucket]


def test_prod_retains_the_bucket_with_everything_it_needs(prod) -> None:
    """The bucket, every guard and object on it, and the key that encrypts them are retained."""
    bucket = prod.one("aws:s3/bucket:Bucket")
    key = prod.one("aws:kms/key:Key")
    assert bucket.options.retain_on_delete
    assert key.options.retain_on_delete, "the data's key would be deleted 30 days after destroy"
    children = _bucket_children(prod)
    kinds = {r.type for r in children}
    assert {
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketNotification:BucketNotification",
        "aws:s3/bucketObjectv2:BucketObjectv2",
    } <= kinds
    dropped = sorted(r.name for r in children if not r.options.retain_on_delete)
    assert dropped == [], f"deleted on destroy while their bucket is kept: {dropped}"
    # The objects are encrypted with the retained key.
    key_arn = key.outputs["arn"]
    objects = [r for r in children if r.type == "aws:s3/bucketObjectv2:BucketObjectv2"]
    assert objects and all(o.inputs["kmsKeyId"] == key_arn for o in objects)


def test_dev_retains_nothing(dev) -> None:
    """Dev is destroyed whole: nothing outlives the stack (forceDestroy empties the bucket)."""
    assert [r.name for r in dev.resources if r.options.retain_on_delete] == []
    assert dev.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is True


def test_kms_alias_is_not_retained(prod) -> None:
    """An alias is a name, not data: kept, it would block the next stack's CreateAlias."""
    assert not prod.one("aws:kms/alias:Alias").options.retain_on_delete


def test_adopt_imports_the_kept_bucket_and_key(run_stack) -> None:
    """scones:adopt takes back a destroyed prod's bucket and key by import (Pulumi docs,
    "import" resource option: https://www.pulumi.com/docs/iac/concepts/options/import/)."""
    run = run_stack(
        "prod",
        {
            "scones:alarmEmail": "routing-ops@example.com",
            "scones:adopt": json.dumps(
                {"bucket": KEPT_BUCKET,
                 "kmsKeyId": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"}
            ),
        },
    )
    bucket = run.one("aws:s3/bucket:Bucket")
    key = run.one("aws:kms/key:Key")
    assert bucket.options.import_id == KEPT_BUCKET
    assert bucket.inputs["bucket"] == KEPT_BUCKET and "bucketPrefix" not in bucket.inputs
    assert key.options.import_id == KEY_ID  # the key ID, as aws:kms/key:Key imports it
    # Still retained after adoption, and everything points at the adopted pair.
    assert bucket.options.retain_on_delete and key.options.retain_on_delete
    assert run.outputs["bucket"] == KEPT_BUCKET
    key_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
    sse = run.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert sse["kmsMasterKeyId"] == key_arn
    assert run.outputs["modelDataUrl"].startswith(f"s3://{KEPT_BUCKET}/models/")
    # Nothing else is imported: the guards are created over the kept ones (Put* APIs).
    assert {r.name for r in run.resources if r.options.import_id} == {"data-bucket", "key-key"}


@pytest.mark.parametrize(
    ("adopt", "retain", "key"),
    [
        ({"bucket": KEPT_BUCKET}, "true", "scones:adopt"),
        ({"bucket": "Not_A_Bucket", "kmsKeyId": KEY_ID}, "true", "scones:adopt.bucket"),
        ({"bucket": KEPT_BUCKET, "kmsKeyId": "alias/scones-prod"}, "true",
         "scones:adopt.kmsKeyId"),
        ({"bucket": KEPT_BUCKET, "kmsKeyId": KEY_ID}, "false", "scones:adopt"),
    ],
)
def test_adopt_settings_are_validated(adopt: dict, retain: str, key: str) -> None:
    from components.settings import Settings

    config = {"adopt": json.dumps(adopt), "retainData": retain}
    with pytest.raises(SettingsError) as raised:
        Settings.from_mapping(config.get)
    assert raised.value.key == key
