"""The real REST clients, pointed at a loopback server that answers like the Google APIs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
from google.auth.credentials import AnonymousCredentials

from ops.restore_drill.cloudsql import (
    CloudApiError,
    ConflictError,
    ForbiddenError,
    Instance,
    IpAddress,
    NotFoundError,
    OperationFailedError,
    ParallelImport,
    PollSettings,
    StoredObject,
    wait_for_operation,
)
from ops.restore_drill.drill import (
    DrillEnvironment,
    ExportPlan,
    RecordingReporter,
    run_export_drill,
)
from ops.restore_drill.fakes import FakeBackupStore, FakeCloudSqlAdmin, FakeInstance
from ops.restore_drill.local_restore import LocalRestoreResult
from ops.restore_drill.rest import GcsBackupStore, RestCloudSqlAdmin, parse_time, storage_client
from ops.restore_drill.suite_setup import reference_suite
from tests.restore_drill.support import EXPORT_AT, GoogleApiServer, LocalConnector

PROJECT = "example-project"
StartServer = Callable[[FakeCloudSqlAdmin, FakeBackupStore], GoogleApiServer]
NO_WAIT = PollSettings(interval_seconds=0, timeout_seconds=60, sleep=lambda _s: None)


def objects(count: int) -> list[StoredObject]:
    return [
        StoredObject(
            "backups",
            f"cloudsql/prod-pg/app/202603{day:02d}T020000Z.sql.gz",
            1000 + day,
            datetime(2026, 3, day, 2, 0, 5, 123000, tzinfo=UTC),
        )
        for day in range(1, count + 1)
    ]


def clients(
    start: StartServer, instances: list[FakeInstance], stored: list[StoredObject] | None = None
) -> tuple[RestCloudSqlAdmin, GcsBackupStore, GoogleApiServer, FakeCloudSqlAdmin]:
    fake = FakeCloudSqlAdmin(instances)
    server = start(fake, FakeBackupStore(stored or []))
    session = requests.Session()
    return (
        RestCloudSqlAdmin(session, PROJECT, endpoint=server.endpoint),
        GcsBackupStore(storage_client(AnonymousCredentials(), server.endpoint)),  # type: ignore[no-untyped-call]
        server,
        fake,
    )


def test_instances_get_is_parsed(google_api_server: StartServer) -> None:
    admin, _store, server, _fake = clients(
        google_api_server, [FakeInstance("prod-pg", deletion_protection=True)]
    )

    instance = admin.get_instance("prod-pg")

    assert instance == Instance(
        "prod-pg",
        "RUNNABLE",
        "POSTGRES_16",
        (IpAddress("PRIVATE", "10.20.0.5"),),
        True,
        tier="db-custom-2-7680",
        connection_name="example-project:europe-west1:prod-pg",
    )
    assert instance.vcpus == 2
    assert [r.path for r in server.requests] == [f"/v1/projects/{PROJECT}/instances/prod-pg"]


def test_import_sends_an_sql_import_context(google_api_server: StartServer) -> None:
    admin, _store, server, _fake = clients(
        google_api_server, [FakeInstance("staging-pg", databases={"drill"})]
    )

    operation = admin.import_sql("staging-pg", "gs://backups/x.sql.gz", "drill", None)
    [request] = server.requests_to("POST", "/instances/staging-pg/import")

    assert request.path == f"/v1/projects/{PROJECT}/instances/staging-pg/import"
    assert request.body == {
        "importContext": {
            "kind": "sql#importContext",
            "fileType": "SQL",
            "uri": "gs://backups/x.sql.gz",
            "database": "drill",
        }
    }
    assert (operation.status, operation.operation_type) == ("PENDING", "IMPORT")


def test_import_names_the_import_user_only_when_given(google_api_server: StartServer) -> None:
    admin, _store, server, _fake = clients(
        google_api_server, [FakeInstance("staging-pg", databases={"drill"})]
    )

    admin.import_sql("staging-pg", "gs://backups/x.sql.gz", "drill", "drill_importer")

    [request] = server.requests_to("POST", "/import")
    assert request.body is not None
    assert request.body["importContext"]["importUser"] == "drill_importer"


def test_a_folder_is_imported_with_sql_import_options_parallel_and_threads(
    google_api_server: StartServer,
) -> None:
    folder = "gs://backups/d/20260301T020000Z"
    admin, _store, server, fake = clients(
        google_api_server,
        [FakeInstance("staging-pg", databases={"drill"}), FakeInstance("staging-2")],
    )

    admin.import_sql("staging-pg", folder, "drill", None, ParallelImport(3))
    admin.import_sql("staging-2", folder, "drill", None, ParallelImport())

    first, second = server.requests_to("POST", "/import")
    assert first.body is not None and second.body is not None
    assert first.body["importContext"]["sqlImportOptions"] == {"parallel": True, "threads": 3}
    assert second.body["importContext"]["sqlImportOptions"] == {"parallel": True}
    assert fake.calls[0][-1] == "parallel threads=3"


def test_clone_sends_the_point_in_time_in_rfc3339_utc(google_api_server: StartServer) -> None:
    admin, _store, server, _fake = clients(google_api_server, [FakeInstance("prod-pg")])
    # An operator in UTC+1 gives local time; Google gets UTC with milliseconds and a Z.
    local_time = datetime(2026, 3, 1, 4, 3, 0, 94000, tzinfo=timezone(timedelta(hours=1)))

    admin.clone_instance("prod-pg", "prod-pg-drill", local_time)

    [request] = server.requests_to("POST", "/instances/prod-pg/clone")
    assert request.body == {
        "cloneContext": {
            "kind": "sql#cloneContext",
            "destinationInstanceName": "prod-pg-drill",
            "pointInTime": "2026-03-01T03:03:00.094Z",
        }
    }


def test_database_and_instance_lifecycle_requests(google_api_server: StartServer) -> None:
    admin, _store, server, _fake = clients(
        google_api_server,
        [FakeInstance("staging-pg"), FakeInstance("tmp", deletion_protection=True)],
    )

    wait_for_operation(admin, admin.create_database("staging-pg", "drill"), NO_WAIT)
    wait_for_operation(admin, admin.delete_database("staging-pg", "drill"), NO_WAIT)
    wait_for_operation(admin, admin.prepare_for_deletion("tmp"), NO_WAIT)
    wait_for_operation(admin, admin.delete_instance("tmp"), NO_WAIT)

    calls = [(r.method, r.path, r.body) for r in server.requests if "/operations/" not in r.path]
    [delete] = server.requests_to("DELETE", "/instances/tmp")
    assert delete.query == {"enableFinalBackup": ["false"]}
    base = f"/v1/projects/{PROJECT}/instances"
    assert calls == [
        (
            "POST",
            f"{base}/staging-pg/databases",
            {"kind": "sql#database", "name": "drill", "instance": "staging-pg"},
        ),
        ("DELETE", f"{base}/staging-pg/databases/drill", None),
        (
            "PATCH",
            f"{base}/tmp",
            {
                "settings": {
                    "deletionProtectionEnabled": False,
                    "retainBackupsOnDelete": False,
                    "finalBackupConfig": {"enabled": False},
                }
            },
        ),
        ("DELETE", f"{base}/tmp", None),
    ]
    polls = [r.path for r in server.requests if "/operations/" in r.path]
    assert polls and all(p.startswith(f"/v1/projects/{PROJECT}/operations/") for p in polls)


def test_database_existence_is_read_with_databases_get(google_api_server: StartServer) -> None:
    admin, _store, server, _fake = clients(
        google_api_server, [FakeInstance("staging-pg", databases={"app"})]
    )

    assert admin.database_exists("staging-pg", "app")
    assert not admin.database_exists("staging-pg", "app_drill")
    with pytest.raises(NotFoundError, match="instanceDoesNotExist"):
        admin.database_exists("nope", "app")
    assert [r.path for r in server.requests][:2] == [
        f"/v1/projects/{PROJECT}/instances/staging-pg/databases/app",
        f"/v1/projects/{PROJECT}/instances/staging-pg/databases/app_drill",
    ]


def test_409_and_404_become_typed_errors_with_googles_reason(
    google_api_server: StartServer,
) -> None:
    admin, _store, _server, fake = clients(google_api_server, [FakeInstance("staging-pg")])
    fake.start_blocking_operation("staging-pg")

    with pytest.raises(ConflictError) as busy:
        admin.create_database("staging-pg", "drill")
    with pytest.raises(NotFoundError) as missing:
        admin.get_instance("nope")

    assert (busy.value.status, busy.value.reason) == (409, "operationInProgress")
    assert "another operation was already in progress" in busy.value.message
    assert (missing.value.status, missing.value.reason) == (404, "instanceDoesNotExist")


def test_an_operation_done_with_errors_is_parsed_into_a_failure(
    google_api_server: StartServer,
) -> None:
    admin, _store, _server, fake = clients(
        google_api_server, [FakeInstance("staging-pg", databases={"drill"})]
    )
    fake.fail_next("IMPORT", "ERROR_RDBMS", "exit status 3")

    operation = admin.import_sql("staging-pg", "gs://backups/x.sql.gz", "drill", None)

    with pytest.raises(OperationFailedError) as failure:
        wait_for_operation(admin, operation, NO_WAIT)
    assert failure.value.operation.errors[0].code == "ERROR_RDBMS"
    assert failure.value.operation.status == "DONE"


def test_a_non_json_error_page_still_raises_with_its_status(google_api_server: StartServer) -> None:
    admin, _store, server, _fake = clients(google_api_server, [FakeInstance("prod-pg")])
    server.canned[("GET", f"/v1/projects/{PROJECT}/instances/prod-pg")] = (
        502,
        "<html><body>Bad Gateway</body></html>",
    )

    with pytest.raises(CloudApiError) as error:
        admin.get_instance("prod-pg")

    assert error.value.status == 502
    assert "Bad Gateway" in error.value.message


def test_object_listing_follows_every_page(google_api_server: StartServer) -> None:
    _admin, store, server, _fake = clients(google_api_server, [], objects(5))

    listed = store.list_objects("backups", "cloudsql/prod-pg/app/")

    assert listed == objects(5)
    pages = server.requests_to("GET", "/storage/v1/b/backups/o")
    assert [r.query.get("pageToken") for r in pages] == [None, ["2"], ["4"]]
    assert all(r.query["prefix"] == ["cloudsql/prod-pg/app/"] for r in pages)


def test_listing_an_unknown_bucket_is_a_404(google_api_server: StartServer) -> None:
    _admin, store, _server, _fake = clients(google_api_server, [])

    with pytest.raises(NotFoundError):
        store.list_objects("missing", "")


def test_the_export_drill_runs_end_to_end_over_http(
    google_api_server: StartServer, restored: LocalRestoreResult
) -> None:
    admin, store, server, fake = clients(
        google_api_server,
        [FakeInstance("prod-pg"), FakeInstance("staging-pg")],
        [StoredObject("backups", "cloudsql/prod-pg/app/20260301T020000Z.sql.gz", 10, EXPORT_AT)],
    )
    env = DrillEnvironment(
        RecordingReporter(), reference_suite(), clock=lambda: EXPORT_AT + timedelta(hours=2)
    )
    plan = ExportPlan("backups", "prod-pg", "app", "staging-pg", "app_drill")

    report = run_export_drill(
        plan, env, admin, store, LocalConnector(restored.database_conninfo), NO_WAIT
    )

    assert report.passed, report.failures
    assert report.rpo_minutes == 120.0  # the export's age when the restore started
    assert fake.instances["staging-pg"].databases == {"postgres"}
    # google-cloud-storage may also fetch the bucket's metadata in the background, for its trace
    # attributes only (create_trace_span_helper); whether it has by now depends on timing.
    calls = [r for r in server.requests if r.path != "/storage/v1/b/backups"]
    assert [r.method for r in calls if "/operations/" not in r.path] == [
        "GET",  # list exports
        "GET",  # databases.get: the drill database must not exist yet
        "POST",  # databases.insert
        "POST",  # instances.import
        "GET",  # instances.get (address to connect to)
        "DELETE",  # databases.delete
    ]


def test_latest_recovery_time_is_read_with_get_latest_recovery_time(
    google_api_server: StartServer,
) -> None:
    admin, _store, server, fake = clients(google_api_server, [FakeInstance("prod-pg")])
    fake.clock = lambda: datetime(2026, 3, 1, 9, 0, 0, 250000, tzinfo=UTC)

    latest = admin.latest_recovery_time("prod-pg")

    assert latest == datetime(2026, 3, 1, 8, 57, 0, 250000, tzinfo=UTC)  # the fake lags 3 min
    [request] = server.requests_to("GET", "/instances/prod-pg/getLatestRecoveryTime")
    assert request.body is None


def test_a_403_is_a_forbidden_error_and_backup_settings_are_parsed(
    google_api_server: StartServer,
) -> None:
    admin, _store, _server, fake = clients(
        google_api_server,
        [FakeInstance("prod-pg", retain_backups_on_delete=True, final_backup_enabled=True)],
    )
    fake.missing_instance_status = 403

    instance = admin.get_instance("prod-pg")
    with pytest.raises(ForbiddenError, match="HTTP 403 notAuthorized"):
        admin.get_instance("nowhere")

    assert (instance.retain_backups_on_delete, instance.final_backup_enabled) == (True, True)
    assert admin.project == PROJECT


def test_google_timestamps_with_any_fraction_are_read_as_utc() -> None:
    assert parse_time("2026-03-01T08:57:00Z") == datetime(2026, 3, 1, 8, 57, tzinfo=UTC)
    assert parse_time("2026-03-01T08:57:00.123456789Z") == datetime(
        2026, 3, 1, 8, 57, 0, 123456, tzinfo=UTC
    )
    assert parse_time("2026-03-01T09:57:00+01:00") == datetime(2026, 3, 1, 8, 57, tzinfo=UTC)
