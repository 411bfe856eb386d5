"""`CloudSqlAdmin` and `BackupStore` over Google's REST APIs, using an authorized requests session.

Endpoints (Cloud SQL Admin API v1, Cloud Storage JSON API v1):
  GET    /v1/projects/{project}/instances/{instance}                     instances.get
  GET    /v1/projects/{project}/instances/{instance}/getLatestRecoveryTime  getLatestRecoveryTime
  GET    /v1/projects/{project}/instances/{instance}/databases/{name}    databases.get
  POST   /v1/projects/{project}/instances/{instance}/import              instances.import
  POST   /v1/projects/{project}/instances/{instance}/clone               instances.clone
  PATCH  /v1/projects/{project}/instances/{instance}                     instances.patch
  DELETE /v1/projects/{project}/instances/{instance}?enableFinalBackup=false  instances.delete
  POST   /v1/projects/{project}/instances/{instance}/databases           databases.insert
  DELETE /v1/projects/{project}/instances/{instance}/databases/{name}    databases.delete
  GET    /v1/projects/{project}/operations/{operation}                   operations.get
  GET    /storage/v1/b/{bucket}/o?prefix=...&pageToken=...                objects.list
  POST   /v1/projects/{project}/instances/{instance}/restoreBackup        instances.restoreBackup
  GET    https://backupdr.googleapis.com/v1/{vault}/dataSources           dataSources.list
  GET    https://backupdr.googleapis.com/v1/{dataSource}/backups          backups.list
Errors arrive as {"error": {"code": 409, "message": ..., "errors": [{"reason": ...}]}}.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import google.auth
import requests
from google.auth.transport.requests import AuthorizedSession

from ops.restore_drill.cloudsql import (
    CloudApiError,
    ConflictError,
    ForbiddenError,
    Instance,
    IpAddress,
    NewInstanceSettings,
    NotFoundError,
    Operation,
    OperationError,
    StoredObject,
    VaultBackup,
)

SQLADMIN_ENDPOINT = "https://sqladmin.googleapis.com"
STORAGE_ENDPOINT = "https://storage.googleapis.com"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REQUEST_TIMEOUT_SECONDS = 60.0
ERROR_TEXT_LIMIT = 500

JsonObject = dict[str, Any]


def _segment(value: str) -> str:
    return quote(value, safe="")


def rfc3339(moment: datetime) -> str:
    """UTC with millisecond precision and a Z suffix, e.g. 2012-11-15T16:19:00.094Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def api_error(response: requests.Response) -> CloudApiError:
    """Google's error document turned into the matching exception type."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    message = str(error.get("message") or response.text[:ERROR_TEXT_LIMIT] or response.reason)
    details = error.get("errors") or [{}]
    reason = str(details[0].get("reason") or error.get("status") or "unknown")
    if response.status_code == 404:
        return NotFoundError(404, reason, message)
    if response.status_code == 403:
        return ForbiddenError(403, reason, message)
    if response.status_code == 409:
        return ConflictError(409, reason, message)
    return CloudApiError(response.status_code, reason, message)


def parse_operation(document: JsonObject) -> Operation:
    errors = (document.get("error") or {}).get("errors") or []
    return Operation(
        name=str(document["name"]),
        status=str(document.get("status", "SQL_OPERATION_STATUS_UNSPECIFIED")),
        operation_type=str(document.get("operationType", "")),
        target_id=str(document.get("targetId", "")),
        errors=tuple(
            OperationError(str(e.get("code", "")), str(e.get("message", ""))) for e in errors
        ),
    )


def parse_instance(document: JsonObject) -> Instance:
    settings = document.get("settings") or {}
    return Instance(
        name=str(document["name"]),
        state=str(document.get("state", "SQL_INSTANCE_STATE_UNSPECIFIED")),
        database_version=str(document.get("databaseVersion", "")),
        ip_addresses=tuple(
            IpAddress(str(ip.get("type", "")), str(ip.get("ipAddress", "")))
            for ip in document.get("ipAddresses") or []
        ),
        deletion_protection=bool(settings.get("deletionProtectionEnabled", False)),
        retain_backups_on_delete=bool(settings.get("retainBackupsOnDelete", False)),
        final_backup_enabled=bool((settings.get("finalBackupConfig") or {}).get("enabled", False)),
    )


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp as Google writes it (Z suffix, 0-9 fractional digits)."""
    if not value.endswith("Z"):
        return datetime.fromisoformat(value)
    head, _, fraction = value.removesuffix("Z").partition(".")
    micros = (fraction + "000000")[:6] if fraction else "000000"
    return datetime.fromisoformat(f"{head}.{micros}+00:00")


