"""Who read a backup: Data Access audit logs for Cloud Storage, and an alert on unexpected readers.

Admin Activity audit logs are always on, but reads and writes of object data are Data Access logs,
which Cloud Storage writes only when the project's audit config enables them
(https://cloud.google.com/storage/docs/audit-logging). With ``DATA_READ`` every download of a dump
is a log entry naming the principal; with ``DATA_WRITE`` every overwrite or deletion is too. Google
recommends these logs over bucket usage logs for "who accessed what"
(https://cloud.google.com/storage/docs/access-logs#should-you-use).

The alert pages when anyone but the expected readers (the export job, which checks that its dump
landed, and the restore-drill identities named in config) reads an object of the backup bucket.
``DR_RUNBOOK.md`` ("Who read a backup") has the same query for Logs Explorer and ``gcloud``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .alert_policy import AlertSpec, alert_policy, log_match_strategy
from .naming import type_token

STORAGE_SERVICE = "storage.googleapis.com"
AUDITED_LOG_TYPES = ("DATA_READ", "DATA_WRITE")
# Reading an object's data or metadata; listing only names objects.
OBJECT_READ_METHOD = "storage.objects.get"


@dataclass(frozen=True)
class BackupReadAuditArgs:
    project: str
    environment: str
    bucket_name: pulumi.Input[str]
    expected_readers: Sequence[pulumi.Input[str]]
    notification_channels: Sequence[pulumi.Input[str]]


def unexpected_backup_read_filter(
    project: str, bucket_name: str, expected_readers: Sequence[str]
) -> str:
    """Logging query: object reads in the backup bucket by any principal not listed."""
    clauses = [
        f'logName="projects/{project}/logs/cloudaudit.googleapis.com%2Fdata_access"',
        f'protoPayload.serviceName="{STORAGE_SERVICE}"',
        'resource.type="gcs_bucket"',
        f'resource.labels.bucket_name="{bucket_name}"',
        f'protoPayload.methodName="{OBJECT_READ_METHOD}"',
    ]
    clauses += [
        f'protoPayload.authenticationInfo.principalEmail!="{reader}"'
        for reader in sorted(set(expected_readers))
    ]
    return " AND ".join(clauses)


class BackupReadAudit(pulumi.ComponentResource):
    """The project's Cloud Storage Data Access audit config and the unexpected-reader alert."""

    audit_config: gcp.projects.IAMAuditConfig
    alert: gcp.monitoring.AlertPolicy

    def __init__(
        self, name: str, args: BackupReadAuditArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("audit", "BackupReadAudit"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Authoritative for storage.googleapis.com in this project: exemptions set elsewhere for
        # this service are replaced, so nobody is silently exempted from the trail.
        self.audit_config = gcp.projects.IAMAuditConfig(
            f"{name}-storage-data-access",
            gcp.projects.IAMAuditConfigArgs(
                project=args.project,
                service=STORAGE_SERVICE,
                audit_log_configs=[
                    gcp.projects.IAMAuditConfigAuditLogConfigArgs(log_type=log_type)
                    for log_type in AUDITED_LOG_TYPES
                ],
            ),
            opts=child,
        )
        log_filter = pulumi.Output.all(args.bucket_name, *args.expected_readers).apply(
            lambda values: unexpected_backup_read_filter(args.project, values[0], values[1:])
        )
        spec = AlertSpec(
            project=args.project,
            environment=args.environment,
            key="unexpected-read",
            title=f"[{args.environment}] Backup read by an unexpected principal",
            conditions=[
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name="Object read in the backup bucket",
                    condition_matched_log=gcp.monitoring.AlertPolicyConditionConditionMatchedLogArgs(
                        filter=log_filter,
                        label_extractors={
                            "principal": "EXTRACT(protoPayload.authenticationInfo.principalEmail)",
                            "object": "EXTRACT(protoPayload.resourceName)",
                        },
                    ),
                )
            ],
            channels=args.notification_channels,
            documentation=(
                "Someone other than the export job and the restore drill read a backup "
                "object. Expected during a restore (the instance's service account) or a "
                "break-glass investigation; otherwise treat it as a possible leak.\n\n"
                "Runbook: DR_RUNBOOK.md, section 'Who read a backup'."
            ),
            strategy=log_match_strategy(),
            severity="WARNING",
            component="audit",
        )
        self.alert = alert_policy(f"{name}-unexpected-read", spec, child)
        self.register_outputs({"alert": self.alert.name})
