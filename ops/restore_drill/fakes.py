"""In-memory Cloud SQL Admin API and Cloud Storage listing that follow the real services' rules.

Used by the tests (directly, and behind a loopback HTTP server for the REST client). Behaviour
copied from the real API:

* every mutating call returns an Operation that goes PENDING -> RUNNING -> DONE as it is polled
  (`polls_per_phase` polls per phase), and a failed operation is DONE with `errors`;
* one operation at a time per instance: starting another answers 409 `operationInProgress`;
* unknown instances answer 404 `instanceDoesNotExist`; cloning onto an existing name answers
  409 `instanceAlreadyExists`;
* a clone receives the source's deletion protection (Google: "When you clone an instance, the
  new instance receives the deletion protection option from the source instance"), and a
  protected instance cannot be deleted;
* a clone has the source's settings ("The new instance has the same settings",
  https://cloud.google.com/sql/docs/postgres/clone-instance), so also its retain-backups-on-delete
  and final-backup settings: deleting it with those on leaves backups behind, which the fake
  records in `backups_left_behind`; the delete call's own final backup is opt-in
  (`enableFinalBackup`, https://cloud.google.com/sql/docs/postgres/admin-api/rest/v1/instances/delete);
* a missing instance answers 404 `instanceDoesNotExist`, or 403 `notAuthorized` when built with
  `missing_instance_status=403`, as Cloud SQL also does
  (https://github.com/googleapis/google-api-go-client/issues/1815);
* a clone whose operation fails leaves the destination behind in state FAILED, which is the
  case a drill's cleanup must still handle.

Modelled rather than documented: the exact HTTP status/reason for deleting a protected instance
and for creating a database that exists (the drill only relies on them being errors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ops.restore_drill.cloudsql import (
    INSTANCE_RUNNABLE,
    OPERATION_DONE,
    CloudApiError,
    ConflictError,
    ForbiddenError,
    Instance,
    IpAddress,
    NewInstanceSettings,
    NotFoundError,
    Operation,
    OperationError,
    StoredObject,
    VaultBackup,
)

BUSY_MESSAGE = (
    "Operation failed because another operation was already in progress. "
    "Try your request after the current operation is complete."
)
ImportHook = Callable[[str, str, str], None]


@dataclass
class FakeInstance:
    name: str
    state: str = INSTANCE_RUNNABLE
    database_version: str = "POSTGRES_16"
    databases: set[str] = field(default_factory=lambda: {"postgres"})
    ip_addresses: tuple[IpAddress, ...] = (IpAddress("PRIVATE", "10.20.0.5"),)
    deletion_protection: bool = False
    retain_backups_on_delete: bool = False
    final_backup_enabled: bool = False

    def view(self) -> Instance:
        return Instance(
            name=self.name,
            state=self.state,
            database_version=self.database_version,
            ip_addresses=self.ip_addresses,
            deletion_protection=self.deletion_protection,
            retain_backups_on_delete=self.retain_backups_on_delete,
            final_backup_enabled=self.final_backup_enabled,
        )


@dataclass
class _PendingOperation:
    operation: Operation
    locks: tuple[str, ...]
    on_success: Callable[[], None]
    on_failure: Callable[[], None]
    failure: OperationError | None
    polls: int = 0


class FakeCloudSqlAdmin:
    """A `CloudSqlAdmin` for one project, holding instances and operations in memory."""

    def __init__(
        self,
        instances: Iterable[FakeInstance],
        polls_per_phase: int = 1,
        import_hook: ImportHook | None = None,
        *,
        project: str = "example-project",
        missing_instance_status: int = 404,
        recovery_lag: timedelta = timedelta(minutes=3),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._project = project
        self.missing_instance_status = missing_instance_status
        self.recovery_lag = recovery_lag
        self.clock = clock
        self.backups_left_behind: list[tuple[str, str]] = []  # (instance, "automated"|"final")
        self.instances = {instance.name: instance for instance in instances}
        self.polls_per_phase = polls_per_phase
        self.import_hook = import_hook
        self.calls: list[tuple[str, ...]] = []
        self.status_history: dict[str, list[str]] = {}
        self._operations: dict[str, _PendingOperation] = {}
        self._planned_failures: dict[str, OperationError] = {}
        self._next_ip = 100

    # --- test controls -------------------------------------------------------------------
    def fail_next(self, operation_type: str, code: str, message: str) -> None:
        """Make the next operation of this type finish DONE with this error."""
        self._planned_failures[operation_type] = OperationError(code, message)

    def start_blocking_operation(self, instance: str) -> Operation:
        """Simulate someone else's operation (e.g. an automated backup) holding the instance."""
        self._require(instance)
        return self._start("BACKUP_VOLUME", instance, (instance,), lambda: None)

    def tick(self) -> None:
        """Let time pass: every unfinished operation advances one poll."""
        for name in list(self._operations):
            self._advance(name)

    def running_operations(self) -> list[Operation]:
        return [p.operation for p in self._operations.values() if not p.operation.done]

    def status_histories(self, operation_type: str) -> list[list[str]]:
        """Every status each operation of this type went through, as its pollers saw it."""
        return [
            self.status_history[name]
            for name, pending in self._operations.items()
            if pending.operation.operation_type == operation_type
        ]

    # --- CloudSqlAdmin -------------------------------------------------------------------
    @property
    def project(self) -> str:
        return self._project

    def get_instance(self, instance: str) -> Instance:
        self.calls.append(("get_instance", instance))
        return self._require(instance).view()

    def database_exists(self, instance: str, database: str) -> bool:
        self.calls.append(("database_exists", instance, database))
        return database in self._require(instance).databases

    def import_sql(
        self, instance: str, uri: str, database: str, import_user: str | None
    ) -> Operation:
        self.calls.append(("import_sql", instance, uri, database, import_user or ""))
        target = self._require(instance)
        self._refuse_if_busy(instance)

        def finish() -> None:
            if database not in target.databases:
                raise _OperationFailedError("ERROR_RDBMS", f'database "{database}" does not exist')
            if self.import_hook is not None:
                self.import_hook(instance, uri, database)

        return self._start("IMPORT", instance, (instance,), finish)

    def clone_instance(self, source: str, destination: str, point_in_time: datetime) -> Operation:
        self.calls.append(("clone_instance", source, destination, point_in_time.isoformat()))
        origin = self._require(source)
        if destination in self.instances:
            raise ConflictError(
                409, "instanceAlreadyExists", "The Cloud SQL instance already exists."
            )
        self._refuse_if_busy(source)
        clone = replace(
            origin,
            name=destination,
            state="PENDING_CREATE",
            databases=set(origin.databases),
            ip_addresses=(IpAddress("PRIVATE", f"10.20.0.{self._next_ip}"),),
        )
        self._next_ip += 1
        self.instances[destination] = clone

        def finish() -> None:
            clone.state = INSTANCE_RUNNABLE

        def leave_failed() -> None:
            clone.state = "FAILED"

        return self._start("CLONE", source, (source, destination), finish, leave_failed)

    def create_database(self, instance: str, database: str) -> Operation:
        self.calls.append(("create_database", instance, database))
        target = self._require(instance)
        if database in target.databases:
            raise CloudApiError(400, "invalid", f'database "{database}" already exists')
        self._refuse_if_busy(instance)
        return self._start(
            "CREATE_DATABASE", instance, (instance,), lambda: target.databases.add(database)
        )

    def delete_database(self, instance: str, database: str) -> Operation:
        self.calls.append(("delete_database", instance, database))
        target = self._require(instance)
        if database not in target.databases:
            raise NotFoundError(404, "notFound", f'database "{database}" does not exist')
        self._refuse_if_busy(instance)
        return self._start(
            "DELETE_DATABASE", instance, (instance,), lambda: target.databases.discard(database)
        )

    def latest_recovery_time(self, instance: str) -> datetime:
        self.calls.append(("latest_recovery_time", instance))
        self._require(instance)
        return self.clock() - self.recovery_lag

    def prepare_for_deletion(self, instance: str) -> Operation:
        self.calls.append(("prepare_for_deletion", instance))
        target = self._require(instance)
        self._refuse_if_busy(instance)

        def finish() -> None:
            target.deletion_protection = False
            target.retain_backups_on_delete = False
            target.final_backup_enabled = False

        return self._start("UPDATE", instance, (instance,), finish)

    def delete_instance(self, instance: str, enable_final_backup: bool = False) -> Operation:
        self.calls.append(("delete_instance", instance))
        target = self._require(instance)
        if target.deletion_protection:
            raise CloudApiError(
                400,
                "invalid",
                "The instance is protected from deletion; disable deletion protection first.",
            )
        self._refuse_if_busy(instance)
        target.state = "PENDING_DELETE"

        def finish() -> None:
            if target.retain_backups_on_delete:
                self.backups_left_behind.append((instance, "automated"))
            if target.final_backup_enabled or enable_final_backup:
                self.backups_left_behind.append((instance, "final"))
            del self.instances[instance]

        return self._start("DELETE", instance, (instance,), finish)

    def get_operation(self, name: str) -> Operation:
        self.calls.append(("get_operation", name))
        if name not in self._operations:
            raise NotFoundError(
                404, "operationDoesNotExist", f"The operation {name} does not exist."
            )
        self._advance(name)
        return self._operations[name].operation

    # --- vaulted backups (instances.restoreBackup with backupdrBackup) ------------------------
    # The Backup and DR vault restores read from; a test sets it (None: no vault reachable).
    vault: FakeBackupVault | None = None

    def restore_backupdr_backup(
        self, instance: str, backup: str, settings: NewInstanceSettings
    ) -> Operation:
        """A new instance from the backup: the backed-up instance's settings, except those the
        request overrides (Google: "settings will be applied from the backups unless they are
        overriden", gcloud sql backups restore), deletion protection off."""
        self.calls.append(("restore_backupdr_backup", instance, backup))
        vault = self.vault
        vaulted = vault.find(backup) if vault is not None else None
        if vault is None or vaulted is None:
            raise NotFoundError(404, "notFound", f"The backup {backup} does not exist.")
        if not vaulted.backup.restorable:
            raise CloudApiError(400, "invalid", f"The backup {backup} is {vaulted.backup.state}.")
        if instance in self.instances:
            raise ConflictError(
                409, "instanceAlreadyExists", "The Cloud SQL instance already exists."
            )
        restored = replace(
            vaulted.source,
            name=instance,
            state="PENDING_CREATE",
            databases=set(vaulted.source.databases),
            ip_addresses=(IpAddress("PRIVATE", f"10.20.0.{self._next_ip}"),),
            deletion_protection=False,
        )
        self._next_ip += 1
        self.instances[instance] = restored
        vault.restores.append((instance, backup, settings))

        def finish() -> None:
            restored.state = INSTANCE_RUNNABLE

        def leave_failed() -> None:
            restored.state = "FAILED"

        return self._start("RESTORE_VOLUME", instance, (instance,), finish, leave_failed)

    # --- internals -----------------------------------------------------------------------
    def _require(self, instance: str) -> FakeInstance:
        found = self.instances.get(instance)
        if found is None and self.missing_instance_status == 403:
            raise ForbiddenError(
                403, "notAuthorized", "The client is not authorized to make this request."
            )
        if found is None:
            raise NotFoundError(
                404, "instanceDoesNotExist", "The Cloud SQL instance does not exist."
            )
        return found

    def _refuse_if_busy(self, instance: str) -> None:
        for pending in self._operations.values():
            if not pending.operation.done and instance in pending.locks:
                raise ConflictError(409, "operationInProgress", BUSY_MESSAGE)

    def _start(
        self,
        operation_type: str,
        target: str,
        locks: tuple[str, ...],
        on_success: Callable[[], None],
        on_failure: Callable[[], None] = lambda: None,
    ) -> Operation:
        name = f"00000000-0000-4000-8000-{len(self._operations) + 1:012d}"
        operation = Operation(name, "PENDING", operation_type, target)
        self._operations[name] = _PendingOperation(
            operation,
            locks,
            on_success,
            on_failure,
            self._planned_failures.pop(operation_type, None),
        )
        self.status_history[name] = ["PENDING"]
        return operation

    def _advance(self, name: str) -> None:
        pending = self._operations[name]
        if pending.operation.done:
            return
        pending.polls += 1
        if pending.polls < self.polls_per_phase:
            return
        pending.polls = 0
        if pending.operation.status == "PENDING":
            self._set_status(pending, "RUNNING")
        else:
            self._complete(pending)

    def _complete(self, pending: _PendingOperation) -> None:
        failure = pending.failure
        if failure is None:
            try:
                pending.on_success()
            except _OperationFailedError as error:
                failure = OperationError(error.code, error.message)
            except Exception as error:  # an import hook's restore error becomes the op's error
                failure = OperationError("ERROR_RDBMS", str(error))
        if failure is not None:
            pending.on_failure()
            pending.operation = replace(pending.operation, errors=(failure,))
        self._set_status(pending, OPERATION_DONE)

    def _set_status(self, pending: _PendingOperation, status: str) -> None:
        pending.operation = replace(pending.operation, status=status)
        self.status_history[pending.operation.name].append(status)


