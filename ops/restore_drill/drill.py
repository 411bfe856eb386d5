"""The quarterly restore drill: restore, verify with the SQL checks, measure RPO and RTO, clean up.

Four ways to restore, one verification:

* export:     import the newest logical export from the backup bucket (production project) into a
              new database on the staging instance (staging project: instances.import, fileType
              SQL, and the operations it starts; a parallel export's folder with Cloud SQL's
              parallel import);
* pitr:       clone the production instance to a point in time into a temporary instance
              (instances.clone with cloneContext.pointInTime), deleted afterwards without leaving
              backups behind;
* local-file: replay a downloaded export into any PostgreSQL with psql in one pass, or restore a
              downloaded directory dump with pg_restore --jobs;
* vault:      restore the newest vaulted (Backup and DR) backup into a new temporary instance in
              the staging project (instances.restoreBackup with backupdrBackup), deleted
              afterwards like a PITR clone.

Whatever fails, the drill returns a report saying so (it never raises for a failed restore or a
failed check) and cleans up what it created: the temporary instance or database is removed even
when a step failed, unless the operator asked to keep it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import google.auth.exceptions
import psycopg
import requests
from psycopg.rows import TupleRow

from ops.restore_drill.cloudsql import (
    INSTANCE_RUNNABLE,
    BackupStore,
    BackupVaultCatalog,
    CloudApiError,
    CloudSqlAdmin,
    ForbiddenError,
    NewInstanceSettings,
    NotFoundError,
    Operation,
    OperationFailedError,
    OperationTimeoutError,
    ParallelImport,
    PollSettings,
    VaultBackup,
    retry_while_busy,
    wait_for_operation,
)
from ops.restore_drill.connect import ConnectError, DatabaseConnector
from ops.restore_drill.exports import ExportFile, NoExportError, export_prefix, latest_export
from ops.restore_drill.health import HealthWait, healthy_at
from ops.restore_drill.import_target import (
    DEFAULT_IMPORT_USER,
    missing_grants,
    preparation_sql,
    schema_grants_sql,
)
from ops.restore_drill.local_restore import (
    LocalRestoreRequest,
    RestoreError,
    drop_database,
    dump_header,
    inspect_directory_dump,
    is_directory_dump,
    prepare_directory_target,
    prepare_target,
    replay,
    restore_directory,
)
from ops.restore_drill.pgtools import PgToolError, PgTools, describe_target, with_database
from ops.restore_drill.report import DrillReport, format_moment
from ops.restore_drill.verification import CheckSuite

NEWEST_WRITE_SQL = Path(__file__).with_name("newest_write.sql")
EXPORT_STALE_AFTER = timedelta(hours=36)
RPO_EXPORT_BASIS = "export age at restore start"
RPO_PITR_BASIS = "now - latest recovery time (instances.getLatestRecoveryTime)"


class DrillError(RuntimeError):
    """A drill step found something wrong (bad input, unexpected state)."""


# Errors that mean "this drill failed" (recorded, cleaned up, exit non-zero), as opposed to bugs.
DRILL_FAILURES: tuple[type[BaseException], ...] = (
    DrillError,
    RestoreError,
    PgToolError,
    CloudApiError,
    OperationFailedError,
    OperationTimeoutError,
    ConnectError,
    NoExportError,
    psycopg.Error,
    OSError,
    requests.RequestException,
    google.auth.exceptions.GoogleAuthError,
)


class Reporter(Protocol):
    """Where the drill tells the operator what it is doing (a rich progress display in the CLI)."""

    def step(self, title: str) -> AbstractContextManager[None]: ...

    def status(self, message: str) -> None: ...

    def note(self, message: str) -> None: ...


class RecordingReporter:
    """A reporter that only remembers what it was told (tests, benchmark)."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.failed_steps: list[str] = []
        self.statuses: list[str] = []
        self.notes: list[str] = []

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.steps.append(title)
        try:
            yield
        except BaseException:
            self.failed_steps.append(title)
            raise

    def status(self, message: str) -> None:
        self.statuses.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DrillEnvironment:
    """What every drill needs besides its restore method."""

    reporter: Reporter
    checks: CheckSuite
    newest_write_sql: str = field(default_factory=NEWEST_WRITE_SQL.read_text)
    check_timeout_seconds: float = 60.0
    clock: Callable[[], datetime] = utc_now
    health: HealthWait | None = None  # --health-url: RTO ends when the app answers 2xx


