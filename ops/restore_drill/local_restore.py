"""Restore a downloaded Cloud SQL export (.sql.gz) into any PostgreSQL reachable by a connection string.

The restore always goes into a NEW database, so it can never overwrite data. Roles the dump
refers to are handled deliberately, before anything is written:

* roles named `cloudsql*` are Cloud SQL's own (e.g. `cloudsqlsuperuser`); a PostgreSQL outside
  Cloud SQL lacks them, so they are created as NOLOGIN roles that only receive the dump's grants;
* any other missing role (the application's) stops the restore with the list of names, unless
  `create_missing_roles` is set, in which case they too are created NOLOGIN. Creating them
  silently would hide a target that was never prepared for the application.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from ops.restore_drill.dump_file import DumpInfo, inspect_dump, open_dump, psql_understands_restrict
from ops.restore_drill.pgtools import PgTools, with_database

CLOUD_SQL_ROLE_PREFIX = "cloudsql"


class RestoreError(RuntimeError):
    """The dump cannot be, or was not, restored."""


@dataclass(frozen=True)
class LocalRestoreRequest:
    dump: Path
    server_conninfo: str  # any database on the target server; used to create the new one
    database: str
    create_missing_roles: bool = False


@dataclass(frozen=True)
class LocalRestoreResult:
    database_conninfo: str
    dump: DumpInfo
    created_roles: tuple[str, ...]


def server_major(conn: psycopg.Connection[TupleRow]) -> int:
    return conn.info.server_version // 10000


def check_versions(dump: DumpInfo, target_major: int, tools: PgTools) -> None:
    """Refuse combinations PostgreSQL cannot replay, with the reason spelled out."""
    needed = dump.minimum_server_major
    if needed is not None and target_major < needed:
        raise RestoreError(
            f"{dump.path.name} was written for PostgreSQL {needed} but the target runs "
            f"{target_major}: restore into PostgreSQL {needed} or newer"
        )
    if dump.uses_restrict:
        major, minor = tools.version("psql")
        if not psql_understands_restrict(major, minor):
            raise RestoreError(
                f"{dump.path.name} uses \\restrict, which psql {major}.{minor} does not know: "
                "use psql 17.6, 16.10, 15.14, 14.19, 18 or newer"
            )


def roles_to_create(dump: DumpInfo, existing: set[str], create_missing_roles: bool) -> list[str]:
    """Missing roles the restore will create; raises when application roles would be invented."""
    missing = sorted(dump.roles - existing)
    application_roles = [r for r in missing if not r.startswith(CLOUD_SQL_ROLE_PREFIX)]
    if application_roles and not create_missing_roles:
        raise RestoreError(
            "the dump grants to roles the target does not have: "
            + ", ".join(application_roles)
            + ". Create them first, or pass --create-missing-roles to create them as NOLOGIN roles"
        )
    return missing


def create_roles(conn: psycopg.Connection[TupleRow], roles: list[str]) -> None:
    for role in roles:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))


def database_exists(conn: psycopg.Connection[TupleRow], database: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    return row is not None


def prepare_target(request: LocalRestoreRequest, dump: DumpInfo, tools: PgTools) -> list[str]:
    """Check the target, create the roles the dump needs and the empty database; return new roles."""
    with psycopg.connect(request.server_conninfo, autocommit=True) as conn:
        check_versions(dump, server_major(conn), tools)
        if database_exists(conn, request.database):
            raise RestoreError(
                f"database {request.database!r} already exists; a restore never overwrites data"
            )
        existing = {str(name) for (name,) in conn.execute("SELECT rolname FROM pg_roles")}
        new_roles = roles_to_create(dump, existing, request.create_missing_roles)
        create_roles(conn, new_roles)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(request.database)))
    return new_roles


def replay(request: LocalRestoreRequest, tools: PgTools) -> str:
    """Replay the dump into the prepared database; return that database's connection string."""
    database_conninfo = with_database(request.server_conninfo, request.database)
    with open_dump(request.dump) as script:
        tools.replay_sql(database_conninfo, script)
    return database_conninfo


def restore_dump(request: LocalRestoreRequest, tools: PgTools) -> LocalRestoreResult:
    """Restore `request.dump` into the new database `request.database` with psql."""
    dump = inspect_dump(request.dump)
    new_roles = prepare_target(request, dump, tools)
    return LocalRestoreResult(replay(request, tools), dump, tuple(new_roles))


def drop_database(server_conninfo: str, database: str) -> None:
    """Remove a drill database, disconnecting anyone still using it."""
    with psycopg.connect(server_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
