"""Vaulted backups for the drill tests: a production-like vault in the fakes, and the loopback
Google API server extended with Backup and DR (dataSources.list, backups.list) and Cloud SQL's
instances.restoreBackup, so the real REST clients run end to end without leaving 127.0.0.1.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from ops.restore_drill.cloudsql import (
    CloudApiError,
    NewInstanceSettings,
    NotFoundError,
    VaultBackup,
    instance_resource,
)
from ops.restore_drill.fakes import (
    FakeBackupStore,
    FakeBackupVault,
    FakeCloudSqlAdmin,
    FakeInstance,
    FakeVaultedBackup,
)
from ops.restore_drill.rest import rfc3339
from tests.restore_drill.support import GoogleApiServer, operation_json

PROD_PROJECT = "acme-prod"
VAULT = f"projects/{PROD_PROJECT}/locations/europe-west1/backupVaults/sql-backups-prod"
DATA_SOURCE = f"{VAULT}/dataSources/ds-prod-pg"
SOURCE = instance_resource(PROD_PROJECT, "prod-pg")
STAGING_NETWORK = "projects/acme-staging/global/networks/staging-vpc"
SETTINGS = NewInstanceSettings(
    private_network=STAGING_NETWORK, tier="db-custom-1-3840", edition="ENTERPRISE"
)

DATA_SOURCES_PATH = re.compile(
    r"^/v1/(?P<vault>projects/[^/]+/locations/[^/]+/backupVaults/[^/]+)/dataSources$"
)
BACKUPS_PATH = re.compile(r"^/v1/(?P<data_source>projects/.+/dataSources/[^/]+)/backups$")
RESTORE_PATH = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/instances/(?P<instance>[^/]+)/restoreBackup$"
)


def production_instance() -> FakeInstance:
    """Production as the stack makes it: protected, keeping its backups when deleted."""
    return FakeInstance(
        "prod-pg",
        databases={"postgres", "app"},
        deletion_protection=True,
        retain_backups_on_delete=True,
        final_backup_enabled=True,
    )


def vaulted(
    backup_id: str,
    consistent_at: datetime | None,
    state: str = "ACTIVE",
    source: str = SOURCE,
    data_source: str = DATA_SOURCE,
) -> FakeVaultedBackup:
    backup = VaultBackup(
        name=f"{data_source}/backups/{backup_id}",
        state=state,
        consistency_time=consistent_at,
        source_instance=source,
        database_version="POSTGRES_16_4",
    )
    return FakeVaultedBackup(backup, production_instance())


def production_vault(newest: datetime) -> FakeBackupVault:
    """Daily backups up to `newest`, plus the cases a picker must skip: one still being created
    (no consistency time yet), one in ERROR, and another instance's newer backup."""
    return FakeBackupVault(
        VAULT,
        [
            vaulted("daily-2", newest - timedelta(days=1)),
            vaulted("daily-1", newest),
            vaulted("creating", None, state="CREATING"),
            vaulted("broken", newest + timedelta(hours=1), state="ERROR"),
            vaulted(
                "other-instance",
                newest + timedelta(hours=2),
                source=instance_resource(PROD_PROJECT, "reporting-pg"),
                data_source=f"{VAULT}/dataSources/ds-reporting-pg",
            ),
        ],
    )


def backup_json(backup: VaultBackup) -> dict[str, Any]:
    """A Backup resource as the Backup and DR API v1 returns it (JSON names of backupvault.proto)."""
    document: dict[str, Any] = {
        "name": backup.name,
        "state": backup.state,
        "createTime": "2026-03-01T02:00:00.000Z",
        "backupType": "SCHEDULED",
        "cloudSqlInstanceBackupProperties": {
            "sourceInstance": backup.source_instance,
            "databaseInstalledVersion": backup.database_version,
            "instanceTier": "db-custom-2-7680",
            "finalBackup": False,
        },
    }
    if backup.consistency_time is not None:
        document["consistencyTime"] = rfc3339(backup.consistency_time)
    return document


