"""The drill's checks, generated from the data description and the restored database's catalog.

For a description (`description.py`) the suite always plans the same checks, so the log can say
"21/23" even when a table is missing:

* tables_present                      every described table was restored;
* rls:TABLE                           row-level security enabled (and forced) where described;
* isolation:TABLE:ROLE                scoped to one tenant, the app role sees its rows and no other's;
* no_tenant:TABLE:ROLE                with the setting empty it sees nothing (fails closed);
* cross_tenant_write:TABLE:ROLE       acting for one tenant it cannot insert a row for another;
* grants:ROLE                         privileges equal the description, none on forbidden tables;
* read:NAME                           the described read, replayed for one tenant, returns its rows only;
* freshness                           no table's newest write lags far behind the others';
* row_counts                          no table lost more rows than allowed since the previous drill;
* the hand-written extras (`checks/*.sql`).

Tenant ids are sampled from the data and every value is cast to the type the catalog gives, so the
same code runs on uuid, bigint or text ids. Each check runs in its own transaction that is always
rolled back. A check that cannot run ends as `error` (SQLSTATE and message), never as `failed`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from ops.restore_drill.baseline import Baseline
from ops.restore_drill.catalog import CatalogTable, CheckCannotRunError, read_catalog
from ops.restore_drill.checks import (
    CheckResult,
    SqlCheck,
    Status,
    error_message,
    error_result,
    run_check,
)
from ops.restore_drill.description import DataDescription, Privilege, Read, Table

COLUMN_PRIVILEGES = frozenset(
    {Privilege.SELECT, Privilege.INSERT, Privilege.UPDATE, Privilege.REFERENCES}
)
# Errors by which PostgreSQL refuses an app role's query outright (no privilege, a policy whose
# expression rejects the empty setting): the role sees nothing, which is what no_tenant requires.
REFUSAL_CLASSES = ("42501", "22")
INTEGRITY_CLASS = "23"


@dataclass(frozen=True)
class Tenants:
    """Two tenant ids of a table, as the text the application would put in the setting."""

    column: str
    type_sql: str
    own: str
    other: str

    def literal(self, value: str) -> sql.Composable:
        """`'value'::type`, with the column's own type from the catalog."""
        return sql.SQL("{}::{}").format(sql.Literal(value), sql.SQL(self.type_sql))


@dataclass
class RunContext:
    conn: psycopg.Connection[TupleRow]
    description: DataDescription
    catalog: dict[str, CatalogTable]
    snapshot_at: datetime | None
    baseline: Baseline | None
    row_counts: dict[str, int] = field(default_factory=dict)
    _tenants: dict[str, Tenants] = field(default_factory=dict)

    def table(self, name: str) -> CatalogTable:
        found = self.catalog.get(name)
        if found is None:
            raise CheckCannotRunError(f"not run: table {name} is missing (see tables_present)")
        return found

    def fetch(self, query: sql.Composable) -> list[TupleRow]:
        # Composed with literals only: executed without parameters, so a % in a team's read is
        # taken literally.
        return self.conn.execute(query.as_bytes(self.conn)).fetchall()

    def act_as(self, role: str, tenant: str) -> None:
        """Become the app role with the tenant setting as the application would set it."""
        self.conn.execute(
            sql.SQL("SELECT pg_catalog.set_config({}, {}, true)")
            .format(sql.Literal(self.description.rls_setting), sql.Literal(tenant))
            .as_bytes(self.conn)
        )
        self.conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))

    def tenants(self, name: str) -> Tenants:
        if name not in self._tenants:
            self._tenants[name] = sample_tenants(self, self.description.table(name))
        return self._tenants[name]


CheckBody = Callable[[RunContext], CheckResult]


@dataclass(frozen=True)
class PlannedCheck:
    name: str
    body: CheckBody


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.passed, detail)


def failed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.failed, detail)


# --- sampling ----------------------------------------------------------------------------------