# --- verification (shared by every method) ------------------------------------------------------


def newest_write(conn: psycopg.Connection[TupleRow], query: str) -> datetime | None:
    with conn.cursor() as cursor:
        cursor.execute(query.encode("utf-8"))
        rows = last_result_raw(cursor)
    value = rows[0][0] if rows and rows[0] else None
    if value is not None and not isinstance(value, datetime):
        raise DrillError(f"newest_write.sql must return a timestamptz, got {value!r}")
    return value


def last_result_raw(cursor: psycopg.Cursor[TupleRow]) -> list[TupleRow]:
    rows: list[TupleRow] = []
    while True:
        if cursor.description is not None:
            rows = cursor.fetchall()
        if not cursor.nextset():
            return rows


def verify(conn: psycopg.Connection[TupleRow], env: DrillEnvironment, report: DrillReport) -> None:
    """Run the checks (stamping RTO when all pass), then measure the newest write (RPO)."""
    with env.reporter.step(f"Run {len(env.checks)} checks"):
        outcome = env.checks.run(conn, report.restore_point, env.check_timeout_seconds)
    report.check_results, report.row_counts = outcome.results, outcome.row_counts
    for result in report.check_results:
        env.reporter.note(f"{result.status.value:<6}  {result.name}: {result.detail}")
    if report.failed_checks:
        report.fail(f"checks failed: {', '.join(report.failed_checks)}")
    else:
        report.checks_green_at = env.clock()
        wait_for_app(env, report)
    try:
        with env.reporter.step("Measure the newest restored write (RPO)"):
            report.newest_write = newest_write(conn, env.newest_write_sql)
    except (psycopg.Error, DrillError) as error:
        report.fail(f"cannot measure RPO: {error}")


def wait_for_app(env: DrillEnvironment, report: DrillReport) -> None:
    """With a health URL, RTO ends when the application on the restored data answers 2xx."""
    if env.health is None:
        return
    report.health_url = env.health.url
    with env.reporter.step(f"Wait for {env.health.url} to answer 2xx (end of RTO)"):
        report.app_healthy_at, answer = healthy_at(env.health, env.clock)
    env.reporter.note(answer)
    if report.app_healthy_at is None:
        report.fail(f"application not healthy: {answer}")


def clean_up(
    report: DrillReport, env: DrillEnvironment, title: str, action: Callable[[], None]
) -> None:
    """Run a cleanup step; its failure fails the drill but never hides the original outcome."""
    try:
        with env.reporter.step(title):
            action()
    except DRILL_FAILURES as error:
        report.fail(f"cleanup failed ({title}): {error}")


class CreatedResources:
    """What a drill created, released in reverse order when it ends, whatever happened.

    A resource is registered only once the drill knows it created it, so cleanup can never
    delete something that existed before the drill.
    """

    def __init__(self, report: DrillReport, env: DrillEnvironment, keep: bool) -> None:
        self._report, self._env, self._keep = report, env, keep
        self._releases: list[tuple[str, str, Callable[[], None]]] = []

    def register(self, title: str, kept_note: str, release: Callable[[], None]) -> None:
        self._releases.append((title, kept_note, release))

    def release_all(self) -> None:
        for title, kept_note, release in reversed(self._releases):
            if self._keep:
                self._env.reporter.note(f"{kept_note} (--keep-restored)")
            else:
                clean_up(self._report, self._env, title, release)


@contextmanager
def drill_steps(
    report: DrillReport, env: DrillEnvironment, keep: bool
) -> Iterator[CreatedResources]:
    """Where a drill's steps run: a drill failure is recorded on the report (not raised), and what
    the steps created is released whatever happened."""
    resources = CreatedResources(report, env, keep)
    try:
        yield resources
    except DRILL_FAILURES as error:
        report.fail(str(error))
    finally:
        resources.release_all()


