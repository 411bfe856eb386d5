"""Typed, validated stack settings, loaded from Pulumi config before any resource is registered.

Every key lives in the project namespace (``cloudsql-backups:<key>``) and is declared, with its type,
description and default, in ``Pulumi.yaml``. This module turns the raw values into one
:class:`StackSettings` object, or fails with one message that names every bad key, the value given
and what is allowed.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import json
import math
import re
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal

from croniter import CroniterBadCronError, croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import rto_model
from .database import BackupSchedule, InstanceShape, MaintenanceWindow, NetworkAccess

PROJECT_NAMESPACE = "cloudsql-backups"

# Cloud SQL for PostgreSQL versions the Admin API accepts (SqlDatabaseVersion enum).
POSTGRES_VERSIONS = (
    "POSTGRES_12",
    "POSTGRES_13",
    "POSTGRES_14",
    "POSTGRES_15",
    "POSTGRES_16",
    "POSTGRES_17",
    "POSTGRES_18",
)
# Cloud SQL regions (https://cloud.google.com/sql/docs/postgres/locations).
GCP_REGIONS = frozenset(
    {
        "africa-south1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast2",
        "asia-northeast3",
        "asia-south1",
        "asia-south2",
        "asia-southeast1",
        "asia-southeast2",
        "australia-southeast1",
        "australia-southeast2",
        "europe-central2",
        "europe-north1",
        "europe-north2",
        "europe-southwest1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-west10",
        "europe-west12",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "northamerica-northeast2",
        "northamerica-south1",
        "southamerica-east1",
        "southamerica-west1",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west2",
        "us-west3",
        "us-west4",
    }
)
# Cloud SQL stores backups in a multi-region (asia, eu, us) or any Cloud SQL region, written in
# lowercase as gcloud's --backup-location takes it
# (https://cloud.google.com/sql/docs/postgres/locations,
# https://cloud.google.com/sql/docs/postgres/backup-recovery/backups).
CLOUD_SQL_BACKUP_MULTI_REGIONS = ("asia", "eu", "us")
CLOUD_SQL_BACKUP_LOCATIONS = frozenset(CLOUD_SQL_BACKUP_MULTI_REGIONS) | GCP_REGIONS
# Cloud Storage bucket locations (https://cloud.google.com/storage/docs/locations): the multi-regions
# ASIA, EU and US, the predefined dual-regions ASIA1, EUR4, EUR5, EUR7, EUR8 and NAM4, and the regions
# (the same names as the Cloud SQL regions above). Case does not matter to Cloud Storage.
STORAGE_MULTI_REGIONS = ("ASIA", "EU", "US")
STORAGE_PREDEFINED_DUAL_REGIONS = ("ASIA1", "EUR4", "EUR5", "EUR7", "EUR8", "NAM4")
STORAGE_LOCATIONS = frozenset(
    {*STORAGE_MULTI_REGIONS, *STORAGE_PREDEFINED_DUAL_REGIONS, *(r.upper() for r in GCP_REGIONS)}
)
# Machine types per edition (https://cloud.google.com/sql/docs/postgres/instance-settings and
# https://cloud.google.com/sql/docs/postgres/machine-series-overview): ENTERPRISE takes the shared-core
# tiers and custom db-custom-<vCPUs>-<memory MB>; ENTERPRISE_PLUS only predefined N2 types.
# PostgreSQL takes no predefined db-n1-* tier (pulumi_gcp DatabaseInstanceSettingsArgs.tier: "Postgres
# supports only shared-core machine types, and custom machine types such as `db-custom-2-13312`").
SHARED_CORE_TIERS = ("db-f1-micro", "db-g1-small")
PERF_OPTIMIZED_VCPUS = (2, 4, 8, 16, 32, 48, 64, 80, 96, 128)
PERF_OPTIMIZED_TIERS = tuple(f"db-perf-optimized-N-{n}" for n in PERF_OPTIMIZED_VCPUS)
# Custom machine rules (instance-settings page above): vCPUs 1 or an even number up to 96; memory
# 0.9 to 6.5 GB per vCPU, a multiple of 256 MB and at least 3.75 GB.
CUSTOM_MAX_VCPUS = 96
CUSTOM_MEMORY_STEP_MB = 256
CUSTOM_MEMORY_MIN_MB = 3840
CUSTOM_MEMORY_MB_PER_VCPU = (0.9 * 1024, 6.5 * 1024)
_CUSTOM_TIER = re.compile(r"db-custom-(\d+)-(\d+)")
# Automated backups start any time in a 4-hour window from backup_start_time (UTC)
# (https://cloud.google.com/sql/docs/postgres/backup-recovery/backups).
BACKUP_WINDOW = timedelta(hours=4)
# Maintenance happens in the one-hour window starting at maintenance_hour (UTC) on maintenance_day,
# 1 = Monday (https://cloud.google.com/sql/docs/postgres/maintenance,
# https://cloud.google.com/sql/docs/postgres/admin-api/rest/v1beta4/instances).
MAINTENANCE_WINDOW = timedelta(hours=1)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Cloud Run jobs allow a task timeout of up to 168 hours (7 days).
CLOUD_RUN_MAX_TIMEOUT_HOURS = 168
# Google's recommender flags production instances that keep fewer automated backups than this.
RECOMMENDED_PROD_RETAINED_BACKUPS = 21
# Minimum storage duration per class: deleting earlier is billed as if kept this long.
STORAGE_CLASS_MINIMUM_DAYS = {"STANDARD": 0, "NEARLINE": 30, "COLDLINE": 90, "ARCHIVE": 365}
# Vaulted backups in prod are kept at least as long as the exports promise (30 days).
PROD_VAULT_MIN_DAYS = 30
TRANSACTION_LOG_DAYS_MAX = {"ENTERPRISE": 7, "ENTERPRISE_PLUS": 35}

_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_INSTANCE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,96}[a-z0-9]$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
_NETWORK = re.compile(
    r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/global/networks/[a-z]([-a-z0-9]*[a-z0-9])?$"
)
_KMS_KEY = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
_CHANNEL_ID = re.compile(r"^projects/[^/]+/notificationChannels/\d+$")
_SERVICE_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}@[a-z0-9-]+\.iam\.gserviceaccount\.com$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$")
_SUBNETWORK = re.compile(
    r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/regions/[a-z0-9-]+/subnetworks/[a-z]([-a-z0-9]*[a-z0-9])?$"
)
# The weekly verification's image must be immutable: a digest, never a tag (README "Weekly restore verification").
_IMAGE_DIGEST = re.compile(r"^[a-z0-9.-]+(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$")
# "No passing verification in 8 days" (issue #15); runs must come at most a week apart to stay under it.
RESTORE_VERIFICATION_ALERT_DAYS = 8
_IMAGE_PINNED = re.compile(
    r"^[a-z0-9.-]+(/[a-z0-9._-]+)+(:(\d+\.\d+\.\d+[\w.-]*)|@sha256:[0-9a-f]{64})$"
)


class ConfigError(ValueError):
    """Invalid stack configuration; the message lists every problem, one per line."""


def _matches(pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"allowed: {allowed}")
        return value

    return AfterValidator(check)


def _check_cron(value: str) -> str:
    allowed = (
        "allowed: a 5-field cron expression (minute hour day-of-month month day-of-week, as "
        "Cloud Scheduler reads it) such as '0 23 * * *'"
    )
    try:
        croniter(value)
    except (CroniterBadCronError, ValueError):
        raise ValueError(allowed) from None
    if len(value.split()) != 5:
        raise ValueError(allowed)
    return value


def _check_time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            "allowed: an IANA time zone such as 'Etc/UTC' or 'Europe/Berlin'"
        ) from None
    return value


def _check_cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError("allowed: a CIDR block such as '203.0.113.0/24'") from None
    if network.prefixlen == 0:
        raise ValueError(
            "allowed: a specific CIDR block; a /0 network opens the database to everyone"
        )
    return value


def _strict_bool(value: Any) -> Any:
    # Pulumi hands booleans over as text; pydantic alone would also take 'yes', 'on', '1' or 'f'.
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("allowed: true or false")


def _no_duplicates(values: tuple[str, ...]) -> tuple[str, ...]:
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        listed = ", ".join(repr(value) for value in repeated)
        raise ValueError(f"allowed: each entry once; listed more than once: {listed}")
    return values


def _check_tier(value: str) -> str:
    if value in SHARED_CORE_TIERS or value in PERF_OPTIMIZED_TIERS:
        return value
    custom = _CUSTOM_TIER.fullmatch(value)
    if custom is None:
        raise ValueError(
            "allowed: for edition ENTERPRISE db-custom-<vCPUs>-<memory MB> (such as "
            "'db-custom-2-7680'), db-f1-micro or db-g1-small; for edition ENTERPRISE_PLUS "
            f"db-perf-optimized-N-<vCPUs> with {_spoken(PERF_OPTIMIZED_VCPUS)} vCPUs"
        )
    problem = _custom_machine_problem(int(custom[1]), int(custom[2]))
    if problem:
        raise ValueError(problem)
    return value


def _custom_machine_problem(vcpus: int, memory_mb: int) -> str | None:
    if not (vcpus == 1 or (vcpus % 2 == 0 and 2 <= vcpus <= CUSTOM_MAX_VCPUS)):
        return f"{vcpus} vCPUs: allowed: 1 or an even number from 2 to {CUSTOM_MAX_VCPUS}"
    step = CUSTOM_MEMORY_STEP_MB
    low = max(CUSTOM_MEMORY_MIN_MB, math.ceil(CUSTOM_MEMORY_MB_PER_VCPU[0] * vcpus / step) * step)
    high = math.floor(CUSTOM_MEMORY_MB_PER_VCPU[1] * vcpus / step) * step
    if memory_mb % step or not low <= memory_mb <= high:
        return (
            f"{memory_mb} MB of memory for {vcpus} vCPU{'s' if vcpus > 1 else ''}: allowed: "
            f"{low} to {high} MB in steps of {step} MB (0.9 to 6.5 GB per vCPU, at least "
            f"{CUSTOM_MEMORY_MIN_MB} MB)"
        )
    return None


def _spoken(items: tuple[object, ...]) -> str:
    """'2, 4 or 8'."""
    words = [str(item) for item in items]
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else "".join(words)


def _check_backup_location(value: str) -> str:
    if value not in CLOUD_SQL_BACKUP_LOCATIONS:
        raise ValueError(
            "allowed: a Cloud SQL backup location in lowercase: the multi-region "
            f"{_spoken(CLOUD_SQL_BACKUP_MULTI_REGIONS)}, or a Cloud SQL region such as 'europe-west1'"
        )
    return value


def _check_storage_location(value: str) -> str:
    if value.upper() not in STORAGE_LOCATIONS:
        raise ValueError(
            "allowed: a Cloud Storage location: the multi-region "
            f"{_spoken(STORAGE_MULTI_REGIONS)}, the dual-region "
            f"{_spoken(STORAGE_PREDEFINED_DUAL_REGIONS)}, or a region such as 'EUROPE-WEST1'"
        )
    return value


StrictBool = Annotated[bool, BeforeValidator(_strict_bool)]
ProjectId = Annotated[
    str,
    _matches(
        _PROJECT_ID,
        "a project ID: 6 to 30 lowercase letters, digits and hyphens, starting with a letter "
        "and not ending with a hyphen",
    ),
]
UniqueList = AfterValidator(_no_duplicates)
Tier = Annotated[str, AfterValidator(_check_tier)]
BackupLocation = Annotated[str, AfterValidator(_check_backup_location)]
StorageLocation = Annotated[str, AfterValidator(_check_storage_location)]
InstanceName = Annotated[
    str, _matches(_INSTANCE_NAME, "lowercase letters, digits and hyphens, starting with a letter")
]
BucketName = Annotated[
    str, _matches(_BUCKET_NAME, "a GCS bucket name: 3-63 lowercase letters, digits, '-', '_', '.'")
]
DatabaseName = Annotated[
    str,
    _matches(
        _DATABASE_NAME,
        "a PostgreSQL database name: a letter or '_', then up to 62 letters, digits, '_', '$' or '-'",
    ),
]
NetworkLink = Annotated[str, _matches(_NETWORK, "projects/<project>/global/networks/<network>")]
HourMinute = Annotated[str, _matches(_HH_MM, "a 24-hour UTC time 'HH:MM', such as '02:00'")]
Cron = Annotated[str, AfterValidator(_check_cron)]
TimeZone = Annotated[str, AfterValidator(_check_time_zone)]
Cidr = Annotated[str, AfterValidator(_check_cidr)]
Email = Annotated[str, _matches(_EMAIL, "an email address")]
ServiceAccountEmail = Annotated[
    str,
    _matches(_SERVICE_ACCOUNT, "a service account email (<id>@<project>.iam.gserviceaccount.com)"),
]
ChannelId = Annotated[str, _matches(_CHANNEL_ID, "projects/<project>/notificationChannels/<id>")]


class StackSettings(BaseModel):
    """Everything the program reads, validated. Field names are the config keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Where and what.
    project: ProjectId
    region: str
    environment: Literal["prod", "staging"]
    instance_name: InstanceName
    adopt_existing_instance: StrictBool = False
    database_version: Literal[POSTGRES_VERSIONS] = "POSTGRES_16"  # type: ignore[valid-type]
    edition: Literal["ENTERPRISE", "ENTERPRISE_PLUS"] = "ENTERPRISE"
    tier: Tier = "db-custom-2-7680"
    availability_type: Literal["REGIONAL", "ZONAL"] = "REGIONAL"
    disk_size_gb: int = Field(default=50, ge=10, le=65536)
    # Backups and recovery.
    backup_start_time: HourMinute = "02:00"
    backup_location: BackupLocation = "us"
    retained_backups: int = Field(default=30, ge=7, le=365)
    point_in_time_recovery: StrictBool = True
    transaction_log_retention_days: int = Field(default=7, ge=1, le=35)
    final_backup_retention_days: int = Field(default=30, ge=1, le=365)
    deletion_protection: StrictBool = True
    # Enhanced backups (Backup and DR): a vault whose minimum retention not even an owner can shorten.
    backup_vault_enabled: StrictBool = True
    backup_vault_project: str = ""
    backup_vault_min_retention_days: int = Field(default=30, ge=1, le=36500)
    maintenance_day: int = Field(default=7, ge=1, le=7)
    maintenance_hour: int = Field(default=4, ge=0, le=23)
    # Network and TLS.
    vpc_network: NetworkLink
    public_ip_enabled: StrictBool = False
    authorized_networks: Annotated[tuple[Cidr, ...], UniqueList] = ()
    ssl_mode: Literal["ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"] = "ENCRYPTED_ONLY"
    # Backup bucket for logical exports.
    backup_bucket_name: BucketName
    backup_bucket_location: StorageLocation = "US"
    backup_storage_class: Literal["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"] = "NEARLINE"
    backup_object_retention_days: int = Field(default=30, ge=1, le=3650)
    noncurrent_version_retention_days: int = Field(default=30, ge=1, le=365)
    soft_delete_retention_days: int = Field(default=7, ge=7, le=90)
    backup_bucket_kms_key: str = ""
    # Cloud SQL service account of the instance that imports this stack's exports in restore
    # drills (staging's serviceAccountEmailAddress); '' = none. Read access to cloudsql/ only.
    restore_import_service_account: str = ""
    # Object Retention Lock on each verified export: Locked (permanent), Unlocked (adjustable), none.
    export_retention_mode: Literal["Locked", "Unlocked", "none"] = "Locked"
    offsite_bucket_name: str = ""
    offsite_bucket_project: str = ""
    # Scheduled export.
    export_databases: Annotated[tuple[DatabaseName, ...], UniqueList] = Field(min_length=1)
    export_schedule: Cron = "0 23 * * *"
    export_time_zone: TimeZone = "Etc/UTC"
    export_offload: StrictBool = False
    # sql.gz: one gzip SQL file per database; parallel: a pg_dump directory dump written with
    # `gcloud sql export sql --parallel` (README "Performance"). Threads 0: Cloud SQL's default.
    export_format: Literal["sql.gz", "parallel"] = "sql.gz"
    export_threads: int = Field(default=0, ge=0, le=max(PERF_OPTIMIZED_VCPUS))
    # The restore time the stack must fit; preview warns when the model predicts more.
    target_rto_minutes: int = Field(default=240, ge=15, le=10080)
    export_timeout_hours: int = Field(default=6, ge=1, le=CLOUD_RUN_MAX_TIMEOUT_HOURS)
    export_max_retries: int = Field(default=1, ge=0, le=10)
    # Google keeps Cloud SDK image versions for one year: move this pin forward at least yearly.
    export_image: str = "gcr.io/google.com/cloudsdktool/google-cloud-cli:576.0.0-slim"
    dashboard_bucket: str = ""
    # Weekly restore verification (staging stack: restores the newest exports into this instance).
    restore_verification_enabled: StrictBool = False
    restore_verification_image: str = ""
    restore_verification_schedule: Cron = "0 7 * * 1"
    restore_verification_source_bucket: str = ""
    restore_verification_source_instance: str = ""
    restore_verification_databases: Annotated[tuple[DatabaseName, ...], UniqueList] = ()
    restore_verification_subnetwork: str = ""
    restore_verification_timeout_hours: int = Field(default=6, ge=1, le=CLOUD_RUN_MAX_TIMEOUT_HOURS)
    # The staging verifier's service account, allowed to list this stack's exports; '' = none.
    restore_verification_service_account: str = ""
    # Alerting.
    notification_emails: Annotated[tuple[Email, ...], UniqueList] = ()
    notification_channel_ids: Annotated[tuple[ChannelId, ...], UniqueList] = ()
    export_staleness_hours: int = Field(default=36, ge=1, le=720)
    disk_utilization_alert_percent: int = Field(default=85, ge=50, le=99)
    # CI identity (Workload Identity Federation for GitHub Actions); empty = not managed here.
    github_repository: str = ""
    # Who may read backup objects without paging (the export job's account always may).
    expected_backup_readers: Annotated[tuple[ServiceAccountEmail, ...], UniqueList] = ()

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value not in GCP_REGIONS:
            raise ValueError("allowed: a Cloud SQL region such as 'us-central1' or 'europe-west1'")
        return value

    @field_validator("backup_bucket_kms_key")
    @classmethod
    def _kms_key_path(cls, value: str) -> str:
        if value and not _KMS_KEY.fullmatch(value):
            raise ValueError(
                "allowed: '' or projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>"
            )
        return value

    @field_validator("restore_import_service_account")
    @classmethod
    def _service_account_email(cls, value: str) -> str:
        if value and not _SERVICE_ACCOUNT.fullmatch(value):
            raise ValueError(
                "allowed: '' or a service account email such as "
                "'p123456789012-abcdef@gcp-sa-cloud-sql.iam.gserviceaccount.com' "
                "(gcloud sql instances describe STAGING --format='value(serviceAccountEmailAddress)')"
            )
        return value

    @field_validator("restore_verification_service_account")
    @classmethod
    def _verifier_account(cls, value: str) -> str:
        if value and not _SERVICE_ACCOUNT.fullmatch(value):
            raise ValueError(
                "allowed: '' or the staging stack's verifier, e.g. "
                "'sql-verify-job-staging@acme-staging.iam.gserviceaccount.com'"
            )
        return value

    @field_validator("restore_verification_image")
    @classmethod
    def _image_digest(cls, value: str) -> str:
        if value and not _IMAGE_DIGEST.fullmatch(value):
            raise ValueError(
                "allowed: '' or an image pinned by digest, REGISTRY/PATH@sha256:<64 hex> "
                "(a tag can be moved; the digest is what CI's build printed)"
            )
        return value

    @field_validator("restore_verification_source_bucket")
    @classmethod
    def _source_bucket(cls, value: str) -> str:
        if value and not _BUCKET_NAME.fullmatch(value):
            raise ValueError("allowed: '' (this stack's backup bucket) or a GCS bucket name")
        return value

    @field_validator("restore_verification_source_instance")
    @classmethod
    def _source_instance(cls, value: str) -> str:
        if value and not _INSTANCE_NAME.fullmatch(value):
            raise ValueError("allowed: '' (this stack's instance) or a Cloud SQL instance name")
        return value

    @field_validator("restore_verification_subnetwork")
    @classmethod
    def _subnetwork(cls, value: str) -> str:
        if value and not _SUBNETWORK.fullmatch(value):
            raise ValueError(
                "allowed: '' (the subnet named like vpc_network) or "
                "projects/<project>/regions/<region>/subnetworks/<name>"
            )
        return value

    @field_validator("backup_vault_project", "offsite_bucket_project")
    @classmethod
    def _optional_project(cls, value: str) -> str:
        if value and not _PROJECT_ID.fullmatch(value):
            raise ValueError(
                "allowed: '' or a project ID (6-30 lowercase letters, digits, hyphens)"
            )
        return value

    @field_validator("offsite_bucket_name")
    @classmethod
    def _offsite_bucket_name(cls, value: str) -> str:
        if value and not _BUCKET_NAME.fullmatch(value):
            raise ValueError("allowed: '' (no off-project copy) or a GCS bucket name without gs://")
        return value

    @field_validator("dashboard_bucket")
    @classmethod
    def _dashboard_bucket_name(cls, value: str) -> str:
        if value and not _BUCKET_NAME.fullmatch(value):
            raise ValueError("allowed: '' (not backed up) or a GCS bucket name without gs://")
        return value

    @field_validator("export_image")
    @classmethod
    def _pinned_image(cls, value: str) -> str:
        if not _IMAGE_PINNED.fullmatch(value):
            raise ValueError(
                "allowed: an image pinned to a version tag (e.g. ':576.0.0-slim') or a digest"
            )
        return value

    @field_validator("github_repository")
    @classmethod
    def _github_repository(cls, value: str) -> str:
        if value and not _GITHUB_REPO.fullmatch(value):
            raise ValueError("allowed: '' or 'owner/name'")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> StackSettings:
        stack = (info.context or {}).get("stack")
        problems = [
            problem
            for check in (
                _edition_fits_tier,
                _transaction_logs_fit_edition,
                _backups_outlast_transaction_logs,
                _public_ip_needs_authorized_networks,
                _storage_class_fits_retention,
                _vault_keeps_the_export_promise,
                _prod_exports_retention_locked,
                _offsite_copy_in_another_project,
                _prod_guards,
                _prod_has_notification_target,
                _staleness_exceeds_export_interval,
                _export_outside_backup_window,
                _export_outside_maintenance_window,
                _export_threads_fit,
                _restore_verification_complete,
            )
            if (problem := check(self)) is not None
        ]
        if stack is not None and (problem := _environment_matches_stack(self, stack)):
            problems.insert(0, problem)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    def warnings(self) -> list[str]:
        """Allowed but questionable settings, shown as warnings at preview."""
        found = []
        if self.is_prod and self.retained_backups < RECOMMENDED_PROD_RETAINED_BACKUPS:
            found.append(
                f"{PROJECT_NAMESPACE}:retained_backups = {self.retained_backups}: Google's recommender "
                f"flags production instances that keep fewer than {RECOMMENDED_PROD_RETAINED_BACKUPS}."
            )
        if self.is_prod and self.export_retention_mode == "Unlocked":
            found.append(
                f"{PROJECT_NAMESPACE}:export_retention_mode = Unlocked: anyone with "
                "storage.objects.overrideUnlockedRetention can still delete prod exports early; use Locked."
            )
        found += [
            warning
            for warning in (self._rto_warning(), self._export_time_warning())
            if warning is not None
        ]
        if self.is_prod and not self.backup_vault_enabled:
            found.append(
                f"{PROJECT_NAMESPACE}:backup_vault_enabled = false: prod's automated backups can be "
                "deleted with the project; see README 'Vaulted backups'."
            )
        return found

    @property
    def vcpus(self) -> int:
        return rto_model.tier_vcpus(self.tier)

    @property
    def expected_database_gb(self) -> float:
        """The largest database the disk holds before the disk alert fires."""
        return self.disk_size_gb * self.disk_utilization_alert_percent / 100

    def _export_time_warning(self) -> str | None:
        """The export of a database filling the disk should fit the task timeout."""
        database_gb = self.expected_database_gb
        minutes = rto_model.export_minutes(
            self.export_format, database_gb, self.vcpus, self.export_threads
        )
        if minutes <= self.export_timeout_hours * 60:
            return None
        faster = ""
        if self.export_format == "sql.gz":
            parallel = rto_model.export_minutes("parallel", database_gb, self.vcpus)
            faster = f"; export_format = parallel is expected to take {parallel:.0f} min"
        return (
            f"{PROJECT_NAMESPACE}:export_timeout_hours = {self.export_timeout_hours}: exporting a "
            f"{database_gb:g} GB database as {self.export_format} is expected to take {minutes:.0f} min "
            f"(README 'Performance'){faster}."
        )

    def _rto_warning(self) -> str | None:
        expected = rto_model.estimate(self.expected_database_gb, self.vcpus)
        minutes = expected.minutes[self.export_format]
        if minutes <= self.target_rto_minutes:
            return None
        size = f"{expected.database_gb:g} GB ({self.disk_utilization_alert_percent} % of disk_size_gb = {self.disk_size_gb})"
        advice = (
            f"use {PROJECT_NAMESPACE}:export_format = parallel (expected {expected.minutes['parallel']:.0f} min)"
            if expected.fastest != self.export_format
            else "a larger tier (more vCPUs for pg_restore --jobs), a point-in-time clone instead of an import, or a higher target"
        )
        return (
            f"{PROJECT_NAMESPACE}:target_rto_minutes = {self.target_rto_minutes}: restoring a {size} database "
            f"from its {self.export_format} export is expected to take {minutes:.0f} min on {self.vcpus} vCPU(s) "
            f"(README 'Performance'); {advice}."
        )

    @property
    def vault_project(self) -> str:
        """Where the backup vault lives: its own project if one is named, else the stack's."""
        return self.backup_vault_project or self.project

    # The instance's settings in the groups DatabaseInstance takes.
    @property
    def instance_shape(self) -> InstanceShape:
        return InstanceShape(
            database_version=self.database_version,
            edition=self.edition,
            tier=self.tier,
            availability_type=self.availability_type,
            disk_size_gb=self.disk_size_gb,
        )

    @property
    def backup_schedule(self) -> BackupSchedule:
        return BackupSchedule(
            start_time=self.backup_start_time,
            location=self.backup_location,
            retained_backups=self.retained_backups,
            point_in_time_recovery=self.point_in_time_recovery,
            transaction_log_retention_days=self.transaction_log_retention_days,
            final_backup_retention_days=self.final_backup_retention_days,
            vaulted=self.backup_vault_enabled,
        )

    @property
    def network_access(self) -> NetworkAccess:
        return NetworkAccess(
            vpc_network=self.vpc_network,
            ssl_mode=self.ssl_mode,
            public_ip_enabled=self.public_ip_enabled,
            authorized_networks=self.authorized_networks,
        )

    @property
    def maintenance_window(self) -> MaintenanceWindow:
        return MaintenanceWindow(day=self.maintenance_day, hour=self.maintenance_hour)


