"""BACKUP_RESTORE_LOG.md: one Markdown table row per restore drill, appended by the drill itself."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

COLUMNS = (
    "Date",
    "Source",
    "Target",
    "Method",
    "Restore point",
    "RPO (min)",
    "RPO worst case (min)",
    "RPO basis",
    "RTO (min)",
    "Checks passed",
    "Result",
    "Operator",
)
HEADER = "| " + " | ".join(COLUMNS) + " |"
NEW_FILE_MODE = 0o644
SEPARATOR = "|" + "|".join(" --- " for _ in COLUMNS) + "|"
NEW_LOG = f"""# Backup restore log

Every restore drill appends one row (`make restore-drill`, see DR_RUNBOOK.md). RPO is how old the
restorable data is ("RPO basis" says against what); RTO runs from the start of the drill until every
check passed (see DR_RUNBOOK.md, "What RPO and RTO mean").

{HEADER}
{SEPARATOR}
"""


class RestoreLogError(ValueError):
    """The log file does not contain the restore table."""


def escape_cell(value: str) -> str:
    """A table cell: one line, with pipes escaped so they cannot split the row."""
    return " ".join(value.split()).replace("|", "\\|")


def format_row(cells: dict[str, str]) -> str:
    missing = [c for c in COLUMNS if c not in cells]
    if missing:
        raise RestoreLogError(f"row lacks columns {missing}")
    return "| " + " | ".join(escape_cell(cells[c]) for c in COLUMNS) + " |"


def split_row(line: str) -> list[str]:
    """Cells of a Markdown table row, honouring escaped pipes."""
    cells, current, escaped = [], [], False
    for char in line.strip().strip("|"):
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == "|":
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    cells.append("".join(current).strip())
    return [cell.replace("\\|", "|") for cell in cells]


def _table_end(lines: list[str]) -> int:
    """Index just after the last row of the restore table."""
    try:
        start = next(i for i, line in enumerate(lines) if split_row(line) == list(COLUMNS))
    except StopIteration:
        raise RestoreLogError(f"no table with header {HEADER!r}") from None
    end = start + 1
    while end < len(lines) and lines[end].lstrip().startswith("|"):
        end += 1
    return end


def read_rows(path: Path) -> list[dict[str, str]]:
    """The table's data rows as {column: value}."""
    lines = path.read_text(encoding="utf-8").splitlines()
    end = _table_end(lines)
    start = next(i for i, line in enumerate(lines) if split_row(line) == list(COLUMNS))
    return [dict(zip(COLUMNS, split_row(line), strict=False)) for line in lines[start + 2 : end]]


def append_row(path: Path, cells: dict[str, str]) -> None:
    """Add a row at the end of the table, creating the log when it does not exist yet.

    The file is rewritten through a temporary file and renamed, so an interrupted drill never
    leaves a half-written log.
    """
    existed = path.exists()
    text = path.read_text(encoding="utf-8") if existed else NEW_LOG
    mode = path.stat().st_mode & 0o777 if existed else NEW_FILE_MODE
    lines = text.splitlines()
    end = _table_end(lines)
    lines.insert(end, format_row(cells))
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(handle.name, mode)
    os.replace(handle.name, path)
