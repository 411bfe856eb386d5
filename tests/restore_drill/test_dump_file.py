"""What the drill learns from a dump: versions and \\restrict up front, roles as it streams by."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ops.restore_drill.dump_file import (
    NotADumpError,
    RoleScanner,
    complete_lines,
    inspect_dump,
    psql_understands_restrict,
    read_header,
    roles_in_statement,
)

# Table data that looks like SQL (and like an end marker) around statements naming roles.
TRICKY_SCRIPT = (
    b"-- Dumped from database version 18.1\n"
    b"ALTER TABLE public.notes OWNER TO app_owner;\n"
    b"COPY public.notes (body) FROM stdin;\n"
    b"GRANT ALL ON TABLE x TO intruder;\n"
    b"\\\\.\n"
    b"x\\.\n"
    b"\\.\n"
    b"COPY public.empty (body) FROM stdin;\n"
    b"\\.\n"
    b"GRANT SELECT ON TABLE public.notes TO app_user;\n"
    b"COPY public.more (body) FROM stdin;\n"
    b"REVOKE ALL ON TABLE y FROM mole;\n"
    b"\\.\n"
    b"CREATE POLICY p ON public.notes TO reporting USING (true);"
)


def test_an_export_needs_postgresql_18_psql_with_restrict_and_three_roles(
    export_dump: Path,
) -> None:
    info = inspect_dump(export_dump)

    assert info.minimum_server_major == 18
    assert info.uses_restrict
    assert info.roles == {"app_owner", "app_user", "cloudsqlsuperuser"}
    assert info.size_bytes == export_dump.stat().st_size


@pytest.mark.parametrize(
    ("line", "roles"),
    [
        ("ALTER TABLE public.customers OWNER TO app_owner;", ["app_owner"]),
        ('ALTER SCHEMA billing OWNER TO "Billing Team";', ["Billing Team"]),
        ("GRANT SELECT ON TABLE public.t TO app_user, reporting;", ["app_user", "reporting"]),
        (
            'GRANT ALL ON SCHEMA public TO cloudsqlsuperuser WITH GRANT OPTION GRANTED BY "Admin";',
            ["cloudsqlsuperuser", "Admin"],
        ),
        ("GRANT USAGE ON SCHEMA public TO PUBLIC;", []),
        ("REVOKE ALL ON SCHEMA public FROM PUBLIC;", []),
        ("REVOKE SELECT ON TABLE public.t FROM auditor CASCADE;", ["auditor"]),
        (
            "CREATE POLICY p ON public.t TO app_user USING ((tenant_id = 1));",
            ["app_user"],
        ),
        (
            "ALTER DEFAULT PRIVILEGES FOR ROLE migrator IN SCHEMA public GRANT SELECT ON TABLES TO app_user;",
            ["migrator", "app_user"],
        ),
        ("SET SESSION AUTHORIZATION 'legacy_owner';", ["legacy_owner"]),
        ('GRANT SELECT ON TABLE public.t TO "we""ird";', ['we"ird']),
        ("CREATE TABLE public.grants (note text);", []),
    ],
)
def test_roles_named_by_each_kind_of_statement(line: str, roles: list[str]) -> None:
    assert sorted(roles_in_statement(line)) == sorted(roles)


def test_table_data_that_looks_like_sql_names_no_role(
    write_small_dump: Callable[[str, str], Path],
) -> None:
    dump = write_small_dump(
        "20260301T020000Z.sql",
        "COPY public.notes (body) FROM stdin;\n"
        "GRANT ALL ON TABLE x TO intruder;\n"
        "\\.\n"
        "ALTER TABLE public.notes OWNER TO app_owner;\n",
    )

    assert inspect_dump(dump).roles == {"app_owner"}


@pytest.mark.parametrize(
    ("major", "minor", "understands"),
    [
        (18, 0, True),
        (17, 6, True),
        (17, 5, False),
        (16, 10, True),
        (16, 9, False),
        (15, 14, True),
        (14, 19, True),
        (14, 18, False),
        (13, 99, False),
    ],
)
def test_which_psql_releases_understand_restrict(major: int, minor: int, understands: bool) -> None:
    assert psql_understands_restrict(major, minor) is understands


def scan_in_chunks(script: bytes, size: int) -> tuple[set[str], list[int]]:
    """Roles and the stream offsets of the lines naming them, fed `size` bytes at a time."""
    scanner, pending, consumed, offsets = RoleScanner(), b"", 0, []
    for start in range(0, len(script), size):
        block, pending = complete_lines(pending, script[start : start + size])
        offsets += [consumed + line.offset for line in scanner.scan(block)]
        consumed += len(block)
    offsets += [consumed + line.offset for line in scanner.scan(pending + b"\n")]
    return scanner.roles, offsets


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 10_000])
def test_the_streaming_scan_finds_the_same_roles_however_the_stream_is_cut(size: int) -> None:
    roles, offsets = scan_in_chunks(TRICKY_SCRIPT, size)

    assert roles == {"app_owner", "app_user", "reporting"}
    named = [TRICKY_SCRIPT[offset:].split(b" ", 1)[0] for offset in offsets]
    assert named == [b"ALTER", b"GRANT", b"CREATE"]


def test_the_header_gives_versions_and_restrict_without_reading_the_rest(
    export_dump: Path,
) -> None:
    header = read_header(export_dump)

    assert header.minimum_server_major == 18
    assert header.uses_restrict


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("notes.sql", b"SELECT 1;\n", "is not a pg_dump script"),
        ("20260301T020000Z.sql.gz", b"-- Dumped from database version 18.1\n", "cannot be read"),
    ],
)
def test_files_pg_dump_did_not_write_are_refused(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)  # the .gz one is not compressed

    with pytest.raises(NotADumpError, match=reason):
        read_header(path)