def sample_tenants(ctx: RunContext, table: Table, newest_first: bool = False) -> Tenants:
    """Two tenants that have rows in `table` (read as the drill user)."""
    found = ctx.table(table.name)
    assert table.tenant_column is not None
    column = found.column(table.tenant_column)
    tenant = sql.Identifier(column.name)
    order = newest_order(found, table) if newest_first else sql.SQL("")
    own = ctx.fetch(
        sql.SQL("SELECT {col}::text FROM {t} WHERE {col} IS NOT NULL {order} LIMIT 1").format(
            col=tenant, t=found.identifier, order=order
        )
    )
    if not own:
        raise CheckCannotRunError(
            f"{table.name} has no rows visible to the drill user (empty, or row-level security is "
            "forced and the drill user lacks BYPASSRLS): no tenant to test with"
        )
    sample = Tenants(column.name, column.type_sql, own[0][0], "")
    other = ctx.fetch(
        sql.SQL("SELECT {col}::text FROM {t} WHERE {col} <> {own} LIMIT 1").format(
            col=tenant, t=found.identifier, own=sample.literal(sample.own)
        )
    )
    if not other:
        raise CheckCannotRunError(
            f"{table.name} holds rows of one tenant only: isolation cannot be tested"
        )
    return Tenants(column.name, column.type_sql, sample.own, other[0][0])


def newest_order(found: CatalogTable, table: Table) -> sql.Composable:
    if not table.written_at:
        return sql.SQL("")
    return sql.SQL("ORDER BY {} DESC NULLS LAST").format(newest_expression(found, table))


def newest_expression(found: CatalogTable, table: Table) -> sql.Composable:
    """GREATEST of the table's write-time columns (NULLs ignored)."""
    columns = [sql.Identifier(found.timestamp_column(name).name) for name in table.written_at]
    return sql.SQL("GREATEST({})").format(sql.SQL(", ").join(columns))


# --- structure ---------------------------------------------------------------------------------


def tables_present(ctx: RunContext) -> CheckResult:
    missing = [t.name for t in ctx.description.tables if t.name not in ctx.catalog]
    schema = ctx.description.schema_name
    if missing:
        return failed("tables_present", f"missing from schema {schema}: {', '.join(missing)}")
    return passed("tables_present", f"all {len(ctx.description.tables)} described tables present")


def rls_check(table: Table) -> PlannedCheck:
    name = f"rls:{table.name}"

    def body(ctx: RunContext) -> CheckResult:
        found = ctx.table(table.name)
        if not found.rls_enabled:
            return failed(name, f"row-level security is disabled on {table.name}")
        if table.required_rls == "forced" and not found.rls_forced:
            return failed(name, f"row-level security on {table.name} is enabled but not forced")
        state = "enabled and forced" if found.rls_forced else "enabled"
        return passed(name, f"row-level security {state}")

    return PlannedCheck(name, body)


# --- isolation as the app role -----------------------------------------------------------------


def isolation_check(table: Table, role: str) -> PlannedCheck:
    name = f"isolation:{table.name}:{role}"

    def body(ctx: RunContext) -> CheckResult:
        tenants = ctx.tenants(table.name)
        ctx.act_as(role, tenants.own)
        visible = {
            str(tenant): int(count)
            for tenant, count in ctx.fetch(
                sql.SQL("SELECT {col}::text, count(*) FROM {t} GROUP BY 1").format(
                    col=sql.Identifier(tenants.column), t=ctx.table(table.name).identifier
                )
            )
        }
        own_rows = visible.pop(tenants.own, 0)
        if visible:
            leaked = sum(visible.values())
            return failed(
                name,
                f"scoped to tenant {tenants.own}, {role} sees {leaked} rows of "
                f"{len(visible)} other tenant(s) in {table.name}",
            )
        if own_rows == 0:
            return failed(name, f"scoped to tenant {tenants.own}, {role} sees none of its rows")
        return passed(name, f"tenant {tenants.own}: {own_rows} own rows visible, no other tenant's")

    return PlannedCheck(name, body)