def parse_object(bucket: str, document: JsonObject) -> StoredObject:
    return StoredObject(
        bucket=bucket,
        name=str(document["name"]),
        size=int(document.get("size", 0)),
        time_created=datetime.fromisoformat(str(document["timeCreated"])),
    )


class _JsonApi:
    def __init__(self, session: requests.Session, endpoint: str) -> None:
        self._session = session
        self._endpoint = endpoint.rstrip("/")

    def call(
        self,
        method: str,
        path: str,
        body: JsonObject | None = None,
        params: dict[str, str] | None = None,
    ) -> JsonObject:
        response = self._session.request(
            method,
            self._endpoint + path,
            json=body,
            params=params,
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        if response.status_code >= 400:
            raise api_error(response)
        document: JsonObject = response.json() if response.content else {}
        return document


class RestCloudSqlAdmin:
    """Cloud SQL Admin API v1 for one project."""

    def __init__(
        self, session: requests.Session, project: str, endpoint: str = SQLADMIN_ENDPOINT
    ) -> None:
        self._api = _JsonApi(session, endpoint)
        self._project_id = project
        self._project = f"/v1/projects/{_segment(project)}"

    def _instance_path(self, instance: str) -> str:
        return f"{self._project}/instances/{_segment(instance)}"

    @property
    def project(self) -> str:
        return self._project_id

    def _operation(
        self,
        method: str,
        path: str,
        body: JsonObject | None = None,
        params: dict[str, str] | None = None,
    ) -> Operation:
        return parse_operation(self._api.call(method, path, body, params))

    def get_instance(self, instance: str) -> Instance:
        return parse_instance(self._api.call("GET", self._instance_path(instance)))

    def database_exists(self, instance: str, database: str) -> bool:
        path = f"{self._instance_path(instance)}/databases/{_segment(database)}"
        try:
            self._api.call("GET", path)
        except NotFoundError as error:
            if error.reason == "instanceDoesNotExist":
                raise
            return False
        return True

    def import_sql(
        self, instance: str, uri: str, database: str, import_user: str | None
    ) -> Operation:
        context: JsonObject = {
            "kind": "sql#importContext",
            "fileType": "SQL",
            "uri": uri,
            "database": database,
        }
        if import_user:
            context["importUser"] = import_user
        return self._operation(
            "POST", f"{self._instance_path(instance)}/import", {"importContext": context}
        )

    def clone_instance(self, source: str, destination: str, point_in_time: datetime) -> Operation:
        context = {
            "kind": "sql#cloneContext",
            "destinationInstanceName": destination,
            "pointInTime": rfc3339(point_in_time),
        }
        return self._operation(
            "POST", f"{self._instance_path(source)}/clone", {"cloneContext": context}
        )

    def create_database(self, instance: str, database: str) -> Operation:
        body = {"kind": "sql#database", "name": database, "instance": instance}
        return self._operation("POST", f"{self._instance_path(instance)}/databases", body)

    def delete_database(self, instance: str, database: str) -> Operation:
        path = f"{self._instance_path(instance)}/databases/{_segment(database)}"
        return self._operation("DELETE", path)

    def latest_recovery_time(self, instance: str) -> datetime:
        # Response {"kind": "sql#getLatestRecoveryTime", "latestRecoveryTime": RFC 3339}:
        # https://cloud.google.com/sql/docs/postgres/admin-api/rest/v1/projects.instances/getLatestRecoveryTime
        document = self._api.call("GET", f"{self._instance_path(instance)}/getLatestRecoveryTime")
        return parse_time(str(document["latestRecoveryTime"]))

    def prepare_for_deletion(self, instance: str) -> Operation:
        # A clone inherits these settings from production; with them on, deleting it keeps billed
        # backups that then show up next to production's.
        body = {
            "settings": {
                "deletionProtectionEnabled": False,
                "retainBackupsOnDelete": False,
                "finalBackupConfig": {"enabled": False},
            }
        }
        return self._operation("PATCH", self._instance_path(instance), body)

    def delete_instance(self, instance: str) -> Operation:
        # enableFinalBackup: "Flag to opt-in for final backup"; sent explicitly as false:
        # https://cloud.google.com/sql/docs/postgres/admin-api/rest/v1/instances/delete
        params = {"enableFinalBackup": "false"}
        return self._operation("DELETE", self._instance_path(instance), params=params)

    def get_operation(self, name: str) -> Operation:
        return self._operation("GET", f"{self._project}/operations/{_segment(name)}")

    def restore_backupdr_backup(
        self, instance: str, backup: str, settings: NewInstanceSettings
    ) -> Operation:
        # Exactly one of restoreBackupContext, backup, backupdrBackup; restoreInstanceSettings
        # (a DatabaseInstance) overrides the backup's settings and applies to new instances only:
        # https://cloud.google.com/sql/docs/postgres/admin-api/rest/v1/instances/restoreBackup
        body = {
            "backupdrBackup": backup,
            "restoreInstanceSettings": restore_instance_settings(
                self._project_id, instance, settings
            ),
        }
        return self._operation("POST", f"{self._instance_path(instance)}/restoreBackup", body)


class GcsBackupStore:
    """Cloud Storage JSON API v1 object listing, following nextPageToken to the end."""

    def __init__(self, session: requests.Session, endpoint: str = STORAGE_ENDPOINT) -> None:
        self._api = _JsonApi(session, endpoint)

    def list_objects(self, bucket: str, prefix: str) -> list[StoredObject]:
        objects: list[StoredObject] = []
        params = {"prefix": prefix, "fields": "items(name,size,timeCreated),nextPageToken"}
        while True:
            page = self._api.call("GET", f"/storage/v1/b/{_segment(bucket)}/o", params=params)
            objects.extend(parse_object(bucket, item) for item in page.get("items") or [])
            token = page.get("nextPageToken")
            if not token:
                return objects
            params = {**params, "pageToken": str(token)}


def authorized_session() -> requests.Session:
    """A requests session carrying Application Default Credentials (cloud-platform scope)."""
    credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    # google-auth's transport module has no type hints.
    return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]