def _environment_matches_stack(s: StackSettings, stack: str) -> str | None:
    # Prod-only guards key on `environment`: a prod stack that says 'staging' would turn them off.
    if stack == s.environment or stack.startswith(f"{s.environment}-"):
        return None
    return (
        f"{PROJECT_NAMESPACE}:environment = {s.environment!r} does not match the stack {stack!r}: "
        "allowed: the stack's name or the part of it before the first '-' (a stack named 'prod' "
        "or 'prod-eu' says prod, 'staging' or 'staging-2' says staging)"
    )


def _export_threads_fit(s: StackSettings) -> str | None:
    """Threads mean pg_dump --jobs of a parallel export: nothing else reads them, and each job is a
    process and a connection on the instance (pg_dump opens jobs + 1 connections), so more jobs
    than the instance's vCPUs only compete with each other and with the application."""
    if s.export_threads and s.export_format != "parallel":
        return (
            f"{PROJECT_NAMESPACE}:export_threads = {s.export_threads} needs export_format = parallel "
            f"(export_format is {s.export_format!r}): allowed: 0 with sql.gz, or set export_format = parallel"
        )
    if s.export_threads > s.vcpus:
        return (
            f"{PROJECT_NAMESPACE}:export_threads = {s.export_threads} is more than the {s.vcpus} vCPU(s) of "
            f"tier {s.tier!r}: allowed: 0 (Cloud SQL's default) or 1 to {s.vcpus}"
        )
    return None


