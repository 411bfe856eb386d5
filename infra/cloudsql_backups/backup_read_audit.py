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

from .naming import standard_labels, type_token

STORAGE_SERVICE = "storage.googleapis.com"
AUDITED_LOG_TYPES = ("DATA_READ", "DATA_WRITE")
# Reading an object's data or metadata; listing only names objects.
OBJECT_READ_METHOD = "storage.objects.get"
RATE_LIMIT = "3600s"
AUTO_CLOSE = "86400s"


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
        title = f"[{args.environment}] Backup read by an unexpected principal"
        self.alert = gcp.monitoring.AlertPolicy(
            f"{name}-unexpected-read",
            gcp.monitoring.AlertPolicyArgs(
                project=args.project,
                display_name=title,
                combiner="OR",
                enabled=True,
                severity="WARNING",
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
                notification_channels=list(args.notification_channels),
                # Log-match conditions require a notification rate limit.
                alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(
                    notification_rate_limit=gcp.monitoring.AlertPolicyAlertStrategyNotificationRateLimitArgs(
                        period=RATE_LIMIT
                    ),
                    auto_close=AUTO_CLOSE,
                ),
                documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                    subject=title,
                    mime_type="text/markdown",
                    content=(
                        "Someone other than the export job and the restore drill read a backup "
                        "object. Expected during a restore (the instance's service account) or a "
                        "break-glass investigation; otherwise treat it as a possible leak.\n\n"
                        "Runbook: DR_RUNBOOK.md, section 'Who read a backup'."
                    ),
                ),
                user_labels=standard_labels(args.environment, "audit", alert="unexpected-read"),
            ),
            opts=child,
        )
        self.register_outputs({"alert": self.alert.name})
