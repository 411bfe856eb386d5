"""Import-user preparation on a real PostgreSQL 18, with the import user shaped like Cloud SQL's
`postgres` user: LOGIN, CREATEROLE, CREATEDB, not a superuser.

The export of the generated dataset (owners app_owner, grants to app_user and cloudsqlsuperuser)
is replayed by that user the way Cloud SQL's import replays it: psql, one transaction, stop at the
first error. The application roles already exist on the target, created by another role, as on a
staging instance where the application was deployed.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ops.restore_drill.import_target import (
    DEFAULT_APP_ROLES,
    missing_grants,
    preparation_sql,
    prepare_import_user,
    schema_grants_sql,
)
from ops.restore_drill.local_restore import LocalRestoreResult
from ops.restore_drill.pgtools import PgToolError, PgTools, with_database
from tests.restore_drill.conftest import Servers


def as_user(conninfo: str, user: str) -> str:
    return psycopg.conninfo.make_conninfo(conninfo, user=user)


@pytest.fixture
def import_user(
    servers: Servers, restored: LocalRestoreResult
) -> Iterator[Callable[[str], tuple[str, str]]]:
    """A fresh Cloud SQL-like import user and an empty database it owns: (user, conninfo).

    Depends on `restored` so app_owner / app_user / cloudsqlsuperuser exist, created by the
    bootstrap superuser (not by the import user)."""
    made: list[tuple[str, str]] = []

    def make(name: str) -> tuple[str, str]:
        database = f"{name}_db"
        with psycopg.connect(servers.target, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB NOSUPERUSER").format(
                    sql.Identifier(name)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(name)
                )
            )
        made.append((name, database))
        return name, as_user(with_database(servers.target, database), name)

    yield make
    with psycopg.connect(servers.target, autocommit=True) as conn:
        for name, database in made:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def replay(pg_tools: PgTools, conninfo: str, dump: Path) -> None:
    with gzip.open(dump, "rb") as script:
        pg_tools.replay_sql(conninfo, script)


def test_an_unprepared_createrole_user_cannot_import_the_export(
    servers: Servers,
    export_dump: Path,
    pg_tools: PgTools,
    import_user: Callable[..., tuple[str, str]],
) -> None:
    user, conninfo = import_user("import_unprepared")
    with psycopg.connect(conninfo) as conn:
        problems = missing_grants(conn, user, DEFAULT_APP_ROLES)
    assert problems == [
        "'import_unprepared' cannot SET ROLE 'app_owner' (ALTER ... OWNER TO fails)",
        "'import_unprepared' does not inherit 'app_owner' (GRANTs on its objects fail)",
        "'import_unprepared' cannot SET ROLE 'app_user' (ALTER ... OWNER TO fails)",
        "'import_unprepared' does not inherit 'app_user' (GRANTs on its objects fail)",
        "'app_owner' has no CREATE on schema 'public' (OWNER TO fails)",
    ]
    with pytest.raises(PgToolError, match='must be able to SET ROLE "app_owner"'):
        replay(pg_tools, conninfo, export_dump)
    # CREATEROLE alone no longer lets it grant itself roles it did not create (PostgreSQL 16+).
    with psycopg.connect(conninfo) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        prepare_import_user(conn, user, DEFAULT_APP_ROLES)


def test_the_prepared_import_user_imports_the_export_cleanly(
    servers: Servers,
    export_dump: Path,
    pg_tools: PgTools,
    import_user: Callable[..., tuple[str, str]],
) -> None:
    user, conninfo = import_user("import_prepared")
    # Run once by a role with ADMIN OPTION on the app roles (their creator).
    with psycopg.connect(servers.target, autocommit=True) as conn:
        conn.execute(preparation_sql(user, DEFAULT_APP_ROLES).encode())
        conn.execute(preparation_sql(user, DEFAULT_APP_ROLES).encode())  # idempotent
    with psycopg.connect(conninfo) as conn:
        assert missing_grants(conn, user, DEFAULT_APP_ROLES) == [
            "'app_owner' has no CREATE on schema 'public' (OWNER TO fails)"
        ]
    # Per new database, by a member of its owner (here the import user owns it).
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(schema_grants_sql("app_owner").encode())
        assert missing_grants(conn, user, DEFAULT_APP_ROLES) == []

    replay(pg_tools, conninfo, export_dump)

    with psycopg.connect(conninfo) as conn:
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        grants = conn.execute(
            "SELECT has_table_privilege('app_user', 'appointments', 'SELECT')"
        ).fetchone()
    assert owners == [("app_owner",)]
    assert grants == (True,)


def test_a_missing_role_or_import_user_is_named(
    servers: Servers, import_user: Callable[..., tuple[str, str]]
) -> None:
    user, conninfo = import_user("import_checks")
    with psycopg.connect(conninfo) as conn:
        assert missing_grants(conn, "nobody_here", ["app_owner"]) == [
            "import user 'nobody_here' does not exist"
        ]
        assert missing_grants(conn, user, ["no_such_role"]) == [
            "role 'no_such_role' does not exist"
        ]


def test_the_import_user_that_creates_the_roles_prepares_itself(
    servers: Servers, import_user: Callable[..., tuple[str, str]]
) -> None:
    """A new instance (region loss): the import user creates the roles, which gives it ADMIN."""
    user, conninfo = import_user("import_creator")
    roles = ["dr_owner_role", "dr_user_role"]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        prepare_import_user(conn, user, roles)
        conn.execute(schema_grants_sql(roles[0]).encode())
        assert missing_grants(conn, user, roles) == []
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("ALTER TABLE t OWNER TO dr_owner_role")
        conn.execute("GRANT SELECT ON t TO dr_user_role")
        owners_ok = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE tablename = 't'"
        ).fetchone()
        assert owners_ok == ("dr_owner_role",)
        conn.execute("DROP TABLE t")
        conn.execute("REVOKE ALL ON SCHEMA public FROM dr_owner_role")
    with psycopg.connect(servers.target, autocommit=True) as conn:
        for role in roles:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
