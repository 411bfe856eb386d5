"""Restore a downloaded Cloud SQL export (.sql.gz) into any PostgreSQL reachable by a connection string.

The restore always goes into a NEW database, so it can never overwrite data. The dump is read
once, as it is replayed: the header (versions) is checked before anything is written, and the
roles the script names are found as it streams into psql. Roles are handled deliberately:

* roles named `cloudsql*` are Cloud SQL's own (e.g. `cloudsqlsuperuser`); a PostgreSQL outside
  Cloud SQL lacks them, so they are created as NOLOGIN roles that only receive the dump's grants;
* any other missing role (the application's) stops the restore with the list of names, unless
  `create_missing_roles` is set, in which case they too are created NOLOGIN. Creating them
  silently would hide a target that was never prepared for the application.

Missing roles are created by a `CREATE ROLE` slipped into the script right before the first
statement naming them, inside psql's single transaction: a restore that fails leaves no role
behind. A refused role kills psql before it can commit, so the new database stays empty, and
`restore_dump` drops it.

A directory-format dump (a parallel export's folder) is restored with `pg_restore --jobs N`
(`restore_directory_dump`): its roles come from the schema part of the archive, read up front,
and are created before the restore, which cannot run in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from ops.restore_drill.dump_file import (
    CHUNK_BYTES,
    DumpHeader,
    DumpInfo,
    NotADumpError,
    RoleScanner,
    ScannedLine,
    complete_lines,
    open_dump,
    psql_understands_restrict,
    read_header,
    scan_script,
)
from ops.restore_drill.exports import TABLE_OF_CONTENTS
from ops.restore_drill.pgtools import PgToolError, PgTools, with_database

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


def check_versions(dump: DumpHeader, target_major: int, tools: PgTools) -> None:
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


def dump_header(path: Path) -> DumpHeader:
    """The dump's header, or a RestoreError saying why the file is not a dump."""
    try:
        return read_header(path)
    except NotADumpError as error:
        raise RestoreError(str(error)) from error


def quoted_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class MissingRoles:
    """Decides, role by role as the script names them, which missing roles the replay creates."""

    def __init__(self, existing: frozenset[str], create_missing_roles: bool) -> None:
        self._known = set(existing)
        self._create_application_roles = create_missing_roles
        self.created: list[str] = []
        self.refused: set[str] = set()

    def creation_sql(self, roles: set[str]) -> bytes:
        """CREATE ROLE statements for the roles that must be created before a statement."""
        statements = []
        for role in sorted(roles - self._known - self.refused):
            if role.startswith(CLOUD_SQL_ROLE_PREFIX) or self._create_application_roles:
                self._known.add(role)
                self.created.append(role)
                statements.append(f"CREATE ROLE {quoted_identifier(role)} NOLOGIN;\n")
            else:
                self.refused.add(role)
        return "".join(statements).encode("utf-8")

    def refusal(self) -> RestoreError:
        return RestoreError(
            "the dump grants to roles the target does not have: "
            + ", ".join(sorted(self.refused))
            + ". Create them first, or pass --create-missing-roles to create them as NOLOGIN roles"
        )


def with_role_creation(
    block: bytes, lines: list[ScannedLine], roles: MissingRoles
) -> Iterator[bytes]:
    """The block, with CREATE ROLE statements before the lines naming missing roles; stops
    (before the offending line) at the first role that may not be created."""
    start = 0
    for line in lines:
        creation = roles.creation_sql(line.roles)
        if roles.refused:
            yield block[start : line.offset]
            return
        if creation:
            yield block[start : line.offset]
            yield creation
            start = line.offset
    yield block[start:]


def script_blocks(path: Path, scanner: RoleScanner, roles: MissingRoles) -> Iterator[bytes]:
    """The dump's SQL in blocks for psql, in one pass; raises RestoreError (after reading the
    rest, to name every refused role) when the script needs a role that may not be created."""
    pending = b""
    with open_dump(path) as stream:
        for chunk in iter(partial(stream.read, CHUNK_BYTES), b""):
            block, pending = complete_lines(pending, chunk)
            lines = scanner.scan(block)
            if not roles.refused:
                yield from with_role_creation(block, lines, roles)
            refuse_all(lines, roles)
        # The last line may lack its newline; psql gets it as it is.
        lines = scanner.scan(pending + b"\n")
        if not roles.refused:
            yield from with_role_creation(pending, lines, roles)
        refuse_all(lines, roles)
    if roles.refused:
        raise roles.refusal()


def refuse_all(lines: list[ScannedLine], roles: MissingRoles) -> None:
    """Once a role was refused nothing more is replayed, but every refused role is named."""
    if roles.refused:
        for line in lines:
            roles.creation_sql(line.roles)


def existing_roles(conn: psycopg.Connection[TupleRow]) -> frozenset[str]:
    return frozenset(str(name) for (name,) in conn.execute("SELECT rolname FROM pg_roles"))


