"""Enhanced backups: a Backup and DR backup vault, a backup plan for Cloud SQL and the plan's
association with the instance, plus the alert that pages when a vaulted backup job fails.

What Google documents (sources next to each use below, summary in README "Vaulted backups"):
- an instance uses standard *or* enhanced backups; a backup plan associated with it takes over the
  schedule and retention of its automated backups, and point-in-time recovery keeps working;
- the vault's minimum enforced retention stops anyone, project owners included, from deleting a
  backup earlier; vaulted backups survive the deletion of the instance and of its project;
- enhanced backups give up multi-region and cross-region backups and CMEK, so the vault sits in the
  instance's region and the multi-region export bucket is what survives the loss of the region.

The vault lives in ``vault_project`` when one is named (a compromised stack project then cannot touch
it), else in the stack's project. Its access restriction is the strictest Google offers for that
layout: ``WITHIN_PROJECT`` when vault and instance share a project, ``WITHIN_ORGANIZATION`` when they
do not (``WITHIN_PROJECT`` would deny the instance in the other project).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .alert_policy import AlertSpec, alert_policy, auto_close_strategy, log_match_strategy
from .database import only_this_instance
from .naming import standard_labels, type_token

SECONDS_PER_DAY = 86_400
# Plan/association resource type for Cloud SQL (pulumi_gcp backupdisasterrecovery.BackupPlan docs).
CLOUD_SQL_RESOURCE_TYPE = "sqladmin.googleapis.com/Instance"
# Lets the vault's service agent back up Cloud SQL instances: cloudsql.instances.createBackupDrBackup
# and .get (https://cloud.google.com/iam/docs/roles-permissions/backupdr).
CLOUD_SQL_OPERATOR_ROLE = "roles/backupdr.cloudSqlOperator"
BACKUP_DR_API = "backupdr.googleapis.com"
# Same length as Cloud SQL's automated-backup window: jobs may start any time within it.
BACKUP_WINDOW_HOURS = 4
# Vaulted job log: logName .../logs/backupdr.googleapis.com%2Fbdr_backup_restore_jobs, jsonPayload =
# BDRBackupRestoreJobLog (googleapis google/cloud/backupdr/logging/v1/bdr_log.proto), readable in the
# vault project and in the resource project
# (https://cloud.google.com/backup-disaster-recovery/docs/monitor-reports/backupvault-backup-recovery-jobs).
JOB_LOG = "backupdr.googleapis.com%2Fbdr_backup_restore_jobs"
# job_status is SUCCESSFUL, FAILED, RUNNING or SKIPPED; job_category SCHEDULED_BACKUP,
# ON_DEMAND_BACKUP or RESTORE (https://cloud.google.com/backup-disaster-recovery/docs/monitor-reports/backup-restore-backupvault-report).
PAGING_JOB_STATUSES = ("FAILED", "SKIPPED")
BACKUP_JOB_CATEGORIES = ("SCHEDULED_BACKUP", "ON_DEMAND_BACKUP")
# The plan runs daily in a 4-hour window: 36 hours without a successful job means one was missed
# however it happened (association removed, plan paused, jobs never started), not only a failed one.
STALE_AFTER_HOURS = 36


@dataclass(frozen=True)
class BackupVaultArgs:
    """Where the vault lives, how long it keeps backups, and what it protects."""

    project: str
    vault_project: str
    region: str
    environment: str
    instance_name: pulumi.Input[str]
    min_retention_days: int
    backup_start_hour: int
    log_retention_days: int
    notification_channels: list[pulumi.Input[str]]

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def separate_project(self) -> bool:
        return self.vault_project != self.project

    @property
    def access_restriction(self) -> str:
        return "WITHIN_ORGANIZATION" if self.separate_project else "WITHIN_PROJECT"

    @property
    def vault_id(self) -> str:
        return f"sql-backups-{self.environment}"

    @property
    def plan_id(self) -> str:
        return f"sql-daily-{self.environment}"


def minimum_enforced_retention(days: int) -> str:
    """The vault's ``backupMinimumEnforcedRetentionDuration``: a protobuf Duration in seconds."""
    return f"{days * SECONDS_PER_DAY}s"


def vault_backup_failed_filter(project: str, plan_id: str) -> str:
    """Backup jobs of this plan that failed or were skipped (a missed scheduled backup)."""
    return " AND ".join(
        (
            f'logName="projects/{project}/logs/{JOB_LOG}"',
            # The plan's full name; ":" (has) tolerates a project number in place of its ID.
            f'jsonPayload.backupPlanName:"/backupPlans/{plan_id}"',
            _any_of("jsonPayload.jobCategory", BACKUP_JOB_CATEGORIES),
            _any_of("jsonPayload.jobStatus", PAGING_JOB_STATUSES),
        )
    )