# --- Backup and DR (vaulted backups) ------------------------------------------------------------

BACKUPDR_ENDPOINT = "https://backupdr.googleapis.com"


def restore_instance_settings(
    project: str, instance: str, settings: NewInstanceSettings
) -> JsonObject:
    """The DatabaseInstance a restore into a new instance overrides the backup's settings with:
    private IP only, TLS only, deletion protection off (the drill deletes what it restores)."""
    ip_configuration = {
        "ipv4Enabled": False,
        "privateNetwork": settings.private_network,
        "sslMode": "ENCRYPTED_ONLY",
    }
    instance_settings: JsonObject = {
        "ipConfiguration": ip_configuration,
        "deletionProtectionEnabled": False,
    }
    if settings.tier:
        instance_settings["tier"] = settings.tier
    if settings.edition:
        instance_settings["edition"] = settings.edition
    document: JsonObject = {"name": instance, "project": project, "settings": instance_settings}
    if settings.region:
        document["region"] = settings.region
    return document


def parse_vault_backup(document: JsonObject) -> VaultBackup:
    """A Backup resource (google/cloud/backupdr/v1/backupvault.proto, JSON field names)."""
    properties = document.get("cloudSqlInstanceBackupProperties") or {}
    consistency = document.get("consistencyTime")
    return VaultBackup(
        name=str(document["name"]),
        state=str(document.get("state", "STATE_UNSPECIFIED")),
        consistency_time=parse_time(str(consistency)) if consistency else None,
        source_instance=str(properties.get("sourceInstance", "")),
        database_version=str(properties.get("databaseInstalledVersion", "")),
    )


def _resource_path(name: str) -> str:
    return "/v1/" + "/".join(_segment(part) for part in name.split("/"))


class RestBackupVaultCatalog:
    """Backup and DR API v1: the data sources of a vault, then each one's backups.

    Google documents "-" as a wildcard for the location only, so data sources are listed first
    rather than asking for dataSources/- (ListBackupsRequest.parent in backupvault.proto).
    GET {vault}/dataSources and GET {dataSource}/backups, paged with pageToken/nextPageToken:
    https://cloud.google.com/backup-disaster-recovery/docs/reference/rest/v1/projects.locations.backupVaults.dataSources/list
    https://cloud.google.com/backup-disaster-recovery/docs/reference/rest/v1/projects.locations.backupVaults.dataSources.backups/list
    """

    def __init__(self, session: requests.Session, endpoint: str = BACKUPDR_ENDPOINT) -> None:
        self._api = _JsonApi(session, endpoint)

    def _items(self, path: str, key: str) -> list[JsonObject]:
        items: list[JsonObject] = []
        params: dict[str, str] = {}
        while True:
            page = self._api.call("GET", path, params=params or None)
            items.extend(page.get(key) or [])
            token = page.get("nextPageToken")
            if not token:
                return items
            params = {"pageToken": str(token)}

    def list_vault_backups(self, vault: str) -> list[VaultBackup]:
        data_sources = self._items(f"{_resource_path(vault)}/dataSources", "dataSources")
        return [
            parse_vault_backup(backup)
            for source in data_sources
            for backup in self._items(f"{_resource_path(str(source['name']))}/backups", "backups")
        ]
