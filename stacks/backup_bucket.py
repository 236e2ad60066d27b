"""The cold site's backup bucket, when the app is asked to create it (`cold_site.create_backup_bucket`):
encrypted by default (SSE-KMS with `wal_archive.kms_key_arn`, else SSE-S3), versioned, private,
TLS only, with a lifecycle that cleans up after barman and never deletes a current backup.

Why the lifecycle keeps current objects: barman's own retention (`retention_days`, a recovery
window) deletes base backups and WAL and always keeps the newest backup. An expiry rule on current
objects would also delete the only backup once the backup timer had stopped for that long, which is
exactly when the cold site needs it. So the rules only abort uploads left half-done and expire
overwritten or deleted versions after `retention_days` (versioning keeps a planted or deleted
backup recoverable for that long).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from quorum_dr.config import ColdSite
from stacks.nag import acknowledge

DUMP_RETENTION_DAYS = 14  # the signed pg_dump path has no retention setting of its own
ABORT_UPLOADS_AFTER_DAYS = 1


class BackupBucket(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, cold: ColdSite) -> None:
        super().__init__(scope, construct_id)
        archive = cold.wal_archive
        key = (
            kms.Key.from_key_arn(self, "Key", archive.kms_key_arn)
            if archive is not None and archive.kms_key_arn
            else None
        )
        retention = archive.retention_days if archive is not None else DUMP_RETENTION_DAYS
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=cold.backup_bucket,
            encryption=s3.BucketEncryption.KMS if key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=key,
            bucket_key_enabled=key is not None,  # one data key per bucket, not a KMS call per object
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,  # a stack deletion never deletes backups
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(ABORT_UPLOADS_AFTER_DAYS),
                ),
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=Duration.days(retention),
                    expired_object_delete_marker=True,
                ),
            ],
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "Server access logs would need a second bucket per cold region; reads and writes of the "
            "backups are auditable with CloudTrail data events on this bucket, which the account owns.",
        )
