"""Alert policies that page someone when backups fail or go stale, and the channels they notify.

1. Automated backup failed or skipped: Cloud SQL has no metric for this. It writes a System Event audit
   log entry per automated backup (``protoPayload.methodName="cloudsql.instances.automatedBackup"``)
   with the backup window outcome in ``protoPayload.metadata.windowStatus``; a log-match condition pages
   on the failed outcomes (any status containing ``FAIL``, or an entry logged at ERROR or worse) and on
   ``STATUS_SKIPPED`` (no backup because the instance was not running).
2. Export failed: Cloud Run's ``job/completed_execution_count`` with ``result="failed"``: once per
   failed execution (the script exits non-zero when any database fails, after retries).
3. Newest export too old: metric-absence conditions cap at about a day and GCS has no object-age
   metric, so a PromQL condition counts the script's verified-success log lines (a log-based metric)
   over the staleness window, per database, and fires when a database has none. ``or vector(0)`` makes
   "no data at all" (job never ran, scheduler paused or deleted, permissions revoked) count as zero.
   The log-based metric is created in the same update and has no data yet, so the condition disables
   Monitoring's metric-existence check (otherwise creating the policy fails with 404).
4. Instance down, stopped or suspended: ``database/up`` below 1, its absence (a stopped instance stops
   reporting it), or ``database/instance_state`` in a stopped/suspended/failed state.
5. Disk nearly full (a full disk stops backups).
6. Dashboard assets transfer failed (only with ``dashboard_transfer_job``): Storage Transfer's own
   ``transferjob/error_count`` for that job.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .alert_policy import AlertSpec, alert_policy, auto_close_strategy, log_match_strategy
from .export_metrics import promql_metric_name
from .naming import standard_labels, type_token

RUNBOOK = "DR_RUNBOOK.md"
# How long "no verified export" must hold before it pages: on a brand-new stack the smoke test's
# export lands well within it, so a first deploy does not page (README, "First deploy").
EXPORT_STALE_PENDING = "3600s"
# A stopped instance stops reporting database/up; its absence for this long pages.
INSTANCE_SILENT_FOR = "600s"
# database/instance_state: BOOL per state, only the current one TRUE; RUNNABLE = "stopped by owner"
# (https://cloud.google.com/monitoring/api/metrics_gcp_c#cloudsql/database/instance_state).
NOT_RUNNING_STATES = ("RUNNABLE", "SUSPENDED", "FAILED")
# Storage Transfer: delta metric on resource storage_transfer_job, job_id = TransferJob.name
# (https://cloud.google.com/storage-transfer/docs/monitor-transfer-jobs).
TRANSFER_ERRORS = "storagetransfer.googleapis.com/transferjob/error_count"


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
    # The dashboard-assets Storage Transfer job's name (``transferJobs/...``); "" = none to watch.
    dashboard_transfer_job: str = ""

    @property
    def database_id(self) -> str:
        """How Cloud SQL's monitored resource names the instance: ``project:instance``."""
        return f"{self.project}:{self.instance_name}"


def runbook_reference(github_repository: str, title: str) -> str:
    """Where an alert's documentation sends people: its DR_RUNBOOK.md section "Alert: <title>"."""
    anchor = "alert-" + title.lower().replace(" ", "-")
    if github_repository:
        return f"https://github.com/{github_repository}/blob/main/{RUNBOOK}#{anchor}"
    return f"{RUNBOOK}, section 'Alert: {title.lower()}'"


def automated_backup_failed_filter(project: str, database_id: str) -> str:
    return " AND ".join(
        (
            f'logName="projects/{project}/logs/cloudaudit.googleapis.com%2Fsystem_event"',
            'resource.type="cloudsql_database"',
            f'resource.labels.database_id="{database_id}"',
            'protoPayload.methodName="cloudsql.instances.automatedBackup"',
            # STATUS_SKIPPED: no backup because the instance was not running
            # (https://cloud.google.com/sql/docs/postgres/backup-recovery/view-audit-logs-for-automated-backups).
            '(protoPayload.metadata.windowStatus:"FAIL" OR '
            'protoPayload.metadata.windowStatus="STATUS_SKIPPED" OR severity>=ERROR)',
        )
    )


def export_failed_filter(job_name: str) -> str:
    return (
        'resource.type="cloud_run_job" AND metric.type="run.googleapis.com/job/completed_execution_count" '
        f'AND metric.labels.result="failed" AND resource.labels.job_name="{job_name}"'
    )


