"""The streaming check on its own: it must accept what pg_dump writes however the bytes arrive,
and refuse everything that is not one complete gzip-compressed plain pg_dump."""

from __future__ import annotations

import tracemalloc
import zlib

import pytest

from ops.export.cloudsql_export import DumpChecker, DumpInvalidError, VerifiedDump
from tests.export import dumps


def check(data: bytes, chunk: int = 1 << 20) -> VerifiedDump:
    checker = DumpChecker()
    for start in range(0, len(data), chunk):
        checker.feed(data[start : start + chunk])
    return checker.finish(0.5)


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_a_complete_dump_is_accepted_however_the_pipe_splits_it(chunk: int) -> None:
    compressed = dumps.good_export()

    verified = check(compressed, chunk)

    assert verified == VerifiedDump(len(compressed), len(dumps.plain_dump()), 0.5)


def test_a_dump_by_pg_dump_before_restrict_keys_is_accepted() -> None:
    """pg_dump releases before 17.6/16.10/... end right after the completion line."""
    plain = dumps.plain_dump(restrict_key=None)
    assert plain.endswith(b"-- PostgreSQL database dump complete\n--\n\n")

    assert check(dumps.gzipped(plain)).uncompressed_bytes == len(plain)


def test_several_gzip_members_in_a_row_are_one_stream() -> None:
    """Like `gzip -d`, concatenated members decompress to the concatenated data."""
    plain = dumps.plain_dump()
    cut = len(plain) // 3
    data = dumps.gzipped(plain[:cut]) + dumps.gzipped(plain[cut:])

    assert check(data, chunk=5).uncompressed_bytes == len(plain)


def test_a_highly_compressible_dump_never_expands_into_memory_at_once() -> None:
    """64 MiB of SQL from well under 1 MiB of gzip, fed as one chunk: decompressed in bounded
    steps, so the checker's memory stays far below the dump's size."""
    plain = dumps.plain_dump()
    header_end = plain.index(b"SET statement_timeout")
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [compressor.compress(plain[:header_end])]
    padding = b"-- padding\n" * (1 << 20)  # 11 MiB
    parts += [compressor.compress(padding) for _ in range(6)]
    parts += [compressor.compress(plain[header_end:]), compressor.flush()]
    data = b"".join(parts)
    assert len(data) < 1 << 20

    tracemalloc.start()
    try:
        verified = check(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert verified.uncompressed_bytes == len(plain) + 6 * len(padding)
    assert peak < 16 << 20, f"peak {peak} bytes for a {verified.uncompressed_bytes}-byte dump"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (dumps.corrupt_gzip(), "not valid gzip data"),
        (dumps.truncated_gzip(), "the object is truncated"),
        (dumps.truncated_dump(), "does not end with pg_dump's completion line"),
        (b"", "the object is empty (0 bytes)"),
        (b"PGDMP\x01\x10\x00", "custom-format archive (PGDMP)"),
        (dumps.custom_format_gzipped(), "custom-format archive (PGDMP)"),
        (dumps.plain_dump(), "uncompressed SQL, not gzip"),
        (b"PK\x03\x04zip", "not gzip data"),
        (dumps.good_export() + b"trailing junk", "data after the end of its gzip stream"),
        (dumps.gzipped(b"SELECT 1;\n"), "does not start with pg_dump's plain-format header"),
        (
            dumps.gzipped(dumps.plain_dump().replace(b"\\unrestrict Hb3k", b"\\unrestrict Xb3k")),
            "does not match the \\restrict key",
        ),
        (
            dumps.gzipped(
                dumps.plain_dump(restrict_key="A1") + dumps.plain_dump(restrict_key="B2")
            ),
            "does not match",
        ),
    ],
    ids=[
        "corrupt gzip",
        "truncated gzip",
        "truncated dump",
        "empty",
        "custom format",
        "custom format in gzip",
        "uncompressed",
        "zip",
        "trailing junk",
        "not a pg_dump script",
        "restrict key mismatch",
        "two scripts glued together",
    ],
)
def test_anything_else_is_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(
        DumpInvalidError,
    ) as refused:
        check(data, chunk=4096)

    assert reason in str(refused.value)
