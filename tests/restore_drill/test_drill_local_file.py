"""`python -m ops.restore_drill --method local-file`, end to end against a real PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from ops.restore_drill.cli import DEFAULT_LOG, app
from ops.restore_drill.restore_log import read_rows
from tests.restore_drill.conftest import Servers
from tests.restore_drill.support import EXPORT_AT, POSTGRES_BIN

runner = CliRunner()


@pytest.fixture
def log_copy(tmp_path: Path) -> Path:
    """A copy of the repo's log: tests never write to the real one."""
    return Path(shutil.copy(DEFAULT_LOG, tmp_path / "BACKUP_RESTORE_LOG.md"))


def drill(dump: Path, servers: Servers, log: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        [
            "--method", "local-file",
            "--dump", str(dump),
            "--target-dsn", servers.target,
            "--pg-bin-dir", str(POSTGRES_BIN),
            "--restore-database", "drill_under_test",
            "--log-file", str(log),
            "--operator", "drill-bot",
            *extra,
        ],
    )  # fmt: skip
    return result.exit_code, result.output


def databases(server: str) -> set[str]:
    with psycopg.connect(server) as conn:
        return {name for (name,) in conn.execute("SELECT datname FROM pg_database")}


def test_a_good_export_passes_and_is_logged_with_its_rpo(
    export_dump: Path, servers: Servers, log_copy: Path, restored: object
) -> None:
    exit_code, output = drill(export_dump, servers, log_copy, "--create-missing-roles")

    assert exit_code == 0, output
    row = read_rows(log_copy)[-1]
    assert row["Result"] == "passed"
    assert row["Method"] == "local-file (psql replay)"
    assert row["Source"] == export_dump.name
    assert row["Target"] == "unix-socket/drill_under_test"
    assert row["Restore point"] == "2026-03-01 02:00 UTC"
    # RPO: the export's age when the restore started (it is stamped 2026-03-01 02:00 UTC). The log
    # rounds to 0.1 min, which may round up past the age measured a few seconds later.
    age = (datetime.now(UTC) - EXPORT_AT).total_seconds() / 60
    assert age - 5 <= float(row["RPO (min)"]) <= age + 0.05
    assert row["RPO basis"] == "export age at restore start"
    minutes, ended_by = row["RTO (min)"].split(" ", 1)
    assert float(minutes) >= 0
    assert ended_by == "(checks passed)"
    assert row["Checks passed"] == "23/23"
    assert row["Operator"] == "drill-bot"
    assert "PASSED" in output
    assert "drill_under_test" not in databases(servers.target)  # cleaned up


def test_a_parallel_exports_folder_is_restored_with_pg_restore_and_passes(
    directory_dump: Path, servers: Servers, log_copy: Path, restored: object
) -> None:
    exit_code, output = drill(directory_dump, servers, log_copy, "--restore-jobs", "2")

    assert exit_code == 0, output
    row = read_rows(log_copy)[-1]
    assert (row["Result"], row["Method"]) == ("passed", "local-file (pg_restore --jobs 2)")
    assert (row["Source"], row["Restore point"]) == (directory_dump.name, "2026-03-01 02:00 UTC")
    assert row["Checks passed"] == "23/23"
    assert "drill_under_test" not in databases(servers.target)


def test_zero_restore_jobs_is_an_invalid_option(
    directory_dump: Path, servers: Servers, log_copy: Path
) -> None:
    exit_code, output = drill(directory_dump, servers, log_copy, "--restore-jobs", "0")

    assert exit_code == 2
    assert "0: allowed: 1 or more" in output