def connect_and_verify(
    open_connection: Callable[[], psycopg.Connection[TupleRow]],
    env: DrillEnvironment,
    report: DrillReport,
    where: str,
) -> None:
    with env.reporter.step(f"Connect to {where}"):
        conn = open_connection()
    with conn:
        verify(conn, env, report)


def status_reporter(reporter: Reporter) -> Callable[[Operation], None]:
    """Shows a polled operation's state (PENDING, RUNNING, DONE) next to the current step."""
    return lambda operation: reporter.status(f"{operation.operation_type} {operation.status}")


def run_operation(
    admin: CloudSqlAdmin, start: Callable[[], Operation], poll: PollSettings, reporter: Reporter
) -> Operation:
    """Start a Cloud SQL operation (waiting out 409s) and wait for it, showing its status."""
    operation = retry_while_busy(start, poll)
    status_reporter(reporter)(operation)
    return wait_for_operation(admin, operation, poll, on_status=status_reporter(reporter))


# --- local-file ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFilePlan:
    dump: Path
    server_conninfo: str
    database: str
    restore_point: datetime
    create_missing_roles: bool = False
    keep_restored: bool = False
    # pg_restore --jobs for a directory dump; None: this machine's cores (see restore_jobs).
    jobs: int | None = None


def restore_jobs(requested: int | None) -> int:
    """pg_restore workers: as asked, else one per core of the machine running the drill, which is
    the target's when the drill runs on the database server (the usual local-file setup)."""
    return requested if requested is not None else os.cpu_count() or 1


def run_local_file_drill(plan: LocalFilePlan, env: DrillEnvironment, tools: PgTools) -> DrillReport:
    target = with_database(plan.server_conninfo, plan.database)
    report = DrillReport(
        method=(
            f"local-file (pg_restore --jobs {restore_jobs(plan.jobs)})"
            if is_directory_dump(plan.dump)
            else "local-file (psql replay)"
        ),
        source=plan.dump.name,
        target=describe_target(target),
        restore_point=plan.restore_point,
        started_at=env.clock(),
        checks_total=len(env.checks),
    )
    report.rpo_data_at, report.rpo_reference_at = plan.restore_point, report.started_at
    report.rpo_basis = RPO_EXPORT_BASIS
    with drill_steps(report, env, plan.keep_restored) as resources:
        restore_local_file(plan, env, tools, resources)
        connect_and_verify(
            lambda: psycopg.connect(target, autocommit=True), env, report, report.target
        )
    return report


def restore_local_file(
    plan: LocalFilePlan, env: DrillEnvironment, tools: PgTools, resources: CreatedResources
) -> None:
    request = LocalRestoreRequest(
        plan.dump, plan.server_conninfo, plan.database, plan.create_missing_roles
    )
    if is_directory_dump(plan.dump):
        restore_local_directory(plan, request, env, tools, resources)
        return
    with env.reporter.step(f"Read the header of {plan.dump.name} (versions)"):
        header = dump_header(plan.dump)
    with env.reporter.step(f"Create database {plan.database}"):
        existing_roles = prepare_target(request, header, tools)
    register_local_database(plan, resources)
    with env.reporter.step(
        "Replay the dump with psql (single transaction, ON_ERROR_STOP, roles as they come)"
    ):
        replayed = replay(request, tools, existing_roles)
    note_created_roles(env, replayed.created_roles)


def restore_local_directory(
    plan: LocalFilePlan,
    request: LocalRestoreRequest,
    env: DrillEnvironment,
    tools: PgTools,
    resources: CreatedResources,
) -> None:
    """A directory dump (parallel export): roles first, then pg_restore with parallel workers."""
    with env.reporter.step(f"Read the table of contents of {plan.dump.name} (versions, roles)"):
        info = inspect_directory_dump(plan.dump, tools)
    with env.reporter.step(f"Create database {plan.database} and the roles the dump needs"):
        created = prepare_directory_target(request, info, tools)
    register_local_database(plan, resources)
    note_created_roles(env, created)
    jobs = restore_jobs(plan.jobs)
    with env.reporter.step(f"Restore the dump with pg_restore --jobs {jobs} (--exit-on-error)"):
        restore_directory(request, tools, jobs)


