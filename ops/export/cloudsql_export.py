"""Logical export of Cloud SQL for PostgreSQL databases to Cloud Storage: per database one gzip SQL
dump (EXPORT_FORMAT=sql.gz) or one pg_dump directory dump written in parallel (EXPORT_FORMAT=parallel).

The scheduled Cloud Run job runs this file as `python3 -c <contents>` in Google's Cloud SDK image,
and `make export STACK=...` runs the very same file by hand. So it is ONE self-contained file:
Python 3.9+, standard library only, talking to Google exclusively through the `gcloud` CLI.

Per database, in order, trying every database even when one fails:
  1. pick gs://BUCKET/cloudsql/INSTANCE/DATABASE/YYYYMMDDTHHMMSSZ.sql.gz (or, parallel, the folder
     .../YYYYMMDDTHHMMSSZ) and refuse to reuse a name (when the name cannot be checked, export
     anyway: Cloud SQL itself never overwrites);
  2. start `gcloud sql export sql --async` (parallel: `--parallel [--threads=N]`), retrying with
     exponential backoff while the instance
     is busy with another operation (HTTP 409); never retrying permission or missing-database errors;
  3. wait for the operation with `gcloud sql operations wait --timeout`;
  4. verify the dump: stream the object (`gcloud storage cat`) through a gzip decompressor to its
     end and check pg_dump's plain-format header and completion line; for a directory dump, list
     the folder, parse its toc.dat and read every data file it names to its end (see
     verify_directory_export);
  4b. with EXPORT_RETENTION_MODE Locked or Unlocked, set the verified dump's (every file's) retain-until to its export
     time + EXPORT_RETENTION_DAYS (Object Retention Lock), so nobody can delete it earlier;
  5. print one JSON line to stdout (Cloud Logging turns it into jsonPayload).
A final JSON line summarises the run. Human-readable progress goes to stderr.

Time budget: the run must log its own result before the Cloud Run task timeout
(EXPORT_TASK_TIMEOUT_SECONDS) stops it. Each database gets an equal share of that timeout, within
which the busy-instance retries, the operation wait and the verification are reserved up front
(`plan_budget`); settings that cannot fit are refused before anything is exported.

Exit status: 0 every database exported and verified, 1 at least one failed, 2 invalid settings.
Settings come from EXPORT_* environment variables; each has a CLI flag that overrides it
(`--help` lists them). The log format and the IAM it needs are documented in ops/export/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn, Protocol

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_INVALID_SETTINGS = 2

# sql.gz: one plain pg_dump, gzip-compressed. parallel: `gcloud sql export sql --parallel` runs
# pg_dump --jobs into a folder, a directory-format dump ("The gcloud sql export function with the
# --parallel flag uses the pg_dump utility with the --jobs option";
# https://cloud.google.com/sql/docs/postgres/import-export/import-export-parallel).
FORMAT_SQL_GZ = "sql.gz"
FORMAT_PARALLEL = "parallel"
EXPORT_FORMATS = (FORMAT_SQL_GZ, FORMAT_PARALLEL)
_FORMAT_ALLOWED = "sql.gz (one gzip SQL file) or parallel (a pg_dump directory dump in a folder)"
# gcloud parses --threads as any integer or `unlimited` (flags.AddThreadsArgument:
# arg_parsers.BoundedInt(unlimited=True), no bounds) and Google documents no maximum; the stack
# configuration caps it at the instance's vCPUs. 1024 is only a sanity limit.
MAX_THREADS = 1024

DATABASE_EVENT = "cloudsql_export"
RUN_EVENT = "cloudsql_export_run"

BACKOFF_CAP_SECONDS = 600.0
# Upper bound for one short gcloud call (check a name, start an export, describe an operation).
# The budget reserves this much for each such call, so it is also each call's process timeout.
GCLOUD_CALL_SECONDS = 60.0
# `operations wait` is given --timeout this much below its process timeout: gcloud then reports
# the timeout itself, and a gcloud process that hangs (network trouble) is still killed in time.
WAIT_PROCESS_MARGIN_SECONDS = 30.0
# Kept free at the end of the task: the summary line, and the seconds between the task's start
# (from which Cloud Run counts its timeout) and this script's start.
RUN_RESERVE_SECONDS = 30.0
# Verification reads the whole dump once: reserve a share of what is left after the retries (see
# the throughput measured in ops/export/README.md), and never less than a minute.
VERIFY_SHARE = 0.25
MIN_VERIFY_SECONDS = 60.0
MIN_WAIT_SECONDS = 60.0
# Cloud Run jobs: task timeout "up to 168 hours" (https://cloud.google.com/run/docs/configuring/task-timeout)
MAX_TASK_TIMEOUT_SECONDS = 168 * 3600
MAX_ERROR_CHARS = 2000
# How often waiting may break off (transient API errors) before the export is given up on.
MAX_INTERRUPTED_WAITS = 10

# pg_dump's plain format: TEXT_DUMP_HEADER and the "dump complete" line RestoreArchive() prints
# last, since 17.6/18 followed by `\unrestrict KEY` matching the `\restrict KEY` after the header
# (https://github.com/postgres/postgres/blob/master/src/bin/pg_dump/pg_backup_archiver.c).
# Cloud SQL's SQL export is pg_dump's output (`gcloud sql export sql --help`: --clean
# "corresponds to the clean flag for pg_dump"); tests/export/test_real_pg_dump.py checks both
# patterns against a real pg_dump 18.
DUMP_HEADER = re.compile(
    rb"\A--\n-- PostgreSQL database dump\n--\n\n(?:\\restrict (?P<key>\S+)\n)?"
)
DUMP_COMPLETE = re.compile(
    rb"\n--\n-- PostgreSQL database dump complete\n--\n\n"
    rb"(?:\\unrestrict (?P<key>\S+)\n)?\s*\Z"
)
CUSTOM_FORMAT_MAGIC = b"PGDMP"  # pg_dump -Fc archives start with these bytes
GZIP_MAGIC = b"\x1f\x8b"
# Enough for the header (with a 64-character restrict key) and the completion lines.
HEAD_BYTES = 512
TAIL_BYTES = 512
READ_CHUNK_BYTES = 1 << 20
# At most this much decompressed output per step, so a highly compressible dump never
# expands into memory at once.
INFLATE_STEP_BYTES = 4 << 20

# Naming rules, kept identical to the stack configuration in infra/cloudsql_backups/config.py.
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_INSTANCE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,96}[a-z0-9]$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")

# Wording of gcloud / Cloud SQL / Cloud Storage errors (see ops/export/README.md for sources).
_INSTANCE_BUSY = re.compile(
    r"HTTPError 409|already in progress|operation in progress|operationInProgress", re.IGNORECASE
)
_PERMISSION_DENIED = re.compile(
    r"HTTPError 403|not authorized|does not have permission|permission denied|access denied"
    r"|does not have storage\.[a-z]+\.[a-z]+ access",
    re.IGNORECASE,
)
_MISSING_DATABASE = re.compile(r"database\s+\"?[^\"\s]*\"?\s+does not exist", re.IGNORECASE)
# `storage objects describe` says "... not found: 404."; `storage cat` names the URL that
# "matched no objects or files" (googlecloudsdk/command_lib/storage/name_expansion.py).
_OBJECT_NOT_FOUND = re.compile(r"not found: 404|HTTPError 404|matched no objects", re.IGNORECASE)
_WAIT_TIMED_OUT = re.compile(r"taking longer than expected", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


class SettingsError(Exception):
    """One or more settings are missing or invalid; the message names each one."""


class _InvalidValueError(ValueError):
    """A single value is not allowed; the message says what is."""


@dataclass(frozen=True)
class Settings:
    """Everything one export run needs, validated."""

    project: str
    instance: str
    bucket: str
    databases: tuple[str, ...]
    offload: bool
    max_attempts: int
    retry_base_seconds: float
    task_timeout_seconds: int
    # An optional, tighter limit for waiting on one export; None: what the budget leaves.
    operation_timeout_seconds: int | None
    gcloud: str
    retention_mode: str
    retention_days: int
    export_format: str = FORMAT_SQL_GZ
    # pg_dump --jobs of a parallel export; None: Cloud SQL's default thread count.
    threads: int | None = None

    @property
    def parallel(self) -> bool:
        return self.export_format == FORMAT_PARALLEL

    @property
    def budget(self) -> DatabaseBudget:
        """Each database's share of the task timeout (validated when the settings were parsed)."""
        return plan_budget(
            self.task_timeout_seconds,
            len(self.databases),
            self.max_attempts,
            self.retry_base_seconds,
        )


@dataclass(frozen=True)
class _Option:
    """One setting: its environment variable, CLI flag, default and parser."""

    field: str
    env: str
    flag: str
    allowed: str
    parse: Callable[[str], object]
    default: str | None = None
    optional: bool = False


def _matching(pattern: re.Pattern[str], allowed: str) -> Callable[[str], object]:
    def parse(value: str) -> object:
        if not pattern.fullmatch(value):
            raise _InvalidValueError(allowed)
        return value

    return parse


