"""Checks generated from a data description, on two schemas that differ in id types and names.

The reference schema (uuid ids, `ops/restore_drill/data.toml`) and a bigint schema with other
table, column, setting and role names (`schemas/`), each dumped and restored with psql like an
export. A healthy restore passes on both with only the description changed; each broken copy
fails exactly the checks that name its problem, and nothing is reported as an error unless a
check could not run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from ops.restore_drill.baseline import Baseline
from ops.restore_drill.checks import CheckResult, Status, load_checks
from ops.restore_drill.description import DESCRIPTION_PATH, DataDescription, load_description
from ops.restore_drill.local_restore import LocalRestoreRequest, restore_dump
from ops.restore_drill.pgtools import PgTools, with_database
from ops.restore_drill.verification import CheckSuite
from tests.restore_drill.conftest import Servers
from tests.restore_drill.support import EXPORT_AT, NEWEST_WRITE, RESTORED

SCHEMAS = Path(__file__).with_name("schemas")
CHECK_TIMEOUT = 30.0
BIGINT_RESTORED = "booking_restored"
NEWEST_SQL = f"{NEWEST_WRITE:%Y-%m-%d %H:%M:%S}"


@dataclass(frozen=True)
class Breakages:
    """One schema's way of breaking each thing the drill must catch, and what it must then say."""

    rls_table: str
    rls_off: str
    open_table: str
    open_policy: str
    dropped_table: str
    dropped_errors: frozenset[str]
    forbidden_grant: str
    stale_table_rows_gone: str
    shrunk_table: str
    shrink: str


@dataclass(frozen=True)
class Schema:
    label: str
    description: DataDescription
    database: str  # the healthy restore on the target server
    role: str
    breakages: Breakages


REFERENCE = Breakages(
    rls_table="customers",
    rls_off="ALTER TABLE customers DISABLE ROW LEVEL SECURITY",
    open_table="audit_events",
    open_policy="DROP POLICY tenant_isolation ON audit_events;"
    "CREATE POLICY tenant_isolation ON audit_events TO PUBLIC USING (true)",
    dropped_table="DROP TABLE security_events",
    dropped_errors=frozenset({"rls:security_events"}),
    forbidden_grant="GRANT SELECT ON security_events TO app_user",
    stale_table_rows_gone="DELETE FROM appointments "  # noqa: S608
    f"WHERE created_at > '{NEWEST_SQL}+00'::timestamptz - interval '7 days'",
    shrunk_table="audit_events",
    shrink="DELETE FROM audit_events WHERE id % 10 <> 0",
)
BIGINT = Breakages(
    rls_table="clients",
    rls_off="ALTER TABLE booking.clients DISABLE ROW LEVEL SECURITY",
    open_table="activity",
    open_policy="DROP POLICY by_account ON booking.activity;"
    "CREATE POLICY by_account ON booking.activity TO PUBLIC USING (true)",
    dropped_table="DROP TABLE booking.login_audit",
    dropped_errors=frozenset(),
    # A column-level grant is access too.
    forbidden_grant="GRANT SELECT (account_no) ON booking.login_audit TO web_app",
    stale_table_rows_gone="DELETE FROM booking.visits "  # noqa: S608
    f"WHERE inserted > TIMESTAMP '{NEWEST_SQL}' - interval '2 days'",
    shrunk_table="activity",
    shrink="DELETE FROM booking.activity WHERE entry_no % 10 <> 0",
)


