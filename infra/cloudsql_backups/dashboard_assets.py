"""Daily copy of the app's dashboard-assets bucket (``GCS_DASHBOARD_BUCKET``) into the backup bucket
under ``dashboard-assets/``, by Storage Transfer Service, so the same versioning and lifecycle apply.

Storage Transfer Service is managed and incremental (it copies only new or changed objects) and needs
no code of ours; its Google-managed service agent gets read access on the source and write access on
the backup bucket, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .naming import type_token

SINK_PREFIX = "dashboard-assets/"


@dataclass(frozen=True)
class DashboardAssetsBackupArgs:
    project: str
    environment: str
    source_bucket: str
    backup_bucket: pulumi.Input[str]
    start_hour_utc: int = 4


class DashboardAssetsBackup(pulumi.ComponentResource):
    transfer_job: gcp.storage.TransferJob

    def __init__(
        self, name: str, args: DashboardAssetsBackupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("storage", "DashboardAssetsBackup"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        agent = gcp.storage.get_transfer_project_service_account_output(project=args.project)
        agent_member = agent.email.apply(lambda email: f"serviceAccount:{email}")
        grants = [
            (args.source_bucket, "roles/storage.objectViewer", "reads-source"),
            (args.source_bucket, "roles/storage.legacyBucketReader", "lists-source"),
            (args.backup_bucket, "roles/storage.objectCreator", "writes-backup"),
            (args.backup_bucket, "roles/storage.legacyBucketReader", "lists-backup"),
        ]
        bindings = [
            gcp.storage.BucketIAMMember(
                f"{name}-agent-{suffix}",
                gcp.storage.BucketIAMMemberArgs(bucket=bucket, role=role, member=agent_member),
                opts=child,
            )
            for bucket, role, suffix in grants
        ]
        self.transfer_job = gcp.storage.TransferJob(
            f"{name}-transfer",
            gcp.storage.TransferJobArgs(
                project=args.project,
                description=f"Daily backup of gs://{args.source_bucket} ({args.environment})",
                transfer_spec=gcp.storage.TransferJobTransferSpecArgs(
                    gcs_data_source=gcp.storage.TransferJobTransferSpecGcsDataSourceArgs(
                        bucket_name=args.source_bucket
                    ),
                    gcs_data_sink=gcp.storage.TransferJobTransferSpecGcsDataSinkArgs(
                        bucket_name=args.backup_bucket, path=SINK_PREFIX
                    ),
                    transfer_options=gcp.storage.TransferJobTransferSpecTransferOptionsArgs(
                        delete_objects_from_source_after_transfer=False,
                        delete_objects_unique_in_sink=False,
                        overwrite_when="DIFFERENT",
                    ),
                ),
                schedule=gcp.storage.TransferJobScheduleArgs(
                    schedule_start_date=gcp.storage.TransferJobScheduleScheduleStartDateArgs(
                        year=2026, month=1, day=1
                    ),
                    start_time_of_day=gcp.storage.TransferJobScheduleStartTimeOfDayArgs(
                        hours=args.start_hour_utc, minutes=0, seconds=0, nanos=0
                    ),
                    repeat_interval="86400s",
                ),
                status="ENABLED",
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=bindings),
        )
        self.register_outputs({"transfer_job": self.transfer_job.name})