def register_local_database(plan: LocalFilePlan, resources: CreatedResources) -> None:
    resources.register(
        f"Drop database {plan.database}",
        f"kept database {plan.database}",
        lambda: drop_database(plan.server_conninfo, plan.database),
    )


def note_created_roles(env: DrillEnvironment, roles: tuple[str, ...]) -> None:
    if roles:
        env.reporter.note(f"created NOLOGIN roles: {', '.join(roles)}")


# --- export -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportPlan:
    """An export drill. The bucket and source instance live in the production project; the
    staging instance, its databases and its operations in the staging project (the `admin` the
    drill is given is the staging project's)."""

    bucket: str
    source_instance: str
    database: str
    staging_instance: str
    restore_database: str
    import_user: str | None = None
    # Roles the dump assigns owners and grants to; the first owns the application's objects.
    # Empty: the drill does not prepare or check the import target.
    app_roles: tuple[str, ...] = ()
    export_interval: timedelta = timedelta(hours=24)
    keep_restored: bool = False
    # Threads of Cloud SQL's parallel import when the newest export is a folder; None: the
    # staging instance's vCPUs (or Cloud SQL's default when its tier does not say).
    import_threads: int | None = None


@dataclass(frozen=True)
class CloudDrillServices:
    """The Google-side interfaces a drill talks through, and how it waits on them."""

    admin: CloudSqlAdmin
    connector: DatabaseConnector
    poll: PollSettings


def run_export_drill(
    plan: ExportPlan,
    env: DrillEnvironment,
    admin: CloudSqlAdmin,
    store: BackupStore,
    connector: DatabaseConnector,
    poll: PollSettings,
) -> DrillReport:
    report = DrillReport(
        method="export (instances.import)",
        source=f"gs://{plan.bucket}/{export_prefix(plan.source_instance, plan.database)}",
        target=f"{plan.staging_instance}/{plan.restore_database}",
        restore_point=None,
        started_at=env.clock(),
        checks_total=len(env.checks),
    )
    cloud = CloudDrillServices(admin, connector, poll)
    with drill_steps(report, env, plan.keep_restored) as resources:
        export = find_latest_export(plan, store, env, report)
        create_drill_database(plan, cloud, env, resources)
        if plan.app_roles:
            prepare_drill_database(plan, cloud, env)
        parallel = parallel_import(plan, export, admin, env.reporter)
        if parallel is not None:
            report.method = "export (instances.import, parallel)"
        with env.reporter.step(f"Import {export.stored.uri} into {plan.staging_instance}"):
            run_operation(
                admin,
                lambda: admin.import_sql(
                    plan.staging_instance,
                    export.stored.uri,
                    plan.restore_database,
                    plan.import_user,
                    parallel,
                ),
                poll,
                env.reporter,
            )
        connect_and_verify(
            lambda: connector.connect(
                admin.get_instance(plan.staging_instance), plan.restore_database
            ),
            env,
            report,
            report.target,
        )
    return report


def find_latest_export(
    plan: ExportPlan, store: BackupStore, env: DrillEnvironment, report: DrillReport
) -> ExportFile:
    with env.reporter.step("Find the latest export in the backup bucket"):
        export = latest_export(store, plan.bucket, plan.source_instance, plan.database)
    report.source, report.restore_point = export.stored.uri, export.exported_at
    # RPO: how old the restored snapshot is when the restore starts; worst case: a disaster just
    # before the next export finishes (interval + this export's duration, stamp -> object written).
    report.rpo_data_at, report.rpo_reference_at = export.exported_at, report.started_at
    report.rpo_basis = RPO_EXPORT_BASIS
    duration = max(timedelta(0), export.stored.time_created - export.exported_at)
    report.rpo_worst_case_minutes = (plan.export_interval + duration).total_seconds() / 60
    shape = "directory dump, " if export.is_directory else ""
    env.reporter.note(f"latest export: {export.stored.uri} ({shape}{export.stored.size} bytes)")
    for skipped in export.skipped_incomplete:
        env.reporter.note(f"WARNING: skipped newer {skipped}/: no toc.dat (unfinished export?)")
    if env.clock() - export.exported_at > EXPORT_STALE_AFTER:
        env.reporter.note("WARNING: the latest export is older than 36 hours (see DR_RUNBOOK.md)")
    return export


