"""The dedicated, versioned, never-public GCS bucket that holds logical SQL exports.

Data stays bounded: every object, live or noncurrent, is deleted ``object_retention_days`` after it was
written. Versioning keeps every overwritten or deleted object as a noncurrent version forever unless a
rule removes it, so noncurrent versions are also deleted ``noncurrent_version_retention_days`` after they
stop being live, whichever comes first. Soft delete then keeps deleted objects restorable for
``soft_delete_retention_days``.

(If ``noncurrent_version_retention_days`` is the larger, the age rule removes it first.)

Storage class: NEARLINE by default. An export lives exactly the retention period (30 days), which meets
Nearline's 30-day minimum storage duration, so it is never billed for early deletion, and storage costs
about half of STANDARD. A restore reads one dump once, so Nearline's per-GB retrieval fee is small next
to a month of STANDARD storage. COLDLINE (90 days) and ARCHIVE (365 days) would bill early deletion on
every object, which is why config rejects them for short retentions.

Object Retention Lock (``object_retention``): the export script gives each verified dump a retain-until
time of export time + ``object_retention_days`` (never later than the object's creation + the same days, the age at which
the lifecycle rule deletes it: the lifecycle never meets a still-retained export), so nobody can delete or
replace it earlier (https://cloud.google.com/storage/docs/object-lock). It is compatible with
versioning, unlike a bucket retention policy. Google enables it only when the bucket is created
(``gcloud storage buckets create --enable-per-object-retention``; ``buckets update`` has no such flag),
so this component never asks for it on an existing bucket: ``enableObjectRetention`` is in
``ignore_changes``, and an existing bucket moves to a new one by the path in README
"Retention-locked exports" instead of being replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .naming import standard_labels, type_token
from .restore_verification import grant_export_listing

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class BackupBucketArgs:
    """Where the bucket lives and how long it keeps exports."""

    project: str
    environment: str
    name: str
    location: str
    storage_class: str
    object_retention_days: int
    noncurrent_version_retention_days: int
    soft_delete_retention_days: int
    kms_key_name: str = ""
    # Service account of the instance that imports these exports elsewhere (restore drills).
    restore_import_service_account: str = ""
    object_retention: bool = False
    # The weekly restore verification's job (staging stack), which lists exports to find the newest.
    restore_verification_service_account: str = ""

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


class BackupBucket(pulumi.ComponentResource):
    """A GCS bucket for logical exports: versioned, lifecycle-bounded, private."""

    bucket: gcp.storage.Bucket
    name: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: BackupBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("storage", "BackupBucket"), name, None, opts)
        self.bucket = gcp.storage.Bucket(
            f"{name}-bucket",
            gcp.storage.BucketArgs(
                project=args.project,
                name=args.name,
                location=args.location,
                storage_class=args.storage_class,
                uniform_bucket_level_access=True,
                public_access_prevention="enforced",
                force_destroy=False,
                versioning=gcp.storage.BucketVersioningArgs(enabled=True),
                enable_object_retention=args.object_retention,
                lifecycle_rules=_lifecycle_rules(args),
                soft_delete_policy=gcp.storage.BucketSoftDeletePolicyArgs(
                    retention_duration_seconds=args.soft_delete_retention_days * SECONDS_PER_DAY
                ),
                encryption=(
                    gcp.storage.BucketEncryptionArgs(default_kms_key_name=args.kms_key_name)
                    if args.kms_key_name
                    else None
                ),
                labels=standard_labels(args.environment, "backup-bucket", purpose="sql-backups"),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.is_prod,
                retain_on_delete=args.is_prod,
                # Create-time only: a change must never replace a bucket full of exports.
                ignore_changes=["enableObjectRetention"],
            ),
        )
        if args.restore_import_service_account:
            _grant_export_reads(name, self, args)
        if args.restore_verification_service_account:
            grant_export_listing(
                f"{name}-verification-lister",
                self.bucket.name,
                f"serviceAccount:{args.restore_verification_service_account}",
                args.project,
                args.environment,
                pulumi.ResourceOptions(parent=self),
            )
        self.name = self.bucket.name
        self.url = self.bucket.url
        self.register_outputs({"name": self.name, "url": self.url})


EXPORT_PREFIX = "cloudsql/"


def _grant_export_reads(name: str, bucket: BackupBucket, args: BackupBucketArgs) -> None:
    """instances.import reads the dump as the *target* instance's service account: let it read
    export objects, nothing else (no listing: resource.name of a list call is the bucket).

    Google documents `storage.objects.list` for *parallel exports* only
    (https://cloud.google.com/sql/docs/postgres/import-export/import-export-parallel); whether a
    parallel import lists the folder is not documented: README "First deploy" says what to grant
    if it answers 403."""
    # Object resource names: projects/_/buckets/BUCKET/objects/OBJECT
    # (https://cloud.google.com/iam/docs/conditions-resource-attributes#resource-name).
    objects = f"projects/_/buckets/{args.name}/objects/{EXPORT_PREFIX}"
    gcp.storage.BucketIAMMember(
        f"{name}-restore-import-reader",
        gcp.storage.BucketIAMMemberArgs(
            bucket=bucket.bucket.name,
            role="roles/storage.objectViewer",
            member=f"serviceAccount:{args.restore_import_service_account}",
            condition=gcp.storage.BucketIAMMemberConditionArgs(
                title="restore-import-reads-exports",
                description="Restore drills import exports under cloudsql/ into another instance.",
                expression=f'resource.name.startsWith("{objects}")',
            ),
        ),
        opts=pulumi.ResourceOptions(parent=bucket),
    )


def _lifecycle_rules(args: BackupBucketArgs) -> list[gcp.storage.BucketLifecycleRuleArgs]:
    delete = gcp.storage.BucketLifecycleRuleActionArgs(type="Delete")
    return [
        # Age counts from creation for live and noncurrent versions alike ("ANY"): a live export turns
        # noncurrent at the retention age, and a noncurrent one past that age is deleted for good.
        gcp.storage.BucketLifecycleRuleArgs(
            action=delete,
            condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                age=args.object_retention_days, with_state="ANY"
            ),
        ),
        # A version that stopped being live early (deleted or overwritten by hand) is kept this long,
        # so a mistaken delete can be undone, then removed.
        gcp.storage.BucketLifecycleRuleArgs(
            action=delete,
            condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                days_since_noncurrent_time=args.noncurrent_version_retention_days,
                with_state="ARCHIVED",
            ),
        ),
    ]
