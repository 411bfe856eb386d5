"""The cloudsql-backups stack: reads validated config, then wires the components together."""

from __future__ import annotations

import pulumi
from cloudsql_backups.alerting import BackupAlerts, BackupAlertsArgs
from cloudsql_backups.backup_bucket import BackupBucket, BackupBucketArgs
from cloudsql_backups.backup_read_audit import BackupReadAudit, BackupReadAuditArgs
from cloudsql_backups.backup_vault import BackupVault, BackupVaultArgs
from cloudsql_backups.ci_identity import CiIdentity, CiIdentityArgs
from cloudsql_backups.config import (
    ConfigError,
    StackSettings,
    load_settings,
    longest_cron_interval,
)
from cloudsql_backups.dashboard import BackupDashboard, BackupDashboardArgs
from cloudsql_backups.dashboard_assets import DashboardAssetsBackup, DashboardAssetsBackupArgs
from cloudsql_backups.database import DatabaseInstance, DatabaseInstanceArgs
from cloudsql_backups.export_job import ExportJob, ExportJobArgs
from cloudsql_backups.export_metrics import ExportMetrics, ExportMetricsArgs
from cloudsql_backups.offsite_copy import OffsiteCopy, OffsiteCopyArgs
from cloudsql_backups.project_apis import ProjectApis, ProjectApisArgs
from cloudsql_backups.restore_verification import RestoreVerification, RestoreVerificationArgs


def main() -> None:
    try:
        settings = load_settings()
    except ConfigError as error:
        # A RunError is shown to the user as its message alone, before any resource is registered.
        raise pulumi.RunError(str(error)) from None
    for warning in settings.warnings():
        pulumi.log.warn(warning)
    build_stack(settings)