def transfer_errors_filter(transfer_job: str) -> str:
    return (
        f'resource.type="storage_transfer_job" AND metric.type="{TRANSFER_ERRORS}" '
        f'AND resource.labels.job_id="{transfer_job}"'
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
    # The same channels as a list of inputs, for other components' alert policies.
    channels: list[pulumi.Input[str]]
    policies: dict[str, gcp.monitoring.AlertPolicy]
    policy_names: pulumi.Output[list[str]]

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
        self.channels = list(self._channels)
        self.policies = {
            "automated-backup-failed": self._automated_backup_failed(),
            "export-failed": self._export_failed(),
            "export-stale": self._export_stale(),
            "instance-down": self._instance_down(),
            "disk-nearly-full": self._disk_nearly_full(),
        }
        if args.dashboard_transfer_job:
            self.policies["dashboard-assets-transfer-failed"] = self._transfer_failed()
        # Resource names (projects/P/alertPolicies/ID): what the smoke test checks exist and are enabled.
        self.policy_names = pulumi.Output.all(*(p.name for p in self.policies.values()))
        self.register_outputs({"channels": self.channel_names, "policies": self.policy_names})

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
        conditions: list[gcp.monitoring.AlertPolicyConditionArgs],
        what_happened: str,
        alert_strategy: gcp.monitoring.AlertPolicyAlertStrategyArgs,
        severity: str = "CRITICAL",
    ) -> gcp.monitoring.AlertPolicy:
        args = self._args
        spec = AlertSpec(
            project=args.project,
            environment=args.environment,
            key=key,
            title=f"[{args.environment}] {title}: {args.instance_name}",
            conditions=conditions,
            channels=self._channels,
            documentation=f"{what_happened}\n\nRunbook: {self._runbook_reference(title)}",
            strategy=alert_strategy,
            severity=severity,
        )
        return alert_policy(f"{self._name}-{key}", spec, self._child)

    def _runbook_reference(self, title: str) -> str:
        return runbook_reference(self._args.github_repository, title)

    def _automated_backup_failed(self) -> gcp.monitoring.AlertPolicy:
        args = self._args
        return self._policy(
            "automated-backup-failed",
            "Automated backup failed",
            [
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name="Cloud SQL automated backup window failed or skipped",
                    condition_matched_log=gcp.monitoring.AlertPolicyConditionConditionMatchedLogArgs(
                        filter=automated_backup_failed_filter(args.project, args.database_id)
                    ),
                )
            ],
            "Cloud SQL reported a failed or skipped automated backup window for this instance. Likely "
            "causes: a long-running operation (export, import, maintenance) holding the instance through the "
            "window, a full disk, or an instance that was stopped (`STATUS_SKIPPED`). First: check `gcloud "
            "sql backups list` and the audit log entry's metadata, then take an on-demand backup.",
            log_match_strategy(),
        )

    def _export_failed(self) -> gcp.monitoring.AlertPolicy:
        return self._policy(
            "export-failed",
            "Export failed",
            [
                self._any_count_condition(
                    "Cloud Run export execution failed",
                    export_failed_filter(self._args.job_name),
                    "resource.labels.job_name",
                )
            ],
            "An execution of the logical export job failed (after its retries). The job's logs hold one "
            'JSON line per database with `"status": "failed"` and the error. Likely causes: another '
            "operation in progress on the instance, a permission removed, a missing database, a timeout.",
            auto_close_strategy(),
        )

    def _export_stale(self) -> gcp.monitoring.AlertPolicy:
        args = self._args
        return self._policy(
            "export-stale",
            "Export stale",
            [
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name=f"No verified export for {args.staleness_hours} h",
                    condition_prometheus_query_language=gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                        query=export_stale_query(
                            args.success_metric_name,
                            args.job_name,
                            args.databases,
                            args.staleness_hours,
                        ),
                        duration=EXPORT_STALE_PENDING,
                        evaluation_interval="300s",
                        alert_rule="ExportStale",
                        rule_group="cloudsql-backups",
                        # The log-based metric is created in the same update and has no data yet: with
                        # validation on, Monitoring answers 404 and the first `up` fails
                        # (https://github.com/hashicorp/terraform-provider-google/issues/11102).
                        disable_metric_validation=True,
                    ),
                )
            ],
            f"No verified logical export has been written for at least {args.staleness_hours} hours for the "
            "database named in the incident. This fires however the export stopped: the job failing, the "
            "scheduler paused or deleted, the job's permissions revoked, or an export that did not land.",
            auto_close_strategy(),
        )

    def _instance_down(self) -> gcp.monitoring.AlertPolicy:
        up_metric = self._instance_metric_filter("cloudsql.googleapis.com/database/up")
        states = " OR ".join(f'metric.labels.state="{state}"' for state in NOT_RUNNING_STATES)
        stopped = (
            f"{self._instance_metric_filter('cloudsql.googleapis.com/database/instance_state')} "
            f"AND ({states})"
        )
        return self._policy(
            "instance-down",
            "Instance down",
            [
                self._threshold_condition(
                    "Instance reports down", up_metric, "COMPARISON_LT", 1, "ALIGN_MIN"
                ),
                # A stopped instance stops reporting database/up, so "< 1" never becomes true.
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name="Instance stopped reporting database/up",
                    condition_absent=gcp.monitoring.AlertPolicyConditionConditionAbsentArgs(
                        filter=up_metric,
                        duration=INSTANCE_SILENT_FOR,
                        aggregations=[
                            gcp.monitoring.AlertPolicyConditionConditionAbsentAggregationArgs(
                                alignment_period="60s", per_series_aligner="ALIGN_MAX"
                            )
                        ],
                        trigger=gcp.monitoring.AlertPolicyConditionConditionAbsentTriggerArgs(
                            count=1
                        ),
                    ),
                ),
                self._threshold_condition(
                    "Instance stopped, suspended or failed",
                    stopped,
                    "COMPARISON_GT",
                    0,
                    "ALIGN_COUNT_TRUE",
                ),
            ],
            "The instance is down, stopped (activation policy NEVER), suspended or failed: no backups "
            "or exports can run (a stopped instance's automated backup is skipped).",
            auto_close_strategy(),
        )

    def _disk_nearly_full(self) -> gcp.monitoring.AlertPolicy:
        percent = self._args.disk_utilization_percent
        return self._policy(
            "disk-nearly-full",
            "Disk nearly full",
            [
                self._threshold_condition(
                    "Disk nearly full",
                    self._instance_metric_filter(
                        "cloudsql.googleapis.com/database/disk/utilization"
                    ),
                    "COMPARISON_GT",
                    percent / 100,
                    "ALIGN_MAX",
                )
            ],
            f"Disk utilization has been above {percent}% for 5 minutes. A full "
            "disk stops writes and automated backups.",
            auto_close_strategy(),
            severity="WARNING",
        )

    def _transfer_failed(self) -> gcp.monitoring.AlertPolicy:
        return self._policy(
            "dashboard-assets-transfer-failed",
            "Dashboard assets transfer failed",
            [
                self._any_count_condition(
                    "Storage Transfer reported errors",
                    transfer_errors_filter(self._args.dashboard_transfer_job),
                    "resource.labels.job_id",
                )
            ],
            "The daily Storage Transfer copy of the dashboard-assets bucket into the backup bucket "
            "reported errors: changed or new assets may not be backed up. Likely causes: the transfer "
            "agent lost a permission on the source or on `dashboard-assets/` in the backup bucket, or "
            "the source bucket was removed. First: `gcloud transfer operations list "
            f"--job-names={self._args.dashboard_transfer_job}` and describe the latest operation.",
            auto_close_strategy(),
            severity="ERROR",
        )

    def _instance_metric_filter(self, metric_type: str) -> str:
        return (
            f'resource.type="cloudsql_database" AND metric.type="{metric_type}" '
            f'AND resource.labels.database_id="{self._args.database_id}"'
        )

    @staticmethod
    def _any_count_condition(
        title: str, metric_filter: str, group_by: str
    ) -> gcp.monitoring.AlertPolicyConditionArgs:
        """True as soon as a delta count metric (failed executions, transfer errors) is above 0."""
        return gcp.monitoring.AlertPolicyConditionArgs(
            display_name=title,
            condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                filter=metric_filter,
                comparison="COMPARISON_GT",
                threshold_value=0,
                duration="0s",
                aggregations=[
                    gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                        alignment_period="300s",
                        per_series_aligner="ALIGN_DELTA",
                        cross_series_reducer="REDUCE_SUM",
                        group_by_fields=[group_by],
                    )
                ],
                trigger=gcp.monitoring.AlertPolicyConditionConditionThresholdTriggerArgs(count=1),
            ),
        )

    @staticmethod
    def _threshold_condition(
        title: str, metric_filter: str, comparison: str, threshold: float, aligner: str
    ) -> gcp.monitoring.AlertPolicyConditionArgs:
        """A condition true while the aligned value crosses ``threshold`` for 5 minutes."""
        return gcp.monitoring.AlertPolicyConditionArgs(
            display_name=title,
            condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                filter=metric_filter,
                comparison=comparison,
                threshold_value=threshold,
                duration="300s",
                aggregations=[
                    gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                        alignment_period="60s", per_series_aligner=aligner
                    )
                ],
            ),
        )
