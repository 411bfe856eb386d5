"""The logical exports in the backup bucket, and the timestamp each one's name carries.

The export job writes one of two shapes per database, stamped with the export's start (UTC, the
restore point):

* gs://BUCKET/cloudsql/INSTANCE/DATABASE/YYYYMMDDTHHMMSSZ.sql.gz: a plain SQL dump (one stream);
* gs://BUCKET/cloudsql/INSTANCE/DATABASE/YYYYMMDDTHHMMSSZ/: a directory-format dump written by a
  parallel export (`toc.dat`, the table of contents pg_restore reads first, plus one file per
  table's data).

A folder without `toc.dat` is not a usable export (pg_restore cannot read it): it is skipped and
named, so an interrupted parallel export never passes for the newest backup silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from ops.restore_drill.cloudsql import BackupStore, StoredObject

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# A dump file's name, or a directory dump's folder name.
STAMPED_DUMP = re.compile(r"(?P<stamp>\d{8}T\d{6}Z)(?:\.sql(?:\.gz)?)?$")
STAMPED_FOLDER = re.compile(r"\d{8}T\d{6}Z")
# pg_dump's directory format always starts with this file (pg_dump docs, "-F d").
TABLE_OF_CONTENTS = "toc.dat"


class NoExportError(RuntimeError):
    """The bucket holds no export for the instance and database."""


@dataclass(frozen=True)
class ExportFile:
    """One export: a `.sql.gz` object, or a directory dump (`stored` then describes the folder:
    its URI without a trailing slash, the files' total size and the newest file's creation)."""

    stored: StoredObject
    exported_at: datetime
    is_directory: bool = False
    # Newer folders passed over because they lack toc.dat (an unfinished parallel export).
    skipped_incomplete: tuple[str, ...] = ()


def export_prefix(instance: str, database: str) -> str:
    return f"cloudsql/{instance}/{database}/"


def stamp_of(file_name: str) -> datetime | None:
    """The UTC timestamp in an export's file name, or None when the name carries none."""
    match = STAMPED_DUMP.fullmatch(PurePosixPath(file_name).name)
    if match is None:
        return None
    return parse_stamp(match.group("stamp"))


def parse_stamp(stamp: str) -> datetime:
    return datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def folder_export(bucket: str, folder: str, files: list[StoredObject]) -> StoredObject:
    """The folder of a directory dump, as one listing entry."""
    return StoredObject(
        bucket=bucket,
        name=folder,
        size=sum(f.size for f in files),
        time_created=max(f.time_created for f in files),
    )


def candidates(
    bucket: str, prefix: str, objects: Iterable[StoredObject]
) -> tuple[list[ExportFile], list[ExportFile]]:
    """(complete exports, folders without toc.dat) among the objects under `prefix`."""
    singles: list[ExportFile] = []
    folders: dict[str, list[StoredObject]] = {}
    for stored in objects:
        relative = stored.name[len(prefix) :]
        head, slash, rest = relative.partition("/")
        if not slash:
            exported_at = stamp_of(relative)
            # Only files named like the export job's; anything else is not ours.
            if exported_at is not None and relative.endswith(".gz"):
                singles.append(ExportFile(stored, exported_at))
        elif STAMPED_FOLDER.fullmatch(head) and rest:
            folders.setdefault(head, []).append(stored)
    complete: list[ExportFile] = []
    incomplete: list[ExportFile] = []
    for stamp, files in folders.items():
        export = ExportFile(
            folder_export(bucket, prefix + stamp, files), parse_stamp(stamp), is_directory=True
        )
        has_toc = any(f.name == f"{prefix}{stamp}/{TABLE_OF_CONTENTS}" for f in files)
        (complete if has_toc else incomplete).append(export)
    return singles + complete, incomplete


def latest_export(store: BackupStore, bucket: str, instance: str, database: str) -> ExportFile:
    """The newest export for the database (file or folder), by the timestamp in its name."""
    prefix = export_prefix(instance, database)
    usable, incomplete = candidates(bucket, prefix, store.list_objects(bucket, prefix))
    if not usable:
        raise NoExportError(
            f"no exports named {prefix}YYYYMMDDTHHMMSSZ.sql.gz or {prefix}YYYYMMDDTHHMMSSZ/"
            f"{TABLE_OF_CONTENTS} in gs://{bucket}"
            + (f" (folders without {TABLE_OF_CONTENTS}: {_uris(incomplete)})" if incomplete else "")
        )
    newest = max(usable, key=lambda candidate: candidate.exported_at)
    skipped = tuple(
        e.stored.uri
        for e in sorted(incomplete, key=lambda e: e.exported_at)
        if e.exported_at > newest.exported_at
    )
    return ExportFile(newest.stored, newest.exported_at, newest.is_directory, skipped)


def _uris(exports: list[ExportFile]) -> str:
    return ", ".join(sorted(e.stored.uri for e in exports))