def _parse_bucket(value: str) -> object:
    if value.startswith("gs://"):
        raise _InvalidValueError("the bucket name alone, without the gs:// prefix")
    return _matching(_BUCKET_NAME, _BUCKET_ALLOWED)(value)


def _parse_databases(value: str) -> object:
    names = [name.strip() for name in value.split(",")]
    if not value.strip() or any(not name for name in names):
        raise _InvalidValueError(_DATABASES_ALLOWED)
    invalid = [name for name in names if not _DATABASE_NAME.fullmatch(name)]
    if invalid:
        raise _InvalidValueError(
            f"{_DATABASES_ALLOWED} (not a database name: {', '.join(invalid)})"
        )
    if len(set(names)) != len(names):
        raise _InvalidValueError(f"{_DATABASES_ALLOWED}, each listed once")
    return tuple(names)


def _parse_bool(value: str) -> object:
    normalised = value.strip().lower()
    if normalised not in ("true", "false"):
        raise _InvalidValueError("true or false")
    return normalised == "true"


def _bounded_int(low: int, high: int) -> Callable[[str], object]:
    def parse(value: str) -> object:
        try:
            number = int(value.strip())
        except ValueError:
            raise _InvalidValueError(f"a whole number from {low} to {high}") from None
        if not low <= number <= high:
            raise _InvalidValueError(f"a whole number from {low} to {high}")
        return number

    return parse


def _parse_base_seconds(value: str) -> object:
    allowed = f"a number of seconds from 0 to {BACKOFF_CAP_SECONDS:g}"
    try:
        number = float(value.strip())
    except ValueError:
        raise _InvalidValueError(allowed) from None
    if not math.isfinite(number) or not 0 <= number <= BACKOFF_CAP_SECONDS:
        raise _InvalidValueError(allowed)
    return number


def _parse_retention_mode(value: str) -> object:
    if value.strip() not in RETENTION_MODES:
        raise _InvalidValueError(_RETENTION_MODE_ALLOWED)
    return value.strip()


def _parse_gcloud(value: str) -> object:
    resolved = shutil.which(value.strip()) if value.strip() else None
    if resolved is None:
        raise _InvalidValueError("the path of the gcloud executable, or a name found on PATH")
    return resolved


def _parse_format(value: str) -> object:
    if value.strip() not in EXPORT_FORMATS:
        raise _InvalidValueError(_FORMAT_ALLOWED)
    return value.strip()


# Object Retention Lock modes (`gcloud storage objects update --retention-mode`); none: not set.
RETENTION_MODES = ("Locked", "Unlocked", "none")
_RETENTION_MODE_ALLOWED = "Locked, Unlocked or none (the bucket has no object retention)"
_BUCKET_ALLOWED = "a GCS bucket name: 3-63 lowercase letters, digits, '-', '_' or '.'"
_DATABASES_ALLOWED = "a comma-separated, non-empty list of PostgreSQL database names"

_OPTIONS = (
    _Option(
        "project",
        "EXPORT_PROJECT",
        "--project",
        "a project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter",
        _matching(_PROJECT_ID, "a project ID: 6-30 lowercase letters, digits or hyphens"),
    ),
    _Option(
        "instance",
        "EXPORT_INSTANCE",
        "--instance",
        "a Cloud SQL instance name: lowercase letters, digits and hyphens, starting with a letter",
        _matching(_INSTANCE_NAME, "a Cloud SQL instance name: lowercase letters, digits, hyphens"),
    ),
    _Option("bucket", "EXPORT_BUCKET", "--bucket", _BUCKET_ALLOWED, _parse_bucket),
    _Option("databases", "EXPORT_DATABASES", "--databases", _DATABASES_ALLOWED, _parse_databases),
    _Option("offload", "EXPORT_OFFLOAD", "--offload", "true or false", _parse_bool, "false"),
    _Option(
        "max_attempts",
        "EXPORT_MAX_ATTEMPTS",
        "--max-attempts",
        "a whole number from 1 to 100",
        _bounded_int(1, 100),
        "6",
    ),
    _Option(
        "retry_base_seconds",
        "EXPORT_RETRY_BASE_SECONDS",
        "--retry-base-seconds",
        f"a number of seconds from 0 to {BACKOFF_CAP_SECONDS:g}",
        _parse_base_seconds,
        "30",
    ),
    _Option(
        "task_timeout_seconds",
        "EXPORT_TASK_TIMEOUT_SECONDS",
        "--task-timeout-seconds",
        f"the Cloud Run task timeout: a whole number of seconds from 1 to {MAX_TASK_TIMEOUT_SECONDS}",
        _bounded_int(1, MAX_TASK_TIMEOUT_SECONDS),
        "21600",
    ),
    _Option(
        "operation_timeout_seconds",
        "EXPORT_OPERATION_TIMEOUT_SECONDS",
        "--operation-timeout-seconds",
        # gcloud treats --timeout=0 as "wait forever", so 0 is not offered.
        "unset (wait as long as the task timeout allows), or a whole number of seconds from 1 to "
        f"{MAX_TASK_TIMEOUT_SECONDS}",
        _bounded_int(1, MAX_TASK_TIMEOUT_SECONDS),
        optional=True,
    ),
    _Option(
        "gcloud",
        "EXPORT_GCLOUD",
        "--gcloud",
        "the path of the gcloud executable, or a name found on PATH",
        _parse_gcloud,
        "gcloud",
    ),
    _Option("export_format", "EXPORT_FORMAT", "--format", _FORMAT_ALLOWED, _parse_format, "sql.gz"),
    _Option(
        "threads",
        "EXPORT_THREADS",
        "--threads",
        f"unset (Cloud SQL's default thread count), or a whole number from 1 to {MAX_THREADS}; "
        "only with EXPORT_FORMAT=parallel",
        _bounded_int(1, MAX_THREADS),
        optional=True,
    ),
    _Option(
        "retention_mode",
        "EXPORT_RETENTION_MODE",
        "--retention-mode",
        _RETENTION_MODE_ALLOWED,
        _parse_retention_mode,
        "none",
    ),
    _Option(
        "retention_days",
        "EXPORT_RETENTION_DAYS",
        "--retention-days",
        "a whole number of days from 1 to 36500 (read only with a retention mode)",
        _bounded_int(1, 36500),
        "30",
    ),
)


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse already exits with status 2; only the wording is aligned with the other errors.
        self.print_usage(sys.stderr)
        self.exit(EXIT_INVALID_SETTINGS, f"cloudsql-export: invalid arguments: {message}\n")


def build_argument_parser() -> argparse.ArgumentParser:
    """The CLI: one flag per EXPORT_* variable; a flag given on the command line wins."""
    parser = _ArgumentParser(
        prog="cloudsql_export.py",
        description="Export Cloud SQL for PostgreSQL databases to gs://BUCKET/cloudsql/... "
        "with gcloud, one JSON log line per database on stdout.",
        epilog="Every flag overrides the environment variable named in its help.",
    )
    for option in _OPTIONS:
        if option.field == "offload":
            parser.add_argument(
                option.flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"serverless export (default: ${option.env}, else false)",
            )
            continue
        default_note = f", else {option.default}" if option.default is not None else ""
        if option.optional:
            default_note = ", else unset"
        parser.add_argument(
            option.flag,
            dest=option.field,
            metavar=option.env,
            help=f"{option.allowed} (default: ${option.env}{default_note})",
        )
    return parser


