"""The row-count baseline through the CLI: a passed drill records it, the next drill compares."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ops.restore_drill.baseline import BASELINE_FILE_NAME
from ops.restore_drill.cli import DEFAULT_LOG
from ops.restore_drill.restore_log import read_rows
from tests.restore_drill.conftest import Servers
from tests.restore_drill.test_drill_local_file import drill


@pytest.fixture
def log_copy(tmp_path: Path) -> Path:
    return Path(shutil.copy(DEFAULT_LOG, tmp_path / "BACKUP_RESTORE_LOG.md"))


def test_a_passed_drill_sets_the_baseline_and_a_shrunken_backup_then_fails(
    export_dump: Path,
    export_of: Callable[[str], Path],
    servers: Servers,
    log_copy: Path,
    restored: object,
) -> None:
    baseline = log_copy.with_name(BASELINE_FILE_NAME)

    exit_code, output = drill(export_dump, servers, log_copy, "--create-missing-roles")

    assert exit_code == 0, output
    recorded = json.loads(baseline.read_text())
    assert recorded["databases"]["app"]["row_counts"]["audit_events"] == 40_000
    assert recorded["databases"]["app"]["source"] == export_dump.name

    shrunk = export_of("DELETE FROM audit_events WHERE id % 10 <> 0")
    exit_code, output = drill(shrunk, servers, log_copy, "--create-missing-roles")

    assert exit_code == 1, output
    row = read_rows(log_copy)[-1]
    assert row["Checks passed"] == "22/23 (failed: row_counts)"
    assert "audit_events: 40,000 rows in the drill of" in output
    assert json.loads(baseline.read_text()) == recorded  # a failed drill never becomes the baseline


def test_an_unreadable_baseline_is_an_invalid_option(
    export_dump: Path, servers: Servers, log_copy: Path
) -> None:
    log_copy.with_name(BASELINE_FILE_NAME).write_text('{"databases": {"app": {"rows": 1}}}')

    exit_code, output = drill(export_dump, servers, log_copy)

    assert exit_code == 2
    assert "cannot read the row-count baseline" in output


def test_an_invalid_description_is_an_invalid_option(
    export_dump: Path, servers: Servers, log_copy: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "data.toml"
    bad.write_text('name = "app"\nrls_setting = "tenant"\napp_roles = ["a"]\n')

    exit_code, output = drill(export_dump, servers, log_copy, "--data-description", str(bad))

    assert exit_code == 2
    assert "is not a custom setting name" in output
    assert "tables: Field required" in output
