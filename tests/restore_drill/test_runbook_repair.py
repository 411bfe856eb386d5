"""DR_RUNBOOK.md's PITR repair recipe, run as written on a real PostgreSQL: rows exported from the
clone go back into production whether they were deleted (inserted again) or overwritten (upserted),
where a plain `\\copy` would stop at the first primary-key conflict."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg

from ops.restore_drill.local_restore import LocalRestoreResult
from tests.restore_drill.support import POSTGRES_BIN

RUNBOOK = Path(__file__).resolve().parents[2] / "DR_RUNBOOK.md"
SNAPSHOT = "SELECT id, status, notes FROM appointments WHERE tenant_id = %s ORDER BY id"


def repair_sql() -> str:
    blocks = re.findall(r"```sql\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL)
    [block] = [b for b in blocks if "CREATE TEMP TABLE repair" in b]
    return "\n".join(line.strip() for line in block.splitlines()) + "\n"


def psql(conninfo: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(POSTGRES_BIN / "psql"), "--no-psqlrc", "-v", "ON_ERROR_STOP=1", *args, conninfo]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def test_the_repair_recipe_restores_deleted_and_overwritten_rows(
    restored: LocalRestoreResult, database_copy: Callable[[str], str], tmp_path: Path
) -> None:
    clone = restored.database_conninfo
    with psycopg.connect(clone) as conn:
        row = conn.execute("SELECT tenant_id FROM appointments ORDER BY id LIMIT 1").fetchone()
        assert row is not None
        tenant = row[0]
        expected = conn.execute(SNAPSHOT, (tenant,)).fetchall()
    production = database_copy(
        "DELETE FROM appointments WHERE id % 2 = 0 AND tenant_id = "
        "(SELECT tenant_id FROM appointments ORDER BY id LIMIT 1);"
        "UPDATE appointments SET status = 'cancelled', notes = 'bad migration' WHERE tenant_id = "
        "(SELECT tenant_id FROM appointments ORDER BY id LIMIT 1)"
    )
    export = (
        "\\copy (SELECT * FROM appointments WHERE tenant_id = "
        "(SELECT tenant_id FROM appointments ORDER BY id LIMIT 1)) TO 'appointments.csv' CSV"
    )
    assert psql(clone, ["-c", export], tmp_path).returncode == 0
    (tmp_path / "repair.sql").write_text(repair_sql())

    plain = psql(
        production, ["-1", "-c", "\\copy appointments FROM 'appointments.csv' CSV"], tmp_path
    )
    assert "duplicate key value violates unique constraint" in plain.stderr  # the old recipe
    repaired = psql(production, ["-1", "-f", "repair.sql"], tmp_path)

    assert repaired.returncode == 0, repaired.stderr
    with psycopg.connect(production) as conn:
        assert conn.execute(SNAPSHOT, (tenant,)).fetchall() == expected