def _edition_fits_tier(s: StackSettings) -> str | None:
    if s.edition == "ENTERPRISE_PLUS" and s.tier not in PERF_OPTIMIZED_TIERS:
        return (
            f"{PROJECT_NAMESPACE}:tier = {s.tier!r} does not fit edition ENTERPRISE_PLUS: allowed: "
            f"db-perf-optimized-N-<vCPUs> with {_spoken(PERF_OPTIMIZED_VCPUS)} vCPUs; use edition "
            "ENTERPRISE for db-custom and shared-core tiers"
        )
    if s.edition == "ENTERPRISE" and s.tier in PERF_OPTIMIZED_TIERS:
        return f"{PROJECT_NAMESPACE}:tier = {s.tier!r} needs edition ENTERPRISE_PLUS"
    return None


def _backups_outlast_transaction_logs(s: StackSettings) -> str | None:
    # Cloud SQL refuses the instance otherwise: "backup retention should be > transaction log
    # retention" (terraform-google-modules/terraform-google-sql-db#785 quotes the API error).
    if s.retained_backups > s.transaction_log_retention_days:
        return None
    return (
        f"{PROJECT_NAMESPACE}:retained_backups = {s.retained_backups} is not greater than "
        f"{PROJECT_NAMESPACE}:transaction_log_retention_days = {s.transaction_log_retention_days}: "
        "Cloud SQL refuses it (backup retention should be > transaction log retention); allowed: "
        f"retained_backups of at least {s.transaction_log_retention_days + 1}, or fewer "
        "transaction-log days"
    )