def test_an_export_that_lost_row_level_security_fails_the_drill(
    export_of: Callable[[str], Path], servers: Servers, log_copy: Path
) -> None:
    broken = export_of("ALTER TABLE customers DISABLE ROW LEVEL SECURITY")

    exit_code, output = drill(broken, servers, log_copy, "--create-missing-roles")

    assert exit_code == 1, output
    row = read_rows(log_copy)[-1]
    assert row["Result"] == "failed"
    assert row["Checks passed"].startswith("19/23 (failed: rls:customers, ")
    assert "isolation:customers:app_user" in row["Checks passed"]
    assert row["RTO (min)"] == "n/a"
    assert row["RPO basis"] == "export age at restore start"
    assert "drill_under_test" not in databases(servers.target)


def test_an_export_missing_a_table_fails_the_drill(
    export_of: Callable[[str], Path], servers: Servers, log_copy: Path
) -> None:
    broken = export_of("DROP TABLE security_events")

    exit_code, output = drill(broken, servers, log_copy, "--create-missing-roles")

    assert exit_code == 1, output
    row = read_rows(log_copy)[-1]
    assert row["Result"] == "failed"
    assert row["Checks passed"] == "21/23 (failed: tables_present; error: rls:security_events)"


def test_a_restore_that_cannot_replay_is_logged_as_failed(
    write_small_dump: Callable[[str, str], Path], servers: Servers, log_copy: Path
) -> None:
    dump = write_small_dump(
        "20260301T020000Z.sql.gz",
        "-- Dumped from database version 18.6\nCREATE TABLE t (id int);\nSELECT * FROM nowhere;\n",
    )

    exit_code, _output = drill(dump, servers, log_copy)

    assert exit_code == 1
    row = read_rows(log_copy)[-1]
    assert row["Result"] == "failed"
    assert row["Checks passed"].startswith("0/23 (not run: psql exited with 3")
    assert "drill_under_test" not in databases(servers.target)


def test_keep_restored_leaves_the_database_for_inspection(
    export_dump: Path, servers: Servers, log_copy: Path, restored: object
) -> None:
    exit_code, output = drill(export_dump, servers, log_copy, "--keep-restored")

    try:
        assert exit_code == 0, output
        assert "drill_under_test" in databases(servers.target)
    finally:
        with psycopg.connect(servers.target, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS drill_under_test WITH (FORCE)")


def test_missing_options_are_a_usage_error_and_log_nothing(
    export_dump: Path, log_copy: Path
) -> None:
    before = log_copy.read_text()

    result = runner.invoke(app, ["--method", "local-file", "--dump", str(export_dump)])

    assert result.exit_code == 2
    assert "--target-dsn" in result.output
    assert log_copy.read_text() == before


def test_a_file_name_without_a_timestamp_needs_an_explicit_restore_point(
    export_dump: Path, servers: Servers, log_copy: Path, tmp_path: Path
) -> None:
    unnamed = Path(shutil.copy(export_dump, tmp_path / "download.sql.gz"))

    exit_code, output = drill(unnamed, servers, log_copy)

    assert exit_code == 2
    assert "--restore-point" in output


def test_an_existing_database_is_never_restored_into_or_dropped(
    export_dump: Path, servers: Servers, log_copy: Path
) -> None:
    with psycopg.connect(servers.target, autocommit=True) as conn:
        conn.execute("CREATE DATABASE drill_under_test")
    try:
        exit_code, _output = drill(export_dump, servers, log_copy, "--create-missing-roles")

        assert exit_code == 1
        assert "already exists" in read_rows(log_copy)[-1]["Checks passed"]
        assert "drill_under_test" in databases(servers.target)
    finally:
        with psycopg.connect(servers.target, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS drill_under_test WITH (FORCE)")


def test_a_log_file_without_the_table_fails_loudly(
    export_dump: Path, servers: Servers, tmp_path: Path, restored: object
) -> None:
    not_a_log = tmp_path / "notes.md"
    not_a_log.write_text("# Notes\n")

    exit_code, output = drill(export_dump, servers, not_a_log)

    assert exit_code == 1
    assert "could not record the drill" in output
    assert not_a_log.read_text() == "# Notes\n"
