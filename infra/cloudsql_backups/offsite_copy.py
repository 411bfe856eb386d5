"""An off-project copy of the exports: a bucket in another project, filled daily by Storage Transfer.

The copy must survive the loss (or the compromise) of the stack's project, so nothing in that project
can delete from it:
- the transfer job runs *in the other project* and pulls: its service agent reads the backup bucket
  and may only create objects in the copy (never overwrite: ``overwrite_when = NEVER``);
- the copy is locked by a bucket retention policy of the same ``retention_days`` the exports promise
  (locked in prod: it can then never be shortened or removed, and the bucket cannot be deleted while it
  holds a retained object; https://cloud.google.com/storage/docs/bucket-lock). A retention policy
  cannot be combined with Object Versioning, so this bucket is not versioned: nothing in it can be
  overwritten or deleted before its retention ends anyway;
- its lifecycle deletes an object at the same age as the backup bucket's, once the retention allows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .naming import standard_labels, type_token

SECONDS_PER_DAY = 86_400
TRANSFER_API = "storagetransfer.googleapis.com"
# After the export (03:30 UTC in both stacks) and its verification.
TRANSFER_START_HOUR_UTC = 9


@dataclass(frozen=True)
class OffsiteCopyArgs:
    project: str
    offsite_project: str
    environment: str
    source_bucket: pulumi.Input[str]
    name: str
    location: str
    storage_class: str
    retention_days: int
    locked: bool

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


class OffsiteCopy(pulumi.ComponentResource):
    """The retention-locked copy bucket in another project and the daily transfer into it."""

    bucket: gcp.storage.Bucket
    transfer_job: gcp.storage.TransferJob

    def __init__(
        self, name: str, args: OffsiteCopyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("storage", "OffsiteCopy"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        api = gcp.projects.Service(
            f"{name}-transfer-api",
            gcp.projects.ServiceArgs(
                project=args.offsite_project, service=TRANSFER_API, disable_on_destroy=False
            ),
            opts=child,
        )
        self.bucket = self._bucket(name, args)
        agent = gcp.storage.get_transfer_project_service_account_output(
            project=args.offsite_project
        )
        member = agent.email.apply(lambda email: f"serviceAccount:{email}")
        grants = [
            (args.source_bucket, "roles/storage.objectViewer", "reads-exports"),
            (args.source_bucket, "roles/storage.legacyBucketReader", "lists-exports"),
            (self.bucket.name, "roles/storage.objectCreator", "writes-copy"),
            (self.bucket.name, "roles/storage.legacyBucketReader", "lists-copy"),
        ]
        bindings = [
            gcp.storage.BucketIAMMember(
                f"{name}-agent-{suffix}",
                gcp.storage.BucketIAMMemberArgs(bucket=bucket, role=role, member=member),
                opts=child,
            )
            for bucket, role, suffix in grants
        ]
        self.transfer_job = self._transfer_job(name, args, [api, *bindings])
        self.register_outputs({"bucket": self.bucket.name, "transfer_job": self.transfer_job.name})

    def _bucket(self, name: str, args: OffsiteCopyArgs) -> gcp.storage.Bucket:
        return gcp.storage.Bucket(
            f"{name}-bucket",
            gcp.storage.BucketArgs(
                project=args.offsite_project,
                name=args.name,
                location=args.location,
                storage_class=args.storage_class,
                uniform_bucket_level_access=True,
                public_access_prevention="enforced",
                force_destroy=False,
                retention_policy=gcp.storage.BucketRetentionPolicyArgs(
                    retention_period=str(args.retention_days * SECONDS_PER_DAY),
                    is_locked=args.locked,
                ),
                lifecycle_rules=[
                    gcp.storage.BucketLifecycleRuleArgs(
                        action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                        condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                            age=args.retention_days, with_state="ANY"
                        ),
                    )
                ],
                labels=standard_labels(
                    args.environment, "offsite-copy", purpose="sql-backups-copy"
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.is_prod, retain_on_delete=args.is_prod
            ),
        )

    def _transfer_job(
        self, name: str, args: OffsiteCopyArgs, after: list[pulumi.Resource]
    ) -> gcp.storage.TransferJob:
        return gcp.storage.TransferJob(
            f"{name}-transfer",
            gcp.storage.TransferJobArgs(
                project=args.offsite_project,
                description=f"Daily off-project copy of the SQL exports ({args.environment})",
                transfer_spec=gcp.storage.TransferJobTransferSpecArgs(
                    gcs_data_source=gcp.storage.TransferJobTransferSpecGcsDataSourceArgs(
                        bucket_name=args.source_bucket
                    ),
                    gcs_data_sink=gcp.storage.TransferJobTransferSpecGcsDataSinkArgs(
                        bucket_name=self.bucket.name
                    ),
                    transfer_options=gcp.storage.TransferJobTransferSpecTransferOptionsArgs(
                        delete_objects_from_source_after_transfer=False,
                        delete_objects_unique_in_sink=False,
                        overwrite_when="NEVER",
                    ),
                ),
                schedule=gcp.storage.TransferJobScheduleArgs(
                    schedule_start_date=gcp.storage.TransferJobScheduleScheduleStartDateArgs(
                        year=2026, month=1, day=1
                    ),
                    start_time_of_day=gcp.storage.TransferJobScheduleStartTimeOfDayArgs(
                        hours=TRANSFER_START_HOUR_UTC, minutes=0, seconds=0, nanos=0
                    ),
                    repeat_interval="86400s",
                ),
                status="ENABLED",
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )
