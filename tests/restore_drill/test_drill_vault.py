"""The vault drill against the fake Cloud SQL Admin and Backup and DR APIs, verifying a real
restored database (the restore's network path is `LocalConnector`, as for the PITR drill)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

from ops.restore_drill.drill import RPO_VAULT_BASIS, VaultPlan, run_vault_drill
from ops.restore_drill.fakes import FakeBackupVault, FakeCloudSqlAdmin, FakeInstance
from ops.restore_drill.local_restore import LocalRestoreResult
from ops.restore_drill.report import DrillReport
from tests.restore_drill.support import NEWEST_WRITE, LocalConnector
from tests.restore_drill.test_drill_cloud import (
    RESTORE_TAKES,
    Clock,
    calls_named,
    connector,
    environment,
    no_wait_polling,
)
from tests.restore_drill.vault_support import (
    DATA_SOURCE,
    SETTINGS,
    SOURCE,
    VAULT,
    production_vault,
    vaulted,
)

TEMPORARY = "prod-pg-drill-202603010900"
BACKUP_AT = NEWEST_WRITE + timedelta(minutes=7)  # the newest ACTIVE backup's consistency time
DRILL_AT = BACKUP_AT + timedelta(hours=5)
PLAN = VaultPlan(
    vault=VAULT,
    source_instance=SOURCE,
    restore_instance=TEMPORARY,
    settings=SETTINGS,
    database="app",
)


def staging(
    vault: FakeBackupVault | None = None, *, missing_instance_status: int = 404
) -> FakeCloudSqlAdmin:
    """The staging project: its own instance, and Cloud SQL reading vaulted backups."""
    admin = FakeCloudSqlAdmin(
        [FakeInstance("staging-pg")],
        project="acme-staging",
        missing_instance_status=missing_instance_status,
    )
    admin.vault = vault or production_vault(BACKUP_AT)
    return admin


def vault_drill(
    admin: FakeCloudSqlAdmin,
    local: LocalConnector,
    clock: Clock,
    plan: VaultPlan = PLAN,
) -> DrillReport:
    env, _reporter = environment(clock)
    assert admin.vault is not None
    return run_vault_drill(plan, env, admin, admin.vault, local, no_wait_polling())


def test_vault_drill_restores_the_newest_active_backup_verifies_it_and_deletes_the_instance(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(DRILL_AT)
    admin = staging()
    local = connector(restored.database_conninfo, clock)

    report = vault_drill(admin, local, clock)

    assert report.passed, report.failures
    newest = f"{DATA_SOURCE}/backups/daily-1"
    assert calls_named(admin, "restore_backupdr_backup") == [
        ("restore_backupdr_backup", TEMPORARY, newest)
    ]
    assert admin.vault is not None and admin.vault.restores == [(TEMPORARY, newest, SETTINGS)]
    assert local.connections == [(TEMPORARY, "app", "RUNNABLE")]
    assert (report.source, report.restore_point) == (newest, BACKUP_AT)
    # RPO: the drill asked the vault 5 hours after the backup's consistency time.
    assert report.rpo_basis == RPO_VAULT_BASIS
    assert (report.rpo_minutes, report.rto_minutes) == (300.0, RESTORE_TAKES.total_seconds() / 60)
    # The restored instance took production's retain-on-delete and final backup from the backup;
    # the drill switched them off before deleting it, so nothing was left behind.
    assert calls_named(admin, "prepare_for_deletion") == [("prepare_for_deletion", TEMPORARY)]
    assert admin.backups_left_behind == []
    assert set(admin.instances) == {"staging-pg"}


def test_a_failed_restore_still_deletes_the_instance_and_fails_the_drill(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(DRILL_AT)
    admin = staging()
    admin.fail_next("RESTORE_VOLUME", "INTERNAL_ERROR", "An internal error occurred.")
    local = connector(restored.database_conninfo, clock)

    report = vault_drill(admin, local, clock)

    assert not report.passed
    assert "INTERNAL_ERROR: An internal error occurred." in report.failures[0]
    assert local.connections == []
    assert calls_named(admin, "delete_instance") == [("delete_instance", TEMPORARY)]
    assert set(admin.instances) == {"staging-pg"}
    assert report.log_cells("bob")["Result"] == "failed"


def test_a_failing_check_fails_the_drill_and_the_instance_is_still_deleted(
    database_copy: Callable[[str], str],
) -> None:
    clock = Clock(DRILL_AT)
    admin = staging()
    local = connector(database_copy("DROP TABLE security_events"), clock)

    report = vault_drill(admin, local, clock)

    assert report.failed_checks == ["tables_present", "rls:security_events"]
    assert set(admin.instances) == {"staging-pg"}


def test_without_a_restorable_backup_the_drill_says_why_and_creates_nothing(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(DRILL_AT)
    only_unfinished = FakeBackupVault(
        VAULT, [vaulted("creating", None, state="CREATING"), vaulted("bad", BACKUP_AT, "ERROR")]
    )
    admin = staging(only_unfinished)

    report = vault_drill(admin, connector(restored.database_conninfo, clock), clock)

    assert report.failures == [
        f"no restorable (ACTIVE) backup of {SOURCE} in {VAULT}; its 2 backup(s) are CREATING, ERROR"
    ]
    assert calls_named(admin, "restore_backupdr_backup") == []
    assert calls_named(admin, "get_instance") == []


def test_an_empty_vault_and_another_instances_backups_are_told_apart(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(DRILL_AT)
    other = dataclasses.replace(PLAN, source_instance="projects/acme-prod/instances/nope")

    report = vault_drill(staging(), connector(restored.database_conninfo, clock), clock, other)
    empty = vault_drill(
        staging(FakeBackupVault(VAULT)), connector(restored.database_conninfo, clock), clock
    )

    assert "the vault holds backups of projects/acme-prod/instances/prod-pg" in report.failures[0]
    assert "the vault is empty" in empty.failures[0]


def test_a_named_backup_is_restored_only_if_it_is_an_active_backup_of_the_instance(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(DRILL_AT)
    older = dataclasses.replace(PLAN, backup=f"{DATA_SOURCE}/backups/daily-2")
    broken = dataclasses.replace(PLAN, backup=f"{DATA_SOURCE}/backups/broken")
    unknown = dataclasses.replace(PLAN, backup=f"{DATA_SOURCE}/backups/nope")
    admin = staging()

    passed = vault_drill(admin, connector(restored.database_conninfo, clock), clock, older)
    refused = [
        vault_drill(admin, connector(restored.database_conninfo, clock), clock, plan)
        for plan in (broken, unknown)
    ]

    assert passed.passed, passed.failures
    assert passed.restore_point == BACKUP_AT - timedelta(days=1)
    assert refused[0].failures == [f"backup {broken.backup} is ERROR; only ACTIVE ones restore"]
    assert refused[1].failures[0].startswith(f"{unknown.backup} is not a backup of {SOURCE}")
    assert len(calls_named(admin, "restore_backupdr_backup")) == 1


def test_an_existing_instance_with_the_name_is_never_restored_over_or_deleted(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(DRILL_AT)
    admin = staging()
    admin.instances[TEMPORARY] = FakeInstance(TEMPORARY, databases={"postgres", "precious"})

    report = vault_drill(admin, connector(restored.database_conninfo, clock), clock)

    assert report.failures == [
        f"instance {TEMPORARY} already exists; choose another --restore-instance"
    ]
    assert calls_named(admin, "restore_backupdr_backup") == []
    assert calls_named(admin, "delete_instance") == []
    assert admin.instances[TEMPORARY].databases == {"postgres", "precious"}


def test_a_403_for_the_name_stops_the_drill_instead_of_restoring_blind(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(DRILL_AT)
    admin = staging(missing_instance_status=403)

    report = vault_drill(admin, connector(restored.database_conninfo, clock), clock)

    assert f"cannot tell whether instance {TEMPORARY} exists" in report.failures[0]
    assert "cloudsql.instances.get in acme-staging" in report.failures[0]
    assert calls_named(admin, "restore_backupdr_backup") == []


def test_a_vault_the_identity_cannot_read_fails_with_googles_answer(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(DRILL_AT)
    denied = FakeBackupVault(VAULT, [vaulted("daily-1", BACKUP_AT)], denied=True)

    report = vault_drill(staging(denied), connector(restored.database_conninfo, clock), clock)

    assert report.failures[0].startswith("HTTP 403 PERMISSION_DENIED: Permission 'backupdr.backups")


def test_keep_restored_leaves_the_instance_and_says_how_to_remove_it(
    restored: LocalRestoreResult,
) -> None:
    clock = Clock(DRILL_AT)
    admin = staging()
    env, reporter = environment(clock)
    plan = dataclasses.replace(PLAN, keep_restored=True)

    assert admin.vault is not None
    local = connector(restored.database_conninfo, clock)
    report = run_vault_drill(plan, env, admin, admin.vault, local, no_wait_polling())

    assert report.passed, report.failures
    assert TEMPORARY in admin.instances
    assert any("DR_RUNBOOK.md 'Remove a clone'" in note for note in reporter.notes)
