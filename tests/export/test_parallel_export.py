"""EXPORT_FORMAT=parallel: the real script, against the fake gcloud, exports each database into a
folder of a real pg_dump 18 directory dump (what Cloud SQL's `--parallel` export writes), verifies
that its toc.dat and every file it lists are there and whole, and fails the database when one
thread's file is missing or cut short."""

from __future__ import annotations

import calendar
import gzip
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ops.export.cloudsql_export import DumpInvalidError, parse_toc, retain_until

if TYPE_CHECKING:
    from tests.export.conftest import FakeGcloud, ScriptRun

FOLDER = re.compile(r"gs://acme-prod-db-backups/cloudsql/main-pg/app/\d{8}T\d{6}Z")


def run_parallel(gcloud: FakeGcloud, **settings: str) -> ScriptRun:
    """The script with EXPORT_FORMAT=parallel for database app (settings override)."""
    return gcloud.run(
        env=gcloud.base_env(**{"EXPORT_FORMAT": "parallel", "EXPORT_DATABASES": "app", **settings})
    )


def copy_dump(directory_dump: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "dump-copy"
    shutil.copytree(directory_dump, copy)
    return copy


def table_data_file(dump: Path, table: str) -> Path:
    """The data file of `table`, found through the dump's own table of contents."""
    entries = parse_toc((dump / "toc.dat").read_bytes())
    (entry,) = [e for e in entries if e.desc == "TABLE DATA" and e.tag == table]
    assert entry.filename is not None
    return dump / f"{entry.filename}.gz"


def test_the_toc_of_a_real_pg_dump_18_directory_dump_names_every_file_it_wrote(
    directory_dump: Path,
) -> None:
    entries = parse_toc((directory_dump / "toc.dat").read_bytes())

    data_files = {f"{e.filename}.gz" for e in entries if e.filename and e.desc != "BLOBS"}
    blob_lists = [e.filename for e in entries if e.desc == "BLOBS"]
    assert {e.tag for e in entries if e.desc == "TABLE DATA"} == {
        "customers",
        "orders",
        "archived",
    }
    assert len(blob_lists) == 1, "the large object is listed in a blobs_N.toc"
    listed = (directory_dump / str(blob_lists[0])).read_text().split()
    written = {path.name for path in directory_dump.iterdir()}
    assert written == {"toc.dat", *data_files, str(blob_lists[0]), f"{listed[1]}.gz"}


def test_a_toc_cut_short_or_of_another_kind_is_refused(directory_dump: Path) -> None:
    toc = (directory_dump / "toc.dat").read_bytes()

    with pytest.raises(DumpInvalidError, match="cut short"):
        parse_toc(toc[: len(toc) // 2])
    with pytest.raises(DumpInvalidError, match="PGDMP"):
        parse_toc(b"--\n-- PostgreSQL database dump\n")


def test_a_parallel_export_writes_a_folder_and_every_file_is_verified_and_retained(
    gcloud: FakeGcloud, directory_dump: Path
) -> None:
    gcloud.export_writes_directory(directory_dump)

    run = run_parallel(gcloud, EXPORT_THREADS="4", EXPORT_RETENTION_MODE="Locked")

    assert run.returncode == 0, run.stderr
    record = run.record_for("app")
    assert record["status"] == "succeeded", record["error"]
    assert FOLDER.fullmatch(record["object"]), record["object"]
    assert record["format"] == "parallel"
    files = sorted(directory_dump.iterdir())
    assert record["files"] == len(files)
    assert record["bytes"] == sum(path.stat().st_size for path in files)
    (export_call,) = gcloud.calls("sql", "export", "sql")
    assert "--parallel" in export_call
    assert "--threads=4" in export_call
    assert record["object"] in export_call, "the export's URI is the folder itself"
    stored = gcloud.objects_under(record["object"])
    assert set(stored) == {path.name for path in files}
    retention = {
        (e["retention"]["mode"], e["retention"]["retainUntilTime"]) for e in stored.values()
    }
    assert retention == {("Locked", retain_until(record["object"], 30))}


def test_without_threads_cloud_sql_chooses_the_thread_count(
    gcloud: FakeGcloud, directory_dump: Path
) -> None:
    gcloud.export_writes_directory(directory_dump)

    run = run_parallel(gcloud)

    assert run.returncode == 0, run.stderr
    (export_call,) = gcloud.calls("sql", "export", "sql")
    assert "--parallel" in export_call
    assert not [arg for arg in export_call if arg.startswith("--threads")]


def test_files_compressed_twice_as_cloud_sql_writes_them_are_verified(
    gcloud: FakeGcloud, directory_dump: Path, tmp_path: Path
) -> None:
    """Cloud SQL's parallel export files are "compressed twice": a second gzip layer on each."""
    dump = copy_dump(directory_dump, tmp_path)
    for path in dump.iterdir():
        path.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    gcloud.export_writes_directory(dump)

    run = run_parallel(gcloud)

    assert run.returncode == 0, run.stderr
    assert run.record_for("app")["status"] == "succeeded"


def _drop_customers(dump: Path) -> None:
    table_data_file(dump, "customers").unlink()


def _truncate_customers(dump: Path) -> None:
    path = table_data_file(dump, "customers")
    path.write_bytes(path.read_bytes()[:-20])


def _cut_customers_copy_data(dump: Path) -> None:
    path = table_data_file(dump, "customers")
    rows = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(rows[: len(rows) // 2], mtime=0))


def _empty_customers(dump: Path) -> None:
    table_data_file(dump, "customers").write_bytes(b"")


def _drop_blob(dump: Path) -> None:
    (blob,) = dump.glob("blob_*.dat.gz")
    blob.unlink()


def _drop_toc(dump: Path) -> None:
    (dump / "toc.dat").unlink()


def _truncate_toc(dump: Path) -> None:
    toc = dump / "toc.dat"
    toc.write_bytes(toc.read_bytes()[:-100])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_drop_customers, r"\d+\.dat \(TABLE DATA public\.customers\) is missing"),
        (_truncate_customers, r"TABLE DATA public\.customers\): the gzip data ends early"),
        (_cut_customers_copy_data, r"does not end with COPY's end-of-data line"),
        (_empty_customers, r"TABLE DATA public\.customers\): it is empty"),
        (_drop_blob, r"large object of BLOBS .* is missing"),
        (_drop_toc, r"it has no toc\.dat"),
        (_truncate_toc, r"toc\.dat ends early"),
    ],
    ids=[
        "a thread's data file missing",
        "a data file's gzip cut short",
        "a table's rows cut short",
        "an empty data file",
        "a large object missing",
        "no table of contents",
        "table of contents cut short",
    ],
)
def test_one_missing_or_damaged_file_fails_the_database(
    gcloud: FakeGcloud,
    directory_dump: Path,
    tmp_path: Path,
    damage: Callable[[Path], None],
    reason: str,
) -> None:
    damaged = copy_dump(directory_dump, tmp_path)
    damage(damaged)
    gcloud.export_writes_directory(damaged, "app")

    run = run_parallel(gcloud)

    assert run.returncode == 1
    record = run.record_for("app")
    assert record["status"] == "failed"
    assert record["bytes"] is None
    assert re.search(reason, record["error"]), record["error"]


def test_a_thread_s_missing_file_fails_only_its_own_database(
    gcloud: FakeGcloud, directory_dump: Path, tmp_path: Path
) -> None:
    damaged = copy_dump(directory_dump, tmp_path)
    _drop_customers(damaged)
    gcloud.export_writes_directory(damaged, "app")
    gcloud.export_writes_directory(directory_dump, "audit")

    run = gcloud.run(EXPORT_FORMAT="parallel", EXPORT_DATABASES="app,audit")

    assert run.returncode == 1
    assert run.record_for("app")["status"] == "failed"
    assert run.record_for("audit")["status"] == "succeeded"
    assert run.summary["failed"] == ["app"]


def test_a_folder_that_already_holds_objects_is_never_exported_into(
    gcloud: FakeGcloud, directory_dump: Path
) -> None:
    gcloud.export_writes_directory(directory_dump)
    # The folder carries the second the export starts, so occupy every second it could pick.
    now = calendar.timegm(time.gmtime())
    for generation, second in enumerate(range(now - 5, now + 120), start=11):
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        gcloud.put_object(f"cloudsql/main-pg/app/{stamp}/toc.dat", b"earlier", generation)

    run = run_parallel(gcloud)

    assert run.returncode == 1
    record = run.record_for("app")
    assert record["status"] == "failed"
    assert "already holds 1 object(s)" in record["error"]
    assert "refusing to export into a folder that is not empty" in record["error"]
    assert gcloud.calls("sql", "export", "sql") == []


def test_a_folder_that_cannot_be_listed_is_reported_unverified(
    gcloud: FakeGcloud, directory_dump: Path
) -> None:
    gcloud.export_writes_directory(directory_dump)
    gcloud.configure(caller_can_list_bucket=False)

    run = run_parallel(gcloud)

    record = run.record_for("app")
    assert record["status"] == "failed"
    assert "could not verify" in record["error"]
    assert "storage.objects.list" in record["error"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"EXPORT_THREADS": "4"}, "EXPORT_THREADS (--threads) = '4' is invalid with EXPORT_FORMAT"),
        ({"EXPORT_FORMAT": "directory"}, "EXPORT_FORMAT (--format) = 'directory' is invalid"),
        (
            {"EXPORT_FORMAT": "parallel", "EXPORT_THREADS": "0"},
            "EXPORT_THREADS (--threads) = '0' is invalid; allowed: a whole number from 1 to 1024",
        ),
    ],
)
def test_format_settings_that_cannot_work_are_refused_before_exporting(
    gcloud: FakeGcloud, settings: dict[str, str], message: str
) -> None:
    run = gcloud.run(env=gcloud.base_env(**settings))

    assert run.returncode == 2
    assert message in run.stderr
    assert gcloud.calls("sql") == []
