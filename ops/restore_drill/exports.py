"""The logical exports in the backup bucket, and the timestamp each one's name carries.

The export job writes gs://BUCKET/cloudsql/INSTANCE/DATABASE/YYYYMMDDTHHMMSSZ.sql.gz; the
timestamp (UTC) is the export's restore point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from ops.restore_drill.cloudsql import BackupStore, StoredObject

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
STAMPED_DUMP = re.compile(r"(?P<stamp>\d{8}T\d{6}Z)\.sql(?:\.gz)?$")


class NoExportError(RuntimeError):
    """The bucket holds no export for the instance and database."""


@dataclass(frozen=True)
class ExportFile:
    stored: StoredObject
    exported_at: datetime


def export_prefix(instance: str, database: str) -> str:
    return f"cloudsql/{instance}/{database}/"


def stamp_of(file_name: str) -> datetime | None:
    """The UTC timestamp in an export's file name, or None when the name carries none."""
    match = STAMPED_DUMP.fullmatch(PurePosixPath(file_name).name)
    if match is None:
        return None
    return datetime.strptime(match.group("stamp"), TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def latest_export(store: BackupStore, bucket: str, instance: str, database: str) -> ExportFile:
    """The newest single-file export (.sql.gz) for the database, by the timestamp in its name."""
    prefix = export_prefix(instance, database)
    candidates = []
    for stored in store.list_objects(bucket, prefix):
        exported_at = stamp_of(stored.name)
        # Only direct children named like the export job's files; anything else is not ours.
        if (
            exported_at is not None
            and "/" not in stored.name[len(prefix) :]
            and stored.name.endswith(".gz")
        ):
            candidates.append(ExportFile(stored, exported_at))
    if not candidates:
        raise NoExportError(f"no exports named {prefix}YYYYMMDDTHHMMSSZ.sql.gz in gs://{bucket}")
    return max(candidates, key=lambda candidate: candidate.exported_at)