def _raw_value(option: _Option, from_flag: object, environ: Mapping[str, str]) -> str | None:
    """The flag's value, else the variable's (an empty variable counts as unset), else default."""
    if isinstance(from_flag, bool):
        return "true" if from_flag else "false"
    if from_flag is not None:
        return str(from_flag)
    return environ.get(option.env, "").strip() or option.default


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Settings from flags, then environment, then defaults; SettingsError lists every problem."""
    arguments = vars(build_argument_parser().parse_args(list(argv)))
    values: dict[str, object] = {}
    problems: list[str] = []
    for option in _OPTIONS:
        raw = _raw_value(option, arguments.get(option.field), environ)
        if (raw is None or not raw.strip()) and option.optional:
            values[option.field] = None
            continue
        if raw is None or not raw.strip():
            problems.append(f"{option.env} ({option.flag}) is not set; allowed: {option.allowed}")
            continue
        try:
            values[option.field] = option.parse(raw)
        except _InvalidValueError as invalid:
            problems.append(
                f"{option.env} ({option.flag}) = {raw!r} is invalid; allowed: {invalid}"
            )
    if not problems:
        problems += _budget_problems(values) + _format_problems(values)
    if problems:
        raise SettingsError("\n".join(problems))
    return Settings(**values)  # type: ignore[arg-type]  # every field was parsed above


def _format_problems(values: Mapping[str, Any]) -> list[str]:
    """A thread count only means something for a parallel export: never ignore it silently."""
    if values["threads"] is not None and values["export_format"] != FORMAT_PARALLEL:
        return [
            f"EXPORT_THREADS (--threads) = '{values['threads']}' is invalid with EXPORT_FORMAT = "
            f"{values['export_format']!r}; allowed: unset, or set EXPORT_FORMAT=parallel"
        ]
    return []


def _budget_problems(values: Mapping[str, Any]) -> list[str]:
    """Settings that cannot fit in the task timeout, refused before anything is exported."""
    databases: tuple[str, ...] = values["databases"]
    try:
        budget = plan_budget(
            values["task_timeout_seconds"],
            len(databases),
            values["max_attempts"],
            values["retry_base_seconds"],
        )
    except BudgetError as error:
        return [str(error)]
    cap = values["operation_timeout_seconds"]
    longest = math.floor(budget.wait_seconds - WAIT_PROCESS_MARGIN_SECONDS)
    if cap is not None and cap > longest:
        return [
            f"EXPORT_OPERATION_TIMEOUT_SECONDS (--operation-timeout-seconds) = {str(cap)!r} is "
            "invalid; "
            f"allowed: unset, or 1 to {longest} s, the wait that "
            f"EXPORT_TASK_TIMEOUT_SECONDS = {values['task_timeout_seconds']} leaves for each of "
            f"{len(databases)} database(s)"
        ]
    return []


# --------------------------------------------------------------------------------------------
# Time budget: pure arithmetic, so that it can be tested at its limits
# --------------------------------------------------------------------------------------------


class BudgetError(ValueError):
    """The task timeout cannot hold the reserves for every database; says what would."""


@dataclass(frozen=True)
class DatabaseBudget:
    """One database's share of the task timeout, and how it is reserved (seconds)."""

    share_seconds: float  # (task timeout - run reserve) / databases
    retries_seconds: float  # name check, every start attempt and the backoff between them
    wait_seconds: float  # waiting for the export operation (at least, when retries are quick)
    verify_seconds: float  # streaming and checking the dump


def backoff_seconds(base: float, failed_attempts: int) -> float:
    """Delay before the next attempt: base, 2*base, 4*base, ... capped at 600 s."""
    return float(min(base * (2 ** (failed_attempts - 1)), BACKOFF_CAP_SECONDS))


def retries_reserve_seconds(max_attempts: int, retry_base_seconds: float) -> float:
    """Worst case before the wait starts: the name check, `max_attempts` starts answered 409
    at the last moment of their call timeout, and every backoff delay in between."""
    delays = sum(backoff_seconds(retry_base_seconds, n) for n in range(1, max_attempts))
    return delays + (1 + max_attempts) * GCLOUD_CALL_SECONDS


def _minimum_share_seconds(max_attempts: int, retry_base_seconds: float) -> float:
    """The smallest share that still leaves MIN_WAIT_SECONDS after the reserves."""
    after_retries = max(
        MIN_WAIT_SECONDS + MIN_VERIFY_SECONDS, MIN_WAIT_SECONDS / (1 - VERIFY_SHARE)
    )
    return retries_reserve_seconds(max_attempts, retry_base_seconds) + after_retries


def minimum_task_timeout_seconds(
    databases: int, max_attempts: int, retry_base_seconds: float
) -> int:
    """The shortest task timeout in which every database fits, in whole seconds."""
    share = _minimum_share_seconds(max_attempts, retry_base_seconds)
    return math.ceil(RUN_RESERVE_SECONDS + databases * share)


def plan_budget(
    task_timeout_seconds: float, databases: int, max_attempts: int, retry_base_seconds: float
) -> DatabaseBudget:
    """Split the task timeout: a reserve for the run's last lines, then an equal share per
    database, in which the retries, then verification, then the wait are reserved."""
    if databases < 1:
        raise BudgetError("there must be at least one database to export")
    share = (task_timeout_seconds - RUN_RESERVE_SECONDS) / databases
    retries = retries_reserve_seconds(max_attempts, retry_base_seconds)
    after_retries = share - retries
    verify = max(MIN_VERIFY_SECONDS, after_retries * VERIFY_SHARE)
    wait = after_retries - verify
    if wait < MIN_WAIT_SECONDS:
        needed = minimum_task_timeout_seconds(databases, max_attempts, retry_base_seconds)
        raise BudgetError(
            f"EXPORT_TASK_TIMEOUT_SECONDS (--task-timeout-seconds) = '{task_timeout_seconds:g}' is "
            f"too short for {databases} database(s); allowed: at least {needed} s with "
            f"EXPORT_MAX_ATTEMPTS = {max_attempts} and EXPORT_RETRY_BASE_SECONDS = "
            f"{retry_base_seconds:g} (each database reserves {retries:g} s for its busy-instance "
            f"retries, {MIN_WAIT_SECONDS:g} s to wait and {MIN_VERIFY_SECONDS:g} s to verify; "
            f"the run keeps {RUN_RESERVE_SECONDS:g} s for its last lines): raise the task timeout "
            "(export_timeout_hours), or lower the attempts or the backoff base"
        )
    return DatabaseBudget(share, retries, wait, verify)


@dataclass(frozen=True)
class Deadlines:
    """Monotonic-clock deadlines of one database: each phase must end by its deadline."""

    wait_until: float  # the operation wait (and any start attempt) ends here
    verify_until: float  # verification ends here: the database's share is used up


def database_deadlines(run_started: float, index: int, budget: DatabaseBudget) -> Deadlines:
    """The database at `index` must be done by the end of its share counted from the run's start:
    time an earlier database did not use passes on to the later ones, never the other way."""
    share_ends = run_started + (index + 1) * budget.share_seconds
    return Deadlines(wait_until=share_ends - budget.verify_seconds, verify_until=share_ends)


