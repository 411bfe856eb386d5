"""Reading a plain-format pg_dump file (.sql or .sql.gz) before replaying it.

Two things decide whether a replay can work at all, and both are cheaper to find out up front than
halfway through a multi-gigabyte restore:

* versions: the header says which server and pg_dump produced the file. pg_dump 17+ writes
  `SET transaction_timeout`, which older servers reject, so the target must be at least as new.
  pg_dump releases since August 2025 wrap the script in `\\restrict KEY` ... `\\unrestrict KEY`,
  which only psql 17.6 / 16.10 / 15.14 / 14.19 / 18+ understand.
* roles: the script assigns owners and grants to roles (for Cloud SQL exports, at least
  `cloudsqlsuperuser`). Roles are cluster-wide and not part of a single-database dump, so they
  must exist on the target before the replay or `ON_ERROR_STOP` aborts it.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path

HEADER_LINES = 40
COPY_START = re.compile(r"^COPY .+ FROM stdin;$")
COPY_END = "\\."
DUMPED_FROM = re.compile(r"^-- Dumped from database version (\d+)(?:\.(\d+))?")
DUMPED_BY = re.compile(r"^-- Dumped by pg_dump version (\d+)(?:\.(\d+))?")

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_IDENT_LIST = rf"{_IDENT}(?:\s*,\s*{_IDENT})*"
# Statements pg_dump writes that name roles, each on one line of the script.
ROLE_STATEMENTS = (
    re.compile(rf"\bOWNER TO (?P<roles>{_IDENT});$"),
    re.compile(
        rf"^GRANT .+ TO (?P<roles>{_IDENT_LIST})(?: WITH GRANT OPTION)?"
        rf"(?: GRANTED BY (?P<grantor>{_IDENT}))?;$"
    ),
    re.compile(rf"^REVOKE .+ FROM (?P<roles>{_IDENT_LIST})(?: CASCADE)?;$"),
    re.compile(rf"^CREATE POLICY .+? TO (?P<roles>{_IDENT_LIST})(?: USING| WITH CHECK|;)"),
    re.compile(rf"^ALTER DEFAULT PRIVILEGES FOR ROLE (?P<roles>{_IDENT_LIST}) "),
    re.compile(
        rf"^ALTER DEFAULT PRIVILEGES .+ GRANT .+ TO (?P<roles>{_IDENT_LIST})(?: WITH GRANT OPTION)?;$"
    ),
    re.compile(
        rf"^ALTER DEFAULT PRIVILEGES .+ REVOKE .+ FROM (?P<roles>{_IDENT_LIST})(?: CASCADE)?;$"
    ),
    re.compile(r"^SET SESSION AUTHORIZATION '(?P<quoted>[^']+)';$"),
)
# Words that appear where role names go but are not roles.
ROLE_KEYWORDS = {"public", "current_user", "session_user", "current_role"}
# The psql release in each major version that first understands \restrict.
PSQL_RESTRICT_SUPPORT = {14: 19, 15: 14, 16: 10, 17: 6}
FIRST_MAJOR_WITH_RESTRICT = 18


@dataclass(frozen=True)
class DumpInfo:
    """What a dump needs from its target."""

    path: Path
    size_bytes: int
    dumped_from_major: int | None
    dumped_by_major: int | None
    uses_restrict: bool
    roles: frozenset[str]

    @property
    def minimum_server_major(self) -> int | None:
        majors = [m for m in (self.dumped_from_major, self.dumped_by_major) if m is not None]
        return max(majors) if majors else None


@contextmanager
def open_dump(path: Path) -> Iterator[BufferedIOBase]:
    """The dump's SQL bytes, decompressed when the file name ends in .gz."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as stream:
            yield stream
    else:
        with path.open("rb") as stream:
            yield stream


def parse_identifiers(text: str) -> list[str]:
    """Role names from a comma-separated SQL identifier list, folded the way PostgreSQL does."""
    names = []
    for quoted, bare in re.findall(r'"((?:[^"]|"")+)"|([A-Za-z_][\w$]*)', text):
        if quoted:
            names.append(quoted.replace('""', '"'))
        elif bare.lower() not in ROLE_KEYWORDS:
            names.append(bare.lower())
    return names


def roles_in_statement(line: str) -> set[str]:
    """Roles a single line of a plain dump refers to (empty for lines naming none)."""
    roles: set[str] = set()
    for pattern in ROLE_STATEMENTS:
        match = pattern.search(line)
        if match is None:
            continue
        groups = match.groupdict()
        if groups.get("quoted"):
            roles.add(groups["quoted"])
        else:
            named = (groups.get("roles"), groups.get("grantor"))
            roles.update(parse_identifiers(" ".join(filter(None, named))))
    return roles


def statement_lines(stream: BufferedIOBase) -> Iterator[str]:
    """Lines of the script outside COPY data blocks (table data never names roles)."""
    in_copy = False
    for raw in stream:
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        if in_copy:
            in_copy = line != COPY_END
        elif COPY_START.match(line):
            in_copy = True
        else:
            yield line


def _major(pattern: re.Pattern[str], lines: list[str]) -> int | None:
    for line in lines:
        match = pattern.match(line)
        if match:
            return int(match.group(1))
    return None


def inspect_dump(path: Path) -> DumpInfo:
    """Read the whole script once: header versions, \\restrict, and every role it names."""
    header: list[str] = []
    roles: set[str] = set()
    with open_dump(path) as stream:
        for line in statement_lines(stream):
            if len(header) < HEADER_LINES:
                header.append(line)
            roles.update(roles_in_statement(line))
    return DumpInfo(
        path=path,
        size_bytes=path.stat().st_size,
        dumped_from_major=_major(DUMPED_FROM, header),
        dumped_by_major=_major(DUMPED_BY, header),
        uses_restrict=any(line.startswith("\\restrict ") for line in header),
        roles=frozenset(roles),
    )


def psql_understands_restrict(major: int, minor: int) -> bool:
    """Whether this psql release knows the \\restrict meta-command (added August 2025)."""
    if major >= FIRST_MAJOR_WITH_RESTRICT:
        return True
    first_minor = PSQL_RESTRICT_SUPPORT.get(major)
    return first_minor is not None and minor >= first_minor
