"""IAM database authentication: who the drill connects as, where, and with which token."""

from __future__ import annotations

import atexit
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from google.auth.credentials import Credentials
from psycopg.conninfo import conninfo_to_dict

from ops.restore_drill import cli
from ops.restore_drill.cloudsql import Instance, IpAddress
from ops.restore_drill.connect import (
    ConnectError,
    GoogleTokenSource,
    IamConnector,
    LibraryConnector,
    iam_database_user,
)
from tests.restore_drill.conftest import Servers

INSTANCE = Instance(
    "prod-pg-drill",
    "RUNNABLE",
    "POSTGRES_16",
    (IpAddress("PRIMARY", "34.77.110.182"), IpAddress("PRIVATE", "10.20.0.7")),
)


class CountingTokens:
    def __init__(self) -> None:
        self.issued = 0

    def token(self) -> str:
        self.issued += 1
        return f"ya29.token-{self.issued}"


@pytest.mark.parametrize(
    ("principal", "user"),
    [
        (
            "restore-drill@example-project.iam.gserviceaccount.com",
            "restore-drill@example-project.iam",
        ),
        ("alice@example.com", "alice@example.com"),
    ],
)
def test_the_database_user_is_the_principal_with_service_accounts_truncated(
    principal: str, user: str
) -> None:
    assert iam_database_user(principal) == user


def test_connects_to_the_private_address_with_tls_by_default() -> None:
    connector = IamConnector(
        CountingTokens(), "restore-drill@example-project.iam.gserviceaccount.com"
    )

    params = conninfo_to_dict(connector.conninfo(INSTANCE, "app"))

    assert params["host"] == "10.20.0.7"
    assert params["user"] == "restore-drill@example-project.iam"
    assert (params["dbname"], params["sslmode"], params["port"]) == ("app", "require", "5432")
    assert "password" not in params


def test_public_address_or_an_explicit_host_can_be_chosen() -> None:
    public = IamConnector(CountingTokens(), "alice@example.com", ip_type="PRIMARY")
    proxied = IamConnector(
        CountingTokens(), "alice@example.com", host="127.0.0.1", sslmode="disable"
    )

    assert conninfo_to_dict(public.conninfo(INSTANCE, "app"))["host"] == "34.77.110.182"
    assert conninfo_to_dict(proxied.conninfo(INSTANCE, "app"))["host"] == "127.0.0.1"


def test_an_instance_without_the_wanted_address_is_explained() -> None:
    public_only = Instance("x", "RUNNABLE", "POSTGRES_16", (IpAddress("PRIMARY", "34.1.1.1"),))

    with pytest.raises(ConnectError, match="no PRIVATE address"):
        IamConnector(CountingTokens(), "alice@example.com").conninfo(public_only, "app")


def test_each_connection_uses_a_fresh_token_as_its_password(servers: Servers) -> None:
    # The local server trusts socket connections, so this proves the wiring, not Google's check.
    socket_dir = conninfo_to_dict(servers.target)["host"]
    tokens = CountingTokens()
    connector = IamConnector(tokens, "postgres", host=str(socket_dir), sslmode="disable")

    for _ in range(2):
        with connector.connect(INSTANCE, "postgres") as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
            assert conn.info.password.startswith("ya29.token-")

    assert tokens.issued == 2


def naive_utc_now() -> datetime:
    """google-auth keeps token expiry as a naive UTC datetime."""
    return datetime.now(UTC).replace(tzinfo=None)


class FakeCredentials(Credentials):
    """Credentials whose refresh issues numbered one-hour tokens."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # google-auth is untyped
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"token-{self.refreshes}"
        self.expiry = naive_utc_now() + timedelta(hours=1)


def test_tokens_are_refreshed_only_when_expired() -> None:
    credentials = FakeCredentials()
    source = GoogleTokenSource(credentials)

    assert [source.token(), source.token()] == ["token-1", "token-1"]
    credentials.expiry = naive_utc_now() - timedelta(minutes=1)
    assert source.token() == "token-2"


class RecordingLibrary:
    """Plays google.cloud.sql.connector.Connector: records the call, opens a local connection
    (as the real one hands back a psycopg connection through its own local socket)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def connect(self, instance_connection_string: str, driver: str, **kwargs: Any) -> Any:
        self.calls.append((instance_connection_string, driver, kwargs))
        autocommit = kwargs["autocommit"]
        return psycopg.connect(self.conninfo, autocommit=autocommit)


def test_the_library_connector_asks_for_iam_auth_as_the_principal_by_connection_name(
    servers: Servers,
) -> None:
    library = RecordingLibrary(servers.target)
    connector = LibraryConnector(library, "restore-drill@example-project.iam.gserviceaccount.com")
    instance = dataclasses.replace(INSTANCE, connection_name="example-project:europe-west1:x")

    with connector.connect(instance, "app") as conn:
        assert conn.autocommit
    [(name, driver, kwargs)] = library.calls
    assert (name, driver) == ("example-project:europe-west1:x", "psycopg")
    assert kwargs == {
        "user": "restore-drill@example-project.iam",
        "db": "app",
        "enable_iam_auth": True,
        "ip_type": "PRIVATE",
        "timeout": 30,
        "autocommit": True,
        "application_name": "restore-drill",
    }


def test_the_library_connector_needs_the_instance_connection_name() -> None:
    connector = LibraryConnector(RecordingLibrary(""), "alice@example.com")

    with pytest.raises(ConnectError, match="prod-pg-drill reports no connectionName"):
        connector.connect(INSTANCE, "app")


class StandInConnector:
    """Takes the place of google.cloud.sql.connector.Connector (which needs credentials)."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    def close(self) -> None:
        return None


def test_the_cli_connects_through_the_library_unless_a_host_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "Connector", StandInConnector)
    monkeypatch.setattr(atexit, "register", lambda _function: None)
    monkeypatch.setattr(cli, "GoogleTokenSource", CountingTokens)

    through_library = cli.make_connector("alice@example.com", cli.IpType.public, None, "require")
    through_proxy = cli.make_connector(
        "alice@example.com", cli.IpType.private, "127.0.0.1", "disable"
    )

    assert isinstance(through_library, LibraryConnector)
    assert (through_library.ip_type, through_library.principal_email) == (
        "PUBLIC",
        "alice@example.com",
    )
    assert isinstance(through_library.library, StandInConnector)
    assert isinstance(through_proxy, IamConnector)
    assert (through_proxy.host, through_proxy.sslmode) == ("127.0.0.1", "disable")