class _OperationFailedError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FakeBackupStore:
    """A `BackupStore` over a fixed set of objects per bucket."""

    def __init__(self, objects: Iterable[StoredObject]) -> None:
        self.buckets: dict[str, list[StoredObject]] = {}
        for stored in objects:
            self.buckets.setdefault(stored.bucket, []).append(stored)

    def list_objects(self, bucket: str, prefix: str) -> list[StoredObject]:
        if bucket not in self.buckets:
            raise NotFoundError(404, "notFound", "The specified bucket does not exist.")
        # Cloud Storage lists objects in lexicographic order of their names.
        return sorted(
            (o for o in self.buckets[bucket] if o.name.startswith(prefix)), key=lambda o: o.name
        )


@dataclass
class FakeVaultedBackup:
    """A backup in a vault, and the instance as it was when it was taken (what a restore gets)."""

    backup: VaultBackup
    source: FakeInstance

    @property
    def data_source(self) -> str:
        return self.backup.name.rsplit("/backups/", 1)[0]


class FakeBackupVault:
    """A `BackupVaultCatalog` over one Backup and DR vault.

    Backup and DR answers an unknown vault with 404 NOT_FOUND and a caller without
    backupdr.backups.list with 403 PERMISSION_DENIED (`denied=True`); the message texts are
    modelled. `restores` records what Cloud SQL restored from it (instance, backup, settings).
    """

    def __init__(
        self, name: str, backups: Iterable[FakeVaultedBackup] = (), *, denied: bool = False
    ) -> None:
        self.name = name
        self.backups = list(backups)
        self.denied = denied
        self.restores: list[tuple[str, str, NewInstanceSettings]] = []

    def list_vault_backups(self, vault: str) -> list[VaultBackup]:
        if self.denied:
            raise ForbiddenError(
                403,
                "PERMISSION_DENIED",
                f"Permission 'backupdr.backups.list' denied on resource '{vault}'.",
            )
        if vault != self.name:
            raise NotFoundError(404, "NOT_FOUND", f"Resource '{vault}' was not found.")
        return [vaulted.backup for vaulted in self.backups]

    def find(self, name: str) -> FakeVaultedBackup | None:
        return next((vaulted for vaulted in self.backups if vaulted.backup.name == name), None)
