"""Logical export of Cloud SQL for PostgreSQL databases to Cloud Storage, one gzip SQL dump each.

The scheduled Cloud Run job runs this file as `python3 -c <contents>` in Google's Cloud SDK image,
and `make export STACK=...` runs the very same file by hand. So it is ONE self-contained file:
Python 3.9+, standard library only, talking to Google exclusively through the `gcloud` CLI.

Per database, in order, trying every database even when one fails:
  1. pick gs://BUCKET/cloudsql/INSTANCE/DATABASE/YYYYMMDDTHHMMSSZ.sql.gz and refuse to reuse a name;
  2. start `gcloud sql export sql --async`, retrying with exponential backoff while the instance
     is busy with another operation (HTTP 409); never retrying permission or missing-database errors;
  3. wait for the operation with `gcloud sql operations wait --timeout`;
  4. check that the object exists and is not empty;
  4b. with EXPORT_RETENTION_MODE Locked or Unlocked, set the verified dump's retain-until to its export
     time + EXPORT_RETENTION_DAYS (Object Retention Lock), so nobody can delete it earlier;
  5. print one JSON line to stdout (Cloud Logging turns it into jsonPayload).
A final JSON line summarises the run. Human-readable progress goes to stderr.

Exit status: 0 every database exported, 1 at least one failed, 2 invalid settings.
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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn, Protocol

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_INVALID_SETTINGS = 2

DATABASE_EVENT = "cloudsql_export"
RUN_EVENT = "cloudsql_export_run"

BACKOFF_CAP_SECONDS = 600.0
# gcloud enforces the operation timeout itself; this margin only guards against a gcloud process
# that hangs (network trouble) so that the job still logs a result before Cloud Run kills it.
WAIT_PROCESS_MARGIN_SECONDS = 300.0
# Upper bound for the short gcloud calls (start an export, describe an object or an operation).
SHORT_CALL_TIMEOUT_SECONDS = 300.0
MAX_ERROR_CHARS = 2000
# How often waiting may break off (transient API errors) before the export is given up on.
MAX_INTERRUPTED_WAITS = 10

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
_OBJECT_NOT_FOUND = re.compile(r"not found: 404|HTTPError 404", re.IGNORECASE)
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
    operation_timeout_seconds: int
    gcloud: str
    retention_mode: str
    retention_days: int


@dataclass(frozen=True)
class _Option:
    """One setting: its environment variable, CLI flag, default and parser."""

    field: str
    env: str
    flag: str
    allowed: str
    parse: Callable[[str], object]
    default: str | None = None


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
        "operation_timeout_seconds",
        "EXPORT_OPERATION_TIMEOUT_SECONDS",
        "--operation-timeout-seconds",
        # gcloud treats --timeout=0 as "wait forever", so 0 is not offered.
        "a whole number of seconds from 1 to 604800 (7 days)",
        _bounded_int(1, 604800),
        "21600",
    ),
    _Option(
        "gcloud",
        "EXPORT_GCLOUD",
        "--gcloud",
        "the path of the gcloud executable, or a name found on PATH",
        _parse_gcloud,
        "gcloud",
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
        if raw is None or not raw.strip():
            problems.append(f"{option.env} ({option.flag}) is not set; allowed: {option.allowed}")
            continue
        try:
            values[option.field] = option.parse(raw)
        except _InvalidValueError as invalid:
            problems.append(
                f"{option.env} ({option.flag}) = {raw!r} is invalid; allowed: {invalid}"
            )
    if problems:
        raise SettingsError("\n".join(problems))
    return Settings(**values)  # type: ignore[arg-type]  # every field was parsed above


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


def run_command(argv: Sequence[str], timeout: float) -> CommandResult:
    """Run a command, capturing its output; never raises for a failing or missing program."""
    try:
        completed = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"{argv[0]} did not finish within {timeout:g} s", True)
    except OSError as error:
        return CommandResult(127, "", f"could not run {argv[0]}: {error}")
    return CommandResult(completed.returncode, completed.stdout, completed.stderr)


class Gcloud:
    """The four gcloud commands the export needs, with the exact flags each one takes."""

    def __init__(self, executable: str, project: str, run: Runner = run_command) -> None:
        self._executable = executable
        self._project = project
        self._run = run

    def _call(self, arguments: Sequence[str], timeout: float) -> CommandResult:
        # --quiet: never wait for an interactive prompt in a job.
        return self._run([self._executable, *arguments, "--quiet"], timeout)

    def describe_object(self, uri: str) -> CommandResult:
        arguments = ["storage", "objects", "describe", uri, f"--project={self._project}"]
        return self._call([*arguments, "--format=json"], SHORT_CALL_TIMEOUT_SECONDS)

    def start_export(self, instance: str, uri: str, database: str, offload: bool) -> CommandResult:
        arguments = ["sql", "export", "sql", instance, uri, f"--database={database}"]
        arguments.append(f"--project={self._project}")
        if offload:
            arguments.append("--offload")
        arguments += ["--async", "--format=json"]
        return self._call(arguments, SHORT_CALL_TIMEOUT_SECONDS)

    def wait_for_operation(self, operation: str, timeout_seconds: int) -> CommandResult:
        arguments = ["sql", "operations", "wait", operation, f"--project={self._project}"]
        arguments += [f"--timeout={timeout_seconds}", "--format=json"]
        return self._call(arguments, timeout_seconds + WAIT_PROCESS_MARGIN_SECONDS)

    def describe_operation(self, operation: str) -> CommandResult:
        arguments = ["sql", "operations", "describe", operation, f"--project={self._project}"]
        return self._call([*arguments, "--format=json"], SHORT_CALL_TIMEOUT_SECONDS)

    def set_retention(self, uri: str, retain_until: str, mode: str) -> CommandResult:
        arguments = ["storage", "objects", "update", uri, f"--project={self._project}"]
        arguments += [f"--retain-until={retain_until}", f"--retention-mode={mode}"]
        return self._call([*arguments, "--format=json"], SHORT_CALL_TIMEOUT_SECONDS)


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


def object_size(description: Mapping[str, Any]) -> int | None:
    """An object's size in bytes: an int in gcloud's standard output, a string in --raw output."""
    size = description.get("size")
    if isinstance(size, bool):
        return None
    if isinstance(size, int):
        return size
    if isinstance(size, str) and size.isdigit():
        return int(size)
    return None


# --------------------------------------------------------------------------------------------
# One database
# --------------------------------------------------------------------------------------------


class ExportFailedError(Exception):
    """This database was not exported; the message tells an operator why and what to do."""


@dataclass
class DatabaseRun:
    """What happened so far for one database; filled in as the export progresses."""

    database: str
    uri: str
    attempts: int = 0
    operation: str | None = None
    size: int | None = None


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
    """gs://BUCKET/cloudsql/INSTANCE/DATABASE/YYYYMMDDTHHMMSSZ.sql.gz (.gz: Cloud SQL gzips)."""
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")  # noqa: UP017 (Python 3.9)
    return f"gs://{settings.bucket}/cloudsql/{settings.instance}/{database}/{stamp}.sql.gz"