def no_tenant_check(table: Table, role: str) -> PlannedCheck:
    name = f"no_tenant:{table.name}:{role}"

    def body(ctx: RunContext) -> CheckResult:
        found = ctx.table(table.name)
        ctx.act_as(role, "")
        try:
            with ctx.conn.transaction():
                [(count,)] = ctx.fetch(sql.SQL("SELECT count(*) FROM {}").format(found.identifier))
        except psycopg.Error as error:
            if error.sqlstate and error.sqlstate.startswith(REFUSAL_CLASSES):
                return passed(name, f"refused ({error.sqlstate}: {error_message(error)})")
            raise
        if count:
            return failed(name, f"with no tenant set, {role} sees {count} rows of {table.name}")
        return passed(name, "no rows visible without a tenant")

    return PlannedCheck(name, body)


def cross_tenant_write_check(table: Table, role: str) -> PlannedCheck:
    name = f"cross_tenant_write:{table.name}:{role}"

    def body(ctx: RunContext) -> CheckResult:
        found = ctx.table(table.name)
        tenants = ctx.tenants(table.name)
        statement = copy_into_other_tenant(found, tenants)
        ctx.act_as(role, tenants.own)
        try:
            with ctx.conn.transaction():
                written = ctx.conn.execute(statement.as_bytes(ctx.conn)).rowcount
        except psycopg.errors.InsufficientPrivilege as error:
            return passed(name, f"refused ({error.sqlstate}: {error_message(error)})")
        except psycopg.Error as error:
            if error.sqlstate and error.sqlstate.startswith(INTEGRITY_CLASS):
                # PostgreSQL checks row-level security before constraints: reaching one means
                # the policy let the row through.
                return failed(
                    name,
                    f"row-level security let {role} write a row for tenant {tenants.other}; only a "
                    f"constraint stopped it ({error.sqlstate}: {error_message(error)})",
                )
            raise
        if written == 0:
            raise CheckCannotRunError(
                f"{role} sees no row of tenant {tenants.own} to copy for the probe"
            )
        return failed(
            name,
            f"acting for tenant {tenants.own}, {role} wrote a row for tenant {tenants.other} "
            f"into {table.name} (rolled back)",
        )

    return PlannedCheck(name, body)


def copy_into_other_tenant(found: CatalogTable, tenants: Tenants) -> sql.Composable:
    """INSERT a copy of one of the own tenant's rows, re-labelled with the other tenant.

    Columns the server fills (defaults, identities, generated) are left to it so keys stay unique.
    """
    copied = [
        sql.Identifier(c.name)
        for c in found.columns
        if not c.filled_by_server and c.name != tenants.column
    ]
    tenant = sql.Identifier(tenants.column)
    return sql.SQL(
        "INSERT INTO {t} ({cols}) SELECT {values} FROM {t} WHERE {tenant} = {own} LIMIT 1"
    ).format(
        t=found.identifier,
        cols=sql.SQL(", ").join([*copied, tenant]),
        values=sql.SQL(", ").join([*copied, tenants.literal(tenants.other)]),
        tenant=tenant,
        own=tenants.literal(tenants.own),
    )


# --- grants ------------------------------------------------------------------------------------

GRANTS_QUERY = b"""
SELECT c.relname, p.privilege
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
CROSS JOIN unnest(%(privileges)s::text[]) AS p (privilege)
WHERE n.nspname = %(schema)s
  AND c.relname = ANY (%(tables)s)
  AND (pg_catalog.has_table_privilege(%(role)s, c.oid, p.privilege)
       OR (p.privilege = ANY (%(column_privileges)s)
           AND pg_catalog.has_any_column_privilege(%(role)s, c.oid, p.privilege)))
"""


def grants_check(role: str) -> PlannedCheck:
    name = f"grants:{role}"

    def body(ctx: RunContext) -> CheckResult:
        if not ctx.conn.execute(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role,)
        ).fetchone():
            raise CheckCannotRunError(f"role {role} does not exist on the restored server")
        actual: dict[str, set[str]] = {}
        for table, privilege in ctx.conn.execute(
            GRANTS_QUERY,
            {
                "privileges": [p.value for p in Privilege],
                "schema": ctx.description.schema_name,
                "tables": [t.name for t in ctx.description.tables],
                "role": role,
                "column_privileges": sorted(COLUMN_PRIVILEGES),
            },
        ):
            actual.setdefault(table, set()).add(privilege)
        problems = [p for t in ctx.description.tables if (p := grant_problem(t, actual, role))]
        if problems:
            return failed(name, "; ".join(problems))
        return passed(name, "privileges match the description")

    return PlannedCheck(name, body)


