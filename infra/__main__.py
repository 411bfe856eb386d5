"""The cloudsql-backups stack: reads validated config, then wires the components together."""

from __future__ import annotations

import pulumi
from cloudsql_backups.backup_bucket import BackupBucket, BackupBucketArgs
from cloudsql_backups.config import ConfigError, StackSettings, load_settings
from cloudsql_backups.database import DatabaseInstance, DatabaseInstanceArgs


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
    database = DatabaseInstance(
        "database",
        DatabaseInstanceArgs(
            project=s.project,
            region=s.region,
            environment=s.environment,
            instance_name=s.instance_name,
            database_version=s.database_version,
            edition=s.edition,
            tier=s.tier,
            availability_type=s.availability_type,
            disk_size_gb=s.disk_size_gb,
            vpc_network=s.vpc_network,
            backup_start_time=s.backup_start_time,
            backup_location=s.backup_location,
            retained_backups=s.retained_backups,
            point_in_time_recovery=s.point_in_time_recovery,
            transaction_log_retention_days=s.transaction_log_retention_days,
            final_backup_retention_days=s.final_backup_retention_days,
            deletion_protection=s.deletion_protection,
            maintenance_day=s.maintenance_day,
            maintenance_hour=s.maintenance_hour,
            ssl_mode=s.ssl_mode,
            public_ip_enabled=s.public_ip_enabled,
            authorized_networks=s.authorized_networks,
            adopt_existing_instance=s.adopt_existing_instance,
        ),
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
        ),
    )
    pulumi.export("project", s.project)
    pulumi.export("region", s.region)
    pulumi.export("instance_name", database.name)
    pulumi.export("instance_connection_name", database.connection_name)
    pulumi.export("backup_bucket_name", bucket.name)
    pulumi.export("backup_bucket_url", bucket.url)
    pulumi.export("export_databases", list(s.export_databases))
    pulumi.export("export_offload", s.export_offload)


main()