def _transaction_logs_fit_edition(s: StackSettings) -> str | None:
    limit = TRANSACTION_LOG_DAYS_MAX[s.edition]
    if s.transaction_log_retention_days > limit:
        return (
            f"{PROJECT_NAMESPACE}:transaction_log_retention_days = {s.transaction_log_retention_days}: "
            f"allowed 1..{limit} for edition {s.edition}"
        )
    return None


def _public_ip_needs_authorized_networks(s: StackSettings) -> str | None:
    if s.public_ip_enabled and not s.authorized_networks:
        return (
            f"{PROJECT_NAMESPACE}:public_ip_enabled = true needs {PROJECT_NAMESPACE}:authorized_networks: "
            "allowed: a non-empty list of specific CIDR blocks"
        )
    if not s.public_ip_enabled and s.authorized_networks:
        return f"{PROJECT_NAMESPACE}:authorized_networks is set but public_ip_enabled = false: remove it"
    return None


def _storage_class_fits_retention(s: StackSettings) -> str | None:
    minimum = STORAGE_CLASS_MINIMUM_DAYS[s.backup_storage_class]
    if s.backup_object_retention_days < minimum:
        return (
            f"{PROJECT_NAMESPACE}:backup_storage_class = {s.backup_storage_class} has a {minimum}-day minimum "
            f"storage duration, longer than backup_object_retention_days = {s.backup_object_retention_days}: "
            "every deletion would be billed early; allowed: STANDARD or NEARLINE for a 30-day retention"
        )
    return None