def data_source_json(name: str, source_instance: str) -> dict[str, Any]:
    return {
        "name": name,
        "state": "ACTIVE",
        "dataSourceGcpResource": {
            "gcpResourcename": f"//sqladmin.googleapis.com/{source_instance}",
            "location": "europe-west1",
            "type": "sqladmin.googleapis.com/Instance",
            "cloudSqlInstanceDatasourceProperties": {"name": source_instance},
        },
    }


def settings_from(document: dict[str, Any]) -> NewInstanceSettings:
    """Read back the restoreInstanceSettings the client sent (private IP and TLS only)."""
    settings = document["settings"]
    ip = settings["ipConfiguration"]
    assert (ip["ipv4Enabled"], ip["sslMode"]) == (False, "ENCRYPTED_ONLY"), ip
    assert settings["deletionProtectionEnabled"] is False
    return NewInstanceSettings(
        private_network=ip["privateNetwork"],
        tier=settings.get("tier"),
        region=document.get("region"),
        edition=settings.get("edition"),
    )


class VaultApiServer(GoogleApiServer):
    """The loopback Google API server plus Backup and DR and instances.restoreBackup."""

    def __init__(
        self, admin: FakeCloudSqlAdmin, vault: FakeBackupVault, project: str, page_size: int
    ) -> None:
        super().__init__(admin, FakeBackupStore([]), project, page_size)
        self.vault = vault
        admin.vault = vault

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        try:
            if method == "GET" and (match := DATA_SOURCES_PATH.match(path)):
                return 200, self.list_data_sources(match["vault"], query)
            if method == "GET" and (match := BACKUPS_PATH.match(path)):
                return 200, self.list_backups(match["data_source"], query)
        except CloudApiError as error:
            return error.status, backupdr_error(error)
        if method == "POST" and (match := RESTORE_PATH.match(path)):
            assert set(body) == {"backupdrBackup", "restoreInstanceSettings"}, body
            settings = body["restoreInstanceSettings"]
            assert (settings["name"], settings["project"]) == (match["instance"], self.project)
            operation = self.admin.restore_backupdr_backup(
                match["instance"], body["backupdrBackup"], settings_from(settings)
            )
            return 200, operation_json(self.project, operation)
        return super().route(method, path, query, body)

    def page(
        self, items: list[dict[str, Any]], key: str, query: dict[str, list[str]]
    ) -> dict[str, Any]:
        start = int(query.get("pageToken", ["0"])[0])
        document: dict[str, Any] = {key: items[start : start + self.page_size]}
        if start + self.page_size < len(items):
            document["nextPageToken"] = str(start + self.page_size)
        return document

    def list_data_sources(self, vault: str, query: dict[str, list[str]]) -> dict[str, Any]:
        backups = self.vault.list_vault_backups(vault)  # 403/404 as the vault decides
        sources = {b.name.rsplit("/backups/", 1)[0]: b.source_instance for b in backups}
        items = [data_source_json(name, source) for name, source in sorted(sources.items())]
        return self.page(items, "dataSources", query)

    def list_backups(self, data_source: str, query: dict[str, list[str]]) -> dict[str, Any]:
        vault = data_source.split("/dataSources/", 1)[0]
        backups = [
            b for b in self.vault.list_vault_backups(vault) if b.name.startswith(f"{data_source}/")
        ]
        if not backups:
            raise NotFoundError(404, "NOT_FOUND", f"Resource '{data_source}' was not found.")
        return self.page([backup_json(b) for b in backups], "backups", query)


def backupdr_error(error: CloudApiError) -> dict[str, Any]:
    """Backup and DR's error document (google.rpc.Status: code, message, status; no errors[])."""
    return {"error": {"code": error.status, "message": error.message, "status": error.reason}}
