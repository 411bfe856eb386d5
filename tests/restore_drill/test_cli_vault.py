"""`python -m ops.restore_drill --method vault` wiring, with the Google side faked and the checks
running on the real restored database."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.restore_drill import cli
from ops.restore_drill.drill import utc_now
from ops.restore_drill.fakes import (
    FakeBackupStore,
    FakeBackupVault,
    FakeCloudSqlAdmin,
    FakeInstance,
)
from ops.restore_drill.local_restore import LocalRestoreResult
from ops.restore_drill.restore_log import read_rows
from tests.restore_drill.support import LocalConnector
from tests.restore_drill.vault_support import (
    DATA_SOURCE,
    STAGING_NETWORK,
    VAULT,
    production_vault,
)

runner = CliRunner()
TEMPORARY = "prod-pg-vault-q3"
UseGoogle = Callable[[str, FakeBackupVault], FakeCloudSqlAdmin]
BOX_DRAWING = str.maketrans("", "", "│╭╮╰╯─")


def plain(output: str) -> str:
    """The CLI's output without rich's error box and line wrapping."""
    return " ".join(output.translate(BOX_DRAWING).split())


@pytest.fixture
def log_copy(tmp_path: Path) -> Path:
    return Path(shutil.copy(cli.DEFAULT_LOG, tmp_path / "BACKUP_RESTORE_LOG.md"))


@pytest.fixture
def fake_google(monkeypatch: pytest.MonkeyPatch) -> UseGoogle:
    """Replace the real Google clients: production (untouched by a vault drill), the staging
    project's Cloud SQL, and the vault; returns the staging admin."""

    def use(restored_conninfo: str, vault: FakeBackupVault) -> FakeCloudSqlAdmin:
        production = FakeCloudSqlAdmin([FakeInstance("prod-pg")], project="acme-prod")
        staging = FakeCloudSqlAdmin([FakeInstance("staging-pg")], project="acme-staging")
        staging.vault = vault
        admins = {"acme-prod": production, "acme-staging": staging}

        def services(project: str, staging_project: str | None) -> cli.CloudServices:
            assert staging_project is not None
            store = FakeBackupStore([])
            return cli.CloudServices(admins[project], admins[staging_project], store, vault)

        monkeypatch.setattr(cli, "make_cloud_services", services)
        monkeypatch.setattr(
            cli, "make_connector", lambda *args, **kwargs: LocalConnector(restored_conninfo)
        )
        return staging

    return use


def vault_args(*extra: str) -> list[str]:
    return [
        "--method", "vault",
        "--project", "acme-prod",
        "--instance", "prod-pg",
        "--staging-project", "acme-staging",
        "--vault", VAULT,
        "--network", STAGING_NETWORK,
        "--tier", "db-custom-1-3840",
        "--edition", "enterprise",
        "--region", "europe-west1",
        "--restore-instance", TEMPORARY,
        "--db-user", "restore-drill@acme-prod.iam.gserviceaccount.com",
        "--poll-interval", "0",
        *extra,
    ]  # fmt: skip


def test_vault_drill_passes_logs_its_row_and_removes_the_instance(
    fake_google: UseGoogle, restored: LocalRestoreResult, log_copy: Path
) -> None:
    backup_at = utc_now() - timedelta(hours=3)
    staging = fake_google(restored.database_conninfo, production_vault(backup_at))

    result = runner.invoke(cli.app, vault_args("--log-file", str(log_copy), "--operator", "dana"))

    assert result.exit_code == 0, result.output
    row = read_rows(log_copy)[-1]
    assert row["Method"] == "vault (instances.restoreBackup)"
    assert row["Source"] == f"{DATA_SOURCE}/backups/daily-1"
    assert row["Target"] == f"{TEMPORARY}/app (temporary)"
    assert (
        row["RPO basis"]
        == "now - vaulted backup consistency time (Backup and DR Backup.consistencyTime)"
    )
    assert float(row["RPO (min)"]) == pytest.approx(180, abs=1)
    assert (row["Checks passed"], row["Result"], row["Operator"]) == ("23/23", "passed", "dana")
    assert staging.vault is not None
    [(instance, _backup, settings)] = staging.vault.restores
    assert (instance, settings.tier, settings.edition, settings.region) == (
        TEMPORARY,
        "db-custom-1-3840",
        "ENTERPRISE",
        "europe-west1",
    )
    assert set(staging.instances) == {"staging-pg"}


def test_a_failed_restore_exits_1_logs_failed_and_removes_the_instance(
    fake_google: UseGoogle, restored: LocalRestoreResult, log_copy: Path
) -> None:
    staging = fake_google(restored.database_conninfo, production_vault(utc_now()))
    staging.fail_next("RESTORE_VOLUME", "INTERNAL_ERROR", "An internal error occurred.")

    result = runner.invoke(cli.app, vault_args("--log-file", str(log_copy)))

    assert result.exit_code == 1, result.output
    row = read_rows(log_copy)[-1]
    assert row["Result"] == "failed"
    assert "INTERNAL_ERROR" in row["Checks passed"]
    assert set(staging.instances) == {"staging-pg"}


def test_no_vaulted_backup_exits_1_with_a_plain_reason(
    fake_google: UseGoogle, restored: LocalRestoreResult, log_copy: Path
) -> None:
    staging = fake_google(restored.database_conninfo, FakeBackupVault(VAULT))

    result = runner.invoke(cli.app, vault_args("--log-file", str(log_copy)))

    assert result.exit_code == 1, result.output
    assert (
        "no restorable (ACTIVE) backup of projects/acme-prod/instances/prod-pg"
        in (read_rows(log_copy)[-1]["Checks passed"])
    )
    assert staging.calls == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("--vault", "sql-backups-prod"),
            "allowed: projects/PROJECT/locations/REGION/backupVaults/ID",
        ),
        (("--network", "staging-vpc"), "allowed: projects/PROJECT/global/networks/NETWORK"),
        (("--vault-backup", "projects/x/backups/1"), "allowed: a backup of --vault"),
        (("--restore-instance", "prod-pg"), "not the production instance's name"),
        (("--restore-instance", "Prod_Copy"), "lowercase letters, digits and hyphens"),
        (("--tier", "big"), "a Cloud SQL tier such as db-custom-2-7680"),
        (("--edition", "premium"), "Invalid value for '--edition'"),
    ],
)
def test_invalid_vault_options_exit_2_before_anything_starts(
    change: tuple[str, str], message: str, log_copy: Path
) -> None:
    args = vault_args("--log-file", str(log_copy))
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += list(change)
    before = log_copy.read_text()

    result = runner.invoke(cli.app, args)

    assert result.exit_code == 2, result.output
    assert message in plain(result.output)
    assert log_copy.read_text() == before


@pytest.mark.parametrize("missing", ["--vault", "--network", "--staging-project"])
def test_missing_vault_options_are_named(missing: str, log_copy: Path) -> None:
    args = vault_args("--log-file", str(log_copy))
    position = args.index(missing)
    del args[position : position + 2]

    result = runner.invoke(cli.app, args)

    assert result.exit_code == 2
    assert f"--method vault needs {missing}" in plain(result.output)
