"""The thin interfaces between the drill and Google Cloud, and the shapes they exchange.

Everything the drill asks of Google goes through `CloudSqlAdmin` (Cloud SQL Admin API v1) and
`BackupStore` (Cloud Storage JSON API). `rest.py` implements them over HTTPS; `fakes.py`
implements them in memory with the same rules (operation lifecycle, 404, 409) for tests.

Cloud SQL runs one administrative operation per instance at a time: starting another answers
HTTP 409 `operationInProgress`. Long-running calls return an Operation whose status goes
PENDING -> RUNNING -> DONE; a DONE operation may still carry `error.errors[]`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

OPERATION_DONE = "DONE"
INSTANCE_RUNNABLE = "RUNNABLE"


class CloudApiError(RuntimeError):
    """A Google API call was rejected (HTTP status and Google's error reason attached)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFoundError(CloudApiError):
    """HTTP 404: the instance, database, operation or bucket does not exist."""


class ForbiddenError(CloudApiError):
    """HTTP 403: not allowed, or (Cloud SQL) an instance that does not exist.

    Cloud SQL answers instances.get/delete for a missing instance with 403 as well as 404
    (https://github.com/googleapis/google-api-go-client/issues/1815), so a 403 never proves that
    an instance exists.
    """


class ConflictError(CloudApiError):
    """HTTP 409: another operation is running on the instance, or the name is taken."""


class OperationFailedError(RuntimeError):
    """A Cloud SQL operation finished (DONE) with errors."""

    def __init__(self, operation: Operation) -> None:
        details = "; ".join(f"{e.code}: {e.message}" for e in operation.errors) or "unknown error"
        super().__init__(f"{operation.operation_type} operation {operation.name} failed: {details}")
        self.operation = operation


class OperationTimeoutError(RuntimeError):
    """A Cloud SQL operation did not finish in the time the drill allows."""


@dataclass(frozen=True)
class OperationError:
    code: str
    message: str


@dataclass(frozen=True)
class Operation:
    """The fields of a Cloud SQL Operation resource the drill relies on."""

    name: str
    status: str  # PENDING, RUNNING, DONE (or SQL_OPERATION_STATUS_UNSPECIFIED)
    operation_type: str  # IMPORT, CLONE, DELETE, CREATE_DATABASE, DELETE_DATABASE, UPDATE, ...
    target_id: str
    errors: tuple[OperationError, ...] = ()

    @property
    def done(self) -> bool:
        return self.status == OPERATION_DONE

    @property
    def failed(self) -> bool:
        return self.done and bool(self.errors)


@dataclass(frozen=True)
class IpAddress:
    type: str  # PRIMARY (public), PRIVATE, OUTGOING
    address: str


@dataclass(frozen=True)
class Instance:
    """The fields of a Cloud SQL DatabaseInstance the drill relies on."""

    name: str
    state: str  # RUNNABLE, PENDING_CREATE, MAINTENANCE, FAILED, ...
    database_version: str
    ip_addresses: tuple[IpAddress, ...] = ()
    deletion_protection: bool = False
    # What deleting it leaves behind: its automated backups, and a final backup.
    retain_backups_on_delete: bool = False
    final_backup_enabled: bool = False

    def address(self, ip_type: str) -> str | None:
        return next((ip.address for ip in self.ip_addresses if ip.type == ip_type), None)


@dataclass(frozen=True)
class StoredObject:
    """A Cloud Storage object listing entry."""

    bucket: str
    name: str
    size: int
    time_created: datetime

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


class CloudSqlAdmin(Protocol):
    """The Cloud SQL Admin API calls the drill makes, all scoped to one project."""

    @property
    def project(self) -> str: ...

    def get_instance(self, instance: str) -> Instance: ...

    def database_exists(self, instance: str, database: str) -> bool: ...

    def import_sql(
        self, instance: str, uri: str, database: str, import_user: str | None
    ) -> Operation: ...

    def clone_instance(
        self, source: str, destination: str, point_in_time: datetime
    ) -> Operation: ...

    def create_database(self, instance: str, database: str) -> Operation: ...

    def delete_database(self, instance: str, database: str) -> Operation: ...

    def latest_recovery_time(self, instance: str) -> datetime: ...

    def prepare_for_deletion(self, instance: str) -> Operation:
        """Turn off deletion protection, retain-backups-on-delete and the final backup."""
        ...

    def delete_instance(self, instance: str) -> Operation:
        """Delete without a final backup."""
        ...

    def get_operation(self, name: str) -> Operation: ...

    def restore_backupdr_backup(
        self, instance: str, backup: str, settings: NewInstanceSettings
    ) -> Operation:
        """Restore a vaulted (Backup and DR) backup into a NEW instance with these settings."""
        ...


class BackupStore(Protocol):
    """Listing of the logical exports in the backup bucket."""

    def list_objects(self, bucket: str, prefix: str) -> list[StoredObject]: ...


@dataclass
class PollSettings:
    """How the drill waits on long-running operations (injectable so tests never sleep)."""

    interval_seconds: float = 10.0
    timeout_seconds: float = 4 * 3600.0
    conflict_retries: int = 30
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


def _ignore_status(_operation: Operation) -> None:
    return None


def wait_for_operation(
    admin: CloudSqlAdmin,
    operation: Operation,
    poll: PollSettings,
    on_status: Callable[[Operation], None] = _ignore_status,
) -> Operation:
    """Poll until the operation is DONE; raise if it ended with errors or ran out of time."""
    deadline = poll.monotonic() + poll.timeout_seconds
    while not operation.done:
        if poll.monotonic() > deadline:
            raise OperationTimeoutError(
                f"{operation.operation_type} operation {operation.name} still {operation.status} "
                f"after {poll.timeout_seconds:.0f}s; check it with "
                f"`gcloud sql operations describe {operation.name}`"
            )
        poll.sleep(poll.interval_seconds)
        operation = admin.get_operation(operation.name)
        on_status(operation)
    if operation.failed:
        raise OperationFailedError(operation)
    return operation


T = TypeVar("T")


def retry_while_busy(start: Callable[[], T], poll: PollSettings) -> T:
    """Start an operation, waiting out 409 operationInProgress (e.g. an automated backup)."""
    for _attempt in range(poll.conflict_retries):
        try:
            return start()
        except ConflictError as error:
            if error.reason != "operationInProgress":
                raise
            poll.sleep(poll.interval_seconds)
    return start()


# --- vaulted backups (Backup and DR) ------------------------------------------------------------

# Backup.State ACTIVE: "The backup has been created and is fully usable" (CREATING, DELETING,
# ERROR and UPLOADING are not restorable):
# https://github.com/googleapis/googleapis/blob/master/google/cloud/backupdr/v1/backupvault.proto
BACKUP_ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class VaultBackup:
    """The fields of a Backup and DR Backup resource the drill relies on."""

    name: str  # projects/P/locations/L/backupVaults/V/dataSources/D/backups/B
    state: str  # CREATING, ACTIVE, DELETING, ERROR, UPLOADING
    # "The point in time when this backup was captured from the source" (unset while CREATING).
    consistency_time: datetime | None
    source_instance: str  # cloudSqlInstanceBackupProperties.sourceInstance: projects/P/instances/I
    database_version: str = ""  # cloudSqlInstanceBackupProperties.databaseInstalledVersion

    @property
    def restorable(self) -> bool:
        return self.state == BACKUP_ACTIVE and self.consistency_time is not None


@dataclass(frozen=True)
class NewInstanceSettings:
    """What a restore into a new instance overrides from the settings stored in the backup.

    Private IP only (no public address), TLS only, deletion protection off so the drill can delete
    it. The backup's major version is kept (Google: the major version cannot change on restore).
    """

    private_network: str  # projects/P/global/networks/N
    tier: str | None = None  # None: the backup's tier
    region: str | None = None  # None: the backup's region
    edition: str | None = None  # ENTERPRISE or ENTERPRISE_PLUS; None: the backup's edition


def instance_resource(project: str, instance: str) -> str:
    """How Backup and DR names a Cloud SQL instance: projects/{project}/instances/{instance}."""
    return f"projects/{project}/instances/{instance}"


class BackupVaultCatalog(Protocol):
    """Backup and DR API v1 listing of the backups in one backup vault."""

    def list_vault_backups(self, vault: str) -> list[VaultBackup]:
        """Every backup of every data source in `vault` (projects/P/locations/L/backupVaults/V),
        whatever its state or source (the caller picks the instance's)."""
        ...