def build_stack(s: StackSettings) -> None:
    apis = ProjectApis("apis", ProjectApisArgs(project=s.project))
    after_apis = pulumi.ResourceOptions(depends_on=[apis])
    database = DatabaseInstance(
        "database",
        DatabaseInstanceArgs(
            project=s.project,
            region=s.region,
            environment=s.environment,
            instance_name=s.instance_name,
            shape=s.instance_shape,
            backup=s.backup_schedule,
            network=s.network_access,
            maintenance=s.maintenance_window,
            deletion_protection=s.deletion_protection,
            adopt_existing_instance=s.adopt_existing_instance,
        ),
        opts=after_apis,
    )
    bucket = BackupBucket(
        "backups",
        BackupBucketArgs(
            project=s.project,
            environment=s.environment,
            name=s.backup_bucket_name,
            location=s.backup_bucket_location,
            storage_class=s.backup_storage_class,
            object_retention_days=s.backup_object_retention_days,
            noncurrent_version_retention_days=s.noncurrent_version_retention_days,
            soft_delete_retention_days=s.soft_delete_retention_days,
            kms_key_name=s.backup_bucket_kms_key,
            restore_import_service_account=s.restore_import_service_account,
            object_retention=s.export_retention_mode != "none",
            restore_verification_service_account=verification_lister(s),
        ),
        opts=after_apis,
    )
    export = ExportJob(
        "export",
        ExportJobArgs(
            project=s.project,
            region=s.region,
            environment=s.environment,
            instance_name=database.name,
            instance_service_account_email=database.service_account_email,
            bucket_name=bucket.name,
            databases=s.export_databases,
            schedule=s.export_schedule,
            time_zone=s.export_time_zone,
            offload=s.export_offload,
            export_format=s.export_format,
            threads=s.export_threads,
            timeout_hours=s.export_timeout_hours,
            max_retries=s.export_max_retries,
            image=s.export_image,
            retention_mode=s.export_retention_mode,
            retention_days=s.backup_object_retention_days,
        ),
        opts=after_apis,
    )
    job_name = ExportJobArgs.job_name_for(s.environment)
    metrics = ExportMetrics(
        "export-metrics",
        ExportMetricsArgs(project=s.project, environment=s.environment, job_name=job_name),
        opts=after_apis,
    )
    alerts = BackupAlerts(
        "alerts",
        BackupAlertsArgs(
            project=s.project,
            environment=s.environment,
            instance_name=s.instance_name,
            job_name=job_name,
            databases=s.export_databases,
            success_metric_name=metrics.success_metric_name,
            staleness_hours=s.export_staleness_hours,
            disk_utilization_percent=s.disk_utilization_alert_percent,
            notification_emails=s.notification_emails,
            notification_channel_ids=s.notification_channel_ids,
            github_repository=s.github_repository,
            dashboard_transfer_job=(
                DashboardAssetsBackupArgs.transfer_job_name_for(s.environment)
                if s.dashboard_bucket
                else ""
            ),
        ),
        opts=pulumi.ResourceOptions(depends_on=[apis, metrics]),
    )
    # Alert policies and log-based metrics the post-deploy smoke test (ops/smoke) checks exist.
    watched_alerts: list[pulumi.Input[list[str]]] = [alerts.policy_names]
    watched_metrics: list[pulumi.Input[str]] = [m.name for m in metrics.metrics]
    if s.backup_vault_enabled:
        vault = BackupVault(
            "vault",
            BackupVaultArgs(
                project=s.project,
                vault_project=s.vault_project,
                region=s.region,
                environment=s.environment,
                instance_name=database.name,
                min_retention_days=s.backup_vault_min_retention_days,
                backup_start_hour=int(s.backup_start_time.split(":")[0]),
                log_retention_days=s.transaction_log_retention_days,
                notification_channels=alerts.channels,
            ),
            opts=pulumi.ResourceOptions(depends_on=[apis, database]),
        )
        watched_alerts.append(vault.policy_names)
        watched_metrics.append(vault.success_metric.name)
    if s.restore_verification_enabled:
        verification = RestoreVerification(
            "restore-verification",
            RestoreVerificationArgs(
                project=s.project,
                region=s.region,
                environment=s.environment,
                instance_name=database.name,
                vpc_network=s.vpc_network,
                subnetwork=s.restore_verification_subnetwork,
                source_bucket=s.restore_verification_source_bucket or bucket.name,
                source_instance=s.restore_verification_source_instance or s.instance_name,
                databases=s.restore_verification_databases or s.export_databases,
                schedule=s.restore_verification_schedule,
                time_zone=s.export_time_zone,
                timeout_hours=s.restore_verification_timeout_hours,
                image=s.restore_verification_image,
                export_interval_hours=longest_cron_interval(
                    s.export_schedule, s.export_time_zone
                ).total_seconds()
                / 3600,
                notification_channels=alerts.channels,
                github_repository=s.github_repository,
            ),
            opts=pulumi.ResourceOptions(depends_on=[apis, database]),
        )
        watched_alerts.append(verification.policy_names)
        watched_metrics.append(verification.passed_metric.name)
    if s.offsite_bucket_name:
        OffsiteCopy(
            "offsite",
            OffsiteCopyArgs(
                project=s.project,
                offsite_project=s.offsite_bucket_project,
                environment=s.environment,
                source_bucket=bucket.name,
                name=s.offsite_bucket_name,
                location=s.backup_bucket_location,
                storage_class=s.backup_storage_class,
                retention_days=s.backup_object_retention_days,
                locked=s.export_retention_mode == "Locked",
            ),
            opts=after_apis,
        )
    BackupDashboard(
        "dashboard",
        BackupDashboardArgs(
            project=s.project,
            environment=s.environment,
            instance_name=s.instance_name,
            job_name=job_name,
            success_metric_name=metrics.success_metric_name,
            bytes_metric_name=metrics.bytes_metric_name,
            duration_metric_name=metrics.duration_metric_name,
            staleness_hours=s.export_staleness_hours,
            verification_job_name=(
                RestoreVerificationArgs.job_name_for(s.environment)
                if s.restore_verification_enabled
                else ""
            ),
        ),
        opts=pulumi.ResourceOptions(depends_on=[apis, metrics]),
    )
    if s.dashboard_bucket:
        DashboardAssetsBackup(
            "dashboard-assets",
            DashboardAssetsBackupArgs(
                project=s.project,
                environment=s.environment,
                source_bucket=s.dashboard_bucket,
                backup_bucket=bucket.name,
            ),
            opts=after_apis,
        )
    read_audit = BackupReadAudit(
        "backup-read-audit",
        BackupReadAuditArgs(
            project=s.project,
            environment=s.environment,
            bucket_name=bucket.name,
            expected_readers=(export.job_service_account.email, *s.expected_backup_readers),
            notification_channels=alerts.channels,
        ),
        opts=after_apis,
    )
    if s.github_repository:
        ci = CiIdentity(
            "ci",
            CiIdentityArgs(
                project=s.project,
                environment=s.environment,
                github_repository=s.github_repository,
                runtime_service_accounts=(
                    export.job_service_account.name,
                    export.scheduler_service_account.name,
                ),
                grantable_project_roles=(
                    ExportJobArgs.exporter_role_name(s.project, s.environment),
                ),
            ),
            opts=after_apis,
        )
        # An admin copies these into the repository variables the workflows read.
        pulumi.export("ci_workload_identity_provider", ci.deploy_provider.name)
        pulumi.export("ci_service_account_email", ci.deployer_account.email)
        pulumi.export("ci_preview_workload_identity_provider", ci.preview_provider.name)
        pulumi.export("ci_preview_service_account_email", ci.preview_account.email)
    pulumi.export("project", s.project)
    pulumi.export("region", s.region)
    pulumi.export("instance_name", database.name)
    pulumi.export("instance_connection_name", database.connection_name)
    pulumi.export("backup_bucket_name", bucket.name)
    pulumi.export("backup_bucket_url", bucket.url)
    pulumi.export("export_job_name", export.job.name)
    pulumi.export("export_scheduler_job_name", export.scheduler_job.name)
    pulumi.export("export_databases", list(s.export_databases))
    pulumi.export("export_offload", s.export_offload)
    pulumi.export("export_format", s.export_format)
    pulumi.export("export_threads", s.export_threads)
    # What the post-deploy smoke test (ops/smoke) checks exists.
    watched_alerts.append(pulumi.Output.all(read_audit.alert.name))
    pulumi.export(
        "alert_policy_names",
        pulumi.Output.all(*watched_alerts).apply(lambda groups: [n for g in groups for n in g]),
    )
    pulumi.export("log_metric_names", watched_metrics)


def verification_lister(s: StackSettings) -> str:
    """Who may list this stack's exports for the weekly verification: the staging stack's job
    (prod names it), or this stack's own job when it verifies its own exports."""
    lister: str = s.restore_verification_service_account
    if s.restore_verification_enabled and not s.restore_verification_source_bucket:
        lister = RestoreVerificationArgs.job_account_email(s.project, s.environment)
    return lister


main()