def _vault_keeps_the_export_promise(s: StackSettings) -> str | None:
    if (
        s.is_prod
        and s.backup_vault_enabled
        and s.backup_vault_min_retention_days < PROD_VAULT_MIN_DAYS
    ):
        return (
            f"{PROJECT_NAMESPACE}:backup_vault_min_retention_days = {s.backup_vault_min_retention_days} "
            f"is shorter than the {PROD_VAULT_MIN_DAYS} days prod's backups are promised to be kept; "
            f"allowed: {PROD_VAULT_MIN_DAYS} or more in prod"
        )
    return None


def _prod_exports_retention_locked(s: StackSettings) -> str | None:
    if s.is_prod and s.export_retention_mode == "none":
        return (
            f"{PROJECT_NAMESPACE}:export_retention_mode = none is not allowed in prod: "
            "allowed: Locked (or Unlocked)"
        )
    return None


def _offsite_copy_in_another_project(s: StackSettings) -> str | None:
    if bool(s.offsite_bucket_name) != bool(s.offsite_bucket_project):
        return (
            f"{PROJECT_NAMESPACE}:offsite_bucket_name and offsite_bucket_project go together: "
            "allowed: both empty (no off-project copy) or both set"
        )
    if s.offsite_bucket_project and s.offsite_bucket_project == s.project:
        return (
            f"{PROJECT_NAMESPACE}:offsite_bucket_project = {s.offsite_bucket_project!r} is the stack's own "
            "project: a copy there does not survive the loss of the project; allowed: another project"
        )
    return None