@pytest.fixture(scope="session")
def bigint_restored(
    servers: Servers, pg_tools: PgTools, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The bigint schema built on the source server, dumped, and restored into the target."""
    with psycopg.connect(servers.source, autocommit=True) as conn:
        conn.execute("CREATE DATABASE booking")
    source = with_database(servers.source, "booking")
    script = (SCHEMAS / "bigint_schema.sql").read_text().replace("{newest}", NEWEST_SQL)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(script.encode())
    dump = tmp_path_factory.mktemp("booking") / f"{EXPORT_AT:%Y%m%dT%H%M%SZ}.sql.gz"
    pg_tools.dump_plain_gzip(source, dump)
    request = LocalRestoreRequest(dump, servers.target, BIGINT_RESTORED, create_missing_roles=True)
    restore_dump(request, pg_tools)
    return BIGINT_RESTORED


@pytest.fixture(params=["reference", "bigint"])
def schema(request: pytest.FixtureRequest, restored: object) -> Schema:
    if request.param == "reference":
        return Schema("reference", load_description(), RESTORED, "app_user", REFERENCE)
    request.getfixturevalue("bigint_restored")
    description = load_description(SCHEMAS / "bigint.toml")
    return Schema("bigint", description, BIGINT_RESTORED, "web_app", BIGINT)


@pytest.fixture
def copy_of(database_copy: Callable[..., str]) -> Callable[[str, str], str]:
    """A copy of a restored database on the target, broken by the given SQL."""
    return lambda template, breakage: database_copy(breakage, template)


def verify(
    conninfo: str, description: DataDescription, baseline: Baseline | None = None
) -> dict[str, CheckResult]:
    suite = CheckSuite(description, load_checks(), baseline)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        outcome = suite.run(conn, EXPORT_AT, CHECK_TIMEOUT)
    assert [r.name for r in outcome.results] == suite.names()
    return {result.name: result for result in outcome.results}


def named(results: dict[str, CheckResult], status: Status) -> set[str]:
    return {name for name, result in results.items() if result.status is status}


def details(results: dict[str, CheckResult]) -> dict[str, str]:
    return {name: r.detail for name, r in results.items() if not r.passed}


def tenant_checks(table: str, role: str) -> set[str]:
    return {
        f"isolation:{table}:{role}",
        f"no_tenant:{table}:{role}",
        f"cross_tenant_write:{table}:{role}",
    }


def healthy_baseline(schema: Schema, servers: Servers) -> Baseline:
    with psycopg.connect(with_database(servers.target, schema.database), autocommit=True) as conn:
        outcome = CheckSuite(schema.description).run(conn, EXPORT_AT, CHECK_TIMEOUT)
    return Baseline(recorded_at=EXPORT_AT, source="previous drill", row_counts=outcome.row_counts)


def test_a_healthy_restore_passes_every_generated_check(schema: Schema, servers: Servers) -> None:
    results = verify(with_database(servers.target, schema.database), schema.description)

    assert named(results, Status.passed) == set(results), details(results)
    scoped = [t.name for t in schema.description.tables if t.tenant_scoped]
    for table in scoped:
        assert tenant_checks(table, schema.role) <= set(results)
    assert {"tables_present", f"grants:{schema.role}", "freshness", "row_counts", "health"} <= set(
        results
    )
    assert "7.0 min" in results["freshness"].detail  # snapshot 02:00, newest writes 01:53


def test_row_level_security_disabled_fails_that_tables_checks(
    schema: Schema, copy_of: Callable[[str, str], str]
) -> None:
    table = schema.breakages.rls_table

    results = verify(copy_of(schema.database, schema.breakages.rls_off), schema.description)

    assert named(results, Status.failed) == {f"rls:{table}"} | tenant_checks(table, schema.role)
    assert named(results, Status.error) == set()
    assert results[f"rls:{table}"].detail == f"row-level security is disabled on {table}"
    assert "other tenant(s)" in results[f"isolation:{table}:{schema.role}"].detail
    assert "(rolled back)" in results[f"cross_tenant_write:{table}:{schema.role}"].detail


def test_a_policy_opened_to_everyone_fails_isolation(
    schema: Schema, copy_of: Callable[[str, str], str]
) -> None:
    table = schema.breakages.open_table

    results = verify(copy_of(schema.database, schema.breakages.open_policy), schema.description)

    assert named(results, Status.failed) == tenant_checks(table, schema.role), details(results)
    assert named(results, Status.error) == set()


def test_a_missing_table_fails_tables_present(
    schema: Schema, copy_of: Callable[[str, str], str]
) -> None:
    results = verify(copy_of(schema.database, schema.breakages.dropped_table), schema.description)

    assert named(results, Status.failed) == {"tables_present"}
    assert named(results, Status.error) == schema.breakages.dropped_errors
    assert results["tables_present"].detail.startswith("missing from schema ")


def test_the_app_role_granted_a_forbidden_table_fails_grants(
    schema: Schema, copy_of: Callable[[str, str], str]
) -> None:
    results = verify(copy_of(schema.database, schema.breakages.forbidden_grant), schema.description)

    assert named(results, Status.failed) == {f"grants:{schema.role}"}
    assert "SELECT on forbidden table" in results[f"grants:{schema.role}"].detail


def test_one_table_missing_its_recent_rows_fails_freshness(
    schema: Schema, copy_of: Callable[[str, str], str]
) -> None:
    results = verify(
        copy_of(schema.database, schema.breakages.stale_table_rows_gone), schema.description
    )

    assert named(results, Status.failed) == {"freshness"}, details(results)
    assert "newest write is" in results["freshness"].detail


def test_a_table_that_lost_most_rows_since_the_previous_drill_fails_row_counts(
    schema: Schema, servers: Servers, copy_of: Callable[[str, str], str]
) -> None:
    baseline = healthy_baseline(schema, servers)

    results = verify(
        copy_of(schema.database, schema.breakages.shrink), schema.description, baseline
    )

    assert named(results, Status.failed) == {"row_counts"}, details(results)
    table = schema.breakages.shrunk_table
    before = baseline.row_counts[table]
    assert f"{table}: {before:,} rows in the drill of 2026-03-01" in results["row_counts"].detail
    assert f"{before // 10:,} now (-90.0%" in results["row_counts"].detail


def test_a_wrong_column_in_the_description_is_an_error_not_a_violation(
    servers: Servers, restored: object, tmp_path: Path
) -> None:
    text = DESCRIPTION_PATH.read_text().replace(
        'name = "appointments"\ntenant_column = "tenant_id"',
        'name = "appointments"\ntenant_column = "tenant"',
    )
    (tmp_path / "data.toml").write_text(text)

    results = verify(
        with_database(servers.target, RESTORED), load_description(tmp_path / "data.toml")
    )

    assert named(results, Status.failed) == set()
    assert named(results, Status.error) == {
        "isolation:appointments:app_user",
        "cross_tenant_write:appointments:app_user",
        "read:scheduling",
    }
    assert "column 'tenant' not found in table appointments" in results["read:scheduling"].detail


def test_a_read_that_fails_in_sql_is_an_error_with_its_sqlstate(
    servers: Servers, restored: object, tmp_path: Path
) -> None:
    text = DESCRIPTION_PATH.read_text().replace(
        "c.tenant_id AS customer_tenant", "c.tenant AS customer_tenant"
    )
    (tmp_path / "data.toml").write_text(text)

    results = verify(
        with_database(servers.target, RESTORED), load_description(tmp_path / "data.toml")
    )

    assert named(results, Status.error) == {"read:scheduling"}
    assert results["read:scheduling"].sqlstate == "42703"
    assert (
        "could not run: 42703: column c.tenant does not exist" in results["read:scheduling"].detail
    )


def test_generated_checks_never_change_the_restored_data(
    copy_of: Callable[[str, str], str], restored: object
) -> None:
    # Without RLS the cross-tenant probe insert succeeds; it must still be rolled back.
    leaky = copy_of(RESTORED, REFERENCE.rls_off)
    with psycopg.connect(leaky) as conn:
        [(before,)] = conn.execute("SELECT count(*) FROM customers").fetchall()

    results = verify(leaky, load_description())

    assert not results["cross_tenant_write:customers:app_user"].passed
    with psycopg.connect(leaky) as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (before,)


def test_freshness_without_a_snapshot_time_is_an_error(servers: Servers, restored: object) -> None:
    suite = CheckSuite(load_description())
    with psycopg.connect(with_database(servers.target, RESTORED), autocommit=True) as conn:
        outcome = suite.run(conn, None, CHECK_TIMEOUT)

    [freshness] = [r for r in outcome.results if r.name == "freshness"]
    assert freshness.status is Status.error
    assert freshness.detail == "no snapshot time is known for this backup"


def test_the_plan_depends_only_on_the_description() -> None:
    names = CheckSuite(load_description()).names()

    assert len(names) == len(set(names)) == 22
    assert names[0] == "tables_present"
    assert names[-2:] == ["freshness", "row_counts"]
    assert datetime(2026, 3, 1, tzinfo=UTC) < EXPORT_AT
