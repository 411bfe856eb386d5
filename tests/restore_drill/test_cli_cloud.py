"""`python -m ops.restore_drill --method pitr|export` wiring, with the Google side faked."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import google.auth
import google.auth.exceptions
import pytest
from typer.testing import CliRunner

from ops.restore_drill import cli
from ops.restore_drill.cloudsql import StoredObject
from ops.restore_drill.fakes import FakeBackupStore, FakeCloudSqlAdmin, FakeInstance
from ops.restore_drill.local_restore import LocalRestoreResult
from ops.restore_drill.restore_log import read_rows
from tests.restore_drill.support import EXPORT_AT, LocalConnector

runner = CliRunner()
CLONE = "prod-pg-drill-q1"


@pytest.fixture
def log_copy(tmp_path: Path) -> Path:
    return Path(shutil.copy(cli.DEFAULT_LOG, tmp_path / "BACKUP_RESTORE_LOG.md"))


@dataclass
class FakeGoogle:
    """Production and staging as separate projects, as in this repository's stacks."""

    production: FakeCloudSqlAdmin
    staging: FakeCloudSqlAdmin
    projects_asked: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture
def fake_google(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], FakeGoogle]:
    """Replace the real Google clients and IAM connector; returns a setter for the restored DB."""

    def use(restored_conninfo: str) -> FakeGoogle:
        google = FakeGoogle(
            FakeCloudSqlAdmin(
                [FakeInstance("prod-pg", deletion_protection=True)], project="acme-prod"
            ),
            FakeCloudSqlAdmin([FakeInstance("staging-pg")], project="acme-staging"),
        )
        store = FakeBackupStore(
            [StoredObject("backups", "cloudsql/prod-pg/app/20260301T020000Z.sql.gz", 10, EXPORT_AT)]
        )
        admins = {"acme-prod": google.production, "acme-staging": google.staging}

        def services(project: str, staging_project: str | None) -> cli.CloudServices:
            google.projects_asked.append((project, staging_project))
            staging = admins[staging_project] if staging_project else None
            return cli.CloudServices(admins[project], staging, store)

        monkeypatch.setattr(cli, "make_cloud_services", services)
        monkeypatch.setattr(
            cli, "make_connector", lambda *args, **kwargs: LocalConnector(restored_conninfo)
        )
        return google

    return use


def pitr(log: Path) -> tuple[int, str]:
    result = runner.invoke(
        cli.app,
        [
            "--method", "pitr",
            "--project", "acme-prod",
            "--instance", "prod-pg",
            "--db-user", "restore-drill@example-project.iam.gserviceaccount.com",
            "--point-in-time", "2026-03-01T02:03:00Z",
            "--clone-instance", CLONE,
            "--poll-interval", "0",
            "--log-file", str(log),
            "--operator", "carol",
        ],
    )  # fmt: skip
    return result.exit_code, result.output


def test_pitr_drill_passes_logs_and_removes_the_clone(
    fake_google: Callable[[str], FakeGoogle], restored: LocalRestoreResult, log_copy: Path
) -> None:
    admin = fake_google(restored.database_conninfo).production

    exit_code, output = pitr(log_copy)

    assert exit_code == 0, output
    row = read_rows(log_copy)[-1]
    assert row["Method"] == "pitr (instances.clone)"
    assert row["Source"] == "prod-pg at 2026-03-01 02:03 UTC"
    assert row["Target"] == f"{CLONE}/app (temporary)"
    # The fake's latest recovery time trails its clock by 3 minutes.
    assert (row["RPO (min)"], row["Checks passed"], row["Result"]) == ("3.0", "23/23", "passed")
    assert row["RPO basis"] == "now - latest recovery time (instances.getLatestRecoveryTime)"
    assert CLONE not in admin.instances