# --------------------------------------------------------------------------------------------
# gcloud: the only way this script talks to Google
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    """What a finished command printed and returned."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False


class Runner(Protocol):
    """Runs one command to completion (or until `timeout` seconds have passed)."""

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult: ...


class Streamer(Protocol):
    """Runs one command, handing its stdout to `consume` chunk by chunk as it arrives; stops it
    once `timeout` seconds have passed or `consume` raises (the exception then propagates)."""

    def __call__(
        self, argv: Sequence[str], consume: Callable[[bytes], None], timeout: float
    ) -> CommandResult: ...


def run_command(argv: Sequence[str], timeout: float) -> CommandResult:
    """Run a command, capturing its output; never raises for a failing or missing program."""
    try:
        completed = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=max(timeout, 0.001),
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"{argv[0]} did not finish within {timeout:g} s", True)
    except OSError as error:
        return CommandResult(127, "", f"could not run {argv[0]}: {error}")
    return CommandResult(completed.returncode, completed.stdout, completed.stderr)


def stream_command(
    argv: Sequence[str], consume: Callable[[bytes], None], timeout: float
) -> CommandResult:
    """Run a command and feed its stdout to `consume` in chunks: nothing is held in memory but
    the chunk being read. stderr goes to a temporary file, so a chatty command cannot block."""
    with tempfile.TemporaryFile() as stderr_file:
        try:
            # bufsize=0: each read returns what has arrived (up to a chunk) instead of waiting
            # for a full chunk, so a refused first chunk stops the read at once.
            process = subprocess.Popen(
                list(argv),
                bufsize=0,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr_file,
            )
        except OSError as error:
            return CommandResult(127, "", f"could not run {argv[0]}: {error}")
        # A watchdog, because a read from the pipe blocks while the command stalls.
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            process.kill()

        watchdog = threading.Timer(max(timeout, 0.0), expire)
        watchdog.start()
        try:
            stdout = process.stdout
            assert stdout is not None  # stdout=PIPE above
            while chunk := stdout.read(READ_CHUNK_BYTES):
                consume(chunk)
            returncode = process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if expired.is_set():
            return CommandResult(124, "", f"{argv[0]} did not finish within {timeout:g} s", True)
        stderr_file.seek(0)
        stderr = stderr_file.read().decode("utf-8", errors="replace")
    return CommandResult(returncode, "", stderr)


class Gcloud:
    """The gcloud commands the export needs, with the exact flags each one takes. Every call
    takes its timeout from the caller, who knows how much of the budget is left."""

    def __init__(
        self,
        executable: str,
        project: str,
        run: Runner = run_command,
        stream: Streamer = stream_command,
    ) -> None:
        self._executable = executable
        self._project = project
        self._run = run
        self._stream = stream

    def _argv(self, arguments: Sequence[str]) -> list[str]:
        # --quiet: never wait for an interactive prompt in a job.
        return [self._executable, *arguments, "--quiet"]

    def describe_object(self, uri: str, timeout: float) -> CommandResult:
        arguments = ["storage", "objects", "describe", uri, f"--project={self._project}"]
        return self._run(self._argv([*arguments, "--format=json"]), timeout)

    def start_export(
        self, settings: Settings, uri: str, database: str, timeout: float
    ) -> CommandResult:
        """`sql export sql`; parallel: `--parallel [--threads=N]` into the folder `uri`
        (`gcloud sql export sql --help`: "--parallel Perform a parallel export", "--threads ...
        If --parallel is specified and this flag is not provided, Cloud SQL uses a default
        thread count")."""
        arguments = ["sql", "export", "sql", settings.instance, uri, f"--database={database}"]
        arguments.append(f"--project={self._project}")
        if settings.offload:
            arguments.append("--offload")
        if settings.parallel:
            arguments.append("--parallel")
            if settings.threads is not None:
                arguments.append(f"--threads={settings.threads}")
        arguments += ["--async", "--format=json"]
        return self._run(self._argv(arguments), timeout)

    def list_objects(self, pattern: str, timeout: float) -> CommandResult:
        """Objects matching `pattern` (a `**` wildcard lists a folder's objects at any depth), as a
        JSON list with each object's `name` and `size`; `[]` when nothing matches
        (`gcloud storage objects list --help`; list.py iterates with error_on_missing_key=False).
        In a versioned bucket the list also holds noncurrent versions (list.py's default
        object_state LIVE_AND_NONCURRENT): a name listed only as noncurrent is then read with
        `storage cat`, which reads live objects only, and fails as gone."""
        arguments = ["storage", "objects", "list", pattern, f"--project={self._project}"]
        return self._run(self._argv([*arguments, "--format=json"]), timeout)

    def wait_for_operation(
        self, operation: str, timeout_seconds: int, process_timeout: float
    ) -> CommandResult:
        arguments = ["sql", "operations", "wait", operation, f"--project={self._project}"]
        arguments += [f"--timeout={timeout_seconds}", "--format=json"]
        return self._run(self._argv(arguments), process_timeout)

    def describe_operation(self, operation: str, timeout: float) -> CommandResult:
        arguments = ["sql", "operations", "describe", operation, f"--project={self._project}"]
        return self._run(self._argv([*arguments, "--format=json"]), timeout)

    def stream_object(
        self, uri: str, consume: Callable[[bytes], None], timeout: float
    ) -> CommandResult:
        """The object's bytes as stored, to `consume`: `gcloud storage cat` writes them to
        stdout (`gcloud storage cat --help`: equivalent to `gcloud storage cp URL -`)."""
        arguments = ["storage", "cat", uri, f"--project={self._project}"]
        return self._stream(self._argv(arguments), consume, timeout)

    def set_retention(
        self, uris: Sequence[str], retain_until: str, mode: str, timeout: float
    ) -> CommandResult:
        """One `objects update` for several objects (it takes `URL ...`)."""
        arguments = ["storage", "objects", "update", *uris, f"--project={self._project}"]
        arguments += [f"--retain-until={retain_until}", f"--retention-mode={mode}"]
        return self._run(self._argv([*arguments, "--format=json"]), timeout)


def gcloud_error(result: CommandResult) -> str:
    """gcloud's own error message (from its first 'ERROR:' line on), on one line."""
    text = result.stderr
    marker = text.find("ERROR:")
    if marker >= 0:
        text = text[marker:]
    text = " ".join(text.split())
    if not text:
        text = f"gcloud exited with status {result.returncode} without an error message"
    return text[:MAX_ERROR_CHARS]


def parse_json_output(result: CommandResult) -> Any:
    """The JSON gcloud printed with --format=json; ValueError if it is not JSON."""
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise ValueError(
            f"gcloud printed something that is not JSON: {result.stdout[:200]!r}"
        ) from None


def operation_errors(operation: Mapping[str, Any]) -> str | None:
    """Google's messages from an Operation's error.errors[] (code and message), if any."""
    error = operation.get("error")
    if not isinstance(error, dict):
        return None
    entries = error.get("errors")
    if not isinstance(entries, list) or not entries:
        return None
    parts = []
    for entry in entries:
        if isinstance(entry, dict):
            code = entry.get("code", "UNKNOWN")
            parts.append(f"[{code}] {entry.get('message', '')}".strip())
    return "; ".join(parts) or None


# --------------------------------------------------------------------------------------------
# Verification: the object is a complete gzip-compressed pg_dump plain-format dump
# --------------------------------------------------------------------------------------------


class ExportFailedError(Exception):
    """This database was not exported and verified; the message says why and what to do."""


class DumpInvalidError(Exception):
    """The bytes read so far (or in all) are not a complete plain pg_dump in gzip."""


@dataclass(frozen=True)
class VerifiedDump:
    """What verification proved about one exported object."""

    compressed_bytes: int  # the object's size, as read (a directory dump: all its files)
    uncompressed_bytes: int  # the SQL script's size (a directory dump: its files' contents)
    seconds: float  # how long reading and checking took
    # A directory dump's verified objects (toc.dat first); empty for a single .sql.gz object.
    files: tuple[str, ...] = ()


def _preview(data: bytes) -> str:
    return repr(bytes(data[:40]))


class GzipMembers:
    """Decompresses gzip members one after the other, as `gzip -d` does (CRC and length checked
    by zlib), handing `sink` at most INFLATE_STEP_BYTES at a time so that a highly compressible
    stream never expands into memory at once. Raises zlib.error for corrupt data and
    DumpInvalidError for anything but another member after one ends."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(wbits=31)  # 31: gzip framing only

    @property
    def eof(self) -> bool:
        return bool(self._inflater.eof)

    def inflate(self, data: bytes, sink: Callable[[bytes], None]) -> None:
        while data:
            sink(self._inflater.decompress(data, INFLATE_STEP_BYTES))
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:
                # One gzip member ended; what follows must be another member.
                data = self._inflater.unused_data + data
                if not data:
                    return
                if not data.startswith(GZIP_MAGIC[: len(data)]):
                    raise DumpInvalidError(
                        f"data after the end of its gzip stream: {_preview(data)}"
                    )
                self._inflater = zlib.decompressobj(wbits=31)


class DumpChecker:
    """Streaming check of a .sql.gz: feed it the object's bytes in order, then call finish().
    Decompresses as it goes (several gzip members in a row are fine, as in `gzip -d`), keeping
    only the first and last few hundred bytes of SQL; raises DumpInvalidError as soon as the
    data cannot be a complete plain-format pg_dump."""

    def __init__(self) -> None:
        self.compressed_bytes = 0
        self.uncompressed_bytes = 0
        self._inflater = GzipMembers()
        self._head = bytearray()
        self._tail = b""
        self._header_checked = False
        self._restrict_key: bytes | None = None

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.compressed_bytes == 0:
            self._check_gzip_magic(chunk)
        self.compressed_bytes += len(chunk)
        self._inflate(chunk)

    @staticmethod
    def _check_gzip_magic(first: bytes) -> None:
        if GZIP_MAGIC.startswith(first[: len(GZIP_MAGIC)]):
            return
        if first.startswith(CUSTOM_FORMAT_MAGIC):
            kind = "a pg_dump custom-format archive (PGDMP), not a gzip plain SQL dump"
        elif first.startswith(b"--"):
            kind = "uncompressed SQL, not gzip data"
        else:
            kind = "not gzip data"
        raise DumpInvalidError(f"the object is {kind}: it starts with {_preview(first)}")

    def _inflate(self, data: bytes) -> None:
        try:
            self._inflater.inflate(data, self._take)
        except zlib.error as error:
            raise DumpInvalidError(
                f"the object is not valid gzip data after {self.compressed_bytes} compressed "
                f"bytes: {error}"
            ) from None
        except DumpInvalidError as invalid:
            raise DumpInvalidError(f"the object has {invalid}") from None

    def _take(self, output: bytes) -> None:
        if not output:
            return
        self.uncompressed_bytes += len(output)
        if not self._header_checked:
            self._head += output[: HEAD_BYTES - len(self._head)]
            if len(self._head) >= HEAD_BYTES:
                self._check_header()
        self._tail = (self._tail + output[-TAIL_BYTES:])[-TAIL_BYTES:]

    def _check_header(self) -> None:
        self._header_checked = True
        head = bytes(self._head)
        match = DUMP_HEADER.match(head)
        if match is not None:
            self._restrict_key = match["key"]
            return
        if head.startswith(CUSTOM_FORMAT_MAGIC):
            raise DumpInvalidError(
                "the object holds a pg_dump custom-format archive (PGDMP), not a plain SQL dump"
            )
        raise DumpInvalidError(
            "the SQL does not start with pg_dump's plain-format header "
            f"'-- PostgreSQL database dump'; it starts with {_preview(head)}"
        )

    def finish(self, seconds: float) -> VerifiedDump:
        """After the last byte: the gzip stream ended properly and the dump is complete."""
        if self.compressed_bytes == 0:
            raise DumpInvalidError("the object is empty (0 bytes)")
        if not self._inflater.eof:
            raise DumpInvalidError(
                f"the gzip data ends early, after {self.compressed_bytes} compressed bytes: "
                "the object is truncated"
            )
        if not self._header_checked:
            self._check_header()
        complete = DUMP_COMPLETE.search(self._tail)
        if complete is None:
            raise DumpInvalidError(
                "the dump does not end with pg_dump's completion line "
                f"'-- PostgreSQL database dump complete': it was cut short "
                f"(it ends with {self._tail[-60:]!r})"
            )
        if complete["key"] != self._restrict_key:
            raise DumpInvalidError(
                "the dump's closing \\unrestrict key does not match the \\restrict key after its "
                "header: it is not one complete pg_dump script"
            )
        return VerifiedDump(self.compressed_bytes, self.uncompressed_bytes, round(seconds, 3))


def verify_export(
    gcloud: Gcloud, uri: str, until: float, monotonic: Callable[[], float]
) -> VerifiedDump:
    """Read the whole object once and prove it is a complete gzip plain pg_dump; raise
    ExportFailedError (with the reason) when it is not, or when it cannot be read in time.
    The export itself is left in place either way: an unverified backup beats none."""
    started = monotonic()
    checker = DumpChecker()
    try:
        result = gcloud.stream_object(uri, checker.feed, until - started)
    except DumpInvalidError as invalid:
        raise ExportFailedError(f"verification of {uri} failed: {invalid}") from None
    if result.timed_out:
        raise ExportFailedError(
            f"verification of {uri} did not finish within the {until - started:.0f} s left in "
            f"this database's budget (read {checker.compressed_bytes} bytes so far); the object "
            "is kept but unverified"
        )
    if result.returncode != 0:
        message = gcloud_error(result)
        if _OBJECT_NOT_FOUND.search(message):
            raise ExportFailedError(f"export reported success but no object was written at {uri}")
        hint = ""
        if _PERMISSION_DENIED.search(message):
            hint = "; the caller needs storage.objects.get on the bucket (see ops/export/README.md)"
        raise ExportFailedError(
            f"could not verify {uri}: reading it failed: {message}{hint}; the object is kept but "
            "unverified"
        )
    try:
        return checker.finish(monotonic() - started)
    except DumpInvalidError as invalid:
        raise ExportFailedError(f"verification of {uri} failed: {invalid}") from None


# --------------------------------------------------------------------------------------------
# Verification of a directory dump (EXPORT_FORMAT=parallel): toc.dat and every file it names
# --------------------------------------------------------------------------------------------

# pg_dump's directory format: "a directory with one file for each table and large object being
# dumped, plus a so-called Table of Contents file" named toc.dat; data files are compressed with
# gzip by default (NNNN.dat.gz) and pg_restore opens NAME, else NAME.gz
# (https://www.postgresql.org/docs/current/app-pgdump.html, src/bin/pg_dump/pg_backup_directory.c).
TOC_FILE = "toc.dat"
# "Files that you export in parallel from Cloud SQL are compressed twice"
# (https://cloud.google.com/sql/docs/postgres/import-export/import-export-parallel): each file may
# carry up to two gzip layers, which verification undoes (checking every CRC) before looking inside.
MAX_GZIP_LAYERS = 2
# toc.dat and a blobs_N.toc are read into memory to be parsed; a TOC this large is not plausible.
MAX_TOC_BYTES = 256 << 20
# pg_dump ends each table's COPY data with this (pg_dump.c dumpTableData_copy; a real pg_dump 18
# directory dump in tests/export/test_real_pg_dump.py): without it, a data file was cut short.
COPY_DATA_END = b"\\.\n\n\n"
# toc.dat's header (pg_backup_archiver.c WriteHead): "PGDMP", version major/minor/revision bytes,
# integer size, offset size, format; a directory dump writes the tar format code 3 in its toc.dat
# (pg_backup_directory.c _CloseArchive: the directory format is compatible with tar's).
TOC_FORMAT_CODE = 3
# Archive versions whose TOC layout this reader knows: 1.12 (PostgreSQL 11) to 1.16 (17 and 18);
# 1.14 added tableam, 1.15 a compression byte instead of an int, 1.16 relkind.
TOC_MINOR_VERSIONS = range(12, 17)


@dataclass(frozen=True)
class TocEntry:
    """One entry of a directory dump's table of contents, as far as verification needs it."""

    dump_id: int
    desc: str  # "TABLE DATA", "BLOBS", "SEQUENCE SET", ...
    tag: str
    namespace: str | None
    copy_stmt: str | None
    filename: str | None  # the data file (without compression suffix); None: no data

    @property
    def label(self) -> str:
        name = f"{self.namespace}.{self.tag}" if self.namespace else self.tag
        return f"{self.desc} {name}"


class _TocReader:
    """pg_dump's archive primitives (pg_backup_archiver.c ReadInt/ReadStr): an int is a sign byte
    then `int_size` bytes, least significant first; a string is an int length (-1: NULL) then
    that many bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._position = 0
        self.int_size = 4

    def take(self, count: int) -> bytes:
        end = self._position + count
        if count < 0 or end > len(self._data):
            raise DumpInvalidError(
                f"{TOC_FILE} ends early, at byte {len(self._data)}: the table of contents is cut short"
            )
        chunk = self._data[self._position : end]
        self._position = end
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def integer(self) -> int:
        negative = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if negative else value

    def text(self) -> str | None:
        length = self.integer()
        if length < 0:
            return None
        return self.take(length).decode("utf-8", errors="replace")


def _read_toc_header(reader: _TocReader) -> int:
    """Check the archive header; return the archive's minor version."""
    if reader.take(5) != CUSTOM_FORMAT_MAGIC:
        raise DumpInvalidError(f"{TOC_FILE} does not start with pg_dump's archive magic PGDMP")
    major, minor, _revision = reader.byte(), reader.byte(), reader.byte()
    if major != 1 or minor not in TOC_MINOR_VERSIONS:
        raise DumpInvalidError(
            f"{TOC_FILE} is archive version {major}.{minor}, which this script cannot read "
            f"(it reads 1.{TOC_MINOR_VERSIONS[0]} to 1.{TOC_MINOR_VERSIONS[-1]})"
        )
    reader.int_size = reader.byte()
    if reader.int_size not in (4, 8):
        raise DumpInvalidError(f"{TOC_FILE} claims {reader.int_size}-byte integers: it is corrupt")
    reader.byte()  # offset size
    archive_format = reader.byte()
    if archive_format != TOC_FORMAT_CODE:
        raise DumpInvalidError(
            f"{TOC_FILE} has archive format code {archive_format}, not a directory dump's "
            f"{TOC_FORMAT_CODE}"
        )
    if minor >= 15:
        reader.byte()  # compression algorithm
    else:
        reader.integer()  # compression level
    for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
        reader.integer()
    for _ in range(3):  # database name, server version, pg_dump version
        reader.text()
    return minor


def _read_toc_entry(reader: _TocReader, minor: int) -> TocEntry:
    """One entry, in pg_backup_archiver.c ReadToc's order, then the directory format's file name
    (pg_backup_directory.c _ReadExtraToc; empty: no file)."""
    dump_id = reader.integer()
    if dump_id <= 0:
        raise DumpInvalidError(
            f"{TOC_FILE} has entry ID {dump_id}: the table of contents is corrupt"
        )
    reader.integer()  # had a data dumper
    reader.text()  # table OID
    reader.text()  # OID
    tag = reader.text() or ""
    desc = reader.text() or ""
    reader.integer()  # section
    reader.text()  # definition
    reader.text()  # drop statement
    copy_stmt = reader.text()
    namespace = reader.text()
    reader.text()  # tablespace
    if minor >= 14:
        reader.text()  # table access method
    if minor >= 16:
        reader.integer()  # relkind
    reader.text()  # owner
    reader.text()  # "false" (WITH OIDS)
    while reader.text() is not None:  # dependencies, ended by a NULL string
        pass
    filename = reader.text() or None
    return TocEntry(dump_id, desc, tag, namespace, copy_stmt, filename)


def parse_toc(data: bytes) -> list[TocEntry]:
    """The entries of a directory dump's toc.dat; DumpInvalidError if it is not a whole one."""
    reader = _TocReader(data)
    minor = _read_toc_header(reader)
    count = reader.integer()
    if count < 0:
        raise DumpInvalidError(f"{TOC_FILE} claims {count} entries: it is corrupt")
    return [_read_toc_entry(reader, minor) for _ in range(count)]


class GzipLayers:
    """Undoes up to `layers` gzip layers of a byte stream as it arrives (several members in a row
    are fine, CRC and length checked by zlib) and hands the innermost bytes to `sink`. Bytes that
    do not start with the gzip magic pass through as they are."""

    def __init__(self, sink: Callable[[bytes], None], layers: int = MAX_GZIP_LAYERS) -> None:
        self._sink = sink
        self._layers = layers
        self._head = b""
        self._decided = False
        self._inflater = GzipMembers()
        self._inner: GzipLayers | None = None

    def feed(self, data: bytes) -> None:
        if not self._decided:
            self._head += data
            if len(self._head) < len(GZIP_MAGIC):
                return
            data, self._head = self._head, b""
            self._decided = True
            if self._layers > 0 and data.startswith(GZIP_MAGIC):
                self._inflater = GzipMembers()
                self._inner = GzipLayers(self._sink, self._layers - 1)
        if self._inner is None:
            if data:
                self._sink(data)
            return
        self._inflate(data)

    def _inflate(self, data: bytes) -> None:
        assert self._inner is not None
        try:
            self._inflater.inflate(data, self._inner.feed)
        except zlib.error as error:
            raise DumpInvalidError(f"invalid gzip data: {error}") from None

    def finish(self) -> None:
        """After the last byte: every gzip layer ended where its stream says it ends."""
        if not self._decided:
            self._decided = True
            if self._head:
                self._sink(self._head)
            return
        if self._inner is None:
            return
        if not self._inflater.eof:
            raise DumpInvalidError("the gzip data ends early: the file is truncated")
        self._inner.finish()


class _FileContent:
    """What a data file decompressed to: its size, its last bytes, and (if kept) everything."""

    def __init__(self, keep: bool) -> None:
        self.size = 0
        self.tail = b""
        self.kept: bytearray | None = bytearray() if keep else None

    def __call__(self, data: bytes) -> None:
        self.size += len(data)
        self.tail = (self.tail + data[-len(COPY_DATA_END) :])[-len(COPY_DATA_END) :]
        if self.kept is not None:
            if len(self.kept) + len(data) > MAX_TOC_BYTES:
                raise DumpInvalidError(f"it is larger than {MAX_TOC_BYTES} bytes")
            self.kept += data


@dataclass
class _DirectoryRead:
    """Progress of reading a directory dump: what was read and verified so far."""

    folder: str
    until: float
    monotonic: Callable[[], float]
    stored: Mapping[str, int]  # object names relative to the folder -> size, from the listing
    stream: Callable[[str, Callable[[bytes], None], float], CommandResult]
    read_bytes: int = 0
    content_bytes: int = 0
    files: list[str] = field(default_factory=list)


def folder_objects(result: CommandResult, folder: str) -> dict[str, int]:
    """`objects list --format=json` output -> {name relative to the folder: size}."""
    payload = parse_json_output(result)
    if not isinstance(payload, list):
        raise ValueError("gcloud storage objects list printed no JSON list")
    prefix = folder.removeprefix("gs://").partition("/")[2] + "/"
    found: dict[str, int] = {}
    for item in payload:
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name.startswith(prefix):
            found[name[len(prefix) :]] = int(item.get("size") or 0)
    return found


def _stored_name(name: str, stored: Mapping[str, int]) -> str | None:
    """The object holding `name`: as named, else with .gz, in pg_restore's order."""
    for candidate in (name, f"{name}.gz"):
        if candidate in stored:
            return candidate
    return None


def _read_file(read: _DirectoryRead, name: str, what: str, keep: bool) -> _FileContent:
    """Stream one file of the folder through GzipLayers; ExportFailedError if it falls short."""
    stored = _stored_name(name, read.stored)
    if stored is None:
        raise ExportFailedError(
            f"verification of {read.folder}/ failed: {name} ({what}) is missing: the export did "
            "not write every file its table of contents lists"
        )
    uri = f"{read.folder}/{stored}"
    content = _FileContent(keep)
    layers = GzipLayers(content)
    counted = [0]

    def consume(chunk: bytes) -> None:
        counted[0] += len(chunk)
        layers.feed(chunk)

    started = read.monotonic()
    try:
        result = read.stream(uri, consume, read.until - started)
        _check_read(result, uri, read.until - started, counted[0])
        if counted[0] == 0:
            raise DumpInvalidError("it is empty (0 bytes)")
        layers.finish()
    except DumpInvalidError as invalid:
        raise ExportFailedError(
            f"verification of {read.folder}/ failed: {stored} ({what}): {invalid}"
        ) from None
    read.read_bytes += counted[0]
    read.content_bytes += content.size
    read.files.append(uri)
    return content


def _check_read(result: CommandResult, uri: str, allowed: float, counted: int) -> None:
    if result.timed_out:
        raise ExportFailedError(
            f"verification of {uri} did not finish within the {allowed:.0f} s left in this "
            f"database's budget (read {counted} bytes so far); the export is kept but unverified"
        )
    if result.returncode != 0:
        message = gcloud_error(result)
        if _OBJECT_NOT_FOUND.search(message):
            raise DumpInvalidError("it was listed but is gone")
        hint = ""
        if _PERMISSION_DENIED.search(message):
            hint = "; the caller needs storage.objects.get on the bucket (see ops/export/README.md)"
        raise ExportFailedError(
            f"could not verify {uri}: reading it failed: {message}{hint}; the export is kept but "
            "unverified"
        )


def _blob_files(content: _FileContent) -> list[str]:
    """A blobs_N.toc lists one large object per line: "OID FILENAME" (pg_backup_directory.c)."""
    text = bytes(content.kept or b"").decode("utf-8", errors="replace")
    names = []
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0].isdigit():
            raise DumpInvalidError(f"unexpected line in a large-object list: {line[:80]!r}")
        names.append(parts[1])
    return names