def vault_backup_succeeded_filter(project: str, plan_id: str) -> str:
    """Backup jobs of this plan that completed: what the staleness alert counts."""
    return " AND ".join(
        (
            f'logName="projects/{project}/logs/{JOB_LOG}"',
            f'jsonPayload.backupPlanName:"/backupPlans/{plan_id}"',
            _any_of("jsonPayload.jobCategory", BACKUP_JOB_CATEGORIES),
            'jsonPayload.jobStatus="SUCCESSFUL"',
        )
    )


def vault_backup_stale_query(metric_name: str, hours: int) -> str:
    """PromQL: fires when no vaulted backup succeeded in ``hours`` (no data at all counts as none)."""
    metric = f"logging_googleapis_com:user_{metric_name}"
    return f"(sum(increase({metric}[{hours}h])) or vector(0)) < 1"


def _any_of(field: str, values: tuple[str, ...]) -> str:
    return "(" + " OR ".join(f'{field}="{value}"' for value in values) + ")"


class BackupVault(pulumi.ComponentResource):
    """Vault, plan and association that put the instance's automated backups out of reach."""

    vault: gcp.backupdisasterrecovery.BackupVault
    plan: gcp.backupdisasterrecovery.BackupPlan
    association: gcp.backupdisasterrecovery.BackupPlanAssociation
    success_metric: gcp.logging.Metric
    policy_names: pulumi.Output[list[str]]
    alert: gcp.monitoring.AlertPolicy
    stale_alert: gcp.monitoring.AlertPolicy

    def __init__(
        self, name: str, args: BackupVaultArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("backupdr", "BackupVault"), name, None, opts)
        self._name = name
        self._args = args
        apis = self._enable_api()
        after_api = pulumi.ResourceOptions(parent=self, depends_on=apis)
        self.vault = self._vault(after_api)
        operator = self._let_vault_back_up_the_instance()
        self.plan = self._plan(after_api)
        self.association = gcp.backupdisasterrecovery.BackupPlanAssociation(
            f"{name}-association",
            gcp.backupdisasterrecovery.BackupPlanAssociationArgs(
                project=args.vault_project,
                location=args.region,
                backup_plan_association_id=f"sql-{args.environment}",
                resource=pulumi.Output.concat(
                    "projects/", args.project, "/instances/", args.instance_name
                ),
                resource_type=CLOUD_SQL_RESOURCE_TYPE,
                backup_plan=self.plan.name,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[operator, *apis]),
        )
        self.alert = self._backup_failed_alert()
        self.stale_alert = self._backup_stale_alert()
        # What the post-deploy smoke test checks exists (ops/smoke).
        self.policy_names = pulumi.Output.all(self.alert.name, self.stale_alert.name)
        self.register_outputs(
            {
                "vault": self.vault.name,
                "plan": self.plan.name,
                "association": self.association.name,
            }
        )

    def _enable_api(self) -> list[pulumi.Resource]:
        # Backup and DR must be on where the instance is and where the vault is.
        projects = dict.fromkeys((self._args.project, self._args.vault_project))
        return [
            gcp.projects.Service(
                f"{self._name}-api-{index}",
                gcp.projects.ServiceArgs(
                    project=project, service=BACKUP_DR_API, disable_on_destroy=False
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for index, project in enumerate(projects)
        ]

    def _vault(self, opts: pulumi.ResourceOptions) -> gcp.backupdisasterrecovery.BackupVault:
        args = self._args
        return gcp.backupdisasterrecovery.BackupVault(
            f"{self._name}-vault",
            gcp.backupdisasterrecovery.BackupVaultArgs(
                project=args.vault_project,
                location=args.region,
                backup_vault_id=args.vault_id,
                description=f"Vaulted Cloud SQL backups ({args.environment}); see README 'Vaulted backups'.",
                backup_minimum_enforced_retention_duration=minimum_enforced_retention(
                    args.min_retention_days
                ),
                access_restriction=args.access_restriction,
                # Never abandon or delete backups with the vault: a destroy must fail while any is kept.
                ignore_inactive_datasources=False,
                ignore_backup_plan_references=False,
                labels=standard_labels(args.environment, "backup-vault"),
            ),
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(protect=args.is_prod, retain_on_delete=args.is_prod)
            ),
        )

    def _let_vault_back_up_the_instance(self) -> gcp.projects.IAMMember:
        args = self._args
        return gcp.projects.IAMMember(
            f"{self._name}-vault-operates-instance",
            gcp.projects.IAMMemberArgs(
                project=args.project,
                role=CLOUD_SQL_OPERATOR_ROLE,
                member=pulumi.Output.concat("serviceAccount:", self.vault.service_account),
                condition=gcp.projects.IAMMemberConditionArgs(
                    title="only-the-backed-up-instance",
                    description="The backup vault may back up this instance only.",
                    expression=only_this_instance(args.project, args.instance_name),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _plan(self, opts: pulumi.ResourceOptions) -> gcp.backupdisasterrecovery.BackupPlan:
        args = self._args
        start = args.backup_start_hour
        return gcp.backupdisasterrecovery.BackupPlan(
            f"{self._name}-plan",
            gcp.backupdisasterrecovery.BackupPlanArgs(
                project=args.vault_project,
                location=args.region,
                backup_plan_id=args.plan_id,
                description="Daily vaulted backup of the Cloud SQL instance, kept for the vault's minimum.",
                resource_type=CLOUD_SQL_RESOURCE_TYPE,
                backup_vault=self.vault.id,
                # Transaction logs for point-in-time recovery (Cloud SQL only).
                log_retention_days=args.log_retention_days,
                backup_rules=[
                    gcp.backupdisasterrecovery.BackupPlanBackupRuleArgs(
                        rule_id="daily",
                        # Must be >= the vault's minimum enforced retention.
                        backup_retention_days=args.min_retention_days,
                        standard_schedule=gcp.backupdisasterrecovery.BackupPlanBackupRuleStandardScheduleArgs(
                            recurrence_type="DAILY",
                            time_zone="UTC",
                            backup_window=gcp.backupdisasterrecovery.BackupPlanBackupRuleStandardScheduleBackupWindowArgs(
                                start_hour_of_day=start,
                                end_hour_of_day=min(start + BACKUP_WINDOW_HOURS, 24),
                            ),
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[self.vault])
            ),
        )

    def _backup_stale_alert(self) -> gcp.monitoring.AlertPolicy:
        args = self._args
        metric = self.success_metric = gcp.logging.Metric(
            f"{self._name}-backup-succeeded",
            gcp.logging.MetricArgs(
                project=args.project,
                name=f"vault_backup_succeeded_{args.environment}",
                description="Successful Backup and DR backup jobs of the Cloud SQL plan.",
                filter=vault_backup_succeeded_filter(args.project, args.plan_id),
                metric_descriptor=gcp.logging.MetricMetricDescriptorArgs(
                    metric_kind="DELTA", value_type="INT64", unit="1"
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        condition = gcp.monitoring.AlertPolicyConditionArgs(
            display_name=f"No successful vaulted backup for {STALE_AFTER_HOURS} h",
            condition_prometheus_query_language=gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                query=metric.name.apply(
                    lambda name: vault_backup_stale_query(name, STALE_AFTER_HOURS)
                ),
                duration="0s",
                evaluation_interval="300s",
                alert_rule="VaultedBackupStale",
                rule_group="cloudsql-backups",
                # The metric is created in the same `up` and has no data yet.
                disable_metric_validation=True,
            ),
        )
        spec = AlertSpec(
            project=args.project,
            environment=args.environment,
            key="vault-backup-stale",
            title=f"[{args.environment}] Vaulted backup stale",
            conditions=[condition],
            channels=args.notification_channels,
            documentation=(
                f"No Backup and DR backup job of the Cloud SQL plan succeeded for {STALE_AFTER_HOURS} "
                "hours: a scheduled backup was missed. Check that the plan association still "
                "exists and is ACTIVE (`gcloud backup-dr backup-plan-associations list`), and "
                "the job log `bdr_backup_restore_jobs`.\n\n"
                "Runbook: README.md, section 'Vaulted backups'"
            ),
            strategy=auto_close_strategy(),
        )
        return alert_policy(
            f"{self._name}-backup-stale",
            spec,
            pulumi.ResourceOptions(parent=self, depends_on=[metric]),
        )

    def _backup_failed_alert(self) -> gcp.monitoring.AlertPolicy:
        args = self._args
        spec = AlertSpec(
            project=args.project,
            environment=args.environment,
            key="vault-backup-failed",
            title=f"[{args.environment}] Vaulted backup failed",
            conditions=[
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name="Backup and DR backup job failed or skipped",
                    condition_matched_log=gcp.monitoring.AlertPolicyConditionConditionMatchedLogArgs(
                        filter=vault_backup_failed_filter(args.project, args.plan_id)
                    ),
                )
            ],
            channels=args.notification_channels,
            documentation=(
                "A Backup and DR backup job of the Cloud SQL instance failed or was skipped: the "
                "vault holds no new backup for this window. Read the entry's jsonPayload.errorType "
                "and errorMessage (`gcloud logging read 'logName:bdr_backup_restore_jobs'`), fix "
                "the cause, then take an on-demand backup through the plan association.\n\n"
                "Runbook: README.md, section 'Vaulted backups'"
            ),
            strategy=log_match_strategy(),
        )
        return alert_policy(
            f"{self._name}-backup-failed", spec, pulumi.ResourceOptions(parent=self)
        )
