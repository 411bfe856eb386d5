"""BACKUP_RESTORE_LOG.md: the record on file, and rows appended without disturbing it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ops.restore_drill.cli import DEFAULT_LOG
from ops.restore_drill.restore_log import COLUMNS, RestoreLogError, append_row, read_rows

ROW = {
    "Date": "2026-03-14",
    "Source": "gs://backups/cloudsql/prod-pg/app/20260314T020000Z.sql.gz",
    "Target": "staging-pg/app_drill_202603140900",
    "Method": "export (instances.import)",
    "Restore point": "2026-03-14 02:00 UTC",
    "RPO (min)": "4.0",
    "RPO worst case (min)": "1444.0",
    "RPO basis": "export age at restore start",
    "RTO (min)": "38.5",
    "Checks passed": "7/7",
    "Result": "passed",
    "Operator": "alice",
}


def test_the_repo_log_carries_the_drill_on_record_from_the_design_document() -> None:
    [first, *_later] = read_rows(DEFAULT_LOG)

    assert first["Date"] == "2025-12-12"
    assert first["Restore point"] == "2025-12-12 02:00 UTC"
    assert (first["RPO (min)"], first["RTO (min)"]) == ("10", "42")
    assert first["RPO basis"].startswith("old: ")  # measured before RPO meant data age
    assert first["Checks passed"] == "smoke/perf suites passed"
    assert (first["Result"], first["Operator"]) == ("passed", "Eng")
    assert DEFAULT_LOG.read_text().startswith("# Backup restore log\n")


def test_a_row_is_appended_after_the_existing_ones(tmp_path: Path) -> None:
    log = Path(shutil.copy(DEFAULT_LOG, tmp_path / "log.md"))
    before = read_rows(log)

    append_row(log, ROW)

    assert read_rows(log) == [*before, ROW]


def test_text_after_the_table_stays_after_it(tmp_path: Path) -> None:
    log = tmp_path / "log.md"
    log.write_text(DEFAULT_LOG.read_text() + "\nNotes: drills run every quarter.\n")

    append_row(log, ROW)

    lines = log.read_text().splitlines()
    assert lines[-1] == "Notes: drills run every quarter."
    assert lines[-3].startswith("| 2026-03-14 |")


def test_pipes_and_newlines_cannot_break_the_table(tmp_path: Path) -> None:
    log = tmp_path / "log.md"
    awkward = {**ROW, "Checks passed": "6/7 (failed: a|b)", "Source": "line one\nline two"}

    append_row(log, awkward)

    [row] = read_rows(log)
    assert row["Checks passed"] == "6/7 (failed: a|b)"
    assert row["Source"] == "line one line two"
    assert list(row) == list(COLUMNS)


def test_a_missing_log_is_created_with_its_header(tmp_path: Path) -> None:
    log = tmp_path / "new.md"

    append_row(log, ROW)

    assert read_rows(log) == [ROW]
    assert log.read_text().startswith("# Backup restore log")


def test_a_file_without_the_table_is_not_silently_rewritten(tmp_path: Path) -> None:
    log = tmp_path / "other.md"
    log.write_text("# Something else\n")

    with pytest.raises(RestoreLogError, match="no table"):
        append_row(log, ROW)
    assert log.read_text() == "# Something else\n"