def list_folder(gcloud: Gcloud, folder: str, timeout: float) -> dict[str, int]:
    """The folder's objects; ExportFailedError when it cannot be listed or is empty."""
    result = gcloud.list_objects(f"{folder}/**", timeout)
    if result.returncode != 0:
        message = gcloud_error(result)
        hint = ""
        if _PERMISSION_DENIED.search(message):
            hint = (
                "; the caller needs storage.objects.list on the bucket (see ops/export/README.md)"
            )
        raise ExportFailedError(
            f"could not verify {folder}/: listing it failed: {message}{hint}; the export is kept "
            "but unverified"
        )
    try:
        stored = folder_objects(result, folder)
    except ValueError as error:
        raise ExportFailedError(f"could not verify {folder}/: {error}") from None
    if not stored:
        raise ExportFailedError(f"export reported success but nothing was written under {folder}/")
    return stored


def verify_directory_export(
    gcloud: Gcloud, folder: str, until: float, monotonic: Callable[[], float]
) -> VerifiedDump:
    """Prove the folder holds a whole pg_dump directory dump: toc.dat parses, and every file it
    names (each table's data, each large object) is present, reads to its end through its gzip
    layers, and each table's COPY data ends with pg_dump's end-of-data marker. Reading every file
    costs what reading a .sql.gz costs (the same bytes), and is what catches one thread's file
    missing or cut short; restoring is left to the drill."""
    started = monotonic()
    stored = list_folder(gcloud, folder, max(0.0, min(GCLOUD_CALL_SECONDS, until - started)))
    read = _DirectoryRead(folder, until, monotonic, stored, gcloud.stream_object)
    if _stored_name(TOC_FILE, stored) is None:
        raise ExportFailedError(
            f"verification of {folder}/ failed: it has no {TOC_FILE}, so it is not a pg_dump "
            f"directory dump (it holds {', '.join(sorted(stored)[:5])})"
        )
    toc = _read_file(read, TOC_FILE, "the table of contents", keep=True)
    try:
        entries = parse_toc(bytes(toc.kept or b""))
    except DumpInvalidError as invalid:
        raise ExportFailedError(f"verification of {folder}/ failed: {invalid}") from None
    for entry in entries:
        if entry.filename is None:
            continue
        is_blob_list = entry.desc == "BLOBS"
        content = _read_file(read, entry.filename, entry.label, keep=is_blob_list)
        if entry.desc == "TABLE DATA" and entry.copy_stmt and content.tail != COPY_DATA_END:
            raise ExportFailedError(
                f"verification of {folder}/ failed: {entry.filename} ({entry.label}) does not end "
                "with COPY's end-of-data line: the table's data was cut short"
            )
        if is_blob_list:
            try:
                blob_files = _blob_files(content)
            except DumpInvalidError as invalid:
                raise ExportFailedError(
                    f"verification of {folder}/ failed: {entry.filename}: {invalid}"
                ) from None
            for name in blob_files:
                _read_file(read, name, f"large object of {entry.label}", keep=False)
    return VerifiedDump(
        read.read_bytes, read.content_bytes, round(monotonic() - started, 3), tuple(read.files)
    )


