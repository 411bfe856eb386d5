"""The shipped SQL checks pass on a good restore and catch the broken restores a drill exists for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from ops.restore_drill.checks import (
    CheckDefinitionError,
    CheckResult,
    load_checks,
    parse_check,
    run_checks,
)
from ops.restore_drill.local_restore import LocalRestoreResult

CHECK_TIMEOUT = 30.0


def run_shipped_checks(conninfo: str) -> dict[str, CheckResult]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        results = run_checks(conn, load_checks(), CHECK_TIMEOUT)
    return {result.check.name: result for result in results}


def failed(results: dict[str, CheckResult]) -> set[str]:
    return {name for name, result in results.items() if not result.passed}


def test_every_shipped_check_passes_on_a_good_restore(restored: LocalRestoreResult) -> None:
    results = run_shipped_checks(restored.database_conninfo)

    assert failed(results) == set(), {n: r.detail for n, r in results.items()}
    assert set(results) == {
        "health",
        "required_tables",
        "auth_gate_no_tenant",
        "auth_gate_security_events",
        "auth_gate_cross_tenant_write",
        "tenant_isolation",
        "scheduling_reads",
    }


def test_row_level_security_switched_off_leaks_tenants_and_is_caught(
    database_copy: Callable[[str], str],
) -> None:
    leaky = database_copy("ALTER TABLE customers DISABLE ROW LEVEL SECURITY")

    results = run_shipped_checks(leaky)

    assert failed(results) == {
        "auth_gate_no_tenant",
        "auth_gate_cross_tenant_write",
        "tenant_isolation",
    }
    assert "expected [[0, true, 1]], got [[" in results["tenant_isolation"].detail


def test_a_policy_replaced_by_an_allow_all_one_is_caught(
    database_copy: Callable[[str], str],
) -> None:
    leaky = database_copy(
        "DROP POLICY tenant_isolation ON audit_events;"
        "CREATE POLICY tenant_isolation ON audit_events TO app_user USING (true)"
    )

    assert failed(run_shipped_checks(leaky)) == {"auth_gate_no_tenant", "tenant_isolation"}


def test_a_dropped_policy_hides_the_tenants_own_appointments_and_is_caught(
    database_copy: Callable[[str], str],
) -> None:
    # RLS stays on without a policy, so PostgreSQL denies every row: the application breaks.
    broken = database_copy("DROP POLICY tenant_isolation ON appointments")

    assert failed(run_shipped_checks(broken)) == {"scheduling_reads"}


def test_a_missing_table_is_named(database_copy: Callable[[str], str]) -> None:
    broken = database_copy("DROP TABLE security_events")

    results = run_shipped_checks(broken)

    assert failed(results) == {"required_tables", "auth_gate_security_events"}
    assert results["required_tables"].detail == 'expected [[""]], got [["security_events"]]'
    assert "42P01" in results["auth_gate_security_events"].detail


def test_checks_never_change_the_restored_data(database_copy: Callable[[str], str]) -> None:
    # Without RLS the cross-tenant probe insert succeeds; the drill must still roll it back.
    leaky = database_copy("ALTER TABLE customers DISABLE ROW LEVEL SECURITY")
    count = "SELECT count(*) FROM customers WHERE full_name = 'Restore drill probe'"

    run_shipped_checks(leaky)

    with psycopg.connect(leaky) as conn:
        assert conn.execute(count).fetchone() == (0,)


def test_a_team_check_with_percent_signs_and_its_own_expectation_runs(
    tmp_path: Path, restored: LocalRestoreResult
) -> None:
    (tmp_path / "10_emails.sql").write_text(
        "-- check: customer_emails\n"
        "-- description: Every customer has an email address.\n"
        "-- expect: [[0]]\n"
        "SELECT count(*)::int FROM customers WHERE email NOT LIKE '%@%';\n"
    )
    with psycopg.connect(restored.database_conninfo, autocommit=True) as conn:
        [result] = run_checks(conn, load_checks(tmp_path), CHECK_TIMEOUT)

    assert result.passed, result.detail


def test_a_check_that_outlives_its_timeout_fails(
    tmp_path: Path, restored: LocalRestoreResult
) -> None:
    (tmp_path / "slow.sql").write_text("-- expect: [[1]]\nSELECT pg_sleep(5); SELECT 1;\n")
    with psycopg.connect(restored.database_conninfo, autocommit=True) as conn:
        [result] = run_checks(conn, load_checks(tmp_path), timeout_seconds=0.05)

    assert not result.passed
    assert "57014" in result.detail  # query_canceled


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("-- check: x\nSELECT 1;", "exactly one of"),
        ("-- expect: [[1]]\n-- expect-error: 42501\nSELECT 1;", "exactly one of"),
        ("-- expect: [1\nSELECT 1;", "not JSON"),
        ("-- expect: [1]\nSELECT 1;", "list of rows"),
        ("-- expect-error: permission denied\nSELECT 1;", "SQLSTATE"),
        ("-- expected: [[1]]\nSELECT 1;", "unknown header keys"),
    ],
)
def test_malformed_check_headers_are_rejected(tmp_path: Path, header: str, problem: str) -> None:
    path = tmp_path / "bad.sql"
    path.write_text(header)

    with pytest.raises(CheckDefinitionError, match=problem):
        parse_check(path)


def test_an_empty_checks_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CheckDefinitionError, match=r"no \*\.sql checks"):
        load_checks(tmp_path)