def backoff_seconds(base: float, failed_attempts: int) -> float:
    """Delay before the next attempt: base, 2*base, 4*base, ... capped at 600 s."""
    return float(min(base * (2 ** (failed_attempts - 1)), BACKOFF_CAP_SECONDS))


def _permission_hint(settings: Settings) -> str:
    return (
        f"the caller needs cloudsql.instances.export and cloudsql.instances.get on project "
        f"{settings.project}, and the instance's service account needs roles/storage.objectAdmin "
        f"on gs://{settings.bucket} (see ops/export/README.md)"
    )


def ensure_object_absent(settings: Settings, gcloud: Gcloud, uri: str) -> None:
    """Refuse to reuse an object name: an export must never replace an earlier one."""
    result = gcloud.describe_object(uri)
    if result.returncode == 0:
        raise ExportFailedError(f"{uri} already exists; refusing to overwrite an existing export")
    message = gcloud_error(result)
    if _OBJECT_NOT_FOUND.search(message):
        return
    if _PERMISSION_DENIED.search(message):
        raise ExportFailedError(
            f"cannot read object metadata in gs://{settings.bucket}: {message}; the caller "
            "needs storage.objects.get on the bucket (see ops/export/README.md)"
        )
    raise ExportFailedError(f"could not check whether {uri} already exists: {message}")


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
    settings: Settings,
    gcloud: Gcloud,
    run: DatabaseRun,
    sleep: Callable[[float], None],
) -> str:
    """Start the export and return its operation name, retrying only while the instance is busy."""
    last_busy_message = ""
    for attempt in range(1, settings.max_attempts + 1):
        run.attempts = attempt
        result = gcloud.start_export(settings.instance, run.uri, run.database, settings.offload)
        if result.returncode == 0:
            return _operation_name(result)
        message = gcloud_error(result)
        if not _INSTANCE_BUSY.search(message) or result.timed_out:
            raise _start_failure(settings, run.database, message)
        last_busy_message = message
        if attempt < settings.max_attempts:
            delay = backoff_seconds(settings.retry_base_seconds, attempt)
            progress(
                f"{run.database}: instance {settings.instance} is busy with another operation; "
                f"attempt {attempt}/{settings.max_attempts} failed, retrying in {delay:g} s"
            )
            sleep(delay)
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


def _timed_out(settings: Settings, operation: str) -> ExportFailedError:
    return ExportFailedError(
        f"export operation {operation} did not finish within "
        f"{settings.operation_timeout_seconds} s; it may still be running: inspect it with "
        f"`gcloud sql operations describe {operation} --project {settings.project}`"
    )


