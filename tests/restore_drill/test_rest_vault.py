"""The real REST clients for vaulted backups (Backup and DR listing, instances.restoreBackup),
pointed at a loopback server that answers like the Google APIs, and one whole vault drill over
HTTP with the checks on the real restored database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import requests

from ops.restore_drill.cloudsql import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    VaultBackup,
    instance_resource,
)
from ops.restore_drill.drill import run_vault_drill
from ops.restore_drill.fakes import FakeBackupVault, FakeCloudSqlAdmin, FakeInstance
from ops.restore_drill.local_restore import LocalRestoreResult
from ops.restore_drill.rest import RestBackupVaultCatalog, RestCloudSqlAdmin
from tests.restore_drill.support import NEWEST_WRITE
from tests.restore_drill.test_drill_cloud import Clock, connector, environment, no_wait_polling
from tests.restore_drill.test_drill_vault import PLAN, TEMPORARY
from tests.restore_drill.vault_support import (
    DATA_SOURCE,
    SOURCE,
    STAGING_NETWORK,
    VAULT,
    VaultApiServer,
    production_vault,
)

STAGING = "acme-staging"
BACKUP_AT = NEWEST_WRITE + timedelta(minutes=7)
StartServer = Callable[[FakeBackupVault], tuple[VaultApiServer, FakeCloudSqlAdmin]]


@pytest.fixture
def vault_api() -> Iterator[StartServer]:
    """Start a loopback server over a staging project's fake admin and the given vault (two
    items per page, so paging is exercised)."""
    started: list[VaultApiServer] = []

    def start(vault: FakeBackupVault) -> tuple[VaultApiServer, FakeCloudSqlAdmin]:
        admin = FakeCloudSqlAdmin([FakeInstance("staging-pg")], project=STAGING)
        server = VaultApiServer(admin, vault, project=STAGING, page_size=2)
        server.start()
        started.append(server)
        return server, admin

    yield start
    for server in started:
        server.stop()


def clients(server: VaultApiServer) -> tuple[RestCloudSqlAdmin, RestBackupVaultCatalog]:
    session = requests.Session()
    return (
        RestCloudSqlAdmin(session, STAGING, endpoint=server.endpoint),
        RestBackupVaultCatalog(session, endpoint=server.endpoint),
    )


def test_vault_backups_are_listed_per_data_source_across_pages(vault_api: StartServer) -> None:
    server, _admin = vault_api(production_vault(BACKUP_AT))
    _sql, catalog = clients(server)

    backups = catalog.list_vault_backups(VAULT)

    assert [b.name.rsplit("/", 1)[1] for b in backups] == [
        "daily-2",
        "daily-1",
        "creating",
        "broken",
        "other-instance",
    ]
    assert backups[1] == VaultBackup(
        f"{DATA_SOURCE}/backups/daily-1", "ACTIVE", BACKUP_AT, SOURCE, "POSTGRES_16_4"
    )
    assert (backups[2].state, backups[2].consistency_time) == ("CREATING", None)
    assert [(r.path, r.query.get("pageToken")) for r in server.requests] == [
        (f"/v1/{VAULT}/dataSources", None),
        (f"/v1/{DATA_SOURCE}/backups", None),
        (f"/v1/{DATA_SOURCE}/backups", ["2"]),
        (f"/v1/{VAULT}/dataSources/ds-reporting-pg/backups", None),
    ]


def test_an_unknown_or_forbidden_vault_becomes_a_typed_error(vault_api: StartServer) -> None:
    server, _admin = vault_api(production_vault(BACKUP_AT))
    denied_server, _ = vault_api(FakeBackupVault(VAULT, denied=True))
    _sql, catalog = clients(server)
    _sql, denied = clients(denied_server)

    with pytest.raises(NotFoundError) as missing:
        catalog.list_vault_backups(VAULT.replace("sql-backups-prod", "nope"))
    with pytest.raises(ForbiddenError) as forbidden:
        denied.list_vault_backups(VAULT)

    assert (missing.value.status, missing.value.reason) == (404, "NOT_FOUND")
    assert (forbidden.value.status, forbidden.value.reason) == (403, "PERMISSION_DENIED")


def test_restore_sends_the_backupdr_backup_and_new_instance_settings(
    vault_api: StartServer,
) -> None:
    server, admin = vault_api(production_vault(BACKUP_AT))
    sql, _catalog = clients(server)
    backup = f"{DATA_SOURCE}/backups/daily-1"

    operation = sql.restore_backupdr_backup(TEMPORARY, backup, PLAN.settings)

    [request] = server.requests_to("POST", "/restoreBackup")
    assert request.path == f"/v1/projects/{STAGING}/instances/{TEMPORARY}/restoreBackup"
    assert request.body == {
        "backupdrBackup": backup,
        "restoreInstanceSettings": {
            "name": TEMPORARY,
            "project": STAGING,
            "settings": {
                "ipConfiguration": {
                    "ipv4Enabled": False,
                    "privateNetwork": STAGING_NETWORK,
                    "sslMode": "ENCRYPTED_ONLY",
                },
                "deletionProtectionEnabled": False,
                "tier": "db-custom-1-3840",
                "edition": "ENTERPRISE",
            },
        },
    }
    assert (operation.operation_type, operation.status) == ("RESTORE_VOLUME", "PENDING")
    assert admin.instances[TEMPORARY].state == "PENDING_CREATE"


def test_restore_errors_are_typed_404_for_a_backup_409_for_a_taken_name(
    vault_api: StartServer,
) -> None:
    server, _admin = vault_api(production_vault(BACKUP_AT))
    sql, _catalog = clients(server)

    with pytest.raises(NotFoundError) as missing:
        sql.restore_backupdr_backup(TEMPORARY, f"{DATA_SOURCE}/backups/nope", PLAN.settings)
    with pytest.raises(ConflictError) as taken:
        sql.restore_backupdr_backup("staging-pg", f"{DATA_SOURCE}/backups/daily-1", PLAN.settings)

    assert (missing.value.status, missing.value.reason) == (404, "notFound")
    assert (taken.value.status, taken.value.reason) == (409, "instanceAlreadyExists")


def test_a_whole_vault_drill_over_http_restores_verifies_and_deletes(
    vault_api: StartServer, restored: LocalRestoreResult
) -> None:
    server, admin = vault_api(production_vault(BACKUP_AT))
    sql, catalog = clients(server)
    clock = Clock(BACKUP_AT + timedelta(hours=2))
    env, _reporter = environment(clock)

    report = run_vault_drill(
        PLAN, env, sql, catalog, connector(restored.database_conninfo, clock), no_wait_polling()
    )

    assert report.passed, report.failures
    assert report.source == f"{DATA_SOURCE}/backups/daily-1"
    assert report.rpo_minutes == 120.0
    assert set(admin.instances) == {"staging-pg"}
    assert server.requests_to("DELETE", f"/instances/{TEMPORARY}")
    assert PLAN.source_instance == instance_resource("acme-prod", "prod-pg")