def parallel_import(
    plan: ExportPlan, export: ExportFile, admin: CloudSqlAdmin, reporter: Reporter
) -> ParallelImport | None:
    """A folder is imported with Cloud SQL's parallel import (`gcloud sql import sql --parallel
    --threads`, https://cloud.google.com/sql/docs/postgres/import-export/import-export-parallel),
    one thread per vCPU of the staging instance unless the operator chose a number."""
    if not export.is_directory:
        return None
    threads, basis = plan.import_threads, "--restore-jobs"
    if threads is None:
        threads, basis = admin.get_instance(plan.staging_instance).vcpus, "staging vCPUs"
    if threads is None:
        reporter.note("parallel import; threads: Cloud SQL's default (tier has no vCPU count)")
    else:
        reporter.note(f"parallel import with {threads} threads ({basis})")
    return ParallelImport(threads)


def create_drill_database(
    plan: ExportPlan, cloud: CloudDrillServices, env: DrillEnvironment, resources: CreatedResources
) -> None:
    admin = cloud.admin
    with env.reporter.step(f"Create database {plan.restore_database} on {plan.staging_instance}"):
        if admin.database_exists(plan.staging_instance, plan.restore_database):
            raise DrillError(
                f"database {plan.restore_database} already exists on {plan.staging_instance}; "
                "choose another --restore-database"
            )
        operation = retry_while_busy(
            lambda: admin.create_database(plan.staging_instance, plan.restore_database), cloud.poll
        )
        resources.register(
            f"Delete database {plan.restore_database} from {plan.staging_instance}",
            f"kept database {plan.restore_database} on {plan.staging_instance}",
            lambda: delete_drill_database(plan, cloud, env.reporter),
        )
        wait_for_operation(admin, operation, cloud.poll, on_status=status_reporter(env.reporter))


def prepare_drill_database(
    plan: ExportPlan, cloud: CloudDrillServices, env: DrillEnvironment
) -> None:
    """Let the import user hand ownership to the app roles in the new database, then check it.

    The schema grant is per database (done here, as the drill identity, which must be a member of
    the new database's owner); role memberships are per instance (a one-time step, DR_RUNBOOK.md).
    """
    owner, user = plan.app_roles[0], plan.import_user or DEFAULT_IMPORT_USER
    title = f"Prepare {plan.restore_database} for an import as {user}"
    with env.reporter.step(title):
        instance = cloud.admin.get_instance(plan.staging_instance)
        with cloud.connector.connect(instance, plan.restore_database) as conn:
            try:
                conn.execute(schema_grants_sql(owner).encode("utf-8"))
            except psycopg.errors.InsufficientPrivilege as error:
                raise DrillError(
                    f"cannot let {owner} own objects in {plan.restore_database} ({error}); the "
                    "drill identity needs membership in the new database's owner on "
                    f"{plan.staging_instance} (see DR_RUNBOOK.md)"
                ) from error
            problems = missing_grants(conn, user, plan.app_roles)
    if problems:
        raise DrillError(
            f"{plan.staging_instance} is not prepared for imports as {user}: "
            + "; ".join(problems)
            + ". Run once, as a role with ADMIN OPTION on the roles: "
            + " ".join(preparation_sql(user, plan.app_roles).split())
        )


def delete_drill_database(plan: ExportPlan, cloud: CloudDrillServices, reporter: Reporter) -> None:
    admin = cloud.admin
    try:
        run_operation(
            admin,
            lambda: admin.delete_database(plan.staging_instance, plan.restore_database),
            cloud.poll,
            reporter,
        )
    except NotFoundError:
        reporter.note(f"database {plan.restore_database} was never created; nothing to delete")


