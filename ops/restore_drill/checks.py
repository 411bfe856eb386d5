"""SQL checks kept as files, each declaring its expected result in a header comment.

A check file looks like:

    -- check: tenant_isolation
    -- description: A query scoped to one tenant sees no other tenant's rows.
    -- expect: [[0, true]]
    SELECT ...;

`expect` is the exact result of the file's last row-returning statement, as JSON rows.
`expect-error` instead names the SQLSTATE the file must fail with (e.g. 42501 when a role
must be refused). Each check runs in its own transaction that is always rolled back, so checks
can SET LOCAL ROLE, set app.tenant_id, or even attempt writes without changing restored data.

Every check, hand-written or generated from the data description, ends in one of three states:
passed; failed (it ran and found a violation); error (it could not run: an SQL error other than
the one it expects, a missing column, a timeout), reported with the SQLSTATE and message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

CHECKS_DIR = Path(__file__).with_name("checks")
HEADER = re.compile(r"^--\s*(?P<key>[a-z-]+)\s*:\s*(?P<value>.*?)\s*$")
KNOWN_KEYS = {"check", "description", "expect", "expect-error"}
SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")


class CheckDefinitionError(ValueError):
    """A check file's header is missing or malformed."""


@dataclass(frozen=True)
class SqlCheck:
    name: str
    description: str
    path: Path
    sql: str
    expected_rows: list[list[Any]] | None
    expected_sqlstate: str | None


class Status(StrEnum):
    passed = "passed"
    failed = "failed"  # the check ran and found a violation
    error = "error"  # the check could not run; detail carries SQLSTATE and message


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    sqlstate: str | None = None

    @property
    def passed(self) -> bool:
        return self.status is Status.passed


def error_message(error: psycopg.Error) -> str:
    """The first line of a server error (the primary message), or the exception type."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def error_result(name: str, error: psycopg.Error, context: str = "") -> CheckResult:
    """A check that could not run: never counted as a violation."""
    prefix = f"{context}: " if context else ""
    return CheckResult(
        name,
        Status.error,
        f"{prefix}could not run: {error.sqlstate or 'no SQLSTATE'}: {error_message(error)}",
        error.sqlstate,
    )


def read_header(text: str) -> dict[str, str]:
    """`-- key: value` lines at the top of a file, up to the first line that is not one."""
    header: dict[str, str] = {}
    for line in text.splitlines():
        match = HEADER.match(line)
        if match is None:
            break
        header[match.group("key")] = match.group("value")
    return header


def parse_check(path: Path) -> SqlCheck:
    text = path.read_text(encoding="utf-8")
    header = read_header(text)
    unknown = set(header) - KNOWN_KEYS
    if unknown:
        raise CheckDefinitionError(f"{path.name}: unknown header keys {sorted(unknown)}")
    if ("expect" in header) == ("expect-error" in header):
        raise CheckDefinitionError(
            f"{path.name}: declare exactly one of `expect` or `expect-error`"
        )
    expected_rows = None
    if "expect" in header:
        try:
            expected_rows = json.loads(header["expect"])
        except json.JSONDecodeError as error:
            raise CheckDefinitionError(f"{path.name}: `expect` is not JSON: {error}") from error
        if not isinstance(expected_rows, list) or not all(
            isinstance(r, list) for r in expected_rows
        ):
            raise CheckDefinitionError(f"{path.name}: `expect` must be a JSON list of rows (lists)")
    sqlstate = header.get("expect-error")
    if sqlstate is not None and not SQLSTATE.match(sqlstate):
        raise CheckDefinitionError(f"{path.name}: `expect-error` must be a 5-character SQLSTATE")
    return SqlCheck(
        name=header.get("check") or path.stem,
        description=header.get("description", ""),
        path=path,
        sql=text,
        expected_rows=expected_rows,
        expected_sqlstate=sqlstate,
    )


def load_checks(directory: Path = CHECKS_DIR) -> list[SqlCheck]:
    """Every *.sql check in `directory`, in file-name order (prefix names with numbers).

    These are extras next to the checks generated from the data description, so an empty
    directory is fine; a directory that does not exist is a mistake.
    """
    if not directory.is_dir():
        raise CheckDefinitionError(f"checks directory {directory} does not exist")
    return [parse_check(path) for path in sorted(directory.glob("*.sql"))]


def to_json_value(value: Any) -> Any:
    """Result values as the JSON the header declares: numbers, booleans, strings, null."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def last_result(cursor: psycopg.Cursor[TupleRow]) -> list[list[Any]]:
    """Rows of the last statement in a multi-statement script that returned rows."""
    rows: list[list[Any]] = []
    while True:
        if cursor.description is not None:
            rows = [[to_json_value(v) for v in row] for row in cursor.fetchall()]
        if not cursor.nextset():
            return rows


def run_check(
    conn: psycopg.Connection[TupleRow], check: SqlCheck, timeout_seconds: float
) -> CheckResult:
    """Run one check in a transaction that is rolled back whatever happens."""
    try:
        with conn.transaction(force_rollback=True), conn.cursor() as cursor:
            cursor.execute(
                sql.SQL("SET LOCAL statement_timeout = {}").format(
                    sql.Literal(f"{int(timeout_seconds * 1000)}ms")
                )
            )
            # The script comes from a reviewed file in the repo; bytes skip psycopg's
            # placeholder parsing so a literal % in a check cannot break it.
            cursor.execute(check.sql.encode("utf-8"))
            rows = last_result(cursor)
    except psycopg.Error as error:
        return judge_error(check, error)
    return judge_rows(check, rows)


def judge_rows(check: SqlCheck, rows: list[list[Any]]) -> CheckResult:
    if check.expected_sqlstate is not None:
        return CheckResult(
            check.name,
            Status.failed,
            f"expected error {check.expected_sqlstate}, but it succeeded: {rows}",
        )
    if rows == check.expected_rows:
        return CheckResult(check.name, Status.passed, f"got {json.dumps(rows)}")
    return CheckResult(
        check.name,
        Status.failed,
        f"expected {json.dumps(check.expected_rows)}, got {json.dumps(rows)}",
    )


def judge_error(check: SqlCheck, error: psycopg.Error) -> CheckResult:
    """The expected refusal passes; any other error means the check could not run."""
    if check.expected_sqlstate is not None and error.sqlstate == check.expected_sqlstate:
        return CheckResult(
            check.name,
            Status.passed,
            f"refused as expected ({error.sqlstate}: {error_message(error)})",
            error.sqlstate,
        )
    expected = check.expected_sqlstate or f"rows {json.dumps(check.expected_rows)}"
    return error_result(check.name, error, f"expected {expected}")


def run_checks(
    conn: psycopg.Connection[TupleRow], checks: Sequence[SqlCheck], timeout_seconds: float
) -> list[CheckResult]:
    return [run_check(conn, check, timeout_seconds) for check in checks]