def grant_problem(table: Table, actual: dict[str, set[str]], role: str) -> str | None:
    has = sorted(actual.get(table.name, set()))
    if table.forbidden:
        if has:
            return f"{role} has {', '.join(has)} on forbidden table {table.name}"
        return None
    if table.app_privileges is None:
        return None
    expected = sorted(p.value for p in table.app_privileges)
    if has != expected:
        return f"{role} has [{', '.join(has)}] on {table.name}, described [{', '.join(expected)}]"
    return None


# --- reads -------------------------------------------------------------------------------------


def read_check(read: Read) -> PlannedCheck:
    name = f"read:{read.name}"

    def body(ctx: RunContext) -> CheckResult:
        role = read.role or ctx.description.app_roles[0]
        tenant = sample_tenants(ctx, ctx.description.table(read.tenant_from), newest_first=True)
        ctx.act_as(role, tenant.own)
        foreign = sql.SQL(" OR ").join(
            sql.SQL("{}::text IS DISTINCT FROM {}").format(
                sql.Identifier("replay", c), sql.Literal(tenant.own)
            )
            for c in read.tenant_columns
        )
        [(rows, other)] = ctx.fetch(
            sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE {foreign}) FROM ({read}) AS replay"
            ).format(foreign=foreign, read=sql.SQL(read.sql))
        )
        if other:
            return failed(name, f"for tenant {tenant.own}, {other} of {rows} rows belong to others")
        if rows < read.min_rows:
            return failed(
                name, f"for tenant {tenant.own}, {rows} rows (at least {read.min_rows} expected)"
            )
        return passed(name, f"tenant {tenant.own}: {rows} rows, all its own")

    return PlannedCheck(name, body)


# --- silent data loss --------------------------------------------------------------------------


def as_utc(value: datetime | date) -> datetime:
    """Write times as aware UTC datetimes (timestamp without time zone is read as UTC)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def table_lags(ctx: RunContext, snapshot_at: datetime) -> dict[str, float | None]:
    """Minutes between the snapshot and each present table's newest write (None: no rows)."""
    lags: dict[str, float | None] = {}
    for table in ctx.description.tables:
        if not table.written_at or table.name not in ctx.catalog:
            continue
        found = ctx.catalog[table.name]
        [(newest,)] = ctx.fetch(
            sql.SQL("SELECT max({}) FROM {}").format(
                newest_expression(found, table), found.identifier
            )
        )
        lags[table.name] = (
            None if newest is None else (snapshot_at - as_utc(newest)).total_seconds() / 60
        )
    return lags


def outliers(description: DataDescription, lags: dict[str, float | None]) -> list[str]:
    problems = []
    for name, lag in lags.items():
        if lag is None:
            problems.append(f"{name} has no rows with a write time")
            continue
        others = [v for other, v in lags.items() if other != name and v is not None]
        if not others:
            continue
        typical = statistics.median(others)
        limit = (
            description.table(name).freshness_outlier_minutes
            or description.thresholds.freshness_outlier_minutes
        )
        if lag - typical > limit:
            problems.append(
                f"{name}'s newest write is {lag:.0f} min before the snapshot while the other "
                f"tables' median is {typical:.0f} min (allowed: {limit:.0f} more)"
            )
    return problems


def freshness(ctx: RunContext) -> CheckResult:
    if ctx.snapshot_at is None:
        raise CheckCannotRunError("no snapshot time is known for this backup")
    lags = table_lags(ctx, ctx.snapshot_at)
    shown = ", ".join(
        f"{name} {'no rows' if lag is None else f'{lag:.1f} min'}" for name, lag in lags.items()
    )
    problems = outliers(ctx.description, lags)
    if problems:
        return failed("freshness", "; ".join(problems) + f" (lag per table: {shown})")
    return passed("freshness", f"lag per table: {shown}")


