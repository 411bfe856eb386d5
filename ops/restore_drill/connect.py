"""Connecting to a restored Cloud SQL database with IAM database authentication (no passwords).

Two connectors behind the `DatabaseConnector` interface:

* `LibraryConnector` (default): Google's cloud-sql-python-connector, which reaches the instance by
  its connection name over its own mTLS channel (ephemeral certificates refreshed for us) and logs
  in with IAM database authentication (`enable_iam_auth=True`); psycopg support since 1.22.0
  (https://github.com/GoogleCloudPlatform/cloud-sql-python-connector/pull/1452).
* `IamConnector`: plain libpq to an address, used with `--db-host` (e.g. a Cloud SQL Auth Proxy).

Cloud SQL accepts an OAuth 2.0 access token (scope sqlservice.login) as the password of an IAM
database user. The user name is the principal's email, except that service accounts drop the
`.gserviceaccount.com` suffix. The token lives about an hour and is fetched right before each
connection, so it is never stored anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import google.auth
import psycopg
from google.auth.credentials import Credentials
from google.auth.transport.requests import Request
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from ops.restore_drill.cloudsql import Instance

SQL_LOGIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.login"
SERVICE_ACCOUNT_SUFFIX = ".gserviceaccount.com"
POSTGRES_PORT = 5432
CONNECT_TIMEOUT_SECONDS = 30


class ConnectError(RuntimeError):
    """The restored database cannot be reached."""


class DatabaseConnector(Protocol):
    """Opens an autocommit connection to a database on a (restored) instance."""

    def connect(self, instance: Instance, database: str) -> psycopg.Connection[TupleRow]: ...


class CloudSqlLibrary(Protocol):
    """The part of `google.cloud.sql.connector.Connector` the drill uses."""

    def connect(self, instance_connection_string: str, driver: str, **kwargs: Any) -> Any: ...


class TokenSource(Protocol):
    def token(self) -> str: ...


def iam_database_user(principal_email: str) -> str:
    """The database user name Cloud SQL gives an IAM principal."""
    if principal_email.endswith(SERVICE_ACCOUNT_SUFFIX):
        return principal_email.removesuffix(SERVICE_ACCOUNT_SUFFIX)
    return principal_email


class GoogleTokenSource:
    """Access tokens from Application Default Credentials, refreshed when expired."""

    def __init__(self, credentials: Credentials | None = None) -> None:
        if credentials is None:
            credentials, _project = google.auth.default(scopes=[SQL_LOGIN_SCOPE])
        self._credentials = credentials

    def token(self) -> str:
        if not self._credentials.valid:
            # google-auth's refresh() has no type hints.
            self._credentials.refresh(Request())  # type: ignore[no-untyped-call]
        return str(self._credentials.token)


@dataclass(frozen=True)
class IamConnector:
    """Connects as an IAM database user, with a fresh access token as the password.

    `host` overrides the instance's address, e.g. 127.0.0.1 when going through the Cloud SQL
    Auth Proxy (then use sslmode=disable: the proxy encrypts the hop to Google itself).
    """

    tokens: TokenSource
    principal_email: str
    ip_type: str = "PRIVATE"
    host: str | None = None
    port: int = POSTGRES_PORT
    sslmode: str = "require"

    def conninfo(self, instance: Instance, database: str) -> str:
        host = self.host or instance.address(self.ip_type)
        if host is None:
            raise ConnectError(
                f"instance {instance.name} has no {self.ip_type} address; "
                "pass --ip-type PRIMARY or --db-host (e.g. a Cloud SQL Auth Proxy)"
            )
        return make_conninfo(
            host=host,
            port=str(self.port),
            dbname=database,
            user=iam_database_user(self.principal_email),
            sslmode=self.sslmode,
            connect_timeout=str(CONNECT_TIMEOUT_SECONDS),
            application_name="restore-drill",
        )

    def connect(self, instance: Instance, database: str) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(
            self.conninfo(instance, database), password=self.tokens.token(), autocommit=True
        )


@dataclass(frozen=True)
class LibraryConnector:
    """Connects through cloud-sql-python-connector as an IAM database user."""

    library: CloudSqlLibrary
    principal_email: str
    ip_type: str = "PRIVATE"  # the connector's IPTypes: PRIVATE, or PUBLIC for the public address

    def connect(self, instance: Instance, database: str) -> psycopg.Connection[TupleRow]:
        if not instance.connection_name:
            raise ConnectError(f"instance {instance.name} reports no connectionName")
        connection = self.library.connect(
            instance.connection_name,
            "psycopg",
            user=iam_database_user(self.principal_email),
            db=database,
            enable_iam_auth=True,
            ip_type=self.ip_type,
            timeout=CONNECT_TIMEOUT_SECONDS,
            autocommit=True,
            application_name="restore-drill",
        )
        if not isinstance(connection, psycopg.Connection):
            raise ConnectError(f"the Cloud SQL connector returned {type(connection).__name__}")
        return connection
