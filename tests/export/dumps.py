"""Object contents for the export tests: a plain-format dump shaped exactly like pg_dump 18's
(header, `\\restrict KEY`, SET lines, a table with COPY data, the completion line and the closing
`\\unrestrict KEY`, as tests/export/test_verification.py checks against a real pg_dump 18), and
the ways an object can fall short of one."""

from __future__ import annotations

import gzip

RESTRICT_KEY = "Hb3kTq9ZrW2mXc7LpN5sVd8yJf4gUe6aQo1iRt0wEz"


def plain_dump(
    database: str = "app", rows: int = 3, restrict_key: str | None = RESTRICT_KEY
) -> bytes:
    """A small but complete plain-format pg_dump script of one table."""
    restrict = f"\\restrict {restrict_key}\n\n" if restrict_key else ""
    unrestrict = f"\\unrestrict {restrict_key}\n\n" if restrict_key else ""
    data = "".join(f"{n}\tcustomer {n}\n" for n in range(1, rows + 1))
    return (
        "--\n-- PostgreSQL database dump\n--\n\n"
        f"{restrict}"
        "-- Dumped from database version 18.1\n-- Dumped by pg_dump version 18.1\n\n"
        "SET statement_timeout = 0;\nSET lock_timeout = 0;\n"
        "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n"
        "SELECT pg_catalog.set_config('search_path', '', false);\n\n"
        f"--\n-- Name: customers; Type: TABLE; Schema: public; Owner: {database}\n--\n\n"
        "CREATE TABLE public.customers (\n    id integer NOT NULL,\n    name text\n);\n\n\n"
        "--\n-- Data for Name: customers; Type: TABLE DATA; Schema: public; Owner: -\n--\n\n"
        f"COPY public.customers (id, name) FROM stdin;\n{data}\\.\n\n\n"
        "--\n-- PostgreSQL database dump complete\n--\n\n"
        f"{unrestrict}"
    ).encode()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def good_export(database: str = "app") -> bytes:
    """What Cloud SQL writes for a .sql.gz export: the plain dump, gzip-compressed."""
    return gzipped(plain_dump(database))


def corrupt_gzip(database: str = "app") -> bytes:
    """A gzip stream with damaged compressed data in its middle (bit rot, a bad copy)."""
    data = bytearray(gzipped(plain_dump(database, rows=200)))
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(0xFF ^ byte for byte in data[middle : middle + 16])
    return bytes(data)


def truncated_dump(database: str = "app") -> bytes:
    """Valid gzip of a dump cut short: pg_dump stopped before its completion line."""
    script = plain_dump(database, rows=50)
    return gzipped(script[: script.index(b"\\.\n")])


def truncated_gzip(database: str = "app") -> bytes:
    """A complete dump whose gzip stream was cut off (an interrupted upload)."""
    data = gzipped(plain_dump(database, rows=50))
    return data[: len(data) * 2 // 3]


def custom_format_gzipped() -> bytes:
    """A pg_dump custom-format archive (it starts with PGDMP) inside gzip: valid gzip, but not
    the plain SQL a Cloud SQL SQL export is (the archive's first bytes as pg_dump 18 writes them)."""
    return gzipped(b"PGDMP\x01\x10\x00\x04\x08\x01\x01\x00\x08\x00\x00\x00\x00\x07\x00" * 8)