# --------------------------------------------------------------------------------------------
# One database
# --------------------------------------------------------------------------------------------


@dataclass
class DatabaseRun:
    """What happened so far for one database; filled in as the export progresses."""

    database: str
    uri: str
    attempts: int = 0
    operation: str | None = None
    verified: VerifiedDump | None = None
    # Why the name could not be checked before exporting (the export went ahead regardless).
    name_check_skipped: str | None = None


@dataclass(frozen=True)
class Clock:
    """Time sources, injectable so that tests need not wait."""

    now: Callable[[], datetime]
    monotonic: Callable[[], float]
    sleep: Callable[[float], None]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)  # noqa: UP017 (datetime.UTC needs Python 3.11)


SYSTEM_CLOCK = Clock(now=_utc_now, monotonic=time.monotonic, sleep=time.sleep)


def object_uri(settings: Settings, database: str, now: datetime) -> str:
    """gs://BUCKET/cloudsql/INSTANCE/DATABASE/YYYYMMDDTHHMMSSZ.sql.gz (.gz: Cloud SQL gzips), or
    for a parallel export the folder gs://BUCKET/cloudsql/INSTANCE/DATABASE/YYYYMMDDTHHMMSSZ
    (the docs' destination is "gs://BUCKET_NAME/BUCKET_PATH/FOLDER",
    https://cloud.google.com/sql/docs/postgres/import-export/import-export-parallel)."""
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")  # noqa: UP017 (Python 3.9)
    folder = f"gs://{settings.bucket}/cloudsql/{settings.instance}/{database}/{stamp}"
    return folder if settings.parallel else f"{folder}.sql.gz"


