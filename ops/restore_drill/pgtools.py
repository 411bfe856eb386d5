"""Locating and running PostgreSQL client programs (psql, pg_dump, pg_restore).

Connection strings may carry a password; it is moved into PGPASSWORD so it never appears on a
command line (where `ps` would show it) and never in error messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from io import BufferedIOBase
from pathlib import Path
from typing import IO

from psycopg.conninfo import conninfo_to_dict, make_conninfo

PG_BIN_ENV = "RESTORE_DRILL_PG_BIN"
STDERR_TAIL_CHARS = 2000
COPY_CHUNK_BYTES = 256 * 1024
PIPE_BYTES = 1024 * 1024


class PgToolError(RuntimeError):
    """A PostgreSQL client program is missing or exited with an error."""


@dataclass(frozen=True)
class ClientInvocation:
    """A connection string without its password, plus the environment carrying the password."""

    conninfo: str
    env: dict[str, str]


def split_password(conninfo: str) -> ClientInvocation:
    """Move any password out of `conninfo` into a PGPASSWORD environment for a child process."""
    params = conninfo_to_dict(conninfo)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return ClientInvocation(
        conninfo=make_conninfo(**{k: str(v) for k, v in params.items()}), env=env
    )


def with_database(conninfo: str, database: str) -> str:
    """The same server and credentials, pointed at another database."""
    return make_conninfo(conninfo, dbname=database)


def describe_target(conninfo: str) -> str:
    """A human-readable `host/database` for logs: never includes user or password."""
    params = conninfo_to_dict(conninfo)
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    if host.startswith("/"):
        host = "unix-socket"
    port = params.get("port")
    where = f"{host}:{port}" if port else host
    return f"{where}/{params.get('dbname', '')}"


def stderr_tail(text: str) -> str:
    """The end of a program's error output, which is where psql/pg_restore say what failed."""
    text = text.strip()
    return text if len(text) <= STDERR_TAIL_CHARS else "..." + text[-STDERR_TAIL_CHARS:]


def widen_pipe(descriptor: int) -> None:
    """Let the pipe into psql hold a whole chunk, so decompressing the next chunk overlaps with
    psql consuming this one (the default 64 KiB pipe makes the two take turns). Linux only; the
    kernel caps the size at /proc/sys/fs/pipe-max-size (1 MiB by default)."""
    set_pipe_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_pipe_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(descriptor, set_pipe_size, PIPE_BYTES)


def _feed(stdin: IO[bytes], blocks: Iterable[bytes]) -> None:
    # psql stops reading at the first error; its exit code and stderr then say why.
    with contextlib.suppress(BrokenPipeError):
        for block in blocks:
            stdin.write(block)
    with contextlib.suppress(BrokenPipeError):
        stdin.close()


@dataclass(frozen=True)
class PgTools:
    """PostgreSQL client programs from one directory (or from PATH when none is given)."""

    bin_dir: Path | None = None

    @classmethod
    def from_environment(cls, bin_dir: Path | None) -> PgTools:
        if bin_dir is not None:
            return cls(bin_dir)
        configured = os.environ.get(PG_BIN_ENV)
        return cls(Path(configured) if configured else None)

    def binary(self, name: str) -> Path:
        if self.bin_dir is not None:
            candidate = self.bin_dir / name
            if not candidate.is_file():
                raise PgToolError(f"{name} not found in {self.bin_dir}")
            return candidate
        found = shutil.which(name)
        if found is None:
            raise PgToolError(f"{name} not found on PATH; pass --pg-bin-dir or set {PG_BIN_ENV}")
        return Path(found)

    def version(self, name: str) -> tuple[int, int]:
        """(major, minor) of a client program, from `NAME --version`."""
        output = subprocess.run(
            [str(self.binary(name)), "--version"], capture_output=True, text=True, check=True
        ).stdout
        match = re.search(r"(\d+)\.(\d+)", output)
        if match is None:
            raise PgToolError(f"cannot read the version of {name} from {output!r}")
        return int(match.group(1)), int(match.group(2))

    def run(self, name: str, args: list[str], conninfo: str) -> None:
        """Run a client program against `conninfo`; raise with its error output on failure."""
        invocation = split_password(conninfo)
        with tempfile.TemporaryFile("w+") as stderr:
            completed = subprocess.run(
                [str(self.binary(name)), *args, "--dbname", invocation.conninfo],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=invocation.env,
                check=False,
            )
            if completed.returncode != 0:
                stderr.seek(0)
                raise PgToolError(
                    f"{name} exited with {completed.returncode}: {stderr_tail(stderr.read())}"
                )

    def replay_sql(self, conninfo: str, script: BufferedIOBase | Iterable[bytes]) -> None:
        """Replay a plain SQL script with psql: one transaction, stop at the first error.

        Plain dumps must go through psql (not pg_restore, not a driver): they contain psql
        meta-commands (`\\restrict`, `\\connect`) and COPY ... FROM stdin data blocks.
        `script` is a file or the script's blocks; when producing a block raises, psql is killed
        before it reaches the end of its input (where --single-transaction would COMMIT), so the
        server rolls everything back, and the error propagates.
        """
        blocks = (
            iter(partial(script.read, COPY_CHUNK_BYTES), b"")
            if isinstance(script, BufferedIOBase)
            else script
        )
        invocation = split_password(conninfo)
        command = [
            str(self.binary("psql")),
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--single-transaction",
            "--file=-",
            "--dbname",
            invocation.conninfo,
        ]
        with tempfile.TemporaryFile("w+") as stderr:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=invocation.env,
            )
            assert process.stdin is not None
            widen_pipe(process.stdin.fileno())
            try:
                _feed(process.stdin, blocks)
            except BaseException:
                process.kill()
                process.wait()
                raise
            returncode = process.wait()
            if returncode != 0:
                stderr.seek(0)
                raise PgToolError(f"psql exited with {returncode}: {stderr_tail(stderr.read())}")

    def dump_plain_gzip(self, conninfo: str, destination: Path) -> None:
        """A plain-format, gzip-compressed dump: the shape of a Cloud SQL SQL export (.sql.gz)."""
        self.run(
            "pg_dump", ["--format=plain", "--compress=gzip:6", "--file", str(destination)], conninfo
        )

    def dump_directory(self, conninfo: str, destination: Path, jobs: int) -> None:
        """A directory-format dump written by `jobs` workers (what parallel exports use)."""
        self.run(
            "pg_dump",
            ["--format=directory", f"--jobs={jobs}", "--file", str(destination)],
            conninfo,
        )

    def restore_directory(self, conninfo: str, source: Path, jobs: int) -> None:
        """Replay a directory-format dump with `jobs` parallel pg_restore workers."""
        self.run("pg_restore", ["--exit-on-error", f"--jobs={jobs}", str(source)], conninfo)

    def archive_output(self, source: Path, *args: str) -> Iterator[bytes]:
        """What `pg_restore ARGS SOURCE` writes to stdout (no server involved), in chunks: e.g.
        `--list` (the table of contents and its header) or `--schema-only --file=-` (the SQL a
        restore would run, without table data)."""
        with tempfile.TemporaryFile("w+") as stderr:
            process = subprocess.Popen(
                [str(self.binary("pg_restore")), *args, str(source)],
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
            assert process.stdout is not None
            with process.stdout:
                yield from iter(partial(process.stdout.read, COPY_CHUNK_BYTES), b"")
            returncode = process.wait()
            if returncode != 0:
                stderr.seek(0)
                raise PgToolError(
                    f"pg_restore exited with {returncode}: {stderr_tail(stderr.read())}"
                )
