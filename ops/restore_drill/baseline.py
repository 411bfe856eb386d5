"""Row counts of the previous passed drill, per described database, in a JSON sidecar of the log.

`BACKUP_RESTORE_BASELINE.json` sits next to `BACKUP_RESTORE_LOG.md`. A drill compares its row
counts with the entry named like its data description, and replaces that entry only when it
passed, so a bad restore never becomes the next drill's baseline.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

BASELINE_FILE_NAME = "BACKUP_RESTORE_BASELINE.json"
FORMAT_VERSION = 1


class BaselineError(ValueError):
    """The baseline file exists but cannot be read."""


class Baseline(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    recorded_at: datetime
    source: str
    row_counts: dict[str, int]


class BaselineFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = Field(default=FORMAT_VERSION, ge=FORMAT_VERSION, le=FORMAT_VERSION)
    databases: dict[str, Baseline] = Field(default_factory=dict)


def baseline_path(log_file: Path) -> Path:
    return log_file.with_name(BASELINE_FILE_NAME)


def read_file(path: Path) -> BaselineFile:
    if not path.exists():
        return BaselineFile()
    try:
        return BaselineFile.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as error:
        raise BaselineError(f"cannot read the row-count baseline {path}: {error}") from error


def load_baseline(path: Path, database: str) -> Baseline | None:
    """The previous passed drill's counts for `database`, or None before the first one."""
    return read_file(path).databases.get(database)


def record_baseline(path: Path, database: str, baseline: Baseline) -> None:
    """Replace `database`'s entry (atomically: a temporary file renamed over the old one)."""
    contents = read_file(path)
    contents.databases[database] = baseline
    text = json.dumps(contents.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as handle:
        handle.write(text)
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)
