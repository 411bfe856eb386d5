"""The data description file: the shipped one is valid, bad ones are refused in plain words."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.restore_drill.description import (
    DESCRIPTION_PATH,
    DescriptionError,
    Privilege,
    load_description,
)

MINIMAL = """
name = "app"
rls_setting = "app.tenant_id"
app_roles = ["app_user"]
[[tables]]
name = "customers"
tenant_column = "tenant_id"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.toml"
    path.write_text(text)
    return path


def test_the_shipped_description_covers_the_reference_schema() -> None:
    description = load_description(DESCRIPTION_PATH)
    schema = (DESCRIPTION_PATH.parent / "schema.sql").read_text()

    for table in description.tables:
        assert f"CREATE TABLE {table.name} (" in schema
    assert [t.name for t in description.tables if t.forbidden] == ["security_events"]
    assert description.table("audit_events").app_privileges == (Privilege.SELECT, Privilege.INSERT)
    assert f"current_setting('{description.rls_setting}', true)" in schema


def test_a_minimal_description_gets_the_defaults(tmp_path: Path) -> None:
    description = load_description(write(tmp_path, MINIMAL))

    assert description.schema_name == "public"
    assert description.table("customers").required_rls == "enabled"
    assert description.thresholds.freshness_outlier_minutes == 1440
    assert description.thresholds.row_drop_percent == 20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (MINIMAL.replace("app_roles", "app_role"), "app_role: Extra inputs are not permitted"),
        (MINIMAL.replace('"app.tenant_id"', '"tenant_id"'), "is not a custom setting name"),
        (MINIMAL.replace('["app_user"]', "[]"), "app_roles: Tuple should have at least 1 item"),
        (MINIMAL + 'rls = "sometimes"\n', "tables.0.rls: Input should be 'enabled' or 'forced'"),
        (MINIMAL + 'app_privileges = ["READ"]\n', "tables.0.app_privileges.0: Input should be"),
        (
            MINIMAL + 'forbidden = true\napp_privileges = ["SELECT"]\n',
            "table 'customers' is forbidden, so app_privileges must be empty",
        ),
        (
            MINIMAL + '[[tables]]\nname = "customers"\n',
            "tables listed more than once: ['customers']",
        ),
        (
            MINIMAL + '[[reads]]\nname = "r"\ntenant_from = "orders"\n'
            'tenant_columns = ["t"]\nsql = "SELECT 1"\n',
            "tenant_from 'orders' is not a tenant-scoped table",
        ),
        (
            MINIMAL + '[[reads]]\nname = "r"\ntenant_from = "customers"\n'
            'tenant_columns = ["t"]\nsql = "SELECT 1; DROP TABLE customers"\n',
            "must be a single SELECT statement",
        ),
        (
            MINIMAL + "[thresholds]\nrow_drop_percent = 0\n",
            "row_drop_percent: Input should be greater than 0",
        ),
        ("name = ", "is not valid TOML"),
    ],
)
def test_bad_descriptions_are_refused_naming_the_key(
    tmp_path: Path, change: str, message: str
) -> None:
    with pytest.raises(DescriptionError) as raised:
        load_description(write(tmp_path, change))

    assert message in str(raised.value)
    assert str(tmp_path / "data.toml") in str(raised.value)


def test_a_missing_description_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DescriptionError, match=r"cannot read data description .*nope\.toml"):
        load_description(tmp_path / "nope.toml")
