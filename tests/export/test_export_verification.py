"""An export is `succeeded` only when its object was read to the end and is a complete
gzip-compressed plain pg_dump. Each way an object can fall short is served by the fake gcloud
(`gcloud storage cat` streams the stored bytes) to the real script: the database fails with the
reason, the object stays where it is, and the next database is still exported."""

from __future__ import annotations

import calendar
import os
import signal
import time
from typing import TYPE_CHECKING

import pytest

from tests.export import dumps

if TYPE_CHECKING:
    from tests.export.conftest import FakeGcloud

BAD_EXPORTS = {
    "corrupt gzip": (dumps.corrupt_gzip(), "not valid gzip data"),
    "truncated dump (valid gzip, no completion line)": (
        dumps.truncated_dump(),
        "does not end with pg_dump's completion line",
    ),
    "truncated gzip stream": (dumps.truncated_gzip(), "the object is truncated"),
    "empty object": (b"", "the object is empty (0 bytes)"),
    "custom-format archive (PGDMP), not gzip": (
        b"PGDMP\x01\x10\x00\x04\x08\x01\x01\x00" * 4,
        "custom-format archive (PGDMP)",
    ),
    "custom-format archive inside gzip": (
        dumps.custom_format_gzipped(),
        "custom-format archive (PGDMP)",
    ),
    "uncompressed SQL in a .gz object": (dumps.plain_dump(), "uncompressed SQL, not gzip"),
    "a pg_dumpall cluster script": (
        dumps.gzipped(
            dumps.plain_dump().replace(b"database dump\n", b"database cluster dump\n", 1)
        ),
        "does not start with pg_dump's plain-format header",
    ),
}


@pytest.mark.parametrize(("content", "reason"), BAD_EXPORTS.values(), ids=BAD_EXPORTS.keys())
def test_an_export_that_is_not_a_complete_dump_fails_and_the_next_database_is_exported(
    gcloud: FakeGcloud, content: bytes, reason: str
) -> None:
    gcloud.export_writes("app", content)

    run = gcloud.run()

    assert run.returncode == 1
    app = run.record_for("app")
    assert app["status"] == "failed"
    assert app["severity"] == "ERROR"
    assert reason in app["error"]
    assert app["object"] in app["error"], "names the object that failed verification"
    assert app["bytes"] is None
    assert gcloud.object_bytes(app["object"]) == content, "the object is kept as it is"
    audit = run.record_for("audit")
    assert audit["status"] == "succeeded"
    assert audit["uncompressed_bytes"] == len(dumps.plain_dump())
    assert run.summary["failed"] == ["app"]
    assert run.summary["succeeded"] == ["audit"]


def test_an_object_that_cannot_be_read_is_exported_then_failed_never_succeeded(
    gcloud: FakeGcloud,
) -> None:
    """A 403 on the name check (object metadata) does not stop the export: Cloud SQL refuses to
    overwrite by itself. The unverifiable dump is then reported failed, with the reason."""
    gcloud.configure(caller_can_read_bucket=False)

    run = gcloud.run()

    assert run.returncode == 1
    for database in ("app", "audit"):
        record = run.record_for(database)
        assert record["status"] == "failed"
        assert record["attempts"] == 1, "the export was started despite the 403"
        assert len(gcloud.export_calls_for(database)) == 1
        assert record["operation"] in gcloud.state["operations"]
        assert "could not verify" in record["error"]
        assert "HTTPError 403" in record["error"]
        assert "storage.objects.get" in record["error"], "says which permission is missing"
        assert "before exporting: could not check whether" in record["error"]
        assert gcloud.object_bytes(record["object"]) == gcloud.default_dump, "the backup exists"
    assert run.summary["succeeded"] == []
    assert len(gcloud.calls("storage", "cat")) == 2, "verification was tried for each"


def test_when_the_name_cannot_be_checked_cloud_sql_still_never_overwrites(
    gcloud: FakeGcloud,
) -> None:
    """Exporting after a 403 on the name check is safe: Cloud SQL fails an export whose object
    exists, so the earlier export is untouched and the database fails with Google's message."""
    now = calendar.timegm(time.gmtime())
    taken = [
        f"cloudsql/main-pg/app/{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(second))}.sql.gz"
        for second in range(now - 5, now + 120)
    ]
    for generation, name in enumerate(taken, start=11):
        gcloud.put_object(name, b"earlier export", generation=generation)
    gcloud.configure(caller_can_read_bucket=False)

    run = gcloud.run(EXPORT_DATABASES="app")

    record = run.record_for("app")
    assert record["status"] == "failed"
    assert record["attempts"] == 1
    assert "already exists" in record["error"]
    assert record["operation"] in record["error"]
    assert gcloud.calls("storage", "cat") == [], "nothing to verify after a failed operation"
    for name in taken:
        assert gcloud.object_bytes(f"gs://{gcloud.bucket}/{name}") == b"earlier export"


def test_sigterm_while_verifying_logs_the_database_and_stops_the_read(gcloud: FakeGcloud) -> None:
    """Cloud Run's SIGTERM can arrive while a dump is being read back: the database is logged
    failed, the next one is logged not attempted, and no `gcloud storage cat` is left running."""
    gcloud.configure(read_stalls_after_bytes=100)
    process = gcloud.start(EXPORT_DATABASES="app,audit")
    deadline = time.monotonic() + 60
    while not gcloud.state["stalled_readers"]:
        assert time.monotonic() < deadline, "the read never started"
        time.sleep(0.02)
    (reader,) = gcloud.state["stalled_readers"]

    process.send_signal(signal.SIGTERM)
    run = gcloud.finish(process)

    assert run.returncode == 1
    app = run.record_for("app")
    assert app["status"] == "failed"
    assert "stopped by SIGTERM" in app["error"]
    assert run.record_for("audit")["error"] == "not attempted: the run was stopped by SIGTERM"
    with pytest.raises(ProcessLookupError):
        os.kill(reader, 0)
