"""Preparing a Cloud SQL instance so a plain export of the application database imports cleanly.

A database export holds no roles, yet it assigns owners (`ALTER TABLE ... OWNER TO app_owner`) and
grants to the application's roles. Cloud SQL replays it as the import user (`postgres` unless
`importUser` / `gcloud sql import sql --user` names another), which is not a superuser: it has
CREATEROLE and CREATEDB and is a member of `cloudsqlsuperuser`
(https://cloud.google.com/sql/docs/postgres/users). Since PostgreSQL 16:

* `ALTER ... OWNER TO r` requires being able to `SET ROLE r`
  (https://www.postgresql.org/docs/16/sql-altertable.html: "you must be able to SET ROLE to the
  new owning role");
* a CREATEROLE user only gets ADMIN OPTION on roles it creates, and granting membership in any
  other role needs ADMIN OPTION on it (release notes, "Restrict the privileges of CREATEROLE and
  its ability to modify other roles": https://www.postgresql.org/docs/16/release-16.html);
* the membership its creator receives carries neither SET nor INHERIT unless
  `createrole_self_grant` says so (https://www.postgresql.org/docs/16/runtime-config-client.html).

So before an import, every application role must exist and the import user must hold it WITH
INHERIT TRUE (to grant on and alter objects the role then owns) and SET TRUE (to hand ownership to
it). `preparation_sql` writes those statements; whoever has ADMIN OPTION on the roles runs them
once per instance (the import user itself when it created them).

The new owner must also have CREATE on the schema (same ALTER TABLE page), and a dump grants
schema privileges only in its ACL section, after every `OWNER TO`: so each new database needs
`schema_grants_sql` first, run by a member of the database's owner. `missing_grants` checks a
target read-only, so the drill can stop before an import that would fail half way.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

DEFAULT_IMPORT_USER = "postgres"  # Cloud SQL's default admin user, CREATEROLE but not superuser
DEFAULT_APP_ROLES = ("app_owner", "app_user")


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, double-quoted (roles of IAM users contain '@' and '.')."""
    return '"' + name.replace('"', '""') + '"'


def preparation_sql(import_user: str, roles: Sequence[str]) -> str:
    """Idempotent statements that let `import_user` import a dump owned by and granting to `roles`.

    Run by a role with ADMIN OPTION on `roles` (their creator, e.g. `postgres` on Cloud SQL), or
    by the import user itself when the roles do not exist yet: creating them gives it ADMIN.
    """
    user = quote_ident(import_user)
    lines = []
    for role in roles:
        name = quote_ident(role)
        literal = "'" + role.replace("'", "''") + "'"
        lines.append(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
            f"{literal}) THEN CREATE ROLE {name} NOLOGIN; END IF; END $$;"
        )
        lines.append(f"GRANT {name} TO {user} WITH INHERIT TRUE, SET TRUE;")
    return "\n".join(lines) + "\n"


def prepare_import_user(
    conn: psycopg.Connection[TupleRow], import_user: str, roles: Sequence[str]
) -> None:
    """Run `preparation_sql` on a connection (autocommit or inside the caller's transaction)."""
    with conn.cursor() as cursor:
        cursor.execute(preparation_sql(import_user, roles).encode("utf-8"))


def schema_grants_sql(owner_role: str, schemas: Sequence[str] = ("public",)) -> str:
    """Per database, before the import: the objects' owner may own objects in these schemas."""
    return "".join(
        f"GRANT USAGE, CREATE ON SCHEMA {quote_ident(schema)} TO {quote_ident(owner_role)};\n"
        for schema in schemas
    )


_MEMBERSHIP = sql.SQL(
    "SELECT r.rolname, pg_has_role({user}, r.oid, 'SET'), pg_has_role({user}, r.oid, 'USAGE') "
    "FROM pg_roles r WHERE r.rolname = ANY({roles})"
)


def missing_grants(
    conn: psycopg.Connection[TupleRow],
    import_user: str,
    roles: Sequence[str],
    schemas: Sequence[str] = ("public",),
) -> list[str]:
    """What keeps `import_user` from importing a dump that uses `roles` into the connected
    database; empty when ready. `roles[0]` is the role that owns the application's objects."""
    found = conn.execute(
        "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (import_user,)
    ).fetchone()
    if found is None:
        return [f"import user {import_user!r} does not exist"]
    if found[0]:
        return []
    problems = membership_problems(conn, import_user, roles)
    if roles and not any("does not exist" in p and repr(roles[0]) in p for p in problems):
        problems.extend(schema_problems(conn, roles[0], schemas))
    return problems


def schema_problems(
    conn: psycopg.Connection[TupleRow], owner_role: str, schemas: Sequence[str]
) -> list[str]:
    problems = []
    for schema in schemas:
        row = conn.execute(
            "SELECT has_schema_privilege(%s, %s, 'CREATE')", (owner_role, schema)
        ).fetchone()
        if not (row and row[0]):
            problems.append(f"{owner_role!r} has no CREATE on schema {schema!r} (OWNER TO fails)")
    return problems


def membership_problems(
    conn: psycopg.Connection[TupleRow], import_user: str, roles: Sequence[str]
) -> list[str]:
    query = _MEMBERSHIP.format(user=sql.Literal(import_user), roles=sql.Literal(list(roles)))
    memberships = {row[0]: (row[1], row[2]) for row in conn.execute(query).fetchall()}
    problems = []
    for role in roles:
        if role not in memberships:
            problems.append(f"role {role!r} does not exist")
            continue
        can_set, can_use = memberships[role]
        if not can_set:
            problems.append(f"{import_user!r} cannot SET ROLE {role!r} (ALTER ... OWNER TO fails)")
        if not can_use:
            problems.append(
                f"{import_user!r} does not inherit {role!r} (GRANTs on its objects fail)"
            )
    return problems
