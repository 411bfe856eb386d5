"""Alert policies that page someone when backups fail or go stale, and the channels they notify.

1. Automated backup failed: Cloud SQL has no metric for this. It writes a System Event audit log entry
   per automated backup (``protoPayload.methodName="cloudsql.instances.automatedBackup"``) with the
   backup window outcome in ``protoPayload.metadata.windowStatus``; a log-match condition pages on the
   failed outcomes (any status containing ``FAIL``, or an entry logged at ERROR or worse).
2. Export failed: Cloud Run's ``job/completed_execution_count`` with ``result="failed"``: once per
   failed execution (the script exits non-zero when any database fails, after retries).
3. Newest export too old: metric-absence conditions cap at about a day and GCS has no object-age
   metric, so a PromQL condition counts the script's verified-success log lines (a log-based metric)
   over the staleness window, per database, and fires when a database has none. ``or vector(0)`` makes
   "no data at all" (job never ran, scheduler paused or deleted, permissions revoked) count as zero.
4. Instance down and disk nearly full (a full disk stops backups).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .export_metrics import promql_metric_name
from .naming import standard_labels, type_token

RUNBOOK = "DR_RUNBOOK.md"
BACKUP_LOG_RATE_LIMIT = "3600s"
ONE_DAY = "86400s"


@dataclass(frozen=True)
class BackupAlertsArgs:
    project: str
    environment: str
    instance_name: str
    job_name: str
    databases: tuple[str, ...]
    success_metric_name: str
    staleness_hours: int
    disk_utilization_percent: int
    notification_emails: tuple[str, ...]
    notification_channel_ids: tuple[str, ...]
    github_repository: str = ""

    @property
    def database_id(self) -> str:
        """How Cloud SQL's monitored resource names the instance: ``project:instance``."""
        return f"{self.project}:{self.instance_name}"


def automated_backup_failed_filter(project: str, database_id: str) -> str:
    return " AND ".join(
        (
            f'logName="projects/{project}/logs/cloudaudit.googleapis.com%2Fsystem_event"',
            'resource.type="cloudsql_database"',
            f'resource.labels.database_id="{database_id}"',
            'protoPayload.methodName="cloudsql.instances.automatedBackup"',
            '(protoPayload.metadata.windowStatus:"FAIL" OR severity>=ERROR)',
        )
    )


def export_failed_filter(job_name: str) -> str:
    return (
        'resource.type="cloud_run_job" AND metric.type="run.googleapis.com/job/completed_execution_count" '
        f'AND metric.labels.result="failed" AND resource.labels.job_name="{job_name}"'
    )


def export_stale_query(
    success_metric: str, job_name: str, databases: tuple[str, ...], hours: int
) -> str:
    """PromQL returning one series per database that had no verified export in the last ``hours``."""
    metric = promql_metric_name(success_metric)
    per_database = [
        f'(sum by (database) (increase({metric}{{monitored_resource="cloud_run_job",job_name="{job_name}",'
        f'database="{database}"}}[{hours}h])) or label_replace(vector(0), "database", "{database}", "", "")) < 1'
        for database in databases
    ]
    return " or ".join(per_database)


