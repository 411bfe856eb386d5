"""Finding the newest export in the bucket: a .sql.gz object or a parallel export's folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ops.restore_drill.cloudsql import StoredObject
from ops.restore_drill.exports import NoExportError, latest_export
from ops.restore_drill.fakes import FakeBackupStore

BUCKET = "example-backups"
PREFIX = "cloudsql/prod-pg/app/"
DAY = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def stored(name: str, size: int = 100, minutes_after: int = 0) -> StoredObject:
    return StoredObject(BUCKET, PREFIX + name, size, DAY + timedelta(minutes=minutes_after))


def test_a_folder_with_a_table_of_contents_is_the_newest_export() -> None:
    store = FakeBackupStore(
        [
            stored("20260228T020000Z.sql.gz"),
            stored("20260301T020000Z/toc.dat", 10, minutes_after=9),
            stored("20260301T020000Z/3001.dat.gz", 500, minutes_after=7),
        ]
    )

    export = latest_export(store, BUCKET, "prod-pg", "app")

    assert export.is_directory
    assert export.stored.uri == f"gs://{BUCKET}/{PREFIX}20260301T020000Z"
    assert (export.stored.size, export.stored.time_created) == (510, DAY + timedelta(minutes=9))
    assert export.exported_at == DAY
    assert export.skipped_incomplete == ()


def test_a_newer_folder_without_a_table_of_contents_is_skipped_and_named() -> None:
    store = FakeBackupStore(
        [
            stored("20260228T020000Z.sql.gz"),
            stored("20260301T020000Z/3001.dat.gz"),
            stored("20260227T020000Z/3001.dat.gz"),  # older: not worth a warning
        ]
    )

    export = latest_export(store, BUCKET, "prod-pg", "app")

    assert (export.stored.name, export.is_directory) == (PREFIX + "20260228T020000Z.sql.gz", False)
    assert export.skipped_incomplete == (f"gs://{BUCKET}/{PREFIX}20260301T020000Z",)


def test_without_a_usable_export_the_error_names_both_shapes_and_the_broken_folders() -> None:
    store = FakeBackupStore([stored("20260301T020000Z/3001.dat.gz"), stored("notes.txt")])

    with pytest.raises(NoExportError, match=r"\.sql\.gz or .*/toc\.dat .*without toc\.dat: gs://"):
        latest_export(store, BUCKET, "prod-pg", "app")
