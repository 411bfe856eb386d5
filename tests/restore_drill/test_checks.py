"""Hand-written SQL checks (the extras next to the generated ones): format, passed/failed/error."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from ops.restore_drill.checks import (
    CHECKS_DIR,
    CheckDefinitionError,
    CheckResult,
    Status,
    load_checks,
    parse_check,
    run_checks,
)
from ops.restore_drill.local_restore import LocalRestoreResult

CHECK_TIMEOUT = 30.0


def run_checks_in(conninfo: str, directory: Path) -> dict[str, CheckResult]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        results = run_checks(conn, load_checks(directory), CHECK_TIMEOUT)
    return {result.name: result for result in results}


def test_the_shipped_extra_checks_pass_on_a_good_restore(restored: LocalRestoreResult) -> None:
    results = run_checks_in(restored.database_conninfo, CHECKS_DIR)

    assert {name: r.status for name, r in results.items()} == {"health": Status.passed}


def write_check(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.sql").write_text(f"-- check: {name}\n{text}")


def test_extra_checks_tell_a_violation_from_a_check_that_could_not_run(
    tmp_path: Path, restored: LocalRestoreResult
) -> None:
    write_check(tmp_path, "wrong_rows", "-- expect: [[0]]\nSELECT 1;\n")
    write_check(tmp_path, "not_refused", "-- expect-error: 42501\nSELECT 1;\n")
    write_check(
        tmp_path,
        "refused",
        "-- expect-error: 42501\nSET LOCAL ROLE app_user;\nSELECT count(*) FROM security_events;\n",
    )
    write_check(
        tmp_path, "missing_table", "-- expect: [[0]]\nSELECT count(*)::int FROM no_such_table;\n"
    )
    write_check(tmp_path, "other_error", "-- expect-error: 42501\nSELECT 1 / 0;\n")

    results = run_checks_in(restored.database_conninfo, tmp_path)

    assert {name: r.status for name, r in results.items()} == {
        "wrong_rows": Status.failed,
        "not_refused": Status.failed,
        "refused": Status.passed,
        "missing_table": Status.error,
        "other_error": Status.error,
    }
    assert results["wrong_rows"].detail == "expected [[0]], got [[1]]"
    assert results["missing_table"].sqlstate == "42P01"
    assert results["missing_table"].detail.startswith(
        'expected rows [[0]]: could not run: 42P01: relation "no_such_table" does not exist'
    )
    assert results["other_error"].sqlstate == "22012"


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

    assert result.status is Status.error  # could not run: not a violation
    assert result.sqlstate == "57014"  # query_canceled


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


def test_extras_are_optional_but_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    assert load_checks(tmp_path) == []
    with pytest.raises(CheckDefinitionError, match="does not exist"):
        load_checks(tmp_path / "nope")