def _prod_guards(s: StackSettings) -> str | None:
    if not s.is_prod:
        return None
    if not s.deletion_protection:
        return (
            f"{PROJECT_NAMESPACE}:deletion_protection = false is not allowed in prod: allowed: true"
        )
    if not s.point_in_time_recovery:
        return f"{PROJECT_NAMESPACE}:point_in_time_recovery = false is not allowed in prod: allowed: true"
    if s.availability_type != "REGIONAL":
        return f"{PROJECT_NAMESPACE}:availability_type = {s.availability_type} is not allowed in prod: allowed: REGIONAL"
    return None


def _prod_has_notification_target(s: StackSettings) -> str | None:
    if s.is_prod and not (s.notification_emails or s.notification_channel_ids):
        return (
            f"{PROJECT_NAMESPACE}:notification_emails and notification_channel_ids are both empty: "
            "prod needs at least one notification target for backup alerts"
        )
    return None


def _staleness_exceeds_export_interval(s: StackSettings) -> str | None:
    interval = longest_cron_interval(s.export_schedule, s.export_time_zone)
    if timedelta(hours=s.export_staleness_hours) <= interval:
        hours = interval.total_seconds() / 3600
        return (
            f"{PROJECT_NAMESPACE}:export_staleness_hours = {s.export_staleness_hours} is not longer than the "
            f"longest gap between scheduled exports ({hours:g} h for '{s.export_schedule}'): the alert would "
            "fire between healthy runs; allowed: more than that gap"
        )
    return None