class BackupAlerts(pulumi.ComponentResource):
    """Notification channels and the backup alert policies."""

    channel_names: pulumi.Output[list[str]]
    policies: dict[str, gcp.monitoring.AlertPolicy]

    def __init__(
        self, name: str, args: BackupAlertsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("monitoring", "BackupAlerts"), name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        email_channels = [
            self._email_channel(index, email)
            for index, email in enumerate(args.notification_emails)
        ]
        # A list of inputs, not one combined Output: during a preview the names are unknown, but the
        # number of channels stays visible to the policy pack.
        self._channels: list[pulumi.Input[str]] = [
            *(channel.name for channel in email_channels),
            *args.notification_channel_ids,
        ]
        self.channel_names = pulumi.Output.all(*self._channels)
        self.policies = {
            "automated-backup-failed": self._automated_backup_failed(),
            "export-failed": self._export_failed(),
            "export-stale": self._export_stale(),
            "instance-down": self._instance_down(),
            "disk-nearly-full": self._disk_nearly_full(),
        }
        self.register_outputs({"channels": self.channel_names})

    @property
    def channels(self) -> list[pulumi.Input[str]]:
        """Every channel the backup alerts notify, one input each (other components' alerts reuse them)."""
        return list(self._channels)

    def _email_channel(self, index: int, email: str) -> gcp.monitoring.NotificationChannel:
        return gcp.monitoring.NotificationChannel(
            f"{self._name}-email-{index}",
            gcp.monitoring.NotificationChannelArgs(
                project=self._args.project,
                type="email",
                display_name=f"Backup alerts ({self._args.environment}): {email}",
                labels={"email_address": email},
                user_labels=standard_labels(self._args.environment, "alerting"),
            ),
            opts=self._child,
        )

    def _policy(
        self,
        key: str,
        title: str,
        condition: gcp.monitoring.AlertPolicyConditionArgs,
        what_happened: str,
        alert_strategy: gcp.monitoring.AlertPolicyAlertStrategyArgs,
        severity: str = "CRITICAL",
    ) -> gcp.monitoring.AlertPolicy:
        args = self._args
        return gcp.monitoring.AlertPolicy(
            f"{self._name}-{key}",
            gcp.monitoring.AlertPolicyArgs(
                project=args.project,
                display_name=f"[{args.environment}] {title}: {args.instance_name}",
                combiner="OR",
                enabled=True,
                severity=severity,
                conditions=[condition],
                notification_channels=self._channels,
                alert_strategy=alert_strategy,
                documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                    subject=f"[{args.environment}] {title}: {args.instance_name}",
                    mime_type="text/markdown",
                    content=f"{what_happened}\n\nRunbook: {self._runbook_reference(title)}",
                ),
                user_labels=standard_labels(args.environment, "alerting", alert=key),
            ),
            opts=self._child,
        )

    def _runbook_reference(self, title: str) -> str:
        anchor = "alert-" + title.lower().replace(" ", "-")
        if self._args.github_repository:
            return f"https://github.com/{self._args.github_repository}/blob/main/{RUNBOOK}#{anchor}"
        return f"{RUNBOOK}, section 'Alert: {title.lower()}'"

    def _automated_backup_failed(self) -> gcp.monitoring.AlertPolicy:
        args = self._args
        return self._policy(
            "automated-backup-failed",
            "Automated backup failed",
            gcp.monitoring.AlertPolicyConditionArgs(
                display_name="Cloud SQL automated backup window failed",
                condition_matched_log=gcp.monitoring.AlertPolicyConditionConditionMatchedLogArgs(
                    filter=automated_backup_failed_filter(args.project, args.database_id)
                ),
            ),
            "Cloud SQL reported a failed automated backup window for this instance. Likely causes: a "
            "long-running operation (export, import, maintenance) holding the instance through the window, "
            "a full disk, or an instance that was stopped. First: check `gcloud sql backups list` and the "
            "audit log entry's metadata, then take an on-demand backup.",
            gcp.monitoring.AlertPolicyAlertStrategyArgs(
                notification_rate_limit=gcp.monitoring.AlertPolicyAlertStrategyNotificationRateLimitArgs(
                    period=BACKUP_LOG_RATE_LIMIT
                ),
                auto_close=ONE_DAY,
            ),
        )

    def _export_failed(self) -> gcp.monitoring.AlertPolicy:
        return self._policy(
            "export-failed",
            "Export failed",
            gcp.monitoring.AlertPolicyConditionArgs(
                display_name="Cloud Run export execution failed",
                condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                    filter=export_failed_filter(self._args.job_name),
                    comparison="COMPARISON_GT",
                    threshold_value=0,
                    duration="0s",
                    aggregations=[
                        gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                            alignment_period="300s",
                            per_series_aligner="ALIGN_DELTA",
                            cross_series_reducer="REDUCE_SUM",
                            group_by_fields=["resource.labels.job_name"],
                        )
                    ],
                    trigger=gcp.monitoring.AlertPolicyConditionConditionThresholdTriggerArgs(
                        count=1
                    ),
                ),
            ),
            "An execution of the logical export job failed (after its retries). The job's logs hold one "
            'JSON line per database with `"status": "failed"` and the error. Likely causes: another '
            "operation in progress on the instance, a permission removed, a missing database, a timeout.",
            gcp.monitoring.AlertPolicyAlertStrategyArgs(auto_close=ONE_DAY),
        )

    def _export_stale(self) -> gcp.monitoring.AlertPolicy:
        args = self._args
        return self._policy(
            "export-stale",
            "Export stale",
            gcp.monitoring.AlertPolicyConditionArgs(
                display_name=f"No verified export for {args.staleness_hours} h",
                condition_prometheus_query_language=gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                    query=export_stale_query(
                        args.success_metric_name,
                        args.job_name,
                        args.databases,
                        args.staleness_hours,
                    ),
                    duration="0s",
                    evaluation_interval="300s",
                    alert_rule="ExportStale",
                    rule_group="cloudsql-backups",
                ),
            ),
            f"No verified logical export has been written for at least {args.staleness_hours} hours for the "
            "database named in the incident. This fires however the export stopped: the job failing, the "
            "scheduler paused or deleted, the job's permissions revoked, or an export that did not land.",
            gcp.monitoring.AlertPolicyAlertStrategyArgs(auto_close=ONE_DAY),
        )

    def _instance_down(self) -> gcp.monitoring.AlertPolicy:
        return self._threshold_policy(
            "instance-down",
            "Instance down",
            "cloudsql.googleapis.com/database/up",
            "COMPARISON_LT",
            1,
            "ALIGN_MIN",
            "The instance has reported itself down for 5 minutes: no backups or exports can run.",
        )

    def _disk_nearly_full(self) -> gcp.monitoring.AlertPolicy:
        return self._threshold_policy(
            "disk-nearly-full",
            "Disk nearly full",
            "cloudsql.googleapis.com/database/disk/utilization",
            "COMPARISON_GT",
            self._args.disk_utilization_percent / 100,
            "ALIGN_MAX",
            f"Disk utilization has been above {self._args.disk_utilization_percent}% for 5 minutes. A full "
            "disk stops writes and automated backups.",
            severity="WARNING",
        )

    def _threshold_policy(
        self,
        key: str,
        title: str,
        metric_type: str,
        comparison: str,
        threshold: float,
        aligner: str,
        what_happened: str,
        severity: str = "CRITICAL",
    ) -> gcp.monitoring.AlertPolicy:
        return self._policy(
            key,
            title,
            gcp.monitoring.AlertPolicyConditionArgs(
                display_name=title,
                condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                    filter=(
                        f'resource.type="cloudsql_database" AND metric.type="{metric_type}" '
                        f'AND resource.labels.database_id="{self._args.database_id}"'
                    ),
                    comparison=comparison,
                    threshold_value=threshold,
                    duration="300s",
                    aggregations=[
                        gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                            alignment_period="60s", per_series_aligner=aligner
                        )
                    ],
                ),
            ),
            what_happened,
            gcp.monitoring.AlertPolicyAlertStrategyArgs(auto_close=ONE_DAY),
            severity=severity,
        )