# --- pitr ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PitrPlan:
    source_instance: str
    clone_instance: str
    # None: the latest recovery time Google reports when the drill starts.
    point_in_time: datetime | None
    database: str
    keep_restored: bool = False


def run_pitr_drill(
    plan: PitrPlan,
    env: DrillEnvironment,
    admin: CloudSqlAdmin,
    connector: DatabaseConnector,
    poll: PollSettings,
) -> DrillReport:
    report = DrillReport(
        method="pitr (instances.clone)",
        source=plan.source_instance,
        target=f"{plan.clone_instance}/{plan.database} (temporary)",
        restore_point=plan.point_in_time,
        started_at=env.clock(),
        checks_total=len(env.checks),
    )
    cloud = CloudDrillServices(admin, connector, poll)
    with drill_steps(report, env, plan.keep_restored) as resources:
        validate_pitr_plan(plan, env.clock())
        moment = choose_point_in_time(plan, admin, env, report)
        clone_to_point_in_time(replace(plan, point_in_time=moment), cloud, env, resources)
        connect_and_verify(lambda: connect_to_clone(plan, cloud), env, report, report.target)
    return report


def validate_pitr_plan(plan: PitrPlan, now: datetime) -> None:
    if plan.clone_instance == plan.source_instance:
        raise DrillError("the temporary instance must not have the source instance's name")
    if plan.point_in_time is not None and plan.point_in_time >= now:
        raise DrillError(f"point in time {format_moment(plan.point_in_time)} is not in the past")


def choose_point_in_time(
    plan: PitrPlan, admin: CloudSqlAdmin, env: DrillEnvironment, report: DrillReport
) -> datetime:
    """Ask Google how recent a recovery can be (the RPO a loss right now would cost), and clone
    to that moment unless the operator chose an earlier one."""
    with env.reporter.step(f"Ask the latest recovery time of {plan.source_instance}"):
        asked_at = env.clock()
        latest = admin.latest_recovery_time(plan.source_instance)
    report.rpo_data_at, report.rpo_reference_at = latest, asked_at
    report.rpo_basis = RPO_PITR_BASIS
    env.reporter.note(
        f"latest recovery time: {format_moment(latest)} (asked {format_moment(asked_at)})"
    )
    moment = plan.point_in_time or latest
    if moment > latest:
        raise DrillError(
            f"point in time {format_moment(moment)} is after the latest recovery time "
            f"{format_moment(latest)} that Cloud SQL reports for {plan.source_instance}"
        )
    report.restore_point = moment
    report.source = f"{plan.source_instance} at {format_moment(moment)}"
    return moment


def clone_to_point_in_time(
    plan: PitrPlan, cloud: CloudDrillServices, env: DrillEnvironment, resources: CreatedResources
) -> None:
    admin, point_in_time = cloud.admin, plan.point_in_time
    assert point_in_time is not None
    moment = format_moment(point_in_time)
    with env.reporter.step(f"Clone {plan.source_instance} to {plan.clone_instance} at {moment}"):
        refuse_existing_instance(admin, plan.clone_instance, env.reporter)
        # "Using this operation might cause your instance to restart" (instances.clone:
        # https://cloud.google.com/sql/docs/postgres/admin-api/rest/v1/instances/clone).
        env.reporter.note(f"cloning may restart {plan.source_instance} (Google's clone reference)")
        operation = retry_while_busy(
            lambda: admin.clone_instance(plan.source_instance, plan.clone_instance, point_in_time),
            cloud.poll,
        )
        # Ours from here on, even if the clone ends up FAILED: cleanup always deletes it.
        resources.register(
            f"Delete temporary instance {plan.clone_instance}",
            f"kept temporary instance {plan.clone_instance}; it is billed until you remove it "
            "as DR_RUNBOOK.md 'Remove a clone' says (retain-on-delete and final backup off, "
            f"then `gcloud sql instances delete {plan.clone_instance}`)",
            lambda: delete_temporary_instance(admin, plan.clone_instance, cloud.poll, env.reporter),
        )
        wait_for_operation(admin, operation, cloud.poll, on_status=status_reporter(env.reporter))