def test_pitr_drill_with_a_failing_check_exits_1_and_still_removes_the_clone(
    fake_google: Callable[[str], FakeGoogle],
    database_copy: Callable[[str], str],
    log_copy: Path,
) -> None:
    broken = database_copy("ALTER TABLE appointments DISABLE ROW LEVEL SECURITY")
    admin = fake_google(broken).production

    exit_code, output = pitr(log_copy)

    assert exit_code == 1, output
    row = read_rows(log_copy)[-1]
    assert row["Result"] == "failed"
    assert "isolation:appointments:app_user" in row["Checks passed"]
    assert CLONE not in admin.instances
    assert "FAILED" in output


def test_export_drill_reads_production_and_restores_into_the_staging_project(
    fake_google: Callable[[str], FakeGoogle], database_copy: Callable[[str], str], log_copy: Path
) -> None:
    google = fake_google(database_copy(""))

    result = runner.invoke(
        cli.app,
        [
            "--method", "export",
            "--project", "acme-prod",
            "--instance", "prod-pg",
            "--bucket", "backups",
            "--staging-project", "acme-staging",
            "--staging-instance", "staging-pg",
            "--restore-database", "app_drill",
            "--db-user", "alice@example.com",
            "--poll-interval", "0",
            "--log-file", str(log_copy),
        ],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    row = read_rows(log_copy)[-1]
    assert row["Source"] == "gs://backups/cloudsql/prod-pg/app/20260301T020000Z.sql.gz"
    assert row["Restore point"] == "2026-03-01 02:00 UTC"
    assert google.projects_asked == [("acme-prod", "acme-staging")]
    # Every Admin API call of an export drill goes to the staging project.
    assert [call[0] for call in google.staging.calls if call[0] != "get_operation"] == [
        "database_exists",
        "create_database",
        "get_instance",  # prepare the new database for the import
        "import_sql",
        "get_instance",  # connect for the checks
        "delete_database",
    ]
    assert google.production.calls == []
    assert google.staging.instances["staging-pg"].databases == {"postgres"}


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (["--method", "pitr", "--project", "p", "--instance", "i"], "--db-user"),
        (["--method", "export", "--project", "p", "--instance", "i", "--db-user", "u"], "--bucket"),
        (["--method", "pitr", "--instance", "i", "--db-user", "u"], "--project"),
        (
            [
                "--method",
                "export",
                "--project",
                "p",
                "--instance",
                "i",
                "--db-user",
                "u",
                "--bucket",
                "b",
                "--staging-instance",
                "s",
            ],
            "--staging-project",
        ),
        (
            [
                "--method",
                "export",
                "--project",
                "p",
                "--instance",
                "i",
                "--db-user",
                "u",
                "--bucket",
                "b",
                "--staging-project",
                "s",
                "--staging-instance",
                "s",
                "--app-roles",
                "app owner",
            ],
            "Invalid value for --app-roles",
        ),
    ],
)
def test_missing_cloud_options_are_usage_errors(
    args: list[str], missing: str, log_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESTORE_DRILL_PROJECT", raising=False)
    monkeypatch.delenv("RESTORE_DRILL_DB_USER", raising=False)

    result = runner.invoke(cli.app, [*args, "--log-file", str(log_copy)])

    assert result.exit_code == 2
    assert missing in result.output


def test_a_default_clone_name_is_unique_per_minute_and_a_valid_instance_name() -> None:
    name = cli.clone_name("Prod-PG", datetime(2026, 3, 14, 9, 5, tzinfo=UTC))

    assert name == "prod-pg-drill-202603140905"


def test_missing_google_credentials_stop_before_anything_starts(
    log_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_credentials(*_args: object, **_kwargs: object) -> None:
        # google-auth's exception classes carry no type hints.
        raise google.auth.exceptions.DefaultCredentialsError(  # type: ignore[no-untyped-call]
            "Your default credentials were not found."
        )

    monkeypatch.setattr(google.auth, "default", no_credentials)
    before = log_copy.read_text()

    result = runner.invoke(
        cli.app,
        [
            "--method", "pitr", "--project", "p", "--instance", "prod-pg",
            "--db-user", "alice@example.com", "--log-file", str(log_copy),
        ],
    )  # fmt: skip

    assert result.exit_code == 2
    assert "gcloud auth application-default login" in result.output
    assert log_copy.read_text() == before
