"""`python -m ops.restore_verification` (the weekly Cloud Run job): its JSON log lines and exit
codes, with the Google side faked and the checks run on a real PostgreSQL 18."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from ops.restore_drill import cli
from ops.restore_drill.cloudsql import PollSettings, StoredObject
from ops.restore_drill.fakes import FakeBackupStore, FakeCloudSqlAdmin, FakeInstance
from ops.restore_verification import weekly
from tests.restore_drill.support import EXPORT_AT, LocalConnector

NOW = EXPORT_AT + timedelta(hours=7)
ENVIRONMENT = {
    "VERIFY_SOURCE_BUCKET": "prod-backups",
    "VERIFY_SOURCE_INSTANCE": "prod-pg",
    "VERIFY_DATABASES": "app,billing",
    "VERIFY_STAGING_PROJECT": "acme-staging",
    "VERIFY_STAGING_INSTANCE": "staging-pg",
    "VERIFY_DB_USER": "sql-verify-job-staging@acme-staging.iam.gserviceaccount.com",
}


def export(database: str) -> StoredObject:
    name = f"cloudsql/prod-pg/{database}/20260301T020000Z.sql.gz"
    return StoredObject("prod-backups", name, 10, EXPORT_AT + timedelta(minutes=4))


@pytest.fixture
def staging(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeCloudSqlAdmin]:
    """Fake Google clients; every restored database is the given local database."""

    def use(conninfo: str, exports: tuple[str, ...] = ("app", "billing")) -> FakeCloudSqlAdmin:
        admin = FakeCloudSqlAdmin(
            [FakeInstance("staging-pg")], project="acme-staging", clock=lambda: NOW
        )
        store = FakeBackupStore([export(database) for database in exports])

        def services(project: str, staging_project: str | None) -> cli.CloudServices:
            assert (project, staging_project) == ("acme-staging", "acme-staging")
            return cli.CloudServices(admin, admin, store)

        monkeypatch.setattr(cli, "make_cloud_services", services)
        monkeypatch.setattr(cli, "make_connector", lambda *_args: LocalConnector(conninfo))
        return admin

    return use


def run(env: dict[str, str] | None = None) -> tuple[int, list[dict[str, object]]]:
    out = io.StringIO()
    polling = PollSettings(interval_seconds=0, timeout_seconds=60, sleep=lambda _s: None)
    code = weekly.main(env or ENVIRONMENT, out, polling, clock=lambda: NOW)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_healthy_backup_logs_one_passed_line_per_database_and_one_per_run(
    staging: Callable[..., FakeCloudSqlAdmin], database_copy: Callable[[str], str]
) -> None:
    admin = staging(database_copy(""))

    code, lines = run()

    assert code == 0
    assert [(line["scope"], line["status"]) for line in lines] == [
        ("database", "passed"),
        ("database", "passed"),
        ("run", "passed"),
    ]
    app = lines[0]
    assert app["event"] == "restore_verification"
    assert app["database"] == "app"
    assert app["severity"] == "INFO"
    assert app["source"] == "gs://prod-backups/cloudsql/prod-pg/app/20260301T020000Z.sql.gz"
    assert app["target"] == "staging-pg/app_verify_202603010900"
    assert app["restore_point"] == "2026-03-01T02:00:00+00:00"
    assert app["rpo_minutes"] == 420.0  # the export was 7 hours old when the restore started
    assert app["rpo_worst_case_minutes"] == 24 * 60 + 4
    assert app["rto_minutes"] == 0.0  # the test's clock stands still
    assert app["checks_passed"] == app["checks_total"] == 23
    assert app["checks_failed"] == app["checks_error"] == app["failures"] == []
    assert lines[2]["databases"] == ["app", "billing"]
    # Only the scratch databases were created, and both are gone.
    created = [call[2] for call in admin.calls if call[0] == "create_database"]
    assert created == ["app_verify_202603010900", "billing_verify_202603010900"]
    assert admin.instances["staging-pg"].databases == {"postgres"}


def test_a_broken_backup_fails_its_database_and_the_run_with_the_check_named(
    staging: Callable[..., FakeCloudSqlAdmin], database_copy: Callable[[str], str]
) -> None:
    admin = staging(database_copy("ALTER TABLE appointments DISABLE ROW LEVEL SECURITY"))

    code, lines = run()

    assert code == 1
    app, _billing, summary = lines
    assert (app["status"], app["severity"]) == ("failed", "ERROR")
    assert "rls:appointments" in app["checks_failed"]  # type: ignore[operator]
    assert app["rto_minutes"] is None
    assert (summary["status"], summary["failed_databases"]) == ("failed", ["app", "billing"])
    assert admin.instances["staging-pg"].databases == {"postgres"}


def test_a_database_without_an_export_fails_without_touching_the_instance(
    staging: Callable[..., FakeCloudSqlAdmin], database_copy: Callable[[str], str]
) -> None:
    admin = staging(database_copy(""), exports=("app",))

    code, lines = run()

    assert code == 1
    billing = lines[1]
    assert billing["status"] == "failed"
    assert "no export" in " ".join(billing["failures"]).lower()  # type: ignore[arg-type]
    assert lines[0]["status"] == "passed"
    assert [c[2] for c in admin.calls if c[0] == "create_database"] == ["app_verify_202603010900"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"VERIFY_DB_USER": ""}, "VERIFY_DB_USER: not set"),
        ({"VERIFY_DATABASES": "app,app"}, "VERIFY_DATABASES = 'app,app'"),
        ({"VERIFY_DATABASES": "x" * 44}, "at most 43 characters"),
        ({"VERIFY_EXPORT_INTERVAL_HOURS": "0"}, "VERIFY_EXPORT_INTERVAL_HOURS = '0'"),
        ({"VERIFY_APP_ROLES": "bad role"}, "VERIFY_APP_ROLES = 'bad role'"),
        ({"VERIFY_DATA_DESCRIPTION": "/nonexistent.toml"}, "/nonexistent.toml"),
    ],
)
def test_invalid_settings_exit_2_with_one_line_naming_the_variable(
    staging: Callable[..., FakeCloudSqlAdmin], change: dict[str, str], named: str
) -> None:
    admin = staging("dbname=unused")

    code, lines = run({**ENVIRONMENT, **change})

    assert code == 2
    assert len(lines) == 1
    assert (lines[0]["status"], lines[0]["severity"]) == ("invalid", "ERROR")
    assert named in str(lines[0]["message"])
    assert admin.calls == []
