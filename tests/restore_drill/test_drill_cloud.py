"""The export and PITR drills against the fake Cloud SQL Admin API, verifying a real restored database.

The fake plays Google; `LocalConnector` plays the network path to the restored instance (it hands
out a connection to a database on the local target server and lets the test decide how long the
restore "took", so RTO is exact).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
import pytest

from ops.restore_drill.cloudsql import PollSettings, StoredObject
from ops.restore_drill.drill import (
    DrillEnvironment,
    ExportPlan,
    PitrPlan,
    RecordingReporter,
    run_export_drill,
    run_pitr_drill,
)
from ops.restore_drill.fakes import FakeBackupStore, FakeCloudSqlAdmin, FakeInstance
from ops.restore_drill.import_target import DEFAULT_APP_ROLES as APP_ROLES
from ops.restore_drill.import_target import preparation_sql
from ops.restore_drill.local_restore import LocalRestoreResult
from ops.restore_drill.report import DrillReport
from ops.restore_drill.suite_setup import reference_suite
from tests.restore_drill.conftest import Servers
from tests.restore_drill.support import EXPORT_AT, NEWEST_WRITE, LocalConnector

BUCKET = "example-backups"
RESTORE_TAKES = timedelta(minutes=42)
RECOVERY_LAG = timedelta(minutes=4)  # how far Cloud SQL's latest recovery time trails "now"


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def connector(conninfo: str, clock: Clock) -> LocalConnector:
    """The restored database, reached RESTORE_TAKES after the drill started."""
    return LocalConnector(conninfo, on_connect=lambda: clock.advance(RESTORE_TAKES))


def environment(clock: Clock) -> tuple[DrillEnvironment, RecordingReporter]:
    reporter = RecordingReporter()
    return DrillEnvironment(reporter=reporter, checks=reference_suite(), clock=clock), reporter


def no_wait_polling(sleep: Callable[[float], None] = lambda _seconds: None) -> PollSettings:
    return PollSettings(interval_seconds=10, timeout_seconds=3600, conflict_retries=3, sleep=sleep)


def export_object(name: str, created: datetime) -> StoredObject:
    return StoredObject(BUCKET, name, 1_864_290, created)


def backup_bucket() -> FakeBackupStore:
    return FakeBackupStore(
        [
            export_object(
                "cloudsql/prod-pg/app/20260228T020000Z.sql.gz", EXPORT_AT - timedelta(days=1)
            ),
            # Object written 4 minutes after the export started (its stamp): the export's duration.
            export_object(
                "cloudsql/prod-pg/app/20260301T020000Z.sql.gz", EXPORT_AT + timedelta(minutes=4)
            ),
            # A newer folder without toc.dat (an unfinished parallel export) and another
            # database's export are not candidates.
            export_object("cloudsql/prod-pg/app/20260302T020000Z/3001.dat.gz", EXPORT_AT),
            export_object("cloudsql/prod-pg/billing/20260302T020000Z.sql.gz", EXPORT_AT),
        ]
    )


def production() -> FakeInstance:
    """Production as the stack makes it: protected, keeping its backups when deleted."""
    return FakeInstance(
        "prod-pg",
        deletion_protection=True,
        retain_backups_on_delete=True,
        final_backup_enabled=True,
    )


def cloud(clock: Clock | None = None) -> FakeCloudSqlAdmin:
    """One project holding both instances (the PITR drill only uses production's project)."""
    return FakeCloudSqlAdmin(
        [production(), FakeInstance("staging-pg")],
        clock=clock or Clock(EXPORT_AT),
        recovery_lag=RECOVERY_LAG,
    )


EXPORT_PLAN = ExportPlan(
    bucket=BUCKET,
    source_instance="prod-pg",
    database="app",
    staging_instance="staging-pg",
    restore_database="app_drill_202603010900",
)
PITR_PLAN = PitrPlan(
    source_instance="prod-pg",
    clone_instance="prod-pg-drill-202603010900",
    point_in_time=NEWEST_WRITE + timedelta(minutes=10),
    database="app",
)


def calls_named(admin: FakeCloudSqlAdmin, name: str) -> list[tuple[str, ...]]:
    return [call for call in admin.calls if call[0] == name]


def export_drill(
    admin: FakeCloudSqlAdmin,
    local: LocalConnector,
    clock: Clock,
    *,
    store: FakeBackupStore | None = None,
    sleep: Callable[[float], None] = lambda _seconds: None,
) -> tuple[DrillReport, RecordingReporter]:
    """Run the export drill against the fakes and the local server; the report and what was shown."""
    env, reporter = environment(clock)
    report = run_export_drill(
        EXPORT_PLAN, env, admin, store or backup_bucket(), local, no_wait_polling(sleep)
    )
    return report, reporter


# --- export ---------------------------------------------------------------------------------


def test_export_drill_imports_the_newest_export_verifies_it_and_removes_the_database(
    restored: LocalRestoreResult,
) -> None:
    admin, clock = cloud(), Clock(EXPORT_AT + timedelta(hours=7))
    local = connector(restored.database_conninfo, clock)

    report, reporter = export_drill(admin, local, clock)

    assert report.passed, report.failures
    newest = f"gs://{BUCKET}/cloudsql/prod-pg/app/20260301T020000Z.sql.gz"
    assert calls_named(admin, "import_sql") == [
        ("import_sql", "staging-pg", newest, "app_drill_202603010900", "")
    ]
    assert admin.status_histories("IMPORT") == [["PENDING", "RUNNING", "DONE"]]
    assert local.connections == [("staging-pg", "app_drill_202603010900", "RUNNABLE")]
    # RPO: the export was 7 hours old when the restore started; worst case 24 h + its 4 minutes.
    assert (report.restore_point, report.rpo_minutes, report.rto_minutes) == (
        EXPORT_AT,
        420.0,
        42.0,
    )
    assert report.rpo_worst_case_minutes == 24 * 60 + 4
    assert report.log_cells("alice")["RPO basis"] == "export age at restore start"
    assert admin.instances["staging-pg"].databases == {"postgres"}  # drill database deleted
    assert admin.instances["prod-pg"].databases == {"postgres"}  # production untouched
    cells = report.log_cells("alice")
    assert (cells["Source"], cells["Checks passed"], cells["Result"]) == (newest, "23/23", "passed")
    assert "Delete database app_drill_202603010900 from staging-pg" in reporter.steps


def folder_bucket() -> FakeBackupStore:
    """The newest export is a parallel export's folder (directory dump)."""
    folder = "cloudsql/prod-pg/app/20260302T020000Z/"
    return FakeBackupStore(
        [
            *backup_bucket().buckets[BUCKET],
            export_object(folder + "toc.dat", EXPORT_AT + timedelta(days=1, minutes=3)),
            export_object(folder + "3001.dat.gz", EXPORT_AT + timedelta(days=1, minutes=2)),
        ]
    )


@pytest.mark.parametrize(("threads", "expected"), [(None, 2), (6, 6)])
def test_a_folder_export_is_imported_in_parallel_with_one_thread_per_staging_vcpu(
    restored: LocalRestoreResult, threads: int | None, expected: int
) -> None:
    admin, clock = cloud(), Clock(EXPORT_AT + timedelta(days=1, hours=7))
    local = connector(restored.database_conninfo, clock)
    env, _reporter = environment(clock)
    plan = dataclasses.replace(EXPORT_PLAN, import_threads=threads)

    report = run_export_drill(plan, env, admin, folder_bucket(), local, no_wait_polling())

    assert report.passed, report.failures
    folder = f"gs://{BUCKET}/cloudsql/prod-pg/app/20260302T020000Z"
    assert calls_named(admin, "import_sql") == [
        (
            "import_sql",
            "staging-pg",
            folder,
            "app_drill_202603010900",
            "",
            f"parallel threads={expected}",
        )
    ]
    assert report.method == "export (instances.import, parallel)"
    assert (report.source, report.restore_point) == (folder, EXPORT_AT + timedelta(days=1))
    assert admin.instances["staging-pg"].databases == {"postgres"}


def test_an_unfinished_newer_folder_is_named_when_an_older_export_is_restored(
    restored: LocalRestoreResult,
) -> None:
    admin, clock = cloud(), Clock(EXPORT_AT + timedelta(hours=7))

    _report, reporter = export_drill(admin, connector(restored.database_conninfo, clock), clock)

    folder = f"gs://{BUCKET}/cloudsql/prod-pg/app/20260302T020000Z"
    assert f"WARNING: skipped newer {folder}/: no toc.dat (unfinished export?)" in reporter.notes


def test_a_failed_import_fails_the_drill_and_still_removes_the_database(
    restored: LocalRestoreResult,
) -> None:
    admin, clock = cloud(), Clock(EXPORT_AT + timedelta(hours=7))
    admin.fail_next(
        "IMPORT", "ERROR_RDBMS", 'exit status 3: ERROR: role "app_owner" does not exist'
    )
    local = connector(restored.database_conninfo, clock)

    report, _reporter = export_drill(admin, local, clock)

    assert not report.passed
    assert "IMPORT operation" in report.failures[0]
    assert (
        'ERROR_RDBMS: exit status 3: ERROR: role "app_owner" does not exist' in report.failures[0]
    )
    assert local.connections == []
    assert admin.instances["staging-pg"].databases == {"postgres"}
    cells = report.log_cells("alice")
    assert (cells["Result"], cells["RTO (min)"]) == ("failed", "n/a")
    assert cells["Checks passed"].startswith("0/23 (not run: IMPORT operation")


def test_a_busy_staging_instance_is_waited_out_not_failed(restored: LocalRestoreResult) -> None:
    admin, clock = cloud(), Clock(EXPORT_AT + timedelta(hours=7))
    admin.start_blocking_operation("staging-pg")  # e.g. its automated backup is running
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        admin.tick()

    local = connector(restored.database_conninfo, clock)

    report, _reporter = export_drill(admin, local, clock, sleep=sleep)

    assert report.passed, report.failures
    assert len(calls_named(admin, "create_database")) == 3  # 409, 409, then accepted
    assert slept[:2] == [10, 10]


def test_no_export_in_the_bucket_fails_before_touching_staging(
    restored: LocalRestoreResult,
) -> None:
    admin, clock = cloud(), Clock(EXPORT_AT)
    empty = FakeBackupStore(
        [export_object("cloudsql/other/app/20260301T020000Z.sql.gz", EXPORT_AT)]
    )

    report, _reporter = export_drill(
        admin, connector(restored.database_conninfo, clock), clock, store=empty
    )

    assert not report.passed
    assert report.failures == [
        "no exports named cloudsql/prod-pg/app/YYYYMMDDTHHMMSSZ.sql.gz or "
        f"cloudsql/prod-pg/app/YYYYMMDDTHHMMSSZ/toc.dat in gs://{BUCKET}"
    ]
    assert calls_named(admin, "create_database") == []


def test_a_stale_export_is_flagged_to_the_operator(restored: LocalRestoreResult) -> None:
    admin, clock = cloud(), Clock(EXPORT_AT + timedelta(hours=40))
    _report, reporter = export_drill(admin, connector(restored.database_conninfo, clock), clock)

    assert any("older than 36 hours" in note for note in reporter.notes)


def test_an_unknown_staging_instance_fails_with_googles_message(
    restored: LocalRestoreResult,
) -> None:
    admin, clock = FakeCloudSqlAdmin([FakeInstance("prod-pg")]), Clock(EXPORT_AT)
    report, _reporter = export_drill(admin, connector(restored.database_conninfo, clock), clock)

    assert report.failures == [
        "HTTP 404 instanceDoesNotExist: The Cloud SQL instance does not exist."
    ]
    assert calls_named(admin, "create_database") == []


def test_an_existing_database_with_the_drill_name_is_refused_and_kept(
    restored: LocalRestoreResult,
) -> None:
    admin = FakeCloudSqlAdmin(
        [FakeInstance("prod-pg"), FakeInstance("staging-pg", databases={"app_drill_202603010900"})]
    )
    clock = Clock(EXPORT_AT)
    report, _reporter = export_drill(admin, connector(restored.database_conninfo, clock), clock)

    assert report.failures == [
        "database app_drill_202603010900 already exists on staging-pg; choose another --restore-database"
    ]
    assert calls_named(admin, "delete_database") == []
    assert "app_drill_202603010900" in admin.instances["staging-pg"].databases


# --- pitr -----------------------------------------------------------------------------------


def test_pitr_drill_clones_verifies_and_deletes_the_protected_clone(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(NEWEST_WRITE + timedelta(hours=1))
    admin = cloud(clock)
    local = connector(restored.database_conninfo, clock)
    env, _reporter = environment(clock)

    report = run_pitr_drill(PITR_PLAN, env, admin, local, no_wait_polling())

    assert report.passed, report.failures
    assert calls_named(admin, "clone_instance") == [
        (
            "clone_instance",
            "prod-pg",
            "prod-pg-drill-202603010900",
            str(PITR_PLAN.point_in_time and PITR_PLAN.point_in_time.isoformat()),
        )
    ]
    assert local.connections == [("prod-pg-drill-202603010900", "app", "RUNNABLE")]
    # RPO: Google's latest recovery time trailed the moment the drill asked by RECOVERY_LAG.
    assert (report.rpo_minutes, report.rto_minutes) == (4.0, 42.0)
    # The clone inherited production's deletion protection, retain-on-delete and final backup;
    # the drill switched them off on the clone only, and deleting it left no backup behind.
    assert calls_named(admin, "prepare_for_deletion") == [
        ("prepare_for_deletion", "prod-pg-drill-202603010900")
    ]
    assert admin.backups_left_behind == []
    assert set(admin.instances) == {"prod-pg", "staging-pg"}
    prod = admin.instances["prod-pg"]
    assert (prod.deletion_protection, prod.retain_backups_on_delete, prod.final_backup_enabled) == (
        True,
        True,
        True,
    )


def test_a_failing_check_fails_the_drill_and_the_clone_is_still_deleted(
    database_copy: Callable[[str], str],
) -> None:
    clock = Clock(NEWEST_WRITE + timedelta(hours=1))
    admin = cloud(clock)
    local = connector(database_copy("DROP TABLE security_events"), clock)
    env, _reporter = environment(clock)

    report = run_pitr_drill(PITR_PLAN, env, admin, local, no_wait_polling())

    assert not report.passed
    assert report.failed_checks == ["tables_present", "rls:security_events"]
    assert "prod-pg-drill-202603010900" not in admin.instances
    assert report.log_cells("bob")["Result"] == "failed"


def test_a_failed_clone_leaves_a_failed_instance_that_is_deleted(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(NEWEST_WRITE + timedelta(hours=1))
    admin = cloud(clock)
    admin.fail_next("CLONE", "INTERNAL_ERROR", "An internal error occurred.")
    local = connector(restored.database_conninfo, clock)
    env, _reporter = environment(clock)

    report = run_pitr_drill(PITR_PLAN, env, admin, local, no_wait_polling())

    assert "INTERNAL_ERROR: An internal error occurred." in report.failures[0]
    assert local.connections == []
    assert calls_named(admin, "delete_instance") == [
        ("delete_instance", "prod-pg-drill-202603010900")
    ]
    assert "prod-pg-drill-202603010900" not in admin.instances


def test_an_existing_instance_with_the_clone_name_is_never_deleted(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(NEWEST_WRITE + timedelta(hours=1))
    admin = FakeCloudSqlAdmin(
        [FakeInstance("prod-pg"), FakeInstance("prod-pg-drill-202603010900")], clock=clock
    )
    env, _reporter = environment(clock)

    report = run_pitr_drill(
        PITR_PLAN, env, admin, connector(restored.database_conninfo, clock), no_wait_polling()
    )

    assert report.failures == [
        "instance prod-pg-drill-202603010900 already exists; choose another --clone-instance"
    ]
    assert calls_named(admin, "clone_instance") == []
    assert calls_named(admin, "delete_instance") == []
    assert "prod-pg-drill-202603010900" in admin.instances


def test_a_point_in_time_in_the_future_is_refused_without_cloning(
    restored: LocalRestoreResult,
) -> None:
    assert PITR_PLAN.point_in_time is not None
    clock = Clock(PITR_PLAN.point_in_time - timedelta(minutes=1))
    admin = cloud(clock)
    env, _reporter = environment(clock)

    report = run_pitr_drill(
        PITR_PLAN, env, admin, connector(restored.database_conninfo, clock), no_wait_polling()
    )

    assert "is not in the past" in report.failures[0]
    assert calls_named(admin, "clone_instance") == []


def test_a_clone_that_never_finishes_times_out_and_the_failed_cleanup_is_reported(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(NEWEST_WRITE + timedelta(hours=1))
    admin = FakeCloudSqlAdmin([FakeInstance("prod-pg")], polls_per_phase=10_000, clock=clock)
    elapsed = [0.0]

    def sleep(seconds: float) -> None:
        elapsed[0] += seconds

    poll = PollSettings(
        interval_seconds=60,
        timeout_seconds=600,
        conflict_retries=2,
        sleep=sleep,
        monotonic=lambda: elapsed[0],
    )
    env, _reporter = environment(clock)

    report = run_pitr_drill(
        PITR_PLAN, env, admin, connector(restored.database_conninfo, clock), poll
    )

    assert "still PENDING after 600s" in report.failures[0]
    assert report.failures[1].startswith(
        "cleanup failed (Delete temporary instance prod-pg-drill-202603010900): HTTP 409 operationInProgress"
    )


def test_keep_restored_leaves_the_clone_and_says_how_to_delete_it(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(NEWEST_WRITE + timedelta(hours=1))
    admin = cloud(clock)
    env, reporter = environment(clock)
    keep = dataclasses.replace(PITR_PLAN, keep_restored=True)

    report = run_pitr_drill(
        keep, env, admin, connector(restored.database_conninfo, clock), no_wait_polling()
    )

    assert report.passed, report.failures
    assert admin.instances["prod-pg-drill-202603010900"].state == "RUNNABLE"
    assert calls_named(admin, "delete_instance") == []
    assert any(
        "gcloud sql instances delete prod-pg-drill-202603010900" in note for note in reporter.notes
    )


def test_a_403_for_the_clone_name_is_not_taken_for_an_existing_instance(
    restored: LocalRestoreResult,
) -> None:
    """Cloud SQL answers instances.get for a missing instance with 403 as well as 404."""
    clock = Clock(NEWEST_WRITE + timedelta(hours=1))
    admin = FakeCloudSqlAdmin([production()], clock=clock, missing_instance_status=403)
    env, reporter = environment(clock)

    report = run_pitr_drill(
        PITR_PLAN, env, admin, connector(restored.database_conninfo, clock), no_wait_polling()
    )

    assert report.passed, report.failures
    assert len(calls_named(admin, "clone_instance")) == 1
    assert "prod-pg-drill-202603010900" not in admin.instances
    assert any("403" in note for note in reporter.notes)


def test_without_a_point_in_time_the_clone_is_made_at_the_latest_recovery_time(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(NEWEST_WRITE + timedelta(hours=1))
    admin = cloud(clock)
    env, reporter = environment(clock)
    latest = clock.now - RECOVERY_LAG

    report = run_pitr_drill(
        dataclasses.replace(PITR_PLAN, point_in_time=None),
        env,
        admin,
        connector(restored.database_conninfo, clock),
        no_wait_polling(),
    )

    assert report.passed, report.failures
    assert calls_named(admin, "clone_instance")[0][3] == latest.isoformat()
    assert (report.restore_point, report.rpo_minutes) == (latest, 4.0)
    cells = report.log_cells("bob")
    assert cells["RPO basis"] == "now - latest recovery time (instances.getLatestRecoveryTime)"
    assert any("cloning may restart prod-pg" in note for note in reporter.notes)


def test_a_point_in_time_after_the_latest_recovery_time_is_refused(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(NEWEST_WRITE + timedelta(hours=1))
    admin = cloud(clock)
    env, _reporter = environment(clock)
    too_recent = clock.now - timedelta(minutes=1)

    report = run_pitr_drill(
        dataclasses.replace(PITR_PLAN, point_in_time=too_recent),
        env,
        admin,
        connector(restored.database_conninfo, clock),
        no_wait_polling(),
    )

    assert "is after the latest recovery time" in report.failures[0]
    assert calls_named(admin, "clone_instance") == []


# --- import target preparation (real PostgreSQL) --------------------------------------------


@pytest.fixture
def import_role(servers: Servers, restored: LocalRestoreResult) -> Iterator[str]:
    """A Cloud SQL-like import user (CREATEROLE, not superuser) on the target server."""
    name = "drill_import_user"
    with psycopg.connect(servers.target, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN CREATEROLE CREATEDB NOSUPERUSER")
    yield name
    with psycopg.connect(servers.target, autocommit=True) as conn:
        conn.execute(f"DROP ROLE {name}")


def test_an_unprepared_import_user_stops_the_drill_before_the_import(
    database_copy: Callable[[str], str], import_role: str
) -> None:
    clock = Clock(EXPORT_AT + timedelta(hours=7))
    admin = cloud(clock)
    plan = dataclasses.replace(EXPORT_PLAN, import_user=import_role, app_roles=APP_ROLES)
    env, _reporter = environment(clock)

    report = run_export_drill(
        plan, env, admin, backup_bucket(), connector(database_copy(""), clock), no_wait_polling()
    )

    assert not report.passed
    assert report.failures[0].startswith(
        f"staging-pg is not prepared for imports as {import_role}: "
        f"'{import_role}' cannot SET ROLE 'app_owner' (ALTER ... OWNER TO fails)"
    )
    assert (
        f'GRANT "app_owner" TO "{import_role}" WITH INHERIT TRUE, SET TRUE;' in report.failures[0]
    )
    assert calls_named(admin, "import_sql") == []
    assert admin.instances["staging-pg"].databases == {"postgres"}


def test_a_prepared_import_user_passes_the_check_and_the_drill_imports(
    servers: Servers, database_copy: Callable[[str], str], import_role: str
) -> None:
    with psycopg.connect(servers.target, autocommit=True) as conn:
        conn.execute(preparation_sql(import_role, APP_ROLES).encode())
    clock = Clock(EXPORT_AT + timedelta(hours=7))
    admin = cloud(clock)
    plan = dataclasses.replace(EXPORT_PLAN, import_user=import_role, app_roles=APP_ROLES)
    env, _reporter = environment(clock)
    drill_database = database_copy("REVOKE CREATE ON SCHEMA public FROM app_owner")

    report = run_export_drill(
        plan, env, admin, backup_bucket(), connector(drill_database, clock), no_wait_polling()
    )

    assert report.passed, report.failures
    assert calls_named(admin, "import_sql")[0][4] == import_role
    with psycopg.connect(drill_database) as conn:  # the drill granted it in the new database
        assert conn.execute(
            "SELECT has_schema_privilege('app_owner', 'public', 'CREATE')"
        ).fetchone() == (True,)