def _restore_verification_complete(s: StackSettings) -> str | None:
    """The verification writes scratch databases into this stack's instance: staging only, with an
    immutable image, often enough that a healthy week never trips the no-pass alert."""
    if not s.restore_verification_enabled:
        return None
    key = f"{PROJECT_NAMESPACE}:restore_verification"
    if s.is_prod:
        return (
            f"{key}_enabled = true in a prod stack: the verification restores into this stack's "
            "instance, which must be the staging instance; enable it in the staging stack and set "
            f"prod's {PROJECT_NAMESPACE}:restore_verification_service_account to its verifier"
        )
    if not s.restore_verification_image:
        return f"{key}_image is empty: allowed: the image CI built, pinned by digest (@sha256:...)"
    interval = longest_cron_interval(s.restore_verification_schedule, s.export_time_zone)
    if interval > timedelta(days=RESTORE_VERIFICATION_ALERT_DAYS - 1):
        return (
            f"{key}_schedule = '{s.restore_verification_schedule}' leaves up to "
            f"{interval.total_seconds() / 86400:g} days between runs; allowed: at most weekly, so a "
            f"failed run can be retried before the {RESTORE_VERIFICATION_ALERT_DAYS}-day no-pass alert"
        )
    return None


def _export_outside_backup_window(s: StackSettings) -> str | None:
    if s.export_offload:
        return None
    opens = time.fromisoformat(s.backup_start_time)
    run = first_run_in_window(
        s.export_schedule, s.export_time_zone, opens.hour, opens.minute, BACKUP_WINDOW
    )
    if run is None:
        return None
    return _collision(
        s,
        run,
        f"the automated-backup window {_window(opens.hour, opens.minute, BACKUP_WINDOW)} set by "
        f"{PROJECT_NAMESPACE}:backup_start_time = {s.backup_start_time!r} (a backup may start any "
        "time in the 4 hours from it, and fails while an export holds the instance)",
        _window(opens.hour, opens.minute, BACKUP_WINDOW),
    )


def _export_outside_maintenance_window(s: StackSettings) -> str | None:
    if s.export_offload:
        return None
    run = first_run_in_window(
        s.export_schedule,
        s.export_time_zone,
        s.maintenance_hour,
        0,
        MAINTENANCE_WINDOW,
        weekday=s.maintenance_day,
    )
    if run is None:
        return None
    window = (
        f"{WEEKDAYS[s.maintenance_day - 1]} {_window(s.maintenance_hour, 0, MAINTENANCE_WINDOW)}"
    )
    return _collision(
        s,
        run,
        f"the maintenance window {window} set by {PROJECT_NAMESPACE}:maintenance_day = "
        f"{s.maintenance_day} and {PROJECT_NAMESPACE}:maintenance_hour = {s.maintenance_hour} "
        "(maintenance restarts the instance under a running export)",
        window,
    )


def _collision(s: StackSettings, run: datetime, inside: str, window: str) -> str:
    return (
        f"{PROJECT_NAMESPACE}:export_schedule = {s.export_schedule!r} in {s.export_time_zone} starts "
        f"exports inside {inside}, the first at {run:%Y-%m-%d %H:%M} UTC; allowed: a schedule whose every "
        f"run starts outside {window}, or {PROJECT_NAMESPACE}:export_offload = true (a serverless "
        "export runs on a temporary instance and leaves the primary free)"
    )


def _window(hour: int, minute: int, length: timedelta) -> str:
    opens = datetime(2000, 1, 1, hour, minute)
    return f"{opens:%H:%M} to {opens + length:%H:%M} UTC"


# A year from a fixed date covers every weekday and both daylight-saving changes of any time zone.
_SCAN_FROM = datetime(2026, 1, 1, tzinfo=UTC)
_SCAN_DAYS = 371


@functools.cache
def first_run_in_window(
    schedule: str,
    time_zone: str,
    hour: int,
    minute: int,
    length: timedelta,
    weekday: int | None = None,
) -> datetime | None:
    """The first run of ``schedule`` (a cron in ``time_zone``) over a year that starts inside the
    window opening daily at ``hour:minute`` UTC for ``length`` (only on ISO ``weekday`` if given),
    in UTC; ``None`` when no run does."""
    zone = zoneinfo.ZoneInfo(time_zone)
    for day in range(_SCAN_DAYS):
        opens = _SCAN_FROM + timedelta(days=day, hours=hour, minutes=minute)
        if weekday is not None and opens.isoweekday() != weekday:
            continue
        # croniter returns the first run strictly after its start: start just before the window.
        runs = croniter(schedule, (opens - timedelta(seconds=1)).astimezone(zone))
        run: datetime = runs.get_next(datetime).astimezone(UTC)
        if run < opens + length:
            return run
    return None


@functools.cache
def longest_cron_interval(schedule: str, time_zone: str, samples: int = 400) -> timedelta:
    """The longest gap between consecutive runs of ``schedule`` over the next ``samples`` runs."""
    start = datetime(2026, 1, 1, tzinfo=UTC).astimezone(zoneinfo.ZoneInfo(time_zone))
    runs = croniter(schedule, start)
    previous = runs.get_next(datetime)
    longest = timedelta(0)
    for _ in range(samples):
        current = runs.get_next(datetime)
        longest = max(longest, current - previous)
        previous = current
    return longest