def _permission_hint(settings: Settings) -> str:
    return (
        f"the caller needs cloudsql.instances.export and cloudsql.instances.get on project "
        f"{settings.project}, and the instance's service account needs roles/storage.objectAdmin "
        f"on gs://{settings.bucket} (see ops/export/README.md)"
    )


def _call_timeout(until: float, monotonic: Callable[[], float]) -> float:
    """A short call's timeout: its usual bound, or less when the budget is nearly used up."""
    return max(0.0, min(GCLOUD_CALL_SECONDS, until - monotonic()))


def check_name_free(settings: Settings, gcloud: Gcloud, run: DatabaseRun, timeout: float) -> None:
    """Refuse to reuse an object name: an export must never replace an earlier one. When the
    name cannot be checked (e.g. 403 on the object's metadata), note why and export anyway:
    Cloud SQL itself fails an export whose object exists (ExportContext.uri: "If the file
    already exists, the request succeeds, but the operation fails",
    https://cloud.google.com/sql/docs/postgres/admin-api/rest/v1beta4/operations), and
    verification then decides whether the database succeeded."""
    if settings.parallel:
        _check_folder_free(gcloud, run, timeout)
        return
    result = gcloud.describe_object(run.uri, timeout)
    if result.returncode == 0:
        raise ExportFailedError(
            f"{run.uri} already exists; refusing to overwrite an existing export"
        )
    message = gcloud_error(result)
    if _OBJECT_NOT_FOUND.search(message):
        return
    _skip_name_check(run, message)


def _skip_name_check(run: DatabaseRun, message: str) -> None:
    run.name_check_skipped = f"could not check whether {run.uri} already exists: {message}"
    progress(f"{run.database}: {run.name_check_skipped}; exporting anyway")


def _check_folder_free(gcloud: Gcloud, run: DatabaseRun, timeout: float) -> None:
    """A parallel export's folder must hold nothing yet: never mix two dumps in one folder."""
    result = gcloud.list_objects(f"{run.uri}/**", timeout)
    if result.returncode != 0:
        _skip_name_check(run, gcloud_error(result))
        return
    try:
        taken = folder_objects(result, run.uri)
    except ValueError as error:
        _skip_name_check(run, str(error))
        return
    if taken:
        raise ExportFailedError(
            f"{run.uri}/ already holds {len(taken)} object(s) (such as {min(taken)}); refusing "
            "to export into a folder that is not empty"
        )


def explain(settings: Settings, database: str, message: str) -> str | None:
    """What to fix, for the errors an operator can fix; None for anything else."""
    if _PERMISSION_DENIED.search(message):
        return f"permission denied: {message}; {_permission_hint(settings)}"
    if _MISSING_DATABASE.search(message):
        return (
            f"database {database!r} does not exist on instance {settings.instance}: {message}; "
            "correct EXPORT_DATABASES"
        )
    return None


def _start_failure(settings: Settings, database: str, message: str) -> ExportFailedError:
    explained = explain(settings, database, message)
    return ExportFailedError(explained or f"could not start the export: {message}")


def start_export(
    settings: Settings, gcloud: Gcloud, run: DatabaseRun, clock: Clock, until: float
) -> str:
    """Start the export and return its operation name, retrying only while the instance is busy
    and only while another attempt still fits before `until`."""
    last_busy_message = ""
    for attempt in range(1, settings.max_attempts + 1):
        run.attempts = attempt
        result = gcloud.start_export(
            settings, run.uri, run.database, _call_timeout(until, clock.monotonic)
        )
        if result.returncode == 0:
            return _operation_name(result)
        message = gcloud_error(result)
        if not _INSTANCE_BUSY.search(message) or result.timed_out:
            raise _start_failure(settings, run.database, message)
        last_busy_message = message
        if attempt == settings.max_attempts:
            break
        delay = backoff_seconds(settings.retry_base_seconds, attempt)
        if clock.monotonic() + delay + GCLOUD_CALL_SECONDS > until:
            raise ExportFailedError(
                f"instance {settings.instance} was busy with another operation on {attempt} "
                f"attempt(s), and another attempt no longer fits in this database's time "
                f"budget: {message}"
            )
        progress(
            f"{run.database}: instance {settings.instance} is busy with another operation; "
            f"attempt {attempt}/{settings.max_attempts} failed, retrying in {delay:g} s"
        )
        clock.sleep(delay)
    raise ExportFailedError(
        f"instance {settings.instance} was busy with another operation on all "
        f"{settings.max_attempts} attempts: {last_busy_message}"
    )


def _operation_name(result: CommandResult) -> str:
    try:
        operation = parse_json_output(result)
    except ValueError as error:
        raise ExportFailedError(
            f"the export started but its operation is unknown: {error}"
        ) from None
    name = operation.get("name") if isinstance(operation, dict) else None
    if not isinstance(name, str) or not name:
        raise ExportFailedError("the export started but gcloud returned no operation name")
    return name


def _final_operation(result: CommandResult, operation: str) -> dict[str, Any]:
    """The operation from `operations wait` (a list) or `operations describe` (an object)."""
    payload = parse_json_output(result)
    candidates = payload if isinstance(payload, list) else [payload]
    for candidate in candidates:
        if isinstance(candidate, dict) and candidate.get("name") in (operation, None):
            return candidate
    raise ValueError(f"gcloud's output does not describe operation {operation}")


def _check_finished(
    settings: Settings, database: str, name: str, operation: Mapping[str, Any]
) -> None:
    errors = operation_errors(operation)
    if errors:
        explained = explain(settings, database, errors) or errors
        raise ExportFailedError(f"export operation {name} failed: {explained}")
    status = operation.get("status")
    if status != "DONE":
        raise ExportFailedError(f"export operation {name} ended in status {status!r}, not DONE")


def _timed_out(settings: Settings, operation: str, waited: float) -> ExportFailedError:
    return ExportFailedError(
        f"export operation {operation} did not finish within the {waited:.0f} s this database's "
        f"time budget leaves for waiting; it may still be running: inspect it with "
        f"`gcloud sql operations describe {operation} --project {settings.project}`"
    )


def wait_deadline(settings: Settings, deadlines: Deadlines, now: float) -> float:
    """When waiting for the export must stop: the budget's limit, or the optional tighter cap
    (then gcloud's own --timeout is the cap, and its process gets the usual margin on top)."""
    if settings.operation_timeout_seconds is None:
        return deadlines.wait_until
    capped = now + settings.operation_timeout_seconds + WAIT_PROCESS_MARGIN_SECONDS
    return min(deadlines.wait_until, capped)


def wait_for_export(
    settings: Settings,
    gcloud: Gcloud,
    database: str,
    operation: str,
    monotonic: Callable[[], float],
    until: float,
) -> None:
    """Wait until the operation is DONE; fail with Google's message if it ended with an error."""
    started = monotonic()
    interrupted_waits = 0
    while True:
        remaining = until - monotonic()
        # Whole seconds for gcloud; rounding may take half a second of the margin, never more.
        gcloud_timeout = round(remaining - WAIT_PROCESS_MARGIN_SECONDS)
        if gcloud_timeout < 1:
            raise _timed_out(settings, operation, until - started)
        result = gcloud.wait_for_operation(operation, gcloud_timeout, remaining)
        if result.returncode == 0:
            try:
                final = _final_operation(result, operation)
            except ValueError as error:
                raise ExportFailedError(
                    f"could not read export operation {operation}: {error}"
                ) from None
            _check_finished(settings, database, operation, final)
            return
        message = gcloud_error(result)
        if result.timed_out or _WAIT_TIMED_OUT.search(message):
            raise _timed_out(settings, operation, until - started)
        # `operations wait` also gives up on the first HTTP error it meets while polling, even
        # though the export runs on: the operation itself says whether it is finished.
        timeout = _call_timeout(until, monotonic)
        if _finished_after_failed_wait(settings, gcloud, database, operation, message, timeout):
            return
        interrupted_waits += 1
        if interrupted_waits > MAX_INTERRUPTED_WAITS:
            raise ExportFailedError(
                f"waiting for export operation {operation} failed {interrupted_waits} times "
                f"(last: {message}); the operation is still running"
            )
        progress(
            f"{database}: waiting for operation {operation} broke off ({message}); "
            "it is still running, waiting again"
        )


def _finished_after_failed_wait(
    settings: Settings,
    gcloud: Gcloud,
    database: str,
    operation: str,
    wait_message: str,
    timeout: float,
) -> bool:
    """True if the operation is DONE and succeeded, False if it is still running; else raises."""
    described = gcloud.describe_operation(operation, timeout)
    if described.returncode != 0:
        raise ExportFailedError(f"waiting for export operation {operation} failed: {wait_message}")
    try:
        final = _final_operation(described, operation)
    except ValueError:
        raise ExportFailedError(
            f"waiting for export operation {operation} failed: {wait_message}"
        ) from None
    if operation_errors(final) or final.get("status") == "DONE":
        _check_finished(settings, database, operation, final)
        return True
    return False


