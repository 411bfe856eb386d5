"""Daily copy of the app's dashboard-assets bucket (``GCS_DASHBOARD_BUCKET``) into the backup bucket
under ``dashboard-assets/``, by Storage Transfer Service, so the same versioning and lifecycle apply.

Storage Transfer Service is managed and incremental (it copies only new or changed objects) and needs
no code of ours; its Google-managed service agent gets read access on the source and, on the backup
bucket, object create/read/delete limited by an IAM condition to ``dashboard-assets/`` (replacing a
changed asset is a delete plus a create), plus the bucket-level get/list the sink needs. The exports
under ``cloudsql/`` stay out of its reach. A failed run pages through ``BackupAlerts``
(``dashboard_transfer_job``), which watches the job by the fixed name ``transfer_job_name_for`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .custom_roles import CustomRole, declare_custom_role
from .naming import type_token

SINK_PREFIX = "dashboard-assets/"
# Storage Transfer's sink permissions: storage.buckets.get, storage.objects.list (bucket level), and
# storage.objects.create, .get (overwrite_when DIFFERENT compares), .delete (to overwrite)
# (https://cloud.google.com/storage-transfer/docs/sink-cloud-storage#required_permissions).
SINK_OBJECT_PERMISSIONS = (
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
)
SINK_ROLE = CustomRole(
    "dashboardAssetsSink",
    "Dashboard assets transfer sink",
    "Write, read and replace copied dashboard assets. Nothing else.",
    SINK_OBJECT_PERMISSIONS,
)


@dataclass(frozen=True)
class DashboardAssetsBackupArgs:
    project: str
    environment: str
    source_bucket: str
    backup_bucket: pulumi.Input[str]
    start_hour_utc: int = 4

    @staticmethod
    def transfer_job_name_for(environment: str) -> str:
        """A fixed job name (allowed: ``transferJobs/`` + [A-Za-z0-9-._~], not ``OPI``), so the alert
        can name the job before it exists."""
        return f"transferJobs/cloudsql-backups-dashboard-assets-{environment}"

    @staticmethod
    def sink_role_id(environment: str) -> str:
        return SINK_ROLE.role_id(environment)


def sink_prefix_condition(bucket: str) -> str:
    """IAM condition matching objects under ``dashboard-assets/`` only: Cloud Storage names an object
    ``projects/_/buckets/BUCKET/objects/NAME`` in conditions
    (https://cloud.google.com/storage/docs/access-control/iam#conditions)."""
    return f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{SINK_PREFIX}")'


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
            # storage.buckets.get and storage.objects.list: checked on the bucket, so no prefix condition.
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
        bindings.append(self._sink_object_grant(name, args, agent_member, child))
        self.transfer_job = gcp.storage.TransferJob(
            f"{name}-transfer",
            gcp.storage.TransferJobArgs(
                project=args.project,
                name=DashboardAssetsBackupArgs.transfer_job_name_for(args.environment),
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

    @staticmethod
    def _sink_object_grant(
        name: str,
        args: DashboardAssetsBackupArgs,
        agent_member: pulumi.Input[str],
        child: pulumi.ResourceOptions,
    ) -> gcp.storage.BucketIAMMember:
        role = declare_custom_role(
            f"{name}-sink-role", SINK_ROLE, args.project, args.environment, child
        )
        return gcp.storage.BucketIAMMember(
            f"{name}-agent-writes-backup",
            gcp.storage.BucketIAMMemberArgs(
                bucket=args.backup_bucket,
                role=role.name,
                member=agent_member,
                condition=gcp.storage.BucketIAMMemberConditionArgs(
                    title="only-dashboard-assets",
                    description=f"Objects under {SINK_PREFIX} only: never the exports.",
                    expression=pulumi.Output.from_input(args.backup_bucket).apply(
                        sink_prefix_condition
                    ),
                ),
            ),
            opts=child,
        )