# Keys that Pulumi config holds as JSON arrays: every list-typed setting.
_LIST_KEYS = frozenset(
    name
    for name, field in StackSettings.model_fields.items()
    if typing.get_origin(field.annotation) is tuple
)
# Keys read from the gcp namespace; everything else in the project namespace is a StackSettings field.
_GCP_KEYS = ("project", "region")

# Pydantic's own sentences, said in words for the config keys they concern.
_PLAIN_MESSAGES = {
    "missing": "required: set it in the stack file",
    "tuple_type": "allowed: a list (a YAML sequence, one '- item' per line), not a single value",
    "list_type": "allowed: a list (a YAML sequence, one '- item' per line), not a single value",
    "too_short": "allowed: a list with at least one entry",
    "string_type": "allowed: a single text value, not a list or object",
}


def parse_settings(raw: Mapping[str, Any], stack: str | None = None) -> StackSettings:
    """Validate raw config values (strings, or lists for array keys) into settings.

    ``stack`` is the stack's name; when given, ``environment`` must agree with it.
    Raises :class:`ConfigError` naming every bad key, the value given and what is allowed.
    """
    try:
        return StackSettings.model_validate(dict(raw), context={"stack": stack})
    except ValidationError as error:
        raise ConfigError(_describe(error, raw)) from None


def _describe(error: ValidationError, raw: Mapping[str, Any]) -> str:
    lines = ["Invalid stack configuration:"]
    problems = error.errors()
    # A list whose entries are all refused also counts as too short: its entries say why.
    with_bad_entries = {str(p["loc"][0]) for p in problems if len(p["loc"]) > 1}
    for problem in problems:
        location = [str(part) for part in problem["loc"]]
        if problem["type"] == "too_short" and location[0] in with_bad_entries:
            continue
        message = problem["msg"].removeprefix("Value error, ")
        if not location:
            lines.extend(f"  - {part}" for part in message.split("\n"))
            continue
        key = location[0]
        value = raw.get(key, "<not set>") if problem["type"] != "missing" else "<not set>"
        if problem["type"] == "extra_forbidden":
            message = _unknown_key(key)
        elif problem["type"] == "literal_error":
            message = f"allowed: {problem.get('ctx', {}).get('expected', '')}"
        elif (allowed := _numeric_range(key)) is not None:
            message = f"allowed: {allowed}"
        elif problem["type"] in _PLAIN_MESSAGES:
            message = _PLAIN_MESSAGES[problem["type"]]
        namespace = "gcp" if key in _GCP_KEYS else PROJECT_NAMESPACE
        full_key = ".".join(location) if ":" in key else f"{namespace}:{'.'.join(location)}"
        lines.append(f"  - {full_key} = {value!r}: {message}")
    return "\n".join(lines)


def _unknown_key(key: str) -> str:
    declared = [name for name in StackSettings.model_fields if name not in _GCP_KEYS]
    close = difflib.get_close_matches(key, declared, n=1)
    short = key.rpartition(":")[2]
    if short in _GCP_KEYS:
        hint = f"did you mean gcp:{short}?"
    elif close:
        hint = f"did you mean {PROJECT_NAMESPACE}:{close[0]}?"
    else:
        hint = "check the spelling"
    return (
        f"unknown key, not read by this program ({hint}); allowed: the keys declared in "
        "Pulumi.yaml, listed in the README's config reference"
    )


def _numeric_range(key: str) -> str | None:
    """'an integer from 7 to 365' for a bounded integer field, else None."""
    field = StackSettings.model_fields.get(key)
    if field is None or field.annotation is not int:
        return None
    bounds = {
        name: getattr(item, name)
        for item in field.metadata
        for name in ("ge", "le")
        if hasattr(item, name)
    }
    if {"ge", "le"} <= bounds.keys():
        return f"an integer from {bounds['ge']} to {bounds['le']}"
    return None


@dataclass(frozen=True)
class RawConfig:
    """Raw values as Pulumi passes them: every key of the project namespace (declared or not, so a
    misspelt key is refused rather than ignored) plus gcp:project and gcp:region."""

    values: dict[str, Any]

    @classmethod
    def from_pulumi(cls) -> RawConfig:
        import pulumi  # noqa: PLC0415 - only the live program needs the runtime

        # The SDK has no public call that lists config keys. The CLI's language host hands the
        # program its whole config as JSON in PULUMI_CONFIG (pulumiConfigVar in
        # github.com/pulumi/pulumi sdk/python/cmd/pulumi-language-python/main.go);
        # `pulumi.runtime.set_all_config` (mocks, automation API) fills the runtime's map. Read
        # both, as `pulumi.Config` does (pulumi/runtime/config.py get_config).
        config = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
        prefix = f"{PROJECT_NAMESPACE}:"
        values: dict[str, Any] = {
            # gcp:project and gcp:region fill `project` and `region`; the same names in this
            # namespace keep their prefix, so they are refused as unknown instead of used.
            (key if key.removeprefix(prefix) in _GCP_KEYS else key.removeprefix(prefix)): (
                _list_or_text(key.removeprefix(prefix), value)
            )
            for key, value in config.items()
            if key.startswith(prefix)
        }
        gcp_config = pulumi.Config("gcp")
        for key in _GCP_KEYS:
            if (value := gcp_config.get(key)) is not None:
                values[key] = value
        return cls(values)


def _list_or_text(key: str, value: Any) -> Any:
    """A list key's JSON array as a list; anything else as given, for the validators to judge."""
    if key in _LIST_KEYS and isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        return parsed if isinstance(parsed, list) else value
    return value


def load_settings() -> StackSettings:
    """Read and validate this stack's config (the program's first step)."""
    import pulumi  # noqa: PLC0415 - only the live program needs the runtime

    return parse_settings(RawConfig.from_pulumi().values, stack=pulumi.get_stack())
