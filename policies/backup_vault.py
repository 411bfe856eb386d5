"""Backups nobody can delete early: vaulted backups (Backup and DR) and retention-locked exports.

- A backup vault's minimum enforced retention (``backupMinimumEnforcedRetentionDuration``, a protobuf
  Duration such as ``"2592000s"``) is the one delete-protection not even a project owner can lift;
  it must reach the floor the exports promise.
- Every primary Cloud SQL instance is covered by one backup tier or the other: associated with a
  Backup and DR plan for ``sqladmin.googleapis.com/Instance`` (enhanced backups), or automated
  backups with point-in-time recovery on the instance itself (standard backups).
- The backup bucket (labelled ``purpose: sql-backups``) has Object Retention Lock enabled, so the export
  job can retain each verified dump.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from policy_kit import Config, Finding, Resource, Setting, resource_policy, stack_policy
from property_access import describe
from pulumi_policy import ResourceValidationPolicy, Severity, StackValidationPolicy
from storage import BUCKET, is_backup_bucket

VAULT = "gcp:backupdisasterrecovery/backupVault:BackupVault"
ASSOCIATION = "gcp:backupdisasterrecovery/backupPlanAssociation:BackupPlanAssociation"
INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
CLOUD_SQL_RESOURCE_TYPE = "sqladmin.googleapis.com/Instance"
SECONDS_PER_DAY = 86_400
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")
_BACKUP = "settings.backupConfiguration"


def _enforced_retention(vault: Resource, config: Config) -> Iterator[str]:
    node = vault.props.at("backupMinimumEnforcedRetentionDuration")
    value = node.value
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    floor = int(config["minimum_days"])
    if match is None:
        yield f"{node.path} = {describe(value)}: not a duration in seconds such as '{floor * SECONDS_PER_DAY}s'"
        return
    days = float(match.group(1)) / SECONDS_PER_DAY
    if days < floor:
        yield (
            f"{node.path} = {value} ({days:g} days): vaulted backups could be deleted after fewer "
            f"than {floor} days; set it to at least '{floor * SECONDS_PER_DAY}s'"
        )


def _object_retention(bucket: Resource, config: Config) -> Iterator[str]:
    if not config["required"]:
        return
    node = bucket.props.at("enableObjectRetention")
    if node.value is not True:
        yield (
            f"{node.path} = {describe(node.value)}: exports cannot be retention-locked, so anyone "
            "with delete rights on the bucket can remove them early; create the bucket with "
            "enable_object_retention=True (see README 'Retention-locked exports' for an existing one)"
        )


def _backup_buckets_only(bucket: Resource) -> str | None:
    if is_backup_bucket(bucket):
        return None
    return "not a backup bucket (no label purpose=sql-backups)"


def _vaulted_instances(resources: list[Resource]) -> set[str]:
    """Instance paths (projects/P/instances/N) that a Cloud SQL backup plan association covers."""
    covered = set()
    for association in resources:
        if association.type != ASSOCIATION:
            continue
        if association.props.at("resourceType").value == CLOUD_SQL_RESOURCE_TYPE:
            covered.add(str(association.props.at("resource").value))
    return covered


def _has_standard_backups_with_pitr(instance: Resource) -> bool:
    backups = instance.props.at(f"{_BACKUP}.enabled").value
    pitr = instance.props.at(f"{_BACKUP}.pointInTimeRecoveryEnabled").value
    return backups is True and pitr is True


def _backup_tier(resources: list[Resource], _: Config) -> Iterator[Finding]:
    vaulted = _vaulted_instances(resources)
    for instance in resources:
        if instance.type != INSTANCE or instance.props.at("masterInstanceName").value:
            continue
        path = f"projects/{instance.project()}/instances/{instance.props.at('name').value}"
        if path in vaulted or _has_standard_backups_with_pitr(instance):
            continue
        yield Finding(
            f"{path} is neither vaulted (no Backup and DR plan association for it) nor covered by "
            "standard automated backups with point-in-time recovery: nothing restores it",
            instance.urn,
        )


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [
        resource_policy(
            name="backupdr-vault-enforced-retention",
            description=(
                "A backup vault keeps every backup at least as long as the exports promise: nobody, "
                "project owners included, can delete a vaulted backup earlier."
            ),
            resource_types=[VAULT],
            checks=[_enforced_retention],
            settings=[
                Setting(
                    "minimum_days",
                    "integer",
                    30,
                    "Smallest minimum enforced retention of a backup vault, in days.",
                    {"minimum": 1},
                )
            ],
            severity=Severity.CRITICAL,
            remediation="Set backup_minimum_enforced_retention_duration to at least the floor, in seconds.",
        ),
        stack_policy(
            name="cloudsql-instance-backup-tier",
            description=(
                "Every primary Cloud SQL instance is backed up by one tier: enhanced (a Backup and DR "
                "plan association) or standard (automated backups plus point-in-time recovery)."
            ),
            resource_types=[INSTANCE, ASSOCIATION],
            check=_backup_tier,
            remediation=(
                "Turn on backup_vault_enabled, or set settings.backup_configuration.enabled and "
                "point_in_time_recovery_enabled to True."
            ),
        ),
        resource_policy(
            name="storage-bucket-object-retention",
            description=(
                "The backup bucket has Object Retention Lock, so each verified export is kept until "
                "its retain-until time, whoever asks to delete it."
            ),
            resource_types=[BUCKET],
            scope=_backup_buckets_only,
            checks=[_object_retention],
            settings=[
                Setting(
                    "required",
                    "boolean",
                    True,
                    "Whether the backup bucket must have object retention enabled.",
                )
            ],
            severity=Severity.HIGH,
            remediation="Create the backup bucket with enable_object_retention=True.",
        ),
    ]