def row_counts(ctx: RunContext) -> CheckResult:
    for table in ctx.description.tables:
        if table.name in ctx.catalog:
            [(count,)] = ctx.fetch(
                sql.SQL("SELECT count(*) FROM {}").format(ctx.catalog[table.name].identifier)
            )
            ctx.row_counts[table.name] = int(count)
    counts = ", ".join(f"{name} {count:,}" for name, count in ctx.row_counts.items())
    if ctx.baseline is None:
        return passed("row_counts", f"no previous passed drill to compare with; counts: {counts}")
    limit = ctx.description.thresholds.row_drop_percent
    problems = []
    for name, count in ctx.row_counts.items():
        before = ctx.baseline.row_counts.get(name)
        if before and (before - count) * 100 / before > limit:
            problems.append(
                f"{name}: {before:,} rows in the drill of {ctx.baseline.recorded_at:%Y-%m-%d} "
                f"({ctx.baseline.source}), {count:,} now (-{(before - count) * 100 / before:.1f}%, "
                f"allowed -{limit:g}%)"
            )
    if problems:
        return failed("row_counts", "; ".join(problems))
    return passed("row_counts", f"within -{limit:g}% of the previous drill; counts: {counts}")


# --- the suite ---------------------------------------------------------------------------------


def plan(description: DataDescription) -> list[PlannedCheck]:
    """The generated checks for a description, in the order they run."""
    checks = [PlannedCheck("tables_present", tables_present)]
    checks += [rls_check(t) for t in description.tables if t.required_rls]
    for table in (t for t in description.tables if t.tenant_scoped):
        for role in description.app_roles:
            checks += [
                isolation_check(table, role),
                no_tenant_check(table, role),
                cross_tenant_write_check(table, role),
            ]
    checks += [grants_check(role) for role in description.app_roles]
    checks += [read_check(read) for read in description.reads]
    if any(t.written_at for t in description.tables):
        checks.append(PlannedCheck("freshness", freshness))
    checks.append(PlannedCheck("row_counts", row_counts))
    return checks


def run_planned(ctx: RunContext, check: PlannedCheck, timeout_seconds: float) -> CheckResult:
    """One generated check in a transaction that is always rolled back."""
    try:
        with ctx.conn.transaction(force_rollback=True):
            ctx.conn.execute(
                sql.SQL("SET LOCAL statement_timeout = {}").format(
                    sql.Literal(f"{int(timeout_seconds * 1000)}ms")
                )
            )
            return check.body(ctx)
    except CheckCannotRunError as error:
        return CheckResult(check.name, Status.error, str(error))
    except psycopg.Error as error:
        return error_result(check.name, error)


@dataclass(frozen=True)
class SuiteOutcome:
    results: list[CheckResult]
    row_counts: dict[str, int]


@dataclass(frozen=True)
class CheckSuite:
    """Generated checks for one description, plus hand-written SQL extras."""

    description: DataDescription
    extras: Sequence[SqlCheck] = ()
    baseline: Baseline | None = None

    def names(self) -> list[str]:
        return [c.name for c in plan(self.description)] + [c.name for c in self.extras]

    def __len__(self) -> int:
        return len(self.names())

    def run(
        self,
        conn: psycopg.Connection[TupleRow],
        snapshot_at: datetime | None,
        timeout_seconds: float,
    ) -> SuiteOutcome:
        """Run every check (as the drill user, which must be able to SET ROLE to the app roles)."""
        catalog = read_catalog(conn, self.description.schema_name)
        ctx = RunContext(conn, self.description, catalog, snapshot_at, self.baseline)
        results = [run_planned(ctx, check, timeout_seconds) for check in plan(self.description)]
        results += [run_check(conn, check, timeout_seconds) for check in self.extras]
        return SuiteOutcome(results, dict(ctx.row_counts))
