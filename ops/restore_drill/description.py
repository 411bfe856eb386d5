"""The data description: what the restore drill verifies about an application's data (TOML file).

A team describes its data once (tenant-scoped tables and their tenant column, the row-level
security setting, the application's runtime roles, tables the application must never touch, the
columns that record writes, the reads to replay, and the thresholds for silent data loss); the
drill generates its checks from that file and the restored database's own catalog
(`ops/restore_drill/generated.py`). `data.toml` next to this module describes the reference
schema (`schema.sql`); the README's "Describing your data" shows how to write one.
"""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DESCRIPTION_PATH = Path(__file__).with_name("data.toml")
# A custom setting must have a prefix and a name ("app.tenant_id"): PostgreSQL rejects others.
SETTING_NAME = re.compile(r"^[A-Za-z_][\w$]*\.[A-Za-z_][\w$.]*$")
Name = Annotated[str, Field(min_length=1, max_length=63)]


class DescriptionError(ValueError):
    """The data description cannot be read or is invalid; the message names key and value."""


class Privilege(StrEnum):
    """Table privileges PostgreSQL's has_table_privilege() knows."""

    SELECT = "SELECT"
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    TRUNCATE = "TRUNCATE"
    REFERENCES = "REFERENCES"
    TRIGGER = "TRIGGER"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Table(Strict):
    """One table the application owns data in."""

    name: Name
    # Column holding the tenant id; tables that have one are tested for tenant isolation.
    tenant_column: Name | None = None
    # "enabled" or "forced" row-level security is required; None means not checked. Tables with a
    # tenant column (and not forbidden) default to "enabled".
    rls: Literal["enabled", "forced"] | None = None
    # The application must have no privilege at all on this table (e.g. security events).
    forbidden: bool = False
    # Exactly the privileges every app role must have (compared when given).
    app_privileges: tuple[Privilege, ...] | None = None
    # Timestamp columns recording writes (newest of them = the table's newest write).
    written_at: tuple[Name, ...] = ()
    # Per-table override of thresholds.freshness_outlier_minutes (e.g. rarely written tables).
    freshness_outlier_minutes: float | None = Field(default=None, gt=0)

    @field_validator("app_privileges", mode="before")
    @classmethod
    def upper_case(cls, value: object) -> object:
        if isinstance(value, list):
            return tuple(v.upper() if isinstance(v, str) else v for v in value)
        return value

    @model_validator(mode="after")
    def consistent(self) -> Self:
        if self.forbidden and self.app_privileges:
            raise ValueError(
                f"table {self.name!r} is forbidden, so app_privileges must be empty "
                f"(got {[p.value for p in self.app_privileges]})"
            )
        return self

    @property
    def tenant_scoped(self) -> bool:
        """Tested for isolation as the app roles: has a tenant column and the app may use it."""
        return self.tenant_column is not None and not self.forbidden

    @property
    def required_rls(self) -> Literal["enabled", "forced"] | None:
        return self.rls or ("enabled" if self.tenant_scoped else None)


class Read(Strict):
    """A read the application performs, replayed as an app role scoped to one tenant."""

    name: Name
    description: str = ""
    # The tenant is sampled from this (tenant-scoped) table: the tenant of its newest write.
    tenant_from: Name
    # Result columns that must all hold the sampled tenant.
    tenant_columns: tuple[Name, ...] = Field(min_length=1)
    min_rows: int = Field(default=1, ge=1)
    sql: str = Field(min_length=1)
    role: Name | None = None  # default: the first app role

    @field_validator("sql")
    @classmethod
    def single_select(cls, value: str) -> str:
        body = value.strip().rstrip(";").strip()
        if ";" in body:
            raise ValueError("must be a single SELECT statement (it is wrapped as a subquery)")
        return body


class Thresholds(Strict):
    # A table fails freshness when its lag behind the snapshot exceeds the median lag of the other
    # tables by more than this many minutes (a table that stopped receiving writes).
    freshness_outlier_minutes: float = Field(default=24 * 60, gt=0)
    # A table fails when it holds this many percent fewer rows than in the previous passed drill.
    row_drop_percent: float = Field(default=20, gt=0, le=100)


class DataDescription(Strict):
    """The whole file."""

    # Key of this database's entry in the row-count baseline (one entry per described database).
    name: Name
    schema_name: Name = Field(default="public", alias="schema")
    rls_setting: str
    app_roles: tuple[Name, ...] = Field(min_length=1)
    thresholds: Thresholds = Thresholds()
    tables: tuple[Table, ...] = Field(min_length=1)
    reads: tuple[Read, ...] = ()

    @field_validator("rls_setting")
    @classmethod
    def custom_setting(cls, value: str) -> str:
        if not SETTING_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a custom setting name; use prefix.name, e.g. 'app.tenant_id'"
            )
        return value

    @model_validator(mode="after")
    def cross_references(self) -> Self:
        names = [table.name for table in self.tables]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"tables listed more than once: {duplicates}")
        scoped = {table.name for table in self.tables if table.tenant_scoped}
        for read in self.reads:
            if read.tenant_from not in scoped:
                raise ValueError(
                    f"read {read.name!r}: tenant_from {read.tenant_from!r} is not a tenant-scoped "
                    f"table of this description (allowed: {sorted(scoped)})"
                )
            if read.role is not None and read.role not in self.app_roles:
                raise ValueError(
                    f"read {read.name!r}: role {read.role!r} is not one of app_roles "
                    f"{list(self.app_roles)}"
                )
        return self

    def table(self, name: str) -> Table:
        return next(table for table in self.tables if table.name == name)


def format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid data description"]
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        given = problem.get("input")
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  {where}: {problem['msg']}{shown}")
    return "\n".join(lines)


def load_description(path: Path = DESCRIPTION_PATH) -> DataDescription:
    """Read and validate a description file; DescriptionError says what is wrong and where."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DescriptionError(f"cannot read data description {path}: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise DescriptionError(f"{path} is not valid TOML: {error}") from error
    try:
        return DataDescription.model_validate(data)
    except ValidationError as error:
        raise DescriptionError(format_validation_error(path, error)) from error
