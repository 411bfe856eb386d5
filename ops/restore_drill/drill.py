"""The quarterly restore drill: restore, verify with the SQL checks, measure RPO and RTO, clean up.

Three ways to restore, one verification:

* export:     import the newest logical export from the backup bucket into a new database on the
              staging instance (instances.import, fileType SQL);
* pitr:       clone the production instance to a point in time into a temporary instance
              (instances.clone with cloneContext.pointInTime), deleted afterwards;
* local-file: replay a downloaded export into any PostgreSQL with psql.

Whatever fails, the drill returns a report saying so (it never raises for a failed restore or a
failed check) and cleans up what it created: the temporary instance or database is removed even
when a step failed, unless the operator asked to keep it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import google.auth.exceptions
import psycopg
import requests
from psycopg.rows import TupleRow

from ops.restore_drill.checks import CheckResult, SqlCheck, run_checks
from ops.restore_drill.cloudsql import (
    INSTANCE_RUNNABLE,
    BackupStore,
    CloudApiError,
    CloudSqlAdmin,
    NotFoundError,
    Operation,
    OperationFailedError,
    OperationTimeoutError,
    PollSettings,
    retry_while_busy,
    wait_for_operation,
)
from ops.restore_drill.connect import ConnectError, DatabaseConnector
from ops.restore_drill.dump_file import inspect_dump
from ops.restore_drill.exports import NoExportError, export_prefix, latest_export
from ops.restore_drill.local_restore import (
    LocalRestoreRequest,
    RestoreError,
    drop_database,
    prepare_target,
    replay,
)
from ops.restore_drill.pgtools import PgToolError, PgTools, describe_target, with_database

NEWEST_WRITE_SQL = Path(__file__).with_name("newest_write.sql")
EXPORT_STALE_AFTER = timedelta(hours=36)
FAILURE_TEXT_LIMIT = 200


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
    checks: Sequence[SqlCheck]
    newest_write_sql: str = field(default_factory=NEWEST_WRITE_SQL.read_text)
    check_timeout_seconds: float = 60.0
    clock: Callable[[], datetime] = utc_now


@dataclass
class DrillReport:
    """The outcome of one drill: what the log row and the exit code are made of."""

    method: str
    source: str
    target: str
    restore_point: datetime | None
    started_at: datetime
    checks_total: int
    check_results: list[CheckResult] = field(default_factory=list)
    checks_green_at: datetime | None = None
    newest_write: datetime | None = None
    failures: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.failures.append(reason)

    @property
    def passed(self) -> bool:
        return not self.failures and len(self.check_results) == self.checks_total > 0

    @property
    def failed_checks(self) -> list[str]:
        return [r.check.name for r in self.check_results if not r.passed]

    @property
    def rpo_minutes(self) -> float | None:
        """Restore point minus the newest restored write; 0 if the data is newer than the label."""
        if self.restore_point is None or self.newest_write is None:
            return None
        return max(0.0, (self.restore_point - self.newest_write).total_seconds() / 60)

    @property
    def rto_minutes(self) -> float | None:
        """Start of the restore until every check passed (None when they never all did)."""
        if self.checks_green_at is None:
            return None
        return (self.checks_green_at - self.started_at).total_seconds() / 60

    def checks_summary(self) -> str:
        passed = sum(r.passed for r in self.check_results)
        summary = f"{passed}/{self.checks_total}"
        if self.failed_checks:
            return f"{summary} (failed: {', '.join(self.failed_checks)})"
        if self.failures and not self.check_results:
            return f"{summary} (not run: {_shorten(self.failures[0])})"
        if self.failures:
            return f"{summary} ({_shorten('; '.join(self.failures))})"
        return summary

    def log_cells(self, operator: str) -> dict[str, str]:
        return {
            "Date": self.started_at.astimezone(UTC).date().isoformat(),
            "Source": self.source,
            "Target": self.target,
            "Method": self.method,
            "Restore point": format_moment(self.restore_point),
            "RPO (min)": format_minutes(self.rpo_minutes),
            "RTO (min)": format_minutes(self.rto_minutes),
            "Checks passed": self.checks_summary(),
            "Result": "passed" if self.passed else "failed",
            "Operator": operator,
        }


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= FAILURE_TEXT_LIMIT else text[: FAILURE_TEXT_LIMIT - 3] + "..."


def format_moment(moment: datetime | None) -> str:
    return "n/a" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_minutes(minutes: float | None) -> str:
    return "n/a" if minutes is None else f"{minutes:.1f}"


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
    with env.reporter.step(f"Run {len(env.checks)} SQL checks"):
        report.check_results = run_checks(conn, env.checks, env.check_timeout_seconds)
    for result in report.check_results:
        mark = "passed" if result.passed else "FAILED"
        env.reporter.note(f"{mark}  {result.check.name}: {result.detail}")
    if report.failed_checks:
        report.fail(f"checks failed: {', '.join(report.failed_checks)}")
    else:
        report.checks_green_at = env.clock()
    try:
        with env.reporter.step("Measure the newest restored write (RPO)"):
            report.newest_write = newest_write(conn, env.newest_write_sql)
    except (psycopg.Error, DrillError) as error:
        report.fail(f"cannot measure RPO: {error}")


def clean_up(
    report: DrillReport, env: DrillEnvironment, title: str, action: Callable[[], None]
) -> None:
    """Run a cleanup step; its failure fails the drill but never hides the original outcome."""
    try:
        with env.reporter.step(title):
            action()
    except DRILL_FAILURES as error:
        report.fail(f"cleanup failed ({title}): {error}")


def run_operation(
    admin: CloudSqlAdmin, start: Callable[[], Operation], poll: PollSettings, reporter: Reporter
) -> Operation:
    """Start a Cloud SQL operation (waiting out 409s) and wait for it, showing its status."""
    operation = retry_while_busy(start, poll)
    reporter.status(f"{operation.operation_type} {operation.status}")
    return wait_for_operation(
        admin,
        operation,
        poll,
        on_status=lambda op: reporter.status(f"{op.operation_type} {op.status}"),
    )


# --- local-file ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFilePlan:
    dump: Path
    server_conninfo: str
    database: str
    restore_point: datetime
    create_missing_roles: bool = False
    keep_restored: bool = False


def run_local_file_drill(plan: LocalFilePlan, env: DrillEnvironment, tools: PgTools) -> DrillReport:
    report = DrillReport(
        method="local-file (psql replay)",
        source=plan.dump.name,
        target=describe_target(with_database(plan.server_conninfo, plan.database)),
        restore_point=plan.restore_point,
        started_at=env.clock(),
        checks_total=len(env.checks),
    )
    request = LocalRestoreRequest(
        plan.dump, plan.server_conninfo, plan.database, plan.create_missing_roles
    )
    created = False
    try:
        with env.reporter.step(f"Inspect {plan.dump.name} (versions, roles)"):
            dump = inspect_dump(plan.dump)
        with env.reporter.step(f"Create database {plan.database} and the roles the dump needs"):
            new_roles = prepare_target(request, dump, tools)
            created = True
        if new_roles:
            env.reporter.note(f"created NOLOGIN roles: {', '.join(new_roles)}")
        with env.reporter.step("Replay the dump with psql (single transaction, ON_ERROR_STOP)"):
            database_conninfo = replay(request, tools)
        with psycopg.connect(database_conninfo, autocommit=True) as conn:
            verify(conn, env, report)
    except DRILL_FAILURES as error:
        report.fail(str(error))
    finally:
        if created and plan.keep_restored:
            env.reporter.note(f"kept database {plan.database} (--keep-restored)")
        elif created:
            clean_up(
                report,
                env,
                f"Drop database {plan.database}",
                lambda: drop_database(plan.server_conninfo, plan.database),
            )
    return report


# --- export -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportPlan:
    bucket: str
    source_instance: str
    database: str
    staging_instance: str
    restore_database: str
    import_user: str | None = None
    keep_restored: bool = False


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
    created = False
    try:
        with env.reporter.step("Find the latest export in the backup bucket"):
            export = latest_export(store, plan.bucket, plan.source_instance, plan.database)
        report.source, report.restore_point = export.stored.uri, export.exported_at
        env.reporter.note(f"latest export: {export.stored.uri} ({export.stored.size} bytes)")
        if env.clock() - export.exported_at > EXPORT_STALE_AFTER:
            env.reporter.note(
                "WARNING: the latest export is older than 36 hours (see DR_RUNBOOK.md)"
            )
        with env.reporter.step(
            f"Create database {plan.restore_database} on {plan.staging_instance}"
        ):
            created = True  # from here on, cleanup tries to delete it (404 means nothing to do)
            run_operation(
                admin,
                lambda: admin.create_database(plan.staging_instance, plan.restore_database),
                poll,
                env.reporter,
            )
        with env.reporter.step(f"Import {export.stored.uri} into {plan.staging_instance}"):
            run_operation(
                admin,
                lambda: admin.import_sql(
                    plan.staging_instance,
                    export.stored.uri,
                    plan.restore_database,
                    plan.import_user,
                ),
                poll,
                env.reporter,
            )
        with env.reporter.step(f"Connect to {plan.staging_instance}/{plan.restore_database}"):
            instance = admin.get_instance(plan.staging_instance)
            conn = connector.connect(instance, plan.restore_database)
        with conn:
            verify(conn, env, report)
    except DRILL_FAILURES as error:
        report.fail(str(error))
    finally:
        if created and plan.keep_restored:
            env.reporter.note(f"kept database {plan.restore_database} on {plan.staging_instance}")
        elif created:
            clean_up(
                report,
                env,
                f"Delete database {plan.restore_database} from {plan.staging_instance}",
                lambda: delete_drill_database(admin, plan, poll, env.reporter),
            )
    return report


def delete_drill_database(
    admin: CloudSqlAdmin, plan: ExportPlan, poll: PollSettings, reporter: Reporter
) -> None:
    try:
        run_operation(
            admin,
            lambda: admin.delete_database(plan.staging_instance, plan.restore_database),
            poll,
            reporter,
        )
    except NotFoundError:
        reporter.note(f"database {plan.restore_database} was never created; nothing to delete")


# --- pitr ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PitrPlan:
    source_instance: str
    clone_instance: str
    point_in_time: datetime
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
        source=f"{plan.source_instance} at {format_moment(plan.point_in_time)}",
        target=f"{plan.clone_instance}/{plan.database} (temporary)",
        restore_point=plan.point_in_time,
        started_at=env.clock(),
        checks_total=len(env.checks),
    )
    created = False
    try:
        validate_pitr_plan(plan, env.clock())
        with env.reporter.step(
            f"Clone {plan.source_instance} to {plan.clone_instance} at {format_moment(plan.point_in_time)}"
        ):
            operation = retry_while_busy(
                lambda: admin.clone_instance(
                    plan.source_instance, plan.clone_instance, plan.point_in_time
                ),
                poll,
            )
            created = True  # the clone exists (maybe FAILED) from here on; always delete it
            wait_for_operation(
                admin,
                operation,
                poll,
                on_status=lambda op: env.reporter.status(f"{op.operation_type} {op.status}"),
            )
        with env.reporter.step(f"Connect to {plan.clone_instance}/{plan.database}"):
            instance = admin.get_instance(plan.clone_instance)
            if instance.state != INSTANCE_RUNNABLE:
                raise DrillError(f"clone {plan.clone_instance} is {instance.state}, not RUNNABLE")
            conn = connector.connect(instance, plan.database)
        with conn:
            verify(conn, env, report)
    except DRILL_FAILURES as error:
        report.fail(str(error))
    finally:
        if created and plan.keep_restored:
            env.reporter.note(
                f"kept temporary instance {plan.clone_instance}; delete it with "
                f"`gcloud sql instances delete {plan.clone_instance}` (it is billed while it exists)"
            )
        elif created:
            clean_up(
                report,
                env,
                f"Delete temporary instance {plan.clone_instance}",
                lambda: delete_temporary_instance(admin, plan.clone_instance, poll, env.reporter),
            )
    return report


def validate_pitr_plan(plan: PitrPlan, now: datetime) -> None:
    if plan.clone_instance == plan.source_instance:
        raise DrillError("the temporary instance must not have the source instance's name")
    if plan.point_in_time >= now:
        raise DrillError(f"point in time {format_moment(plan.point_in_time)} is not in the past")


def delete_temporary_instance(
    admin: CloudSqlAdmin, instance_name: str, poll: PollSettings, reporter: Reporter
) -> None:
    """Delete an instance the drill created, lifting the deletion protection it inherited."""
    try:
        instance = admin.get_instance(instance_name)
    except NotFoundError:
        reporter.note(f"instance {instance_name} does not exist; nothing to delete")
        return
    if instance.deletion_protection:
        run_operation(
            admin, lambda: admin.disable_deletion_protection(instance_name), poll, reporter
        )
    run_operation(admin, lambda: admin.delete_instance(instance_name), poll, reporter)