def database_exists(conn: psycopg.Connection[TupleRow], database: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    return row is not None


def check_target(
    conn: psycopg.Connection[TupleRow],
    request: LocalRestoreRequest,
    dump: DumpHeader,
    tools: PgTools,
) -> None:
    check_versions(dump, server_major(conn), tools)
    if database_exists(conn, request.database):
        raise RestoreError(
            f"database {request.database!r} already exists; a restore never overwrites data"
        )


def create_database(conn: psycopg.Connection[TupleRow], database: str) -> None:
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def prepare_target(
    request: LocalRestoreRequest, dump: DumpHeader, tools: PgTools
) -> frozenset[str]:
    """Check the target and create the empty database; return the roles the target has."""
    with psycopg.connect(request.server_conninfo, autocommit=True) as conn:
        check_target(conn, request, dump, tools)
        roles = existing_roles(conn)
        create_database(conn, request.database)
    return roles


@dataclass(frozen=True)
class Replayed:
    database_conninfo: str
    roles: frozenset[str]  # every role the script names
    created_roles: tuple[str, ...]


def replay(request: LocalRestoreRequest, tools: PgTools, existing: frozenset[str]) -> Replayed:
    """Replay the dump into the prepared database in one pass, creating the roles it may."""
    database_conninfo = with_database(request.server_conninfo, request.database)
    scanner = RoleScanner()
    roles = MissingRoles(existing, request.create_missing_roles)
    tools.replay_sql(database_conninfo, script_blocks(request.dump, scanner, roles))
    return Replayed(database_conninfo, frozenset(scanner.roles), tuple(roles.created))


def restore_dump(request: LocalRestoreRequest, tools: PgTools) -> LocalRestoreResult:
    """Restore `request.dump` into the new database `request.database` with psql."""
    header = dump_header(request.dump)
    existing = prepare_target(request, header, tools)
    try:
        replayed = replay(request, tools, existing)
    except RestoreError:
        drop_database(request.server_conninfo, request.database)  # empty: psql never committed
        raise
    info = DumpInfo(**vars(header), roles=replayed.roles)
    return LocalRestoreResult(replayed.database_conninfo, info, replayed.created_roles)


def drop_database(server_conninfo: str, database: str) -> None:
    """Remove a drill database, disconnecting anyone still using it."""
    with psycopg.connect(server_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


# --- directory-format dumps (parallel exports) ---------------------------------------------------


def is_directory_dump(path: Path) -> bool:
    return path.is_dir()


def inspect_directory_dump(path: Path, tools: PgTools) -> DumpInfo:
    """Versions and roles of a directory dump, from the SQL pg_restore would run without the
    table data (`--schema-only`: small, and no server needed)."""
    if not (path / TABLE_OF_CONTENTS).is_file():
        raise RestoreError(
            f"{path} has no {TABLE_OF_CONTENTS}: not a directory-format dump (pg_dump -Fd), "
            "or an unfinished parallel export"
        )
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    script = tools.archive_output(path, "--schema-only", "--file=-")
    info = scan_script(path, script, size_bytes=size)
    if info.dumped_from_major is None and info.dumped_by_major is None:
        raise RestoreError(f"{path}: pg_restore shows no pg_dump header; not a pg_dump archive")
    # pg_restore reads the archive itself: psql's \\restrict support does not matter here.
    return replace(info, uses_restrict=False)


def prepare_directory_target(
    request: LocalRestoreRequest, dump: DumpInfo, tools: PgTools
) -> tuple[str, ...]:
    """Check the target, create the roles the dump may have and the empty database; return the
    roles created. pg_restore --jobs cannot run in one transaction, so roles are created first
    (and kept): a refused role stops everything before anything is written."""
    with psycopg.connect(request.server_conninfo, autocommit=True) as conn:
        check_target(conn, request, dump, tools)
        roles = MissingRoles(existing_roles(conn), request.create_missing_roles)
        creation = roles.creation_sql(set(dump.roles))
        if roles.refused:
            raise roles.refusal()
        if creation:
            conn.execute(creation)
        create_database(conn, request.database)
    return tuple(roles.created)


def restore_directory(request: LocalRestoreRequest, tools: PgTools, jobs: int) -> str:
    """pg_restore --jobs into the prepared database; return its connection string."""
    database_conninfo = with_database(request.server_conninfo, request.database)
    tools.restore_directory(database_conninfo, request.dump, jobs)
    return database_conninfo


def restore_directory_dump(
    request: LocalRestoreRequest, tools: PgTools, jobs: int
) -> LocalRestoreResult:
    """Restore a directory-format dump into the new database `request.database` with
    `pg_restore --jobs`; a failed restore drops the half-restored database."""
    info = inspect_directory_dump(request.dump, tools)
    created = prepare_directory_target(request, info, tools)
    try:
        database_conninfo = restore_directory(request, tools, jobs)
    except PgToolError:
        drop_database(request.server_conninfo, request.database)
        raise
    return LocalRestoreResult(database_conninfo, info, created)
