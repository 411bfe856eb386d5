"""The Cloud SQL for PostgreSQL instance: automated backups, point-in-time recovery, retention, and
guards that make losing it hard (protect, deletion protection on both sides, a final backup).

Fields that make Google (and so Pulumi) *replace* an existing instance: ``name``, ``region``,
``project``, ``encryption_key_name`` and ``master_instance_name``. This component never derives them
from anything but explicit config, and ``protect=True`` in prod turns an accidental replacement into
an error at preview.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from .naming import standard_labels, type_token

# Audit-grade logging, plus IAM database authentication (restore checks connect without passwords).
AUDIT_DATABASE_FLAGS: dict[str, str] = {
    "cloudsql.iam_authentication": "on",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_lock_waits": "on",
    "log_checkpoints": "on",
    "log_min_error_statement": "error",
    "log_temp_files": "0",
}

# With enhanced backups the backup plan, not the instance, sets when backups run, how long they and the
# transaction logs are kept and where they are stored (no multi-region location); the instance reports
# its tier as ENHANCED. `up` must not write the standard-backup values back over them
# (https://cloud.google.com/sql/docs/postgres/backup-recovery/backup-options). Backups stay enabled and
# point-in-time recovery stays on: both remain managed here.
BACKUP_DR_MANAGED_FIELDS = (
    "settings.backupConfiguration.backupTier",
    "settings.backupConfiguration.backupRetentionSettings",
    "settings.backupConfiguration.transactionLogRetentionDays",
    "settings.backupConfiguration.startTime",
    "settings.backupConfiguration.location",
)


@dataclass(frozen=True)
class InstanceShape:
    """What the instance runs on."""

    database_version: str
    edition: str
    tier: str
    availability_type: str
    disk_size_gb: int


@dataclass(frozen=True)
class BackupSchedule:
    """Automated backups, point-in-time recovery and what is kept when the instance goes."""

    start_time: str  # HH:MM UTC, start of the 4-hour window
    location: str
    retained_backups: int
    point_in_time_recovery: bool
    transaction_log_retention_days: int
    final_backup_retention_days: int
    # Enhanced backups: a Backup and DR plan owns the schedule and retention (backup_vault.py).
    vaulted: bool = False


@dataclass(frozen=True)
class NetworkAccess:
    """How clients reach the instance: private IP on the VPC, TLS, and an optional public IP."""

    vpc_network: str
    ssl_mode: str
    public_ip_enabled: bool = False
    authorized_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class MaintenanceWindow:
    day: int  # 1 = Monday ... 7 = Sunday
    hour: int  # UTC


@dataclass(frozen=True)
class DatabaseInstanceArgs:
    """What the instance needs to know; every field comes from validated stack settings."""

    project: str
    region: str
    environment: str
    instance_name: str
    shape: InstanceShape
    backup: BackupSchedule
    network: NetworkAccess
    maintenance: MaintenanceWindow
    deletion_protection: bool
    adopt_existing_instance: bool = False
    database_flags: dict[str, str] = field(default_factory=lambda: dict(AUDIT_DATABASE_FLAGS))

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


class DatabaseInstance(pulumi.ComponentResource):
    """A Cloud SQL for PostgreSQL instance with trustworthy backups."""

    instance: gcp.sql.DatabaseInstance
    name: pulumi.Output[str]
    connection_name: pulumi.Output[str]
    service_account_email: pulumi.Output[str]

    def __init__(
        self, name: str, args: DatabaseInstanceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("database", "DatabaseInstance"), name, None, opts)
        self.instance = gcp.sql.DatabaseInstance(
            f"{name}-instance",
            gcp.sql.DatabaseInstanceArgs(
                project=args.project,
                region=args.region,
                name=args.instance_name,
                database_version=args.shape.database_version,
                deletion_protection=args.deletion_protection,
                settings=_settings(args),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.is_prod,
                retain_on_delete=args.is_prod,
                import_=_import_id(args) if args.adopt_existing_instance else None,
                ignore_changes=list(BACKUP_DR_MANAGED_FIELDS) if args.backup.vaulted else None,
            ),
        )
        self.name = self.instance.name
        self.connection_name = self.instance.connection_name
        # Cloud SQL writes exports to the bucket as this identity, not as the caller.
        self.service_account_email = self.instance.service_account_email_address
        self.register_outputs(
            {
                "name": self.name,
                "connection_name": self.connection_name,
                "service_account_email": self.service_account_email,
            }
        )


def only_this_instance(project: str, instance_name: pulumi.Input[str]) -> pulumi.Output[str]:
    """IAM condition: instance permissions on this instance only; checks on any other resource type
    (an operation, say) still pass, so a role can hold instance and operation permissions at once."""
    return pulumi.Output.concat(
        'resource.type != "sqladmin.googleapis.com/Instance" || resource.name == "projects/',
        project,
        "/instances/",
        instance_name,
        '"',
    )


def _import_id(args: DatabaseInstanceArgs) -> str:
    return f"projects/{args.project}/instances/{args.instance_name}"


def _settings(args: DatabaseInstanceArgs) -> gcp.sql.DatabaseInstanceSettingsArgs:
    return gcp.sql.DatabaseInstanceSettingsArgs(
        tier=args.shape.tier,
        edition=args.shape.edition,
        availability_type=args.shape.availability_type,
        disk_size=args.shape.disk_size_gb,
        disk_autoresize=True,
        disk_type="PD_SSD",
        deletion_protection_enabled=args.deletion_protection,
        retain_backups_on_delete=True,
        final_backup_config=gcp.sql.DatabaseInstanceSettingsFinalBackupConfigArgs(
            enabled=True, retention_days=args.backup.final_backup_retention_days
        ),
        backup_configuration=_backup_configuration(args),
        ip_configuration=_ip_configuration(args),
        maintenance_window=gcp.sql.DatabaseInstanceSettingsMaintenanceWindowArgs(
            day=args.maintenance.day, hour=args.maintenance.hour, update_track="stable"
        ),
        insights_config=gcp.sql.DatabaseInstanceSettingsInsightsConfigArgs(
            query_insights_enabled=True,
            record_application_tags=True,
            record_client_address=False,
            query_string_length=1024,
        ),
        database_flags=[
            gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs(name=flag, value=value)
            for flag, value in sorted(args.database_flags.items())
        ],
        user_labels=standard_labels(args.environment, "database"),
    )


def _backup_configuration(
    args: DatabaseInstanceArgs,
) -> gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs:
    return gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
        enabled=True,
        start_time=args.backup.start_time,
        location=args.backup.location,
        point_in_time_recovery_enabled=args.backup.point_in_time_recovery,
        transaction_log_retention_days=args.backup.transaction_log_retention_days,
        backup_retention_settings=gcp.sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs(
            retained_backups=args.backup.retained_backups, retention_unit="COUNT"
        ),
    )


def _ip_configuration(
    args: DatabaseInstanceArgs,
) -> gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs:
    return gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
        ipv4_enabled=args.network.public_ip_enabled,
        private_network=args.network.vpc_network,
        ssl_mode=args.network.ssl_mode,
        enable_private_path_for_google_cloud_services=True,
        authorized_networks=[
            gcp.sql.DatabaseInstanceSettingsIpConfigurationAuthorizedNetworkArgs(
                name=f"authorized-{index}", value=cidr
            )
            for index, cidr in enumerate(args.network.authorized_networks)
        ],
    )
