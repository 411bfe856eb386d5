"""What the restored database itself says about its tables: columns, their types, row-level security.

Generated checks take every type from here (pg_catalog), so they work whatever the ids are
(uuid, bigint, text) and never assume a cast.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

CATALOG_QUERY = b"""
SELECT c.relname,
       c.relrowsecurity,
       c.relforcerowsecurity,
       a.attname,
       pg_catalog.format_type(a.atttypid, a.atttypmod),
       a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute AS a
       ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
ORDER BY c.relname, a.attnum
"""
TIMESTAMP_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")


class CheckCannotRunError(Exception):
    """A generated check cannot run (missing column, no data to test with): an error, not a failure."""


@dataclass(frozen=True)
class Column:
    name: str
    type_sql: str  # as pg_catalog.format_type() spells it, usable in a cast
    filled_by_server: bool  # has a default, is an identity or generated column


@dataclass(frozen=True)
class CatalogTable:
    schema: str
    name: str
    rls_enabled: bool
    rls_forced: bool
    columns: tuple[Column, ...]

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        present = ", ".join(c.name for c in self.columns)
        raise CheckCannotRunError(
            f"column {name!r} not found in table {self.name} (it has: {present})"
        )

    def timestamp_column(self, name: str) -> Column:
        column = self.column(name)
        if column.type_sql not in TIMESTAMP_TYPES:
            raise CheckCannotRunError(
                f"{self.name}.{name} is {column.type_sql}, not a timestamp: "
                f"written_at columns must be one of {', '.join(TIMESTAMP_TYPES)}"
            )
        return column


def read_catalog(conn: psycopg.Connection[TupleRow], schema: str) -> dict[str, CatalogTable]:
    """Every ordinary or partitioned table in `schema`, by name."""
    rows = conn.execute(CATALOG_QUERY, (schema,)).fetchall()
    flags: dict[str, tuple[bool, bool]] = {}
    columns: dict[str, list[Column]] = {}
    for table, rls_enabled, rls_forced, column, type_sql, filled in rows:
        flags[table] = (bool(rls_enabled), bool(rls_forced))
        columns.setdefault(table, [])
        if column is not None:
            columns[table].append(Column(column, type_sql, bool(filled)))
    return {
        name: CatalogTable(schema, name, enabled, forced, tuple(columns[name]))
        for name, (enabled, forced) in flags.items()
    }
