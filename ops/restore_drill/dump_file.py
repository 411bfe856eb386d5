"""Reading a plain-format pg_dump file (.sql or .sql.gz) as it is replayed.

Two things decide whether a replay can work at all:

* versions: the header says which server and pg_dump produced the file. pg_dump 17+ writes
  `SET transaction_timeout`, which older servers reject, so the target must be at least as new.
  pg_dump releases since August 2025 wrap the script in `\\restrict KEY` ... `\\unrestrict KEY`,
  which only psql 17.6 / 16.10 / 15.14 / 14.19 / 18+ understand.
* roles: the script assigns owners and grants to roles (for Cloud SQL exports, at least
  `cloudsqlsuperuser`). Roles are cluster-wide and not part of a single-database dump, so they
  must exist on the target before the statement naming them runs, or `ON_ERROR_STOP` aborts it.

The versions are in the first lines, read up front (`read_header`). The roles are spread over the
whole script, mostly after the table data (grants, policies), so they are found in the same single
pass that feeds the script to psql (`RoleScanner`): reading the whole file once more before the
replay cost about a quarter of the restore time. Table data (COPY blocks, nearly all of a dump)
is skipped with a byte search, never split into lines.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from io import BufferedIOBase
from pathlib import Path

HEADER_LINES = 40
HEADER_MAX_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024
COPY_START = re.compile(r"^COPY .+ FROM stdin;$")
COPY_END = "\\."
COPY_END_LINE = b"\\.\n"
NEWLINE_COPY_END_LINE = b"\n" + COPY_END_LINE
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


class NotADumpError(RuntimeError):
    """The file is not a plain-format pg_dump script."""


@dataclass(frozen=True)
class DumpHeader:
    """What the first lines of a dump say about the servers and clients it needs."""

    path: Path
    size_bytes: int
    dumped_from_major: int | None
    dumped_by_major: int | None
    uses_restrict: bool

    @property
    def minimum_server_major(self) -> int | None:
        majors = [m for m in (self.dumped_from_major, self.dumped_by_major) if m is not None]
        return max(majors) if majors else None


@dataclass(frozen=True)
class DumpInfo(DumpHeader):
    """What a dump needs from its target: its header, and every role it names."""

    roles: frozenset[str]


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


def _major(pattern: re.Pattern[str], lines: list[str]) -> int | None:
    for line in lines:
        match = pattern.match(line)
        if match:
            return int(match.group(1))
    return None


def _header_of(path: Path, lines: list[str], size_bytes: int | None = None) -> DumpHeader:
    return DumpHeader(
        path=path,
        size_bytes=path.stat().st_size if size_bytes is None else size_bytes,
        dumped_from_major=_major(DUMPED_FROM, lines),
        dumped_by_major=_major(DUMPED_BY, lines),
        uses_restrict=any(line.startswith("\\restrict ") for line in lines),
    )


def read_header(path: Path) -> DumpHeader:
    """The versions and \\restrict from the first lines; refuses files pg_dump did not write."""
    with open_dump(path) as stream:
        try:
            head = stream.read(HEADER_MAX_BYTES)
        except (OSError, EOFError) as error:  # e.g. gzip's "Not a gzipped file"
            raise NotADumpError(f"{path.name} cannot be read as a dump: {error}") from error
    header = _header_of(path, _decoded_lines(head, HEADER_LINES))
    if header.dumped_from_major is None and header.dumped_by_major is None:
        raise NotADumpError(
            f"{path.name} is not a pg_dump script: none of its first {HEADER_LINES} lines says "
            "'-- Dumped from database version' or '-- Dumped by pg_dump version'"
        )
    return header


def inspect_dump(path: Path) -> DumpInfo:
    """Read the whole script once: header versions, \\restrict, and every role it names.

    The drill itself does not call this for plain dumps (it finds the roles while replaying, see
    `RoleScanner`); it stays for tools that want to know what a dump needs without restoring it.
    """
    with open_dump(path) as stream:
        return scan_script(path, iter(partial(stream.read, CHUNK_BYTES), b""))


def scan_script(path: Path, chunks: Iterable[bytes], size_bytes: int | None = None) -> DumpInfo:
    """Header versions, \\restrict and roles of a plain script given in chunks."""
    scanner = RoleScanner()
    header_lines: list[str] = []
    pending = b""
    for chunk in chunks:
        block, pending = complete_lines(pending, chunk)
        if len(header_lines) < HEADER_LINES:
            header_lines.extend(_decoded_lines(block, HEADER_LINES - len(header_lines)))
        scanner.scan(block)
    header_lines.extend(_decoded_lines(pending, HEADER_LINES - len(header_lines)))
    scanner.scan(pending + b"\n")
    header = _header_of(path, header_lines, size_bytes)
    return DumpInfo(**vars(header), roles=frozenset(scanner.roles))


def _decoded_lines(block: bytes, limit: int) -> list[str]:
    return [raw.decode("utf-8", errors="replace") for raw in block.splitlines()[:limit]]


def psql_understands_restrict(major: int, minor: int) -> bool:
    """Whether this psql release knows the \\restrict meta-command (added August 2025)."""
    if major >= FIRST_MAJOR_WITH_RESTRICT:
        return True
    first_minor = PSQL_RESTRICT_SUPPORT.get(major)
    return first_minor is not None and minor >= first_minor


@dataclass
class ScannedLine:
    """A statement line naming roles, at `offset` within the block passed to `RoleScanner.scan`."""

    offset: int
    roles: set[str]


class RoleScanner:
    """Finds the roles a script names while it streams past, in blocks of complete lines.

    Callers pass blocks of whole lines, each ending in a newline (`complete_lines` splits a
    chunk; add one to the file's unterminated last line); the scanner remembers whether the
    previous block ended inside a COPY data block.
    """

    def __init__(self) -> None:
        self.in_copy = False
        self.roles: set[str] = set()

    def scan(self, block: bytes) -> list[ScannedLine]:
        found: list[ScannedLine] = []
        position, end = 0, len(block)
        while position < end:
            if self.in_copy:
                position = self._skip_copy_data(block, position)
                continue
            line_end = block.find(b"\n", position)
            line = block[position:line_end].decode("utf-8", errors="replace")
            if COPY_START.match(line):
                self.in_copy = True
            else:
                roles = roles_in_statement(line)
                if roles:
                    self.roles.update(roles)
                    found.append(ScannedLine(position, roles))
            position = line_end + 1
        return found

    def _skip_copy_data(self, block: bytes, position: int) -> int:
        """Past the `\\.` line ending the data block, or to the end of the block."""
        if block.startswith(COPY_END_LINE, position):
            self.in_copy = False
            return position + len(COPY_END_LINE)
        marker = block.find(NEWLINE_COPY_END_LINE, position)
        if marker < 0:
            return len(block)
        self.in_copy = False
        return marker + len(NEWLINE_COPY_END_LINE)


def complete_lines(pending: bytes, chunk: bytes) -> tuple[bytes, bytes]:
    """(`pending` + `chunk` up to its last newline, the rest to carry into the next chunk)."""
    data = pending + chunk if pending else chunk
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]
