"""What the drill learns from a dump before replaying it: versions, \\restrict, and roles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ops.restore_drill.dump_file import inspect_dump, psql_understands_restrict, roles_in_statement


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