def wait_for_export(
    settings: Settings,
    gcloud: Gcloud,
    database: str,
    operation: str,
    monotonic: Callable[[], float],
) -> None:
    """Wait until the operation is DONE; fail with Google's message if it ended with an error."""
    deadline = monotonic() + settings.operation_timeout_seconds
    interrupted_waits = 0
    while True:
        remaining = math.ceil(deadline - monotonic())
        if remaining < 1:
            raise _timed_out(settings, operation)
        result = gcloud.wait_for_operation(operation, remaining)
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
            raise _timed_out(settings, operation)
        # `operations wait` also gives up on the first HTTP error it meets while polling, even
        # though the export runs on: the operation itself says whether it is finished.
        if _finished_after_failed_wait(settings, gcloud, database, operation, message):
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
    settings: Settings, gcloud: Gcloud, database: str, operation: str, wait_message: str
) -> bool:
    """True if the operation is DONE and succeeded, False if it is still running; else raises."""
    described = gcloud.describe_operation(operation)
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


def verify_object(settings: Settings, gcloud: Gcloud, uri: str) -> int:
    """The exported object's size; fail unless it exists and is not empty."""
    result = gcloud.describe_object(uri)
    if result.returncode != 0:
        message = gcloud_error(result)
        if _OBJECT_NOT_FOUND.search(message):
            raise ExportFailedError(f"export reported success but no object was written at {uri}")
        raise ExportFailedError(f"could not check the exported object {uri}: {message}")
    try:
        description = parse_json_output(result)
    except ValueError as error:
        raise ExportFailedError(f"could not read the metadata of {uri}: {error}") from None
    size = object_size(description) if isinstance(description, dict) else None
    if size is None:
        raise ExportFailedError(f"could not read the size of {uri} from gcloud's output")
    if size <= 0:
        raise ExportFailedError(f"export reported success but {uri} is empty (0 bytes)")
    return size


def retain_until(uri: str, days: int) -> str:
    """Export time (the object name's stamp, taken before Cloud SQL writes it) + ``days``, RFC 3339.

    Never later than the object's creation + ``days``: the bucket's lifecycle deletes an export at
    that age, so it never meets one that is still retained, and nothing outlives the promise.
    """
    stamp = uri.rsplit("/", 1)[-1].split(".", 1)[0]
    exported_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)  # noqa: UP017
    return (exported_at + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def lock_retention(settings: Settings, gcloud: Gcloud, uri: str) -> None:
    """Give a verified dump its retain-until (Object Retention Lock); raises ExportFailedError."""
    if settings.retention_mode == "none":
        return
    until = retain_until(uri, settings.retention_days)
    result = gcloud.set_retention(uri, until, settings.retention_mode)
    if result.returncode == 0:
        progress(f"{uri}: retained ({settings.retention_mode}) until {until}")
        return
    message = gcloud_error(result)
    hint = ""
    if _PERMISSION_DENIED.search(message):
        hint = "; the caller needs storage.objects.setRetention and storage.objects.update on the bucket"
    raise ExportFailedError(
        f"exported and verified {uri}, but could not retain it until {until} "
        f"({settings.retention_mode}): {message}{hint}"
    )


def export_database(settings: Settings, gcloud: Gcloud, run: DatabaseRun, clock: Clock) -> None:
    """Export one database into run.uri, recording progress in `run`; raises ExportFailedError."""
    ensure_object_absent(settings, gcloud, run.uri)
    run.operation = start_export(settings, gcloud, run, clock.sleep)
    progress(f"{run.database}: export operation {run.operation} started, waiting for it")
    wait_for_export(settings, gcloud, run.database, run.operation, clock.monotonic)
    run.size = verify_object(settings, gcloud, run.uri)
    lock_retention(settings, gcloud, run.uri)


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
    if error is None:
        message = f"Exported database {run.database} of {settings.instance} to {run.uri}"
        message += f" ({run.size} bytes)"
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
        "bytes": run.size if error is None else None,
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
            progress(f"{run.database}: done, {run.size} bytes")
        else:
            self.failed.append(run.database)
            progress(f"{run.database}: FAILED: {error}")


def _export_or_explain(
    settings: Settings, gcloud: Gcloud, run: DatabaseRun, clock: Clock
) -> str | None:
    """None when the database was exported, otherwise why it was not."""
    try:
        export_database(settings, gcloud, run, clock)
    except ExportFailedError as failure:
        return str(failure)
    return None


def export_all(settings: Settings, gcloud: Gcloud, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Export every database in order, logging each; True if all of them succeeded."""
    run_started = clock.monotonic()
    tally = RunTally()
    for index, database in enumerate(settings.databases):
        run = DatabaseRun(database, object_uri(settings, database, clock.now()))
        started = clock.monotonic()
        progress(f"{database}: exporting to {run.uri}")
        try:
            error = _export_or_explain(settings, gcloud, run, clock)
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
