"""Typed, validated stack settings, loaded from Pulumi config before any resource is registered.

Every key lives in the project namespace (``cloudsql-backups:<key>``) and is declared, with its type,
description and default, in ``Pulumi.yaml``. This module turns the raw values into one
:class:`StackSettings` object, or fails with one message that names every bad key, the value given
and what is allowed.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from croniter import CroniterBadCronError, croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

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
# Cloud Run jobs allow a task timeout of up to 168 hours (7 days).
CLOUD_RUN_MAX_TIMEOUT_HOURS = 168
# Google's recommender flags production instances that keep fewer automated backups than this.
RECOMMENDED_PROD_RETAINED_BACKUPS = 21
# Minimum storage duration per class: deleting earlier is billed as if kept this long.
STORAGE_CLASS_MINIMUM_DAYS = {"STANDARD": 0, "NEARLINE": 30, "COLDLINE": 90, "ARCHIVE": 365}
# Vaulted backups in prod are kept at least as long as the exports promise (30 days).
PROD_VAULT_MIN_DAYS = 30
TRANSACTION_LOG_DAYS_MAX = {"ENTERPRISE": 7, "ENTERPRISE_PLUS": 35}

_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_INSTANCE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,96}[a-z0-9]$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
_NETWORK = re.compile(
    r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/global/networks/[a-z]([-a-z0-9]*[a-z0-9])?$"
)
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_KMS_KEY = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
_CHANNEL_ID = re.compile(r"^projects/[^/]+/notificationChannels/\d+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$")
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
    try:
        croniter(value)
    except (CroniterBadCronError, ValueError) as error:
        raise ValueError(
            f"allowed: a 5-field cron expression such as '0 3 * * *' ({error})"
        ) from None
    if len(value.split()) != 5:
        raise ValueError("allowed: a 5-field cron expression such as '0 3 * * *' (Cloud Scheduler)")
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


InstanceName = Annotated[
    str, _matches(_INSTANCE_NAME, "lowercase letters, digits and hyphens, starting with a letter")
]
BucketName = Annotated[
    str, _matches(_BUCKET_NAME, "a GCS bucket name: 3-63 lowercase letters, digits, '-', '_', '.'")
]
DatabaseName = Annotated[str, _matches(_DATABASE_NAME, "a PostgreSQL database name")]
NetworkLink = Annotated[str, _matches(_NETWORK, "projects/<project>/global/networks/<network>")]
HourMinute = Annotated[str, _matches(_HH_MM, "a 24-hour UTC time 'HH:MM', such as '02:00'")]
Cron = Annotated[str, AfterValidator(_check_cron)]
TimeZone = Annotated[str, AfterValidator(_check_time_zone)]
Cidr = Annotated[str, AfterValidator(_check_cidr)]
Email = Annotated[str, _matches(_EMAIL, "an email address")]
ChannelId = Annotated[str, _matches(_CHANNEL_ID, "projects/<project>/notificationChannels/<id>")]


class StackSettings(BaseModel):
    """Everything the program reads, validated. Field names are the config keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Where and what.
    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    region: str
    environment: Literal["prod", "staging"]
    instance_name: InstanceName
    adopt_existing_instance: bool = False
    database_version: Literal[POSTGRES_VERSIONS] = "POSTGRES_16"  # type: ignore[valid-type]
    edition: Literal["ENTERPRISE", "ENTERPRISE_PLUS"] = "ENTERPRISE"
    tier: str = Field(default="db-custom-2-7680", pattern=r"^db-[A-Za-z0-9-]+$")
    availability_type: Literal["REGIONAL", "ZONAL"] = "REGIONAL"
    disk_size_gb: int = Field(default=50, ge=10, le=65536)
    # Backups and recovery.
    backup_start_time: HourMinute = "02:00"
    backup_location: str = Field(default="us", pattern=r"^[a-z0-9-]+$")
    retained_backups: int = Field(default=30, ge=7, le=365)
    point_in_time_recovery: bool = True
    transaction_log_retention_days: int = Field(default=7, ge=1, le=35)
    final_backup_retention_days: int = Field(default=30, ge=1, le=365)
    deletion_protection: bool = True
    # Enhanced backups (Backup and DR): a vault whose minimum retention not even an owner can shorten.
    backup_vault_enabled: bool = True
    backup_vault_project: str = ""
    backup_vault_min_retention_days: int = Field(default=30, ge=1, le=36500)
    maintenance_day: int = Field(default=7, ge=1, le=7)
    maintenance_hour: int = Field(default=4, ge=0, le=23)
    # Network and TLS.
    vpc_network: NetworkLink
    public_ip_enabled: bool = False
    authorized_networks: tuple[Cidr, ...] = ()
    ssl_mode: Literal["ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"] = "ENCRYPTED_ONLY"
    # Backup bucket for logical exports.
    backup_bucket_name: BucketName
    backup_bucket_location: str = Field(default="US", pattern=r"^[A-Za-z0-9-]+$")
    backup_storage_class: Literal["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"] = "NEARLINE"
    backup_object_retention_days: int = Field(default=30, ge=1, le=3650)
    noncurrent_version_retention_days: int = Field(default=30, ge=1, le=365)
    soft_delete_retention_days: int = Field(default=7, ge=7, le=90)
    backup_bucket_kms_key: str = ""
    # Object Retention Lock on each verified export: Locked (permanent), Unlocked (adjustable), none.
    export_retention_mode: Literal["Locked", "Unlocked", "none"] = "Locked"
    offsite_bucket_name: str = ""
    offsite_bucket_project: str = ""
    # Scheduled export.
    export_databases: tuple[DatabaseName, ...] = Field(min_length=1)
    export_schedule: Cron = "0 3 * * *"
    export_time_zone: TimeZone = "Etc/UTC"
    export_offload: bool = False
    export_timeout_hours: int = Field(default=6, ge=1, le=CLOUD_RUN_MAX_TIMEOUT_HOURS)
    export_max_retries: int = Field(default=1, ge=0, le=10)
    # Google keeps Cloud SDK image versions for one year: move this pin forward at least yearly.
    export_image: str = "gcr.io/google.com/cloudsdktool/google-cloud-cli:576.0.0-stable"
    dashboard_bucket: str = ""
    # Alerting.
    notification_emails: tuple[Email, ...] = ()
    notification_channel_ids: tuple[ChannelId, ...] = ()
    export_staleness_hours: int = Field(default=36, ge=1, le=720)
    disk_utilization_alert_percent: int = Field(default=85, ge=50, le=99)
    # CI identity (Workload Identity Federation for GitHub Actions); empty = not managed here.
    github_repository: str = ""

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
                "allowed: an image pinned to a version tag (e.g. ':576.0.0-stable') or a digest"
            )
        return value

    @field_validator("github_repository")
    @classmethod
    def _github_repository(cls, value: str) -> str:
        if value and not _GITHUB_REPO.fullmatch(value):
            raise ValueError("allowed: '' or 'owner/name'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StackSettings:
        problems = [
            problem
            for check in (
                _edition_fits_tier,
                _transaction_logs_fit_edition,
                _public_ip_needs_authorized_networks,
                _storage_class_fits_retention,
                _vault_keeps_the_export_promise,
                _prod_exports_retention_locked,
                _offsite_copy_in_another_project,
                _prod_guards,
                _prod_has_notification_target,
                _staleness_exceeds_export_interval,
            )
            if (problem := check(self)) is not None
        ]
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
        if self.is_prod and not self.backup_vault_enabled:
            found.append(
                f"{PROJECT_NAMESPACE}:backup_vault_enabled = false: prod's automated backups can be "
                "deleted with the project; see README 'Vaulted backups'."
            )
        return found

    @property
    def vault_project(self) -> str:
        """Where the backup vault lives: its own project if one is named, else the stack's."""
        return self.backup_vault_project or self.project


def _edition_fits_tier(s: StackSettings) -> str | None:
    if s.edition == "ENTERPRISE_PLUS" and not s.tier.startswith("db-perf-optimized-N-"):
        return (
            f"{PROJECT_NAMESPACE}:tier = {s.tier!r} does not fit edition ENTERPRISE_PLUS: allowed tiers are "
            "db-perf-optimized-N-*; use edition ENTERPRISE for db-custom-* tiers"
        )
    if s.edition == "ENTERPRISE" and s.tier.startswith("db-perf-optimized-"):
        return f"{PROJECT_NAMESPACE}:tier = {s.tier!r} needs edition ENTERPRISE_PLUS"
    return None


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


# Keys that Pulumi config holds as JSON arrays.
_LIST_KEYS = frozenset(
    {"authorized_networks", "export_databases", "notification_emails", "notification_channel_ids"}
)


def parse_settings(raw: Mapping[str, Any]) -> StackSettings:
    """Validate raw config values (strings, or lists for array keys) into settings.

    Raises :class:`ConfigError` naming every bad key, the value given and what is allowed.
    """
    try:
        return StackSettings.model_validate(dict(raw))
    except ValidationError as error:
        raise ConfigError(_describe(error, raw)) from None


def _describe(error: ValidationError, raw: Mapping[str, Any]) -> str:
    lines = ["Invalid stack configuration:"]
    for problem in error.errors():
        location = [str(part) for part in problem["loc"]]
        message = problem["msg"].removeprefix("Value error, ")
        if not location:
            lines.extend(f"  - {part}" for part in message.split("\n"))
            continue
        key = location[0]
        value = raw.get(key, "<not set>") if problem["type"] != "missing" else "<not set>"
        if problem["type"] == "extra_forbidden":
            message = "unknown key: not read by this program (check the spelling)"
        elif (allowed := _numeric_range(key)) is not None:
            message = f"allowed: {allowed}"
        namespace = "gcp" if key in ("project", "region") else PROJECT_NAMESPACE
        lines.append(f"  - {namespace}:{'.'.join(location)} = {value!r}: {message}")
    return "\n".join(lines)


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
    """Raw values as Pulumi passes them: the project namespace plus gcp:project and gcp:region."""

    values: dict[str, Any]

    @classmethod
    def from_pulumi(cls, keys: tuple[str, ...]) -> RawConfig:
        import pulumi  # noqa: PLC0415 - only the live program needs the runtime

        project_config = pulumi.Config(PROJECT_NAMESPACE)
        gcp_config = pulumi.Config("gcp")
        values: dict[str, Any] = {}
        for key in keys:
            value = project_config.get_object(key) if key in _LIST_KEYS else project_config.get(key)
            if value is not None:
                values[key] = value
        for key in ("project", "region"):
            if (value := gcp_config.get(key)) is not None:
                values[key] = value
        return cls(values)


def load_settings() -> StackSettings:
    """Read and validate this stack's config (the program's first step)."""
    keys = tuple(name for name in StackSettings.model_fields if name not in ("project", "region"))
    return parse_settings(RawConfig.from_pulumi(keys).values)