# Objects per `gcloud storage objects update` call: keeps the command line short however many
# tables a directory dump has.
RETENTION_BATCH = 100


def retain_until(uri: str, days: int) -> str:
    """Export time (the object name's stamp, taken before Cloud SQL writes it) + ``days``, RFC 3339.

    Never later than the object's creation + ``days``: the bucket's lifecycle deletes an export at
    that age, so it never meets one that is still retained, and nothing outlives the promise.
    """
    stamp = uri.rsplit("/", 1)[-1].split(".", 1)[0]
    exported_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)  # noqa: UP017
    return (exported_at + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def lock_retention(
    settings: Settings,
    gcloud: Gcloud,
    run: DatabaseRun,
    until_deadline: float,
    monotonic: Callable[[], float],
) -> None:
    """Give a verified dump, every object of it, its retain-until (Object Retention Lock), in
    batches of RETENTION_BATCH objects per `objects update`; raises ExportFailedError."""
    if settings.retention_mode == "none":
        return
    uri = run.uri
    until = retain_until(uri, settings.retention_days)
    objects = (run.verified.files if run.verified else ()) or (uri,)
    for start in range(0, len(objects), RETENTION_BATCH):
        batch = objects[start : start + RETENTION_BATCH]
        timeout = _call_timeout(until_deadline, monotonic)
        result = gcloud.set_retention(batch, until, settings.retention_mode, timeout)
        if result.returncode != 0:
            _retention_failed(settings, uri, until, result)
    progress(f"{uri}: {len(objects)} object(s) retained ({settings.retention_mode}) until {until}")


def _retention_failed(settings: Settings, uri: str, until: str, result: CommandResult) -> NoReturn:
    message = gcloud_error(result)
    hint = ""
    if _PERMISSION_DENIED.search(message):
        hint = "; the caller needs storage.objects.setRetention and storage.objects.update on the bucket"
    raise ExportFailedError(
        f"exported and verified {uri}, but could not retain it until {until} "
        f"({settings.retention_mode}): {message}{hint}"
    )


def export_database(
    settings: Settings, gcloud: Gcloud, run: DatabaseRun, clock: Clock, deadlines: Deadlines
) -> None:
    """Export one database into run.uri and verify it, recording progress in `run`; raises
    ExportFailedError. Each step ends by its deadline, so the failure is always logged in time."""
    check_name_free(settings, gcloud, run, _call_timeout(deadlines.wait_until, clock.monotonic))
    run.operation = start_export(settings, gcloud, run, clock, deadlines.wait_until)
    progress(f"{run.database}: export operation {run.operation} started, waiting for it")
    until = wait_deadline(settings, deadlines, clock.monotonic())
    wait_for_export(settings, gcloud, run.database, run.operation, clock.monotonic, until)
    progress(f"{run.database}: export finished, verifying {run.uri}")
    # The retention call gets the last GCLOUD_CALL_SECONDS of the database's share.
    reserve = 0.0 if settings.retention_mode == "none" else GCLOUD_CALL_SECONDS
    verify = verify_directory_export if settings.parallel else verify_export
    run.verified = verify(gcloud, run.uri, deadlines.verify_until - reserve, clock.monotonic)
    lock_retention(settings, gcloud, run, deadlines.verify_until, clock.monotonic)


# --------------------------------------------------------------------------------------------
# Logging: one JSON line per database and one per run on stdout; progress on stderr
# --------------------------------------------------------------------------------------------


def emit(record: Mapping[str, object]) -> None:
    """One structured log line; Cloud Logging parses it into jsonPayload."""
    sys.stdout.write(json.dumps(record, sort_keys=False) + "\n")
    sys.stdout.flush()


def progress(message: str) -> None:
    sys.stderr.write(f"cloudsql-export: {message}\n")
    sys.stderr.flush()


def database_record(
    settings: Settings, run: DatabaseRun, error: str | None, duration_s: float
) -> dict[str, object]:
    """The per-database log line (field names are a contract: see ops/export/README.md)."""
    verified = run.verified if error is None else None
    if verified is not None:
        what = f"directory dump of {len(verified.files)} files" if verified.files else "pg_dump"
        message = (
            f"Exported database {run.database} of {settings.instance} to {run.uri} "
            f"({verified.compressed_bytes} bytes, verified: a complete {what} of "
            f"{verified.uncompressed_bytes} bytes)"
        )
    else:
        message = f"Export of database {run.database} of {settings.instance} failed: {error}"
    return {
        "severity": "INFO" if error is None else "ERROR",
        "message": message,
        "event": DATABASE_EVENT,
        "status": "succeeded" if error is None else "failed",
        "project": settings.project,
        "instance": settings.instance,
        "database": run.database,
        "object": run.uri,
        "format": settings.export_format,
        "files": (len(verified.files) or 1) if verified else None,
        "bytes": verified.compressed_bytes if verified else None,
        "uncompressed_bytes": verified.uncompressed_bytes if verified else None,
        "verify_duration_s": verified.seconds if verified else None,
        "duration_s": round(duration_s, 3),
        "attempts": run.attempts,
        "error": error,
        "operation": run.operation,
    }


def run_record(
    settings: Settings, succeeded: Sequence[str], failed: Sequence[str], duration_s: float
) -> dict[str, object]:
    """The closing summary line of a run."""
    total = len(succeeded) + len(failed)
    if failed:
        message = f"Export run failed for {len(failed)} of {total} database(s): {', '.join(failed)}"
    else:
        message = f"Export run succeeded for all {total} database(s) of {settings.instance}"
    return {
        "severity": "ERROR" if failed else "INFO",
        "message": message,
        "event": RUN_EVENT,
        "status": "failed" if failed else "succeeded",
        "project": settings.project,
        "instance": settings.instance,
        "databases": total,
        "succeeded": list(succeeded),
        "failed": list(failed),
        "duration_s": round(duration_s, 3),
    }


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


class Terminated(BaseException):
    """SIGTERM arrived (Cloud Run task timeout or cancellation); not an Exception on purpose."""


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signal.Signals(signum).name)


@dataclass
class RunTally:
    """Which databases succeeded and failed so far; logs each result as it is added."""

    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(
        self, settings: Settings, run: DatabaseRun, error: str | None, duration_s: float
    ) -> None:
        emit(database_record(settings, run, error, duration_s))
        if error is None:
            self.succeeded.append(run.database)
            size = run.verified.compressed_bytes if run.verified else None
            progress(f"{run.database}: done, {size} bytes, verified")
        else:
            self.failed.append(run.database)
            progress(f"{run.database}: FAILED: {error}")


def _export_or_explain(
    settings: Settings, gcloud: Gcloud, run: DatabaseRun, clock: Clock, deadlines: Deadlines
) -> str | None:
    """None when the database was exported and verified, otherwise why it was not."""
    try:
        export_database(settings, gcloud, run, clock, deadlines)
    except ExportFailedError as failure:
        if run.name_check_skipped:
            return f"{failure} (before exporting: {run.name_check_skipped})"
        return str(failure)
    return None


def export_all(settings: Settings, gcloud: Gcloud, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Export every database in order, logging each; True if all of them succeeded."""
    run_started = clock.monotonic()
    budget = settings.budget
    tally = RunTally()
    for index, database in enumerate(settings.databases):
        run = DatabaseRun(database, object_uri(settings, database, clock.now()))
        started = clock.monotonic()
        deadlines = database_deadlines(run_started, index, budget)
        progress(
            f"{database}: exporting to {run.uri} (must be verified within "
            f"{deadlines.verify_until - started:.0f} s)"
        )
        try:
            error = _export_or_explain(settings, gcloud, run, clock, deadlines)
        except Terminated as stop:
            # Log what we know so that the alerting sees this run fail, then stop.
            error = f"the run was stopped by {stop} during this export"
            if run.operation:
                error += f"; operation {run.operation} may still be running"
            tally.add(settings, run, error, clock.monotonic() - started)
            for skipped in settings.databases[index + 1 :]:
                never_run = DatabaseRun(skipped, object_uri(settings, skipped, clock.now()))
                tally.add(settings, never_run, f"not attempted: the run was stopped by {stop}", 0.0)
            break
        tally.add(settings, run, error, clock.monotonic() - started)
    emit(run_record(settings, tally.succeeded, tally.failed, clock.monotonic() - run_started))
    return not tally.failed


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point: 0 all exported, 1 some failed, 2 invalid settings."""
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv, environ or os.environ)
    except SettingsError as error:
        progress(f"invalid settings (see --help and ops/export/README.md):\n{error}")
        return EXIT_INVALID_SETTINGS
    signal.signal(signal.SIGTERM, _raise_terminated)
    databases = ", ".join(settings.databases)
    progress(f"exporting {databases} of {settings.project}:{settings.instance}")
    gcloud = Gcloud(settings.gcloud, settings.project)
    return EXIT_SUCCEEDED if export_all(settings, gcloud) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
