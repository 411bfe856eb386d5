"""Restoring an export into a PostgreSQL outside Cloud SQL with psql, against real servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ops.restore_drill.dump_file import inspect_dump
from ops.restore_drill.local_restore import (
    LocalRestoreRequest,
    LocalRestoreResult,
    RestoreError,
    check_versions,
    drop_database,
    restore_directory_dump,
    restore_dump,
)
from ops.restore_drill.pgtools import PgToolError, PgTools, with_database
from tests.restore_drill.conftest import Servers
from tests.restore_drill.support import TABLES

HALF_GOOD_DUMP = """-- Dumped from database version 18.6
CREATE TABLE public.kept (id int);
INSERT INTO public.kept VALUES (1);
ALTER TABLE public.missing ADD COLUMN x int;
CREATE TABLE public.after_error (id int);
"""
GHOST_DUMP_BODY = """CREATE TABLE public.t (id int);
GRANT SELECT ON TABLE public.t TO cloudsqlghostadmin;
GRANT SELECT ON TABLE public.t TO ghost_role;
COPY public.t (id) FROM stdin;
1
\\.
GRANT SELECT ON TABLE public.t TO other_ghost;
"""
SMALL_DUMP_HEADER = "-- Dumped from database version 18.6\n-- Dumped by pg_dump version 18.6\n"


def row_counts(conninfo: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with psycopg.connect(conninfo) as conn:
        for table in TABLES:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            [(counts[table],)] = conn.execute(query).fetchall()
    return counts


def database_names(server: str) -> set[str]:
    with psycopg.connect(server) as conn:
        return {name for (name,) in conn.execute("SELECT datname FROM pg_database")}


def role_names(server: str) -> set[str]:
    with psycopg.connect(server) as conn:
        return {name for (name,) in conn.execute("SELECT rolname FROM pg_roles")}


def test_the_restore_holds_every_row_of_the_source(
    servers: Servers, restored: LocalRestoreResult
) -> None:
    source = row_counts(servers.source_app)

    assert row_counts(restored.database_conninfo) == source
    assert sum(source.values()) >= 100_000


def test_a_fresh_server_gets_the_cloud_sql_and_application_roles_as_nologin(
    servers: Servers, restored: LocalRestoreResult
) -> None:
    assert set(restored.created_roles) == {"cloudsqlsuperuser", "app_owner", "app_user"}
    with psycopg.connect(servers.target) as conn:
        can_login: dict[str, bool] = dict(
            conn.execute(
                "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)",
                (list(restored.created_roles),),
            ).fetchall()
        )
    assert can_login == dict.fromkeys(restored.created_roles, False)


def test_missing_application_roles_stop_the_restore_and_leave_nothing_behind(
    servers: Servers, pg_tools: PgTools, write_small_dump: Callable[[str, str], Path]
) -> None:
    dump = write_small_dump(
        "ghost.sql.gz",
        SMALL_DUMP_HEADER + GHOST_DUMP_BODY,
    )

    with pytest.raises(RestoreError, match=r"ghost_role, other_ghost\. .*--create-missing-roles"):
        restore_dump(LocalRestoreRequest(dump, servers.target, "ghost_db"), pg_tools)

    assert "ghost_db" not in database_names(servers.target)
    # The Cloud SQL role created before the refusal went with psql's uncommitted transaction.
    assert not {"ghost_role", "other_ghost", "cloudsqlghostadmin"} & role_names(servers.target)


def test_a_file_that_is_not_a_dump_is_refused_before_anything_is_created(
    servers: Servers, pg_tools: PgTools, write_small_dump: Callable[[str, str], Path]
) -> None:
    dump = write_small_dump("notes.sql.gz", "CREATE TABLE public.t (id int);\n")

    with pytest.raises(RestoreError, match="is not a pg_dump script"):
        restore_dump(LocalRestoreRequest(dump, servers.target, "not_a_dump"), pg_tools)

    assert "not_a_dump" not in database_names(servers.target)


def test_cloud_sql_roles_are_created_without_asking(
    servers: Servers, pg_tools: PgTools, write_small_dump: Callable[[str, str], Path]
) -> None:
    dump = write_small_dump(
        "cloudsql.sql.gz",
        SMALL_DUMP_HEADER
        + "CREATE TABLE public.t (id int);\nGRANT SELECT ON TABLE public.t TO cloudsqlimportexport;\n",
    )

    result = restore_dump(LocalRestoreRequest(dump, servers.target, "cloudsql_roles"), pg_tools)

    assert result.created_roles == ("cloudsqlimportexport",)
    assert "cloudsqlimportexport" in role_names(servers.target)


def test_a_restore_never_overwrites_an_existing_database(
    servers: Servers, pg_tools: PgTools, export_dump: Path, restored: LocalRestoreResult
) -> None:
    before = row_counts(restored.database_conninfo)

    with pytest.raises(RestoreError, match="already exists"):
        restore_dump(LocalRestoreRequest(export_dump, servers.target, "restored"), pg_tools)

    assert row_counts(restored.database_conninfo) == before


def test_a_failing_statement_stops_the_replay_and_leaves_nothing_half_restored(
    servers: Servers, pg_tools: PgTools, write_small_dump: Callable[[str, str], Path]
) -> None:
    dump = write_small_dump("broken.sql.gz", HALF_GOOD_DUMP)

    with pytest.raises(PgToolError, match=r'relation "public\.missing" does not exist'):
        restore_dump(LocalRestoreRequest(dump, servers.target, "half_restored"), pg_tools)

    with psycopg.connect(with_database(servers.target, "half_restored")) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_a_dump_from_a_newer_postgresql_is_refused(
    servers: Servers, pg_tools: PgTools, write_small_dump: Callable[[str, str], Path]
) -> None:
    dump = write_small_dump(
        "future.sql.gz",
        "-- Dumped from database version 19.1\n-- Dumped by pg_dump version 19.1\nSELECT 1;\n",
    )

    with pytest.raises(RestoreError, match="PostgreSQL 19 but the target runs 18"):
        restore_dump(LocalRestoreRequest(dump, servers.target, "future"), pg_tools)


class OldPsql(PgTools):
    def version(self, name: str) -> tuple[int, int]:
        return (16, 9)


def test_a_psql_too_old_for_restrict_is_refused_with_the_versions_that_work(
    export_dump: Path,
) -> None:
    with pytest.raises(RestoreError, match=r"psql 16\.9 does not know.*16\.10"):
        check_versions(inspect_dump(export_dump), 18, OldPsql())


# --- directory-format dumps (parallel exports) ---------------------------------------------------


def test_a_directory_dump_is_restored_with_parallel_pg_restore_workers(
    servers: Servers, pg_tools: PgTools, directory_dump: Path
) -> None:
    request = LocalRestoreRequest(directory_dump, servers.target, "from_directory")
    try:
        result = restore_directory_dump(request, pg_tools, jobs=2)

        assert row_counts(result.database_conninfo) == row_counts(servers.source_app)
        assert result.dump.roles == {"app_owner", "app_user", "cloudsqlsuperuser"}
        assert result.dump.minimum_server_major == 18
        assert result.created_roles == ()  # the good restore created them already
    finally:
        drop_database(servers.target, "from_directory")


@pytest.fixture
def ghost_directory_dump(servers: Servers, pg_tools: PgTools, tmp_path: Path) -> Iterator[Path]:
    """A directory dump granting to a role that exists on the source server only."""
    with psycopg.connect(servers.source, autocommit=True) as conn:
        conn.execute("CREATE ROLE dir_ghost NOLOGIN")
        conn.execute("CREATE DATABASE dir_ghost_source")
    source = with_database(servers.source, "dir_ghost_source")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int); GRANT SELECT ON t TO dir_ghost")
    path = tmp_path / "20260301T020000Z"
    pg_tools.dump_directory(source, path, jobs=1)
    yield path
    with psycopg.connect(servers.source, autocommit=True) as conn:
        conn.execute("DROP DATABASE dir_ghost_source")
        conn.execute("DROP ROLE dir_ghost")


def test_a_directory_dump_needing_a_missing_application_role_is_refused_before_writing(
    servers: Servers, pg_tools: PgTools, ghost_directory_dump: Path
) -> None:
    request = LocalRestoreRequest(ghost_directory_dump, servers.target, "ghost_directory")

    with pytest.raises(RestoreError, match=r"roles the target does not have: dir_ghost\."):
        restore_directory_dump(request, pg_tools, jobs=2)

    assert "ghost_directory" not in database_names(servers.target)
    assert "dir_ghost" not in role_names(servers.target)


def test_a_folder_without_a_table_of_contents_is_not_restored(
    servers: Servers, pg_tools: PgTools, tmp_path: Path
) -> None:
    (tmp_path / "3001.dat.gz").write_bytes(b"")
    request = LocalRestoreRequest(tmp_path, servers.target, "no_toc")

    with pytest.raises(RestoreError, match=r"has no toc\.dat: not a directory-format dump"):
        restore_directory_dump(request, pg_tools, jobs=2)

    assert "no_toc" not in database_names(servers.target)