def connect_to_clone(plan: PitrPlan, cloud: CloudDrillServices) -> psycopg.Connection[TupleRow]:
    instance = cloud.admin.get_instance(plan.clone_instance)
    if instance.state != INSTANCE_RUNNABLE:
        raise DrillError(f"clone {plan.clone_instance} is {instance.state}, not RUNNABLE")
    return cloud.connector.connect(instance, plan.database)


def refuse_existing_instance(admin: CloudSqlAdmin, instance_name: str, reporter: Reporter) -> None:
    """A drill only deletes what it created, so it never clones onto an existing instance.

    Cloud SQL answers a missing instance with 404 or 403, so a 403 proves nothing: the clone call
    itself then decides (409 instanceAlreadyExists if the name is taken, and nothing is deleted).
    """
    try:
        admin.get_instance(instance_name)
    except NotFoundError:
        return
    except ForbiddenError:
        reporter.note(f"instances.get {instance_name}: 403 (Cloud SQL's answer for a missing one)")
        return
    raise DrillError(f"instance {instance_name} already exists; choose another --clone-instance")


def delete_temporary_instance(
    admin: CloudSqlAdmin, instance_name: str, poll: PollSettings, reporter: Reporter
) -> None:
    """Delete an instance the drill created, leaving no backups behind.

    A clone inherits production's deletion protection, retain-backups-on-delete and final
    backup: all three are switched off on the clone first, and the delete skips the final backup.
    """
    try:
        admin.get_instance(instance_name)
    except NotFoundError:
        reporter.note(f"instance {instance_name} does not exist; nothing to delete")
        return
    run_operation(admin, lambda: admin.prepare_for_deletion(instance_name), poll, reporter)
    run_operation(admin, lambda: admin.delete_instance(instance_name), poll, reporter)


# --- vault --------------------------------------------------------------------------------------

RPO_VAULT_BASIS = "now - vaulted backup consistency time (Backup and DR Backup.consistencyTime)"


@dataclass(frozen=True)
class VaultPlan:
    """A vault drill. The vault and the backed-up instance are production's; the temporary
    instance and its operations live in the staging project (the `admin` the drill is given)."""

    vault: str  # projects/P/locations/L/backupVaults/V
    source_instance: str  # projects/P/instances/I, as Backup and DR names the backed-up instance
    restore_instance: str
    settings: NewInstanceSettings
    database: str
    backup: str | None = None  # a full Backup name; None: the newest restorable one
    keep_restored: bool = False


def run_vault_drill(
    plan: VaultPlan,
    env: DrillEnvironment,
    admin: CloudSqlAdmin,
    catalog: BackupVaultCatalog,
    connector: DatabaseConnector,
    poll: PollSettings,
) -> DrillReport:
    report = DrillReport(
        method="vault (instances.restoreBackup)",
        source=plan.vault,
        target=f"{plan.restore_instance}/{plan.database} (temporary)",
        restore_point=None,
        started_at=env.clock(),
        checks_total=len(env.checks),
    )
    cloud = CloudDrillServices(admin, connector, poll)
    with drill_steps(report, env, plan.keep_restored) as resources:
        backup = choose_vault_backup(plan, catalog, env, report)
        restore_vault_backup(plan, backup, cloud, env, resources)
        connect_and_verify(
            lambda: connect_to_temporary(cloud, plan.restore_instance, plan.database),
            env,
            report,
            report.target,
        )
    return report


def choose_vault_backup(
    plan: VaultPlan, catalog: BackupVaultCatalog, env: DrillEnvironment, report: DrillReport
) -> VaultBackup:
    """The backup to restore, and the RPO a loss right now would cost with the vault alone."""
    with env.reporter.step(f"Find the backup of {plan.source_instance} in {plan.vault}"):
        asked_at = env.clock()
        backups = catalog.list_vault_backups(plan.vault)
    backup = pick_vault_backup(plan, backups)
    assert backup.consistency_time is not None  # pick_vault_backup returns restorable ones only
    report.source, report.restore_point = backup.name, backup.consistency_time
    report.rpo_data_at, report.rpo_reference_at = backup.consistency_time, asked_at
    report.rpo_basis = RPO_VAULT_BASIS
    env.reporter.note(
        f"vaulted backup: {backup.name} (consistent at {format_moment(backup.consistency_time)})"
    )
    return backup


def pick_vault_backup(plan: VaultPlan, backups: list[VaultBackup]) -> VaultBackup:
    ours = [backup for backup in backups if backup.source_instance == plan.source_instance]
    if plan.backup is not None:
        named = next((backup for backup in ours if backup.name == plan.backup), None)
        if named is None:
            raise DrillError(
                f"{plan.backup} is not a backup of {plan.source_instance} in {plan.vault}; "
                "list them with `gcloud backup-dr backups list` (DR_RUNBOOK.md)"
            )
        if not named.restorable:
            raise DrillError(f"backup {plan.backup} is {named.state}; only ACTIVE ones restore")
        return named
    restorable = [backup for backup in ours if backup.restorable]
    if not restorable:
        raise DrillError(no_vault_backup_message(plan, backups, ours))
    return max(restorable, key=lambda backup: backup.consistency_time or datetime.min)


def no_vault_backup_message(
    plan: VaultPlan, backups: list[VaultBackup], ours: list[VaultBackup]
) -> str:
    message = f"no restorable (ACTIVE) backup of {plan.source_instance} in {plan.vault}"
    if ours:
        states = sorted({backup.state for backup in ours})
        return f"{message}; its {len(ours)} backup(s) are {', '.join(states)}"
    others = sorted({backup.source_instance for backup in backups} - {""})
    if others:
        return f"{message}; the vault holds backups of {', '.join(others)} (check --instance)"
    return f"{message}; the vault is empty (has the backup plan run yet?)"


def restore_vault_backup(
    plan: VaultPlan,
    backup: VaultBackup,
    cloud: CloudDrillServices,
    env: DrillEnvironment,
    resources: CreatedResources,
) -> None:
    admin, name = cloud.admin, plan.restore_instance
    with env.reporter.step(f"Restore the vaulted backup into new instance {name}"):
        require_absent_instance(admin, name)
        operation = admin.restore_backupdr_backup(name, backup.name, plan.settings)
        # Ours from here on, even if the restore ends up FAILED: cleanup always deletes it.
        resources.register(
            f"Delete temporary instance {name}",
            f"kept temporary instance {name} in {admin.project}; it is billed until you remove "
            "it as DR_RUNBOOK.md 'Remove a clone' says",
            lambda: delete_temporary_instance(admin, name, cloud.poll, env.reporter),
        )
        wait_for_operation(admin, operation, cloud.poll, on_status=status_reporter(env.reporter))


def require_absent_instance(admin: CloudSqlAdmin, instance_name: str) -> None:
    """Restoring onto an existing instance overwrites its data, so only a 404 lets the drill go on.

    Unlike a clone, whose call answers 409 for a taken name, what restoreBackup does with
    restoreInstanceSettings on an existing instance is not documented, and Cloud SQL also answers
    403 for a missing instance: a 403 stops the drill instead of being taken for absence.
    """
    try:
        admin.get_instance(instance_name)
    except NotFoundError:
        return
    except ForbiddenError as error:
        raise DrillError(
            f"cannot tell whether instance {instance_name} exists ({error}); the drill restores "
            "only into a name Cloud SQL reports missing (404): give the drill identity "
            f"cloudsql.instances.get in {admin.project} (DR_RUNBOOK.md)"
        ) from error
    raise DrillError(f"instance {instance_name} already exists; choose another --restore-instance")


def connect_to_temporary(
    cloud: CloudDrillServices, instance_name: str, database: str
) -> psycopg.Connection[TupleRow]:
    instance = cloud.admin.get_instance(instance_name)
    if instance.state != INSTANCE_RUNNABLE:
        raise DrillError(f"instance {instance_name} is {instance.state}, not RUNNABLE")
    return cloud.connector.connect(instance, database)
